#!/usr/bin/env bash
# serve_smoke_test.sh FANOUT SWITCHBOARD — the bench-smoke ctest for the
# `switchboard serve` benchmarks: run_serve_bench.sh --smoke (every section
# with a few dozen connections and half-second steps, ~20 s). Passes when every
# section ran, every step delivered something, nothing was refused or closed
# and the memory section reported; the figures mean nothing here.
set -euo pipefail
fanout=$1
switchboard=$2
results=$(mktemp /tmp/switchboard-serve-smoke.XXXXXX.jsonl)
trap 'rm -f "$results"' EXIT
"$(dirname "$0")/run_serve_bench.sh" --smoke --fanout "$fanout" --switchboard "$switchboard" \
  --results "$results"
/usr/bin/python3 - "$results" <<'PY'
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
PY
