#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time on its seed corpus.
# usage: run_fuzzer.sh TARGET SEED_DIR SECONDS ARTIFACT_DIR
set -euo pipefail
target=$1 seeds=$2 seconds=$3 artifacts=$4
mkdir -p "$artifacts"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
# The scratch dir comes first so new inputs land there, not in the repo.
# A crashing input is kept in ARTIFACT_DIR for reproduction.
# -timeout: a single input taking over 10 s is a hang and fails the run.
"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$artifacts/" "$scratch" "$seeds"
