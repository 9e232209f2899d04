#!/usr/bin/env bash
# smoke_test.sh LOADGEN RAW_ECHO — the bench-smoke ctest: one second of
# switchboard_loadgen (10 connections, raw TCP) against switchboard_raw_echo.
# Passes when the load generator exits 0 and reports more than 0 messages, so
# the benchmark tooling keeps working; the figure itself means nothing here.
set -euo pipefail
loadgen=$1
raw_echo=$2
out=$(mktemp)
trap 'kill "$server" 2>/dev/null || true; rm -f "$out"' EXIT

"$raw_echo" --host 127.0.0.1 --port 0 >"$out" &
server=$!
for _ in $(seq 100); do
  grep -q '^listening on ' "$out" && break
  sleep 0.05
done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out")
[[ -n $port ]] || { echo "raw echo server did not start"; exit 1; }

result=$("$loadgen" --url "ws://127.0.0.1:$port/" --raw --connections 10 --duration 1 \
  --warmup 0 --json)
echo "$result"
messages=$(sed -n 's/.*"messages":\([0-9]*\).*/\1/p' <<<"$result")
[[ ${messages:-0} -gt 0 ]] || { echo "no messages echoed"; exit 1; }
kill -TERM "$server"
wait "$server"  # SIGTERM must exit 0
