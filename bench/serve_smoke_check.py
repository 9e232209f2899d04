#!/usr/bin/env python3
"""serve_smoke_check.py RESULTS.jsonl: passes (exit 0) when the run_serve_bench.sh
--smoke results have every section, every step delivered something, no
errors, and the memory section reported."""
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
problems = []
expected = {"fanout1k", "fanout10k", "channels-individual", "channels-shared", "channels-mixed",
            "memory-presence-own", "memory-plain-own", "memory-plain-shared", "instr-fanout",
            "instr-individual"}
seen = {r["section"] for r in rows}
if expected - seen:
    problems.append(f"sections missing: {sorted(expected - seen)}")
for r in rows:
    s = r["r"]
    if "step" in s and s["delivered"] == 0:
        problems.append(f"{r['section']} step {s['step']}: nothing delivered")
    if s.get("summary") and any(s["errors"].values()):
        problems.append(f"{r['section']}: errors {s['errors']}")
    if s.get("scenario") == "memory" and s["connections"] <= 0:
        problems.append("memory: no connections")
if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"ok: {len(rows)} result lines")
