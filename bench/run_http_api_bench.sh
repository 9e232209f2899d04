#!/usr/bin/env bash
# run_http_api_bench.sh — publications per second through `switchboard
# serve`'s POST /api/publish from one client process (switchboard_http_load,
# one event loop) with 32 connections: keep-alive (each connection carries
# request after request), keep-alive with 8 requests pipelined per
# connection, and one connection per request (what every call cost before
# keep-alive), in the same run against the same server, alternated
# --rounds times so drift hits every mode alike. Prints a Markdown table
# with the medians and the ratio to one-connection-per-request.
#
#   bench/run_http_api_bench.sh [--build DIR] [--seconds S] [--rounds N]
#                               [--connections N] [--no-pin]
#
# The server runs with an API key on a free port (--port 0), one loop
# thread, pinned to core 0 and the load generator to core 1 (taskset) unless
# --no-pin. Benchmarks are not tests.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build="$repo/build/release"
seconds=3
rounds=3
connections=32
pin=1
command_line="bench/run_http_api_bench.sh $*"

while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --no-pin) pin=0; shift ;;
    *) echo "unknown option $1 (see the top of $0)" >&2; exit 2 ;;
  esac
done

# shellcheck source=bench/bench_common.sh
source "$repo/bench/bench_common.sh"

switchboard="$build/apps/switchboard/switchboard"
load="$build/bench/switchboard_http_load"
for f in "$switchboard" "$load"; do
  [[ -x $f ]] || { log "missing $f: cmake --build --preset release --target switchboard switchboard_http_load"; exit 2; }
done

server_cpu=(); loader_cpu=()
if [[ $pin == 1 ]] && command -v taskset >/dev/null; then
  server_cpu=(taskset -c 0); loader_cpu=(taskset -c 1)
fi

work=$(mktemp -d)
server_pid=""
cleanup() {
  [[ -n $server_pid ]] && stop_pid serve "$server_pid"
  rm -rf "$work"
}
trap cleanup EXIT

key="bench-api-key-0123456789abcdef"
cat >"$work/serve.toml" <<TOML
[server]
threads = 1
[auth]
allow_anonymous = true
[api]
key = "$key"
[log]
level = "warn"
TOML

"${server_cpu[@]}" "$switchboard" serve --host 127.0.0.1 --port 0 --config "$work/serve.toml" \
  >"$work/server.log" 2>&1 &
server_pid=$!
wait_listening "$work/server.log" "$server_pid"
port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work/server.log" | head -1)
[[ -n $port ]] || { log "serve did not start:"; cat "$work/server.log" >&2; exit 1; }
log "serve on port $port; load: $connections connections, $rounds rounds of ${seconds}s per mode; load average $(loadavg)"

run_mode() {  # MODE PIPELINE
  "${loader_cpu[@]}" "$load" --port "$port" --key "$key" --mode "$1" --pipeline "$2" \
    --connections "$connections" --seconds "$seconds" --warmup 0.5
}

: >"$work/results.jsonl"
for ((r = 1; r <= rounds; r++)); do
  for spec in "close 1" "keepalive 1" "keepalive 8"; do
    # shellcheck disable=SC2086
    line=$(run_mode $spec)
    echo "$line" | tee -a "$work/results.jsonl" >&2
  done
done

python3 "$repo/bench/http_api_report.py" "$work/results.jsonl" "$command_line" "$(loadavg)"
