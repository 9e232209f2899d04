#!/usr/bin/env bash
# run_io_backend_bench.sh — `switchboard echo` on the epoll and the io_uring
# event-loop backends, same run: the server (one loop) pinned to core 0,
# switchboard_loadgen to core 1, the two backends alternating for --rounds
# rounds so drift on a shared machine hits both alike. Per point and backend:
# messages/s and server CPU per round trip (loadgen --server-pid reads the
# server's CPU time over the measured window), then the io_uring/epoll ratio
# of the medians (bench/io_backend_report.py). Benchmarks are not tests.
#
#   bench/run_io_backend_bench.sh [--build DIR] [--switchboard PATH] [--rounds N]
#                                 [--seconds S] [--warmup S] [--results FILE] [--tls]
#                                 [--point NAME]...
#
# --tls: the same over wss:// (a throwaway self-signed P-256 certificate).
# --point: only the named point(s) (as printed, e.g. "10,000 x 16 B").
#
# Fan-out on both backends: bench/run_topic_bench.sh with
#   --peer "topic_uring=build/release/bench/switchboard_topic_server --io-backend io_uring"
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build="$repo/build/release"
switchboard="$repo/build/release/apps/switchboard/switchboard"
rounds=3
seconds=5
warmup=1
results=""
tls=0
only_points=()

while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --switchboard) switchboard=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --tls) tls=1; shift ;;
    --point) only_points+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

loadgen="$build/bench/switchboard_loadgen"
[[ -n $results ]] || results=$(mktemp /tmp/switchboard-io-backend.XXXXXX.jsonl)
work=$(mktemp -d /tmp/switchboard-io-backend.XXXXXX)
server_pid=""

# shellcheck source=bench/bench_common.sh
source "$repo/bench/bench_common.sh"

cleanup() {
  [[ -z $server_pid ]] || stop_pid server "$server_pid"
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

scheme=ws
server_tls=()
client_tls=()
if [[ $tls == 1 ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=IP:127.0.0.1 2>/dev/null
  scheme=wss
  server_tls=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem")
  client_tls=(--ca-file "$work/cert.pem")
fi

# wanted COUNT POINT [NAMES...]: true if COUNT is 0 or POINT is among NAMES.
wanted() {
  local count=$1 point=$2 name
  shift 2
  [[ $count == 0 ]] && return 0
  for name in "$@"; do [[ $name == "$point" ]] && return 0; done
  return 1
}

# POINT-NAME LOADGEN-ARGS...
points=(
  "100 x 16 B|--connections 100 --size 16 --inflight 4"
  "1,000 x 16 B|--connections 1000 --size 16 --inflight 1"
  "10,000 x 16 B|--connections 10000 --size 16 --inflight 1"
  "100 x 64 KiB|--connections 100 --size 65536 --inflight 1"
)

for ((round = 1; round <= rounds; ++round)); do
  for entry in "${points[@]}"; do
    point=${entry%%|*}
    wanted ${#only_points[@]} "$point" "${only_points[@]}" || continue
    read -r -a args <<<"${entry#*|}"
    for backend in epoll io_uring; do
      taskset -c 0 "$switchboard" echo --host 127.0.0.1 --port 0 --threads 1 \
        --io-backend "$backend" "${server_tls[@]}" >"$work/server.log" 2>&1 &
      server_pid=$!
      wait_listening "$work/server.log" "$server_pid"
      port=$(sed -n 's/.*listening on wss\{0,1\}:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$work/server.log")
      if grep -q 'io_uring unavailable' "$work/server.log"; then
        log "io_uring fell back to epoll: $(cat "$work/server.log")"
        exit 1
      fi
      if json=$(taskset -c 1 "$loadgen" --url "$scheme://127.0.0.1:$port/" "${args[@]}" "${client_tls[@]}" \
                  --duration "$seconds" --warmup "$warmup" --server-pid "$server_pid" --json); then
        echo "{\"backend\":\"$backend\",\"point\":\"$point\",\"round\":$round,\"result\":$json}" \
          >>"$results"
        log "round $round $point $backend: $(jq -c '[.messages_per_s, .window_cpu_s.server]' <<<"$json")"
      else
        log "loadgen failed: $backend $point"
      fi
      stop_pid server "$server_pid"
      server_pid=""
    done
  done
done

echo "Command: bench/run_io_backend_bench.sh --rounds $rounds --seconds $seconds --warmup $warmup$([[ $tls == 1 ]] && echo ' --tls')"
echo "Results: $results"
python3 "$repo/bench/io_backend_report.py" "$results"
