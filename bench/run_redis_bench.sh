#!/usr/bin/env bash
# run_redis_bench.sh — `switchboard serve` on the Redis broker against the
# memory broker, same run, same load generator (switchboard_fanout):
#   fanout   1,000 subscribers of one channel at fixed publication rates:
#            deliveries per node CPU-second, publish→delivery latency, and
#            Redis's CPU per publication;
#   publish  one subscriber, publication rates raised until the node no
#            longer keeps up (bisected): publications/s one node pushes
#            through one Redis shard;
#   latency  1,000 publications/s to 100 subscribers: publish->delivery p50
#            and p99, the memory broker's one node against two nodes on Redis
#            (publisher on one, subscribers on the other);
#   twonode  (with latency) the fanout rates again on those two nodes:
#            deliveries per CPU-second of both nodes together.
# Each broker gets a fresh node (one loop thread) on 127.0.0.1; the Redis
# broker a fresh redis-server (free port, temporary directory, no
# persistence). Nothing is pinned: the node, Redis and the load generator
# share the machine's cores, so read the ratios, not the absolute figures.
#
#   bench/run_redis_bench.sh [--build DIR] [--duration S] [--subscribers N]
#                            [--rates R1,R2,...] [--publish-rates R1,R2,...] [--brokers memory,redis]
#                            [--sections fanout,publish,latency,twonode] [--smoke]
# Prints Markdown tables. Benchmarks are not tests.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build="$repo/build/release"
duration=5
subscribers=1000
rates=10,100,300
brokers=memory,redis
sections=fanout,publish,latency,twonode
prates=1000,3000,10000,30000,100000
smoke=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --subscribers) subscribers=$2; shift 2 ;;
    --rates) rates=$2; shift 2 ;;
    --publish-rates) prates=$2; shift 2 ;;
    --brokers) brokers=$2; shift 2 ;;
    --sections) sections=$2; shift 2 ;;
    --smoke) smoke=1; duration=1; subscribers=50; rates=10; shift ;;
    *) echo "run_redis_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
switchboard="$build/apps/switchboard/switchboard"
fanout="$build/bench/switchboard_fanout"
[[ -x $switchboard && -x $fanout ]] || { echo "build $build first (switchboard, switchboard_fanout)" >&2; exit 1; }

work=$(mktemp -d /tmp/switchboard-redis-bench-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

cat >"$work/serve.toml" <<'TOML'
[server]
threads = 1
max_connections = 30000
demo = false
[auth]
allow_anonymous = true
[limits]
command_rate = 10000000
command_burst = 10000000
max_backpressure = 262144
backpressure_policy = "drop"
[log]
level = "warn"
[namespaces.bench]
presence = false
publish = "any"
TOML

# start_node BROKER_ARGS... — a node on a free port; sets node_pid, node_port.
start_node() {
  node_port=$(free_port)
  "$switchboard" serve --config "$work/serve.toml" --port "$node_port" "$@" \
    >"$work/node.log" 2>&1 &
  node_pid=$!
  pids+=("$node_pid")
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$node_port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "node did not become healthy:" >&2; cat "$work/node.log" >&2; exit 1
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save '' --appendonly no \
  >"$work/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
sleep 0.3

results="$work/results.jsonl"
for broker in ${brokers//,/ }; do
  args=()
  [[ $broker == redis ]] && args=(--broker "redis://127.0.0.1:$redis_port")
  start_node "${args[@]}"
  if [[ ,$sections, == *,fanout,* ]]; then
  r0=$(cpu_ticks "$redis_pid")
  "$fanout" --url "ws://127.0.0.1:$node_port/ws" --scenario fanout --subscribers "$subscribers" \
    --rates "$rates" --duration "$duration" --warmup 1 --server-pid "$node_pid" --json |
    grep '"scenario"' | sed "s/^{/{\"broker\":\"$broker\",\"section\":\"fanout\",/" >>"$results"
  r1=$(cpu_ticks "$redis_pid")
  echo "{\"broker\":\"$broker\",\"section\":\"redis_cpu_fanout\",\"seconds\":$(awk -v a="$r0" -v b="$r1" -v hz="$hz" 'BEGIN { print (b - a) / hz }')}" >>"$results"
  fi
  if [[ ,$sections, == *,publish,* ]]; then
  [[ $smoke == 1 ]] && prates=100
  r0=$(cpu_ticks "$redis_pid")
  "$fanout" --url "ws://127.0.0.1:$node_port/ws" --scenario fanout --subscribers 1 \
    --rates "$prates" --until-saturated --refine 2 --inflight 2000 --duration "$duration" \
    --warmup 1 --server-pid "$node_pid" --json |
    grep '"scenario"\|max_sustained' | sed "s/^{/{\"broker\":\"$broker\",\"section\":\"publish\",/" >>"$results"
  r1=$(cpu_ticks "$redis_pid")
  echo "{\"broker\":\"$broker\",\"section\":\"redis_cpu_publish\",\"seconds\":$(awk -v a="$r0" -v b="$r1" -v hz="$hz" 'BEGIN { print (b - a) / hz }')}" >>"$results"
  fi
  if [[ ,$sections, == *,latency,* ]]; then
    # Light load, latency only: 1,000 publications/s to 100 subscribers. On
    # Redis through two nodes (publisher on this one, subscribers on a second):
    # the whole cross-node path, node -> Redis -> other node.
    url=(--url "ws://127.0.0.1:$node_port/ws" --server-pid "$node_pid")
    if [[ $broker == redis ]]; then
      first_pid=$node_pid first_port=$node_port
      start_node "${args[@]}"
      url=(--url "ws://127.0.0.1:$node_port/ws" --server-pid "$node_pid"
           --publish-url "ws://127.0.0.1:$first_port/ws" --publish-server-pid "$first_pid")
    fi
    "$fanout" "${url[@]}" --scenario fanout --subscribers 100 --rates 1000 \
      --duration "$duration" --warmup 1 --json |
      grep '"scenario"' | sed "s/^{/{\"broker\":\"$broker\",\"section\":\"latency\",/" >>"$results"
    if [[ $broker == redis && ,$sections, == *,twonode,* ]]; then
      # Fan-out with the publisher on the first node and every subscriber on
      # the second: deliveries per CPU-second of both nodes together.
      "$fanout" "${url[@]}" --scenario fanout --subscribers "$subscribers" --rates "$rates" \
        --duration "$duration" --warmup 1 --json |
        grep '"scenario"' | sed "s/^{/{\"broker\":\"redis-2-nodes\",\"section\":\"fanout\",/" >>"$results"
    fi
    if [[ $broker == redis ]]; then
      kill "$first_pid"; wait "$first_pid" 2>/dev/null || true
    fi
  fi
  kill "$node_pid"; wait "$node_pid" 2>/dev/null || true
done
# Redis's own time per script call (all of them: publishes and subscribe reads).
redis-cli -p "$redis_port" INFO commandstats | tr -d '\r' | grep '^cmdstat_evalsha:' |
  sed 's/^cmdstat_evalsha:/{"section":"evalsha","stats":"/; s/$/"}/' >>"$results" || true

/usr/bin/python3 "$repo/bench/redis_report.py" "$results" "$(uptime)"
