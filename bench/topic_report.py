#!/usr/bin/env python3
"""topic_report.py RESULTS.jsonl: the Markdown tables of run_topic_bench.sh
(server-layer fan-out against the raw fan-out ceiling) from its results file."""
import json, sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]


def n(v, digits=0):
    return f"{v:,.{digits}f}"


steps = [r for r in rows if r["section"] == "rates" and "step" in r["r"]]
servers = []
for r in steps:
    if r["server"] not in servers:
        servers.append(r["server"])
for subs in sorted({r["subscribers"] for r in steps}):
    print(f"{subs:,} subscribers:\n")
    print("| publications/s | server | deliveries/s | p50 / p99 ms | server cores busy / waiting | "
          "deliveries per server CPU-s | ÷ raw | kept up | load |")
    print("|---:|---|---:|---:|---:|---:|---:|---|---:|")
    mine = [r for r in steps if r["subscribers"] == subs]
    for rate in sorted({r["r"]["rate"] for r in mine}):
        at = {r["server"]: r for r in mine if r["r"]["rate"] == rate}
        raw = at.get("raw")
        for s in servers:
            r = at.get(s)
            if not r:
                continue
            x = r["r"]
            secs = x["seconds"]
            busy = x["server_cpu_s"] / secs if x["server_cpu_s"] >= 0 else float("nan")
            wait = x["server_wait_s"] / secs if x["server_wait_s"] >= 0 else float("nan")
            per = x["deliveries_per_server_cpu_s"]
            ratio = "—"
            if raw and s != "raw" and raw["r"]["deliveries_per_server_cpu_s"] > 0:
                ratio = f"{per / raw['r']['deliveries_per_server_cpu_s']:.2f}"
            lat = x["latency_ms"]
            print(f"| {n(rate)} | {s} | {n(x['deliveries_per_s'])} | {lat['p50']:.1f} / {lat['p99']:.1f} | "
                  f"{busy:.2f} / {wait:.2f} | {n(per)} | {ratio} | "
                  f"{'yes' if x['sustained'] else '**no**'} | {r['load']} |")
    print()

instr = [r for r in rows if r["section"] == "instr"]
if instr:
    print("Instructions counted from the end of the set-up to the end of the load, over the deliveries")
    print("in that time, at R and at 2R. A server that batches gets cheaper per delivery as batches")
    print("form, which depends on how far behind it runs (under valgrind, on this machine's load):")
    print("read the two columns as two samples, not as a marginal cost.\n")
    print("| server | subscribers | publications/s R, 2R | instructions per delivery at R | at 2R |")
    print("|---|---:|---:|---:|---:|")
    for r in instr:
        i = r["r"]["instr"]
        cells = [n(i["ir"][k] / i["delivered"][k]) if i["delivered"][k] else "—" for k in (0, 1)]
        print(f"| {r['server']} | {n(r['subscribers'])} | {i['rates'][0]}, {i['rates'][1]} | "
              f"{cells[0]} | {cells[1]} |")
