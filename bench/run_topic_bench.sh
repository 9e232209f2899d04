#!/usr/bin/env bash
# run_topic_bench.sh — fan-out of the server layer (switchboard_topic_server:
# server::publish to websocket::subscribe, no realtime layer) against the
# fan-out ceiling of the bare loop (switchboard_raw_echo --fanout: each
# publication framed once, one send per socket per iteration), driven by
# switchboard_fanout (one channel, N subscribers). Same run: every point runs
# against each server back to back, each on a fresh process pinned to core 0,
# the load generator on core 1. Prints Markdown tables (topic_report.py).
#
#   bench/run_topic_bench.sh [--build DIR] [--only rates,instr]
#                            [--points "SUBS:R1,R2,... SUBS:..."] [--pad BYTES]
#                            [--instr-points "SUBS:R SUBS:R ..."]
#                            [--duration S] [--warmup S] [--peer NAME=COMMAND]...
#                            [--loader-args NAME=ARGS]...
#                            [--results FILE] [--report-only] [--no-pin]
#
# Sections:
#   rates  per point, each server at each rate: deliveries/s, latency, server
#          CPU time, deliveries per server CPU-second (and its ratio to the
#          raw ceiling's at the same rate)
#   instr  user-space instructions per delivery (callgrind; by default 1,000
#          subscribers at 10 and 200 publications/s, 10,000 at 10): raw and
#          topic (and each --peer) at a rate R and at 2R, each on a fresh
#          process, counted from the end of the set-up to the end of the load
# --peer NAME=COMMAND adds a server to both sections: COMMAND must print
# "listening on HOST:PORT" and serve the messages of bench/pubsub_wire.hpp
# on ws://127.0.0.1:PORT/ws. --loader-args NAME=ARGS gives switchboard_fanout
# extra options against server NAME only (e.g. `--compact` for a `switchboard
# serve` peer whose subscribers should ask for compact pushes). Benchmarks are
# not tests.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build="$repo/build/release"
only="rates,instr"
points="1000:1000,3000,6000,10000 10000:100,300,600,1000"
instr_points="1000:10 1000:200 10000:10"
pad=40
duration=5
warmup=1
results=""
report_only=0
pin=1
peers=()
declare -A loader_args
command_line="bench/run_topic_bench.sh $*"

while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --points) points=$2; shift 2 ;;
    --instr-points) instr_points=$2; shift 2 ;;
    --pad) pad=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --peer) peers+=("$2"); shift 2 ;;
    --loader-args) loader_args[${2%%=*}]=${2#*=}; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --report-only) report_only=1; shift ;;
    --no-pin) pin=0; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

fanout="$build/bench/switchboard_fanout"
work=$(mktemp -d /tmp/switchboard-topic-bench.XXXXXX)
server_pid=""
server_port=""

# shellcheck source=bench/bench_common.sh
source "$repo/bench/bench_common.sh"

server_cpu=()
loader_cpu=()
if [[ $pin == 1 ]]; then
  server_cpu=(taskset -c 0)
  loader_cpu=(taskset -c 1)
fi
[[ -n $results ]] || results=$(mktemp /tmp/switchboard-topic-bench.XXXXXX.jsonl)
touch "$results"

# NAME=COMMAND of every server, the raw ceiling first.
servers=("raw=$build/bench/switchboard_raw_echo --fanout"
         "topic=$build/bench/switchboard_topic_server" "${peers[@]}")

stop_server() {
  local p=$server_pid
  [[ -n $p ]] || return 0
  server_pid=""
  stop_pid server "$p"
}
cleanup() {
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT

# start_server [PREFIX...] -- COMMAND...: runs it in the background and reads
# its port from "listening on HOST:PORT".
start_server() {
  ulimit -n "$(ulimit -Hn)"
  : >"$work/server.log"
  "$@" >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 600); do
    grep -q 'listening on' "$work/server.log" && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  server_port=$(sed -n 's/.*listening on .*:\([0-9][0-9]*\).*/\1/p' "$work/server.log" | head -1)
  if [[ -z $server_port ]]; then
    log "server did not start: $*"
    cat "$work/server.log" >&2
    stop_server
    return 1
  fi
}

run_rates() {
  local point
  for point in $points; do
    local subs=${point%%:*} rates=${point#*:} entry
    local -a src=()
    [[ $subs -gt 2000 ]] && src=(--source-ips "$sources")
    for entry in "${servers[@]}"; do
      local name=${entry%%=*} cmd=${entry#*=}
      # shellcheck disable=SC2086  # COMMAND is split into words on purpose
      start_server "${server_cpu[@]}" $cmd || { status=1; continue; }
      local load rc=0
      local -a extra=()
      read -ra extra <<<"${loader_args[$name]:-}"
      load=$(loadavg)
      "${loader_cpu[@]}" "$fanout" --url "ws://127.0.0.1:$server_port/ws" --server-pid "$server_pid" \
        --json --subscribers "$subs" --rates "$rates" --pad "$pad" --duration "$duration" \
        --warmup "$warmup" --drain 20 --max-p99-ms 1000 "${src[@]}" "${extra[@]}" \
        >"$work/fanout.out" 2>"$work/fanout.err" || rc=$?
      [[ $rc == 0 ]] || { log "switchboard_fanout failed ($rc) against $name:"; cat "$work/fanout.err" >&2; }
      local line
      while IFS= read -r line; do
        [[ -n $line ]] || continue
        echo "{\"section\":\"rates\",\"server\":\"$name\",\"subscribers\":$subs,\"load\":$load,\"r\":$line}" >>"$results"
        log "$name $subs: $line"
      done <"$work/fanout.out"
      stop_server
    done
  done
}

# wait_for_line TEXT FILE PID: until FILE holds TEXT or PID has exited (at most 2 minutes).
wait_for_line() {
  for _ in $(seq 2400); do
    grep -q "$1" "$2" && return 0
    kill -0 "$3" 2>/dev/null || return 0
    sleep 0.05
  done
}

# Instructions per delivery: raw, topic and the peers (e.g. topic on
# io_uring) under callgrind, at R and 2R.
# Counting starts once every subscriber is set up (callgrind_control -i on)
# and the counters are dumped once the step is over, while the load generator
# still holds its connections open, so the set-up and the closes, whose cost
# varies from run to run, are not counted.
run_instr() {
  command -v valgrind >/dev/null || { log "valgrind missing: instr skipped"; return 0; }
  local point entry
  for point in $instr_points; do
    local subs=${point%%:*} rate=${point#*:}
    local -a src=()
    [[ $subs -gt 2000 ]] && src=(--source-ips "$sources")
    for entry in "${servers[@]}"; do
      local name=${entry%%=*} cmd=${entry#*=}
      local -a ir=() delivered=() acked=()
      local factor
      for factor in 1 2; do
        local -a extra=()
        read -ra extra <<<"${loader_args[$name]:-}"
        rm -f "$work"/callgrind.out*
        # shellcheck disable=SC2086
        start_server "${server_cpu[@]}" valgrind --tool=callgrind --instr-atstart=no \
          --callgrind-out-file="$work/callgrind.out" $cmd || return 1
        "${loader_cpu[@]}" "$fanout" --url "ws://127.0.0.1:$server_port/ws" --json \
          --subscribers "$subs" --rates "$((rate * factor))" --pad "$pad" --duration 4 \
          --warmup 1 --drain 60 --connect-timeout 120 --hold 5 "${src[@]}" "${extra[@]}" \
          >"$work/fanout.out" 2>"$work/fanout.err" &
        local loader=$!
        wait_for_line 'set up in' "$work/fanout.err" "$loader"
        callgrind_control -i on "$server_pid" >/dev/null 2>&1
        # The step's result: the load is over and the connections stay open
        # (--hold) while the counters are dumped.
        wait_for_line '"step"' "$work/fanout.out" "$loader"
        callgrind_control -d "$server_pid" >/dev/null 2>&1
        wait "$loader" || log "switchboard_fanout failed in instr $name"
        stop_server
        local step
        step=$(grep '"step"' "$work/fanout.out" | head -1)
        [[ -n $step ]] || { log "instr $name: no step result"; cat "$work/fanout.err" >&2; return 1; }
        ir+=("$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$work"/callgrind.out.1 | head -1)")
        delivered+=("$(sed -n 's/.*"delivered":\([0-9]*\).*/\1/p' <<<"$step")")
        acked+=("$(sed -n 's/.*"acked":\([0-9]*\).*/\1/p' <<<"$step")")
      done
      echo "{\"section\":\"instr\",\"server\":\"$name\",\"subscribers\":$subs,\"load\":$(loadavg),\"r\":{\"instr\":{\"rates\":[$rate,$((rate * 2))],\"ir\":[${ir[0]},${ir[1]}],\"delivered\":[${delivered[0]},${delivered[1]}],\"publications\":[${acked[0]},${acked[1]}]}}}" >>"$results"
      log "instr $name $subs@$rate: Ir ${ir[*]}, delivered ${delivered[*]}, publications ${acked[*]}"
    done
  done
}

status=0
if [[ $report_only == 0 ]]; then
  [[ -x $fanout ]] || { echo "no switchboard_fanout at $fanout" >&2; exit 1; }
  [[ ,$only, == *,rates,* ]] && run_rates
  [[ ,$only, == *,instr,* ]] && run_instr
fi

echo "Command: \`$command_line\`"
echo
echo "Each server pinned to core 0, switchboard_fanout to core 1 (pad $pad B); $(nproc) cores,"
echo "$(uname -r), $(date -u +%Y-%m-%d). Results: $results"
echo
/usr/bin/python3 "$repo/bench/topic_report.py" "$results"
exit "$status"
