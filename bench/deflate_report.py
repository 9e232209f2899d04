#!/usr/bin/env python3
"""deflate_report.py RESULTS.jsonl: the permessage-deflate tables of
run_server_bench.sh (off, shared, dedicated) from its results file."""
import json, sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
rows = [r for r in rows if r["server"].startswith("deflate-")]
if not rows:
    sys.exit(0)
modes = [("off", "deflate-off"), ("shared", "deflate-shared"), ("dedicated", "deflate-dedicated")]
def get(server, point):
    found = [r for r in rows if r["server"] == server and r["point"] == point]
    return found[-1] if found else None
def res(server, point):
    r = get(server, point)
    return r["result"] if r and r.get("result") else None
def fmt(v, spec=",.0f"):
    return "—" if v is None else format(v, spec)
def ratio(a, b):
    return "—" if not a or not b else f"{a / b:.2f}"

points = ["json 100 x 1 KiB", "json 1,000 x 1 KiB"]
print()
print("Compression: `switchboard echo --threads 1` with `--deflate` absent (off), `shared`, `dedicated`;")
print("1 KiB JSON-like text (`switchboard_loadgen --payload json --size 1024`, inflight 1). Offers: none")
print("(off); `--deflate-offer no-takeover` (shared); `--deflate-offer takeover`, as browsers (dedicated).")
print()
print("| echo, 1 KiB JSON text | off msg/s | shared msg/s | shared / off | dedicated msg/s | dedicated / off |")
print("|---|---:|---:|---:|---:|---:|")
for p in points:
    v = {m: (res(s, p) or {}).get("messages_per_s") for m, s in modes}
    print(f"| {p[5:]} | {fmt(v['off'])} | {fmt(v['shared'])} | {ratio(v['shared'], v['off'])} | "
          f"{fmt(v['dedicated'])} | {ratio(v['dedicated'], v['off'])} |")
print()
print("| server CPU µs (user + sys) per echo · cores busy | off | shared | dedicated |")
print("|---|---|---|---|")
for p in points:
    cells = []
    for m, s in modes:
        r = get(s, p)
        ok = r and r.get("result") and r["result"].get("echoes_total")
        cells.append("—" if not ok else
                     f"{r['server_cpu_s'] * 1e6 / r['result']['echoes_total']:.2f} · {r['server_cpu']:.2f}")
    print(f"| {p[5:]} | " + " | ".join(cells) + " |")
print()
print("| wire bytes / payload bytes (both directions, frame headers included) | off | shared | dedicated |")
print("|---|---:|---:|---:|")
for p in points:
    cells = []
    for m, s in modes:
        d = (res(s, p) or {}).get("deflate")
        cells.append("—" if not d else f"{d['wire_ratio']:.3f}")
    print(f"| {p[5:]} | " + " | ".join(cells) + " |")
print()
print("| latency µs p50 / p99 · errors | off | shared | dedicated |")
print("|---|---|---|---|")
for p in points:
    cells = []
    for m, s in modes:
        r = res(s, p)
        if not r:
            cells.append("—")
            continue
        lat, bad = r["latency_us"], sum(r.get("errors", {}).values())
        cells.append(f"{lat['p50']:.0f} / {lat['p99']:.0f}" + (f" · {bad} errors" if bad else ""))
    print(f"| {p[5:]} | " + " | ".join(cells) + " |")
print()
print("| user-space memory per idle connection (VmRSS delta / N) | off | shared | dedicated |")
print("|---|---:|---:|---:|")
for p, label in (("deflate idle 10,000", "10,000 idle, after the upgrade"),
                 ("deflate idle 1,000 after 1 message", "1,000 idle, after one 1 KiB echo each")):
    cells = []
    for m, s in modes:
        r = get(s, p)
        c = r["idle"] if r else None
        cells.append("—" if not c or c["kib_per_connection"] is None else
                     f"{c['kib_per_connection']:.2f} KiB ({c['connections']:,})")
    print(f"| {label} | " + " | ".join(cells) + " |")
