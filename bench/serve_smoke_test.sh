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
/usr/bin/python3 "$(dirname "$0")/serve_smoke_check.py" "$results"
