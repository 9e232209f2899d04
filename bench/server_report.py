#!/usr/bin/env python3
"""server_report.py RESULTS.jsonl: the echo, idle-memory and instruction tables of
run_server_bench.sh (raw TCP, Switchboard, Beast) from its results file."""
import json, sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
if all(r["server"].startswith(("deflate-", "tls-")) for r in rows):
    sys.exit(0)  # only compression / TLS results: their tables follow
def get(server, point):
    found = [r for r in rows if r["server"] == server and r["point"] == point]
    return found[-1] if found else None

def fmt(v):
    return "—" if v is None else f"{v:,.0f}"

def ratio(a, b):
    return "—" if not a or not b else f"{a / b:.2f}"

echo_points = ["100 x 16 B", "1,000 x 16 B", "10,000 x 16 B", "100 x 64 KiB"]
targets = {"100 x 64 KiB": (0.90, None)}
print("| messages/s (echo) | raw TCP | Switchboard | Beast | Switchboard / raw | "
      "Switchboard / Beast | target | met |")
print("|---|---:|---:|---:|---:|---:|---|---|")
def rate(server, point, key="messages_per_s"):
    r = get(server, point)
    return r["result"].get(key) if r and r.get("result") else None
for p in echo_points:
    raw, sb, be = (rate(s, p) for s in ("raw", "switchboard", "beast"))
    need_raw, need_beast = targets.get(p, (0.95, 1.8))
    target = f"≥ {need_raw:.0%} of raw" + (f", ≥ {need_beast}× Beast" if need_beast else "")
    met = "—"
    if raw and sb:
        ok = sb / raw >= need_raw and (need_beast is None or (be and sb / be >= need_beast))
        met = "yes" if ok else "**no**"
    print(f"| {p} | {fmt(raw)} | {fmt(sb)} | {fmt(be)} | {ratio(sb, raw)} | {ratio(sb, be)} | "
          f"{target} | {met} |")
sb, be = rate("switchboard", "handshakes", "handshakes_per_s"), rate("beast", "handshakes", "handshakes_per_s")
print(f"| handshakes/s (connect-storm, 64 at a time) | — | {fmt(sb)} | {fmt(be)} | — | {ratio(sb, be)} | — | — |")

print()
print("| latency µs p50 / p99 / p99.9 | raw TCP | Switchboard | Beast |")
print("|---|---|---|---|")
for p in echo_points:
    cells = []
    for s in ("raw", "switchboard", "beast"):
        r = get(s, p)
        lat = r["result"].get("latency_us") if r and r.get("result") else None
        cells.append("—" if not lat else f"{lat['p50']:.0f} / {lat['p99']:.0f} / {lat['p999']:.0f}")
    print(f"| {p} | " + " | ".join(cells) + " |")

print()
print("| server CPU (cores busy) · errors | raw TCP | Switchboard | Beast | load avg (1 min) |")
print("|---|---|---|---|---|")
for p in echo_points + ["handshakes"]:
    cells = []
    for s in ("raw", "switchboard", "beast"):
        r = get(s, p)
        if not r or not r.get("result"):
            cells.append("—")
            continue
        e = r["result"].get("errors", {})
        bad = sum(e.values())
        cells.append(f"{r['server_cpu']:.2f}" + (f" · {bad} errors" if bad else ""))
    loads = [r["load"] for r in rows if r["point"] == p and "load" in r]
    load = f"{min(loads):.1f}–{max(loads):.1f}" if loads else "—"
    print(f"| {p} | " + " | ".join(cells) + f" | {load} |")

print()
# CPU time the server spent (user + kernel) per echo over the whole run: what one
# message costs the server core, robust to how much of the core it was given.
print("| server CPU µs (user + sys) per echo | raw TCP | Switchboard | Beast | raw ÷ Switchboard | Beast ÷ Switchboard |")
print("|---|---:|---:|---:|---:|---:|")
for p in echo_points:
    v = {}
    for s in ("raw", "switchboard", "beast"):
        r = get(s, p)
        ok = r and r.get("result") and "server_cpu_s" in r and r["result"].get("echoes_total")
        v[s] = r["server_cpu_s"] * 1e6 / r["result"]["echoes_total"] if ok else None
    f = lambda x: "—" if x is None else f"{x:.2f}"
    print(f"| {p} | {f(v['raw'])} | {f(v['switchboard'])} | {f(v['beast'])} | "
          f"{ratio(v['raw'], v['switchboard'])} | {ratio(v['beast'], v['switchboard'])} |")

print()
print("| idle connections: user-space memory (VmRSS delta / N) | raw TCP | Switchboard | Beast | target | met |")
print("|---|---:|---:|---:|---|---|")
cells = {}
for s in ("raw", "switchboard", "beast"):
    r = get(s, "idle")
    cells[s] = r["idle"] if r else None
def kib(c):
    return "—" if not c or c["kib_per_connection"] is None else \
        f"{c['kib_per_connection']:.2f} KiB ({c['connections']:,} conns)"
sbk = cells["switchboard"]["kib_per_connection"] if cells["switchboard"] else None
met = "—" if sbk is None else ("yes" if sbk <= 0.25 else "**no**")
print(f"| KiB per idle connection | {kib(cells['raw'])} | {kib(cells['switchboard'])} | "
      f"{kib(cells['beast'])} | ≤ 0.25 KiB | {met} |")

print()
print("| server instructions per echoed message (callgrind) | raw TCP | Switchboard | Beast | raw ÷ Switchboard | Beast ÷ Switchboard |")
print("|---|---:|---:|---:|---:|---:|")
for p in ("100 x 16 B", "10 x 64 KiB"):
    v = {}
    for s in ("raw", "switchboard", "beast"):
        r = get(s, "instr " + p)
        i = r["instr"] if r else None
        v[s] = (i["echo_ir"] - i["setup_ir"]) / i["echoes"] if i and i["echoes"] else None
    # Fewer instructions is better: the ratios are raw / Switchboard and Beast / Switchboard.
    print(f"| {p} | {fmt(v['raw'])} | {fmt(v['switchboard'])} | {fmt(v['beast'])} | "
          f"{ratio(v['raw'], v['switchboard'])} | {ratio(v['beast'], v['switchboard'])} |")

# Servers added with --peer: Switchboard's cost against each, same run.
known = ("raw", "switchboard", "beast")
peers = []
for r in rows:
    s = r["server"]
    if s not in known and not s.startswith(("deflate-", "tls-")) and s not in peers:
        peers.append(s)
def cpu_per_echo(s, p):
    r = get(s, p)
    ok = r and r.get("result") and "server_cpu_s" in r and r["result"].get("echoes_total")
    return r["server_cpu_s"] * 1e6 / r["result"]["echoes_total"] if ok else None
def instr_per_echo(s, p):
    r = get(s, "instr " + p)
    i = r["instr"] if r else None
    return (i["echo_ir"] - i["setup_ir"]) / i["echoes"] if i and i["echoes"] else None
if peers:
    print()
    print("| against --peer servers (same run) | server | CPU µs per echo | Switchboard's CPU µs | "
          "Switchboard ÷ peer | instructions per echo | Switchboard ÷ peer |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for p in echo_points + ["10 x 64 KiB"]:  # the last: the instr section's large point
        sb_cpu, sb_ir = cpu_per_echo("switchboard", p), instr_per_echo("switchboard", p)
        for s in peers:
            c, i = cpu_per_echo(s, p), instr_per_echo(s, p)
            if c is None and i is None:
                continue
            f = lambda x: "—" if x is None else f"{x:.2f}"
            print(f"| {p} | {s} | {f(c)} | {f(sb_cpu)} | {ratio(sb_cpu, c)} | {fmt(i)} | "
                  f"{ratio(sb_ir, i)} |")
