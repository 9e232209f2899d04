#!/usr/bin/env bash
# scripts/cluster.sh — a local cluster in one command: redis-server, three
# `switchboard serve` nodes on the Redis broker and nginx in front of them
# (deploy/nginx.conf), the demo page on http://127.0.0.1:8080. Everything runs
# from a scratch directory and stops on Ctrl-C (or when any part exits).
#
#   scripts/cluster.sh            # after ./run (or a release build)
#
# Ports: nginx 8080, nodes 8081-8083 (deploy/nginx.conf), Redis 6390
# (CLUSTER_REDIS_PORT). Never the system's redis or nginx service.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=${SWITCHBOARD:-$root/build/release/apps/switchboard/switchboard}
redis_port=${CLUSTER_REDIS_PORT:-6390}
[[ -x $bin ]] || { echo "cluster.sh: build first (./run or cmake --build --preset release)" >&2; exit 1; }
for tool in redis-server nginx; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] ||
    { echo "cluster.sh: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

work=$(mktemp -d /tmp/switchboard-cluster-XXXXXX)
mkdir -p "$work/tmp"
pids=()
stop() {
  trap - INT TERM EXIT
  echo "cluster.sh: stopping" >&2
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap stop INT TERM EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save '' --appendonly no \
  >"$work/redis.log" 2>&1 &
pids+=($!)
for port in 8081 8082 8083; do
  # nginx is on 127.0.0.1: its X-Forwarded-For names the client (docs/scaling.md).
  "$bin" serve --config config/demo.toml --port "$port" --snapshot-file '' \
    --broker "redis://127.0.0.1:$redis_port" --trusted-proxy 127.0.0.1 &
  pids+=($!)
done
"$nginx_bin" -p "$work" -e stderr -c "$root/deploy/nginx.conf" -g 'daemon off;' &
pids+=($!)
echo "cluster.sh: http://127.0.0.1:8080 (nginx) -> nodes 8081 8082 8083 -> redis 127.0.0.1:$redis_port; Ctrl-C stops" >&2
# Stop everything as soon as one part exits.
wait -n
