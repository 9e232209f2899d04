#!/usr/bin/env python3
"""serve_report.py RESULTS.jsonl: the Markdown tables of run_serve_bench.sh (fan-out,
channels, memory, instructions) from its results file."""
import json, sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
steps = [r for r in rows if "step" in r["r"]]
sections = []
for r in steps:
    if r["section"] not in sections:
        sections.append(r["section"])

def n(v, digits=0):
    return f"{v:,.{digits}f}"

if steps:
    print("| section | subscribers | publications/s | sent / planned | deliveries/s | p50 ms | p99 ms | "
          "max ms | lost | server cores busy / waiting | deliveries per server CPU-s | "
          "loadgen cores busy / waiting | kept up | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
for sec in sections:
    for row in [r for r in steps if r["section"] == sec]:
        s = row["r"]
        lat = s["latency_ms"]
        secs = s["seconds"]
        cpu = s["server_cpu_s"]
        def busy(cpu_s, wait_s):
            if cpu_s is None or cpu_s < 0:
                return "—"
            return f"{cpu_s / secs:.2f}" + (f" / {wait_s / secs:.2f}" if wait_s is not None and wait_s >= 0 else "")
        cores = busy(cpu, s.get("server_wait_s"))
        per = n(s["deliveries_per_server_cpu_s"]) if cpu > 0 else "—"
        rate = n(s["rate"], 1 if s["rate"] % 1 else 0) + (" (½ max)" if s["half"] else "")
        print(f"| {sec} | {n(s['subscribers'])} | {rate} | {n(s['sent'])} / {n(s['planned'])} | "
              f"{n(s['deliveries_per_s'])} | {lat['p50']:.2f} | {lat['p99']:.2f} | {lat['max']:.2f} | "
              f"{n(s['lost'])} | {cores} | {per} | {busy(s['loadgen_cpu_s'], s.get('loadgen_wait_s'))} | "
              f"{'yes' if s['sustained'] else '**no**'} | {row['load']} |")

summaries = [r for r in rows if "max_sustained_rate" in r["r"]]
if summaries:
    print()
    print("| section | highest sustained publications/s | deliveries/s there | first failed |"
          " p99 ms at half of it | deliveries per server CPU-s (best step) |")
    print("|---|---:|---:|---:|---:|---:|")
    for sm in summaries:
        sec = sm["section"]
        mine = [r["r"] for r in steps if r["section"] == sec]
        best = sm["r"]["max_sustained_rate"]
        at_best = [s for s in mine if s["rate"] == best and not s["half"]]
        half = [s for s in mine if s["half"]]
        per = max((s["deliveries_per_server_cpu_s"] for s in mine if s["server_cpu_s"] > 0), default=0)
        half_p99 = f"{half[-1]['latency_ms']['p99']:.2f} (at {n(half[-1]['rate'], 1)}/s)" if half else "—"
        at = n(at_best[-1]["deliveries_per_s"]) if at_best else "—"
        failed = sm["r"]["first_failed_rate"]
        print(f"| {sec} | {n(best, 1 if best % 1 else 0)} | {at} | {n(failed) if failed else '—'} | "
              f"{half_p99} | {n(per)} |")

instr = [r for r in rows if "instr" in r["r"]]
if instr:
    print()
    print("| server instructions (callgrind, user space; marginal: run at 2R minus run at R) | "
          "subscribers | publications/s R, 2R | instructions per delivery | per publication |")
    print("|---|---:|---:|---:|---:|")
    for r in instr:
        i = r["r"]["instr"]
        what = {"instr-fanout": "one channel",
                "instr-fanout-compact": "one channel, compact pushes",
                "instr-individual": "a channel each, round-robin"}.get(r["section"], r["section"])
        dir_ = i["ir"][1] - i["ir"][0]
        dd = i["delivered"][1] - i["delivered"][0]
        dp = i["publications"][1] - i["publications"][0]
        print(f"| {what} | {n(i['subscribers'])} | {i['rates'][0]}, {i['rates'][1]} | "
              f"{n(dir_ / dd) if dd else '—'} | {n(dir_ / dp) if dp else '—'} |")

mem = [r for r in rows if r["r"].get("scenario") == "memory"]
if mem:
    print()
    print("| memory (VmRSS delta / N) | connections | open, idle | + one subscription | total | target |")
    print("|---|---:|---:|---:|---:|---|")
    for m in mem:
        b = m["r"]["bytes_per_connection"]
        what = {"memory-presence-own": "own channel each, presence on",
                "memory-plain-own": "own channel each, presence off",
                "memory-plain-shared": "one channel for all, presence off"}.get(m["section"], m["section"])
        target = "—"
        if m["section"] == "memory-presence-own":
            target = "≤ 1 KiB: " + ("met" if b["total"] <= 1024 else "**missed**")
        print(f"| {what} | {n(m['r']['connections'])} | {b['open']:.0f} B | "
              f"{b['subscription']:.0f} B | {b['total'] / 1024:.3f} KiB | {target} |")

errors = [r for r in rows if r["r"].get("summary")]
bad = [(r["section"], r["r"]["errors"]) for r in errors if any(r["r"]["errors"].values())]
if bad:
    print()
    for sec, e in bad:
        print(f"errors in {sec}: " + ", ".join(f"{k} {v}" for k, v in e.items() if v))
