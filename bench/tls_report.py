#!/usr/bin/env python3
"""tls_report.py RESULTS.jsonl: the TLS tables of run_server_bench.sh (ws:// and
wss:// side by side) from its results file."""
import json, sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
rows = [r for r in rows if r["server"].startswith("tls-")]
if not rows:
    sys.exit(0)
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
def window(server, point):  # (server, loadgen) CPU seconds inside the measured window
    w = (res(server, point) or {}).get("window_cpu_s") or {}
    return w.get("server"), w.get("loadgen")
def per_op(server, point, count_key):  # server CPU µs (user + sys) per operation, in the window
    r = res(server, point)
    cpu, _ = window(server, point)
    n = r.get(count_key) if r else None
    return cpu * 1e6 / n if n and cpu is not None else None

tls = next((res("tls-wss", p) or {}).get("tls") for p in
           ("tls 100 x 16 B", "tls handshakes", "tls 1,000 x 16 B") if res("tls-wss", p))
suite = f"{tls['version']} {tls['cipher']}" if tls and tls.get("version") else "?"
points = [("tls 100 x 16 B", 4), ("tls 1,000 x 16 B", 1), ("tls 100 x 16 KiB", 1),
          ("tls 1,000 x 16 KiB", 1)]
print()
print("TLS: `switchboard echo --threads 1` plain (ws://) and with `--tls-cert/--tls-key` (wss://),")
print(f"both up at once, each point run against both back to back. Negotiated: {suite}; the load")
print("generator verifies the server certificate (`--ca-file`). CPU is user + sys inside the measured")
print("window (`switchboard_loadgen --server-pid`), divided by the echoes / handshakes counted in it;")
print("\"busy\" is cores used in the window (server on core 0, loadgen on core 1: 1.00 = saturated).")
print()
# Per server CPU-second: what the ratio would be if the server's core were the only limit
# (the shared machine and a loader doing the same crypto blur the wall-clock ratio).
print("| echo (conns × size, inflight) | ws msg/s | wss msg/s | wss / ws | wss / ws per server CPU-s | target (wss / ws) | met |")
print("|---|---:|---:|---:|---:|---|---|")
for p, k in points:
    ws, wss = ((res(s, p) or {}).get("messages_per_s") for s in ("tls-ws", "tls-wss"))
    cws, cwss = (per_op(s, p, "messages") for s in ("tls-ws", "tls-wss"))
    small = p.endswith("16 B")
    met = "—"
    if small and ws and wss:
        met = "yes" if wss / ws >= 0.70 else "**no**"
    print(f"| {p[4:]}, {k} | {fmt(ws)} | {fmt(wss)} | {ratio(wss, ws)} | {ratio(cws, cwss)} | "
          f"{'≥ 0.70' if small else '—'} | {met} |")
ws, wss = ((res(s, "tls handshakes") or {}).get("handshakes_per_s") for s in ("tls-ws", "tls-wss"))
cws, cwss = (per_op(s, "tls handshakes", "handshakes") for s in ("tls-ws", "tls-wss"))
print(f"| handshakes/s (connect-storm, 64 at a time; wss: full TLS handshake each) | {fmt(ws)} | "
      f"{fmt(wss)} | {ratio(wss, ws)} | {ratio(cws, cwss)} | — | — |")
print()
print("| server CPU µs per op · busy server / loadgen | ws | wss | wss ÷ ws | TLS adds µs |")
print("|---|---|---|---:|---:|")
for p, key, label in [(p, "messages", p[4:] + " echo") for p, _ in points] + \
        [("tls handshakes", "handshakes", "connect + upgrade + close (storm)")]:
    v = {s: per_op(s, p, key) for s in ("tls-ws", "tls-wss")}
    def cell(s):
        if v[s] is None:
            return "—"
        sec = res(s, p)["seconds"]
        server, loader = window(s, p)
        return f"{v[s]:.2f} · {server / sec:.2f} / {loader / sec:.2f}"
    add = "—" if v["tls-ws"] is None or v["tls-wss"] is None else f"{v['tls-wss'] - v['tls-ws']:.2f}"
    print(f"| {label} | {cell('tls-ws')} | {cell('tls-wss')} | {ratio(v['tls-wss'], v['tls-ws'])} | {add} |")
print()
print("| latency µs p50 / p99 · errors | ws | wss |")
print("|---|---|---|")
for p, _ in points + [("tls handshakes", 0)]:
    cells = []
    for s in ("tls-ws", "tls-wss"):
        r = res(s, p)
        if not r:
            cells.append("—")
            continue
        lat, bad = r["latency_us"], sum(r.get("errors", {}).values())
        cell = "—" if p == "tls handshakes" else f"{lat['p50']:.0f} / {lat['p99']:.0f}"
        cells.append(cell + (f" · {bad} errors" if bad else ""))
    print(f"| {p[4:]} | " + " | ".join(cells) + " |")
print()
print("| user-space memory per idle connection (VmRSS delta / N, server defaults) | ws | wss | wss − ws |")
print("|---|---:|---:|---:|")
c = {s: (get(s, "tls idle") or {}).get("idle") for s in ("tls-ws", "tls-wss")}
k = {s: c[s]["kib_per_connection"] if c[s] else None for s in c}
cell = lambda s: "—" if k[s] is None else f"{k[s]:.2f} KiB ({c[s]['connections']:,})"
diff = "—" if k["tls-ws"] is None or k["tls-wss"] is None else f"{k['tls-wss'] - k['tls-ws']:.2f} KiB"
print(f"| 10,000 idle, after the upgrade | {cell('tls-ws')} | {cell('tls-wss')} | {diff} |")
