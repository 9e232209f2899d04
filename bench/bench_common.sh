# shellcheck shell=bash
# bench_common.sh — shell helpers that run_server_bench.sh and
# run_serve_bench.sh share; sourced (not run) after their option parsing.
# Both run under `set -euo pipefail`.

# Several source addresses for the points with many connections, so
# ephemeral ports never run short (loopback answers on all of 127/8;
# TIME_WAIT lasts 60 s).
# shellcheck disable=SC2034  # used by the scripts that source this
sources="127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4"

log() { echo "# $*" >&2; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }

# wait_listening FILE PID: until FILE (the server's output) says
# 'listening on', PID has exited, or 10 s have passed.
wait_listening() {
  local file=$1 p=$2
  for _ in $(seq 200); do
    grep -q 'listening on' "$file" && break
    kill -0 "$p" 2>/dev/null || break
    sleep 0.05
  done
}

# stop_pid NAME PID: SIGTERM, up to 5 s for PID to exit, then SIGKILL; reaps
# it. NAME is for the log line.
stop_pid() {
  local name=$1 p=$2
  kill -TERM "$p" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$p" 2>/dev/null; then
    log "$name ($p) ignored SIGTERM for 5 s; killing it"
    kill -KILL "$p" 2>/dev/null || true
  fi
  wait "$p" 2>/dev/null || true
}
