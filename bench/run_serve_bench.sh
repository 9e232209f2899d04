#!/usr/bin/env bash
# run_serve_bench.sh — publish/subscribe benchmarks of `switchboard serve`
# with switchboard_fanout (bench/fanout.cpp): fan-out to one channel, many
# channels, instructions per delivery, and memory per subscribed connection.
# Starts a fresh server per section from a temporary config (one loop
# thread; anonymous clients; rate limits out of the way; backpressure policy
# "drop", so that an overloaded step shows as lost deliveries instead of
# closed connections; a 256 KiB backpressure cap, so that 10,000 backed-up
# subscribers hold at most 2.5 GB on this shared machine), pins it to core 0
# and the load generator to core 1, and prints Markdown tables.
#
#   bench/run_serve_bench.sh [--build DIR] [--switchboard PATH] [--fanout PATH]
#                            [--only fanout1k,fanout10k,channels,instr,memory]
#                            [--duration S] [--warmup S] [--results FILE]
#                            [--report-only] [--smoke] [--no-pin] [--print-config]
#
# Sections (all by default; about 7 minutes in all):
#   fanout1k   1,000 subscribers of one channel; rates up to saturation,
#              bisected, then half the highest sustained rate
#   fanout10k  the same with 10,000 subscribers
#   channels   10,000 subscribers, each of its own channel and of one shared
#              channel: publishing to the individual channels, to the shared
#              one, and mixed (1 in 100 to the shared one)
#   instr      user-space instructions per delivery (server under callgrind):
#              1,000 subscribers of one channel at 10 and 20 publications/s
#              (full pushes, then compact ones: switchboard_fanout --compact),
#              1,000 channels of one subscriber each at 100 and 200/s
#   memory     VmRSS per connection: 10,000 upgraded idle connections, then
#              each subscribed to a channel (its own with presence on, its
#              own without, one for all without)
# Across event loops (1 and 2, 10,000 subscribers: saturation, half of it,
# p50 / p99 there, eventfd writes per publication): bench/loops_bench.py.
# --results appends JSON lines (one per step) to FILE; the tables cover
# everything in it. --print-config prints the server's configuration and
# exits (to run the server by hand, e.g. under perf). --smoke runs every
# section with a few dozen connections and half-second steps: the
# bench-smoke ctest (about 20 s). Benchmarks are not tests.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build="$repo/build/release"
switchboard=""
fanout=""
only="fanout1k,fanout10k,channels,instr,memory"
duration=5
warmup=1
results=""
report_only=0
smoke=0
pin=1
print_config=0
command_line="bench/run_serve_bench.sh $*"

while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --switchboard) switchboard=$2; shift 2 ;;
    --fanout) fanout=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --report-only) report_only=1; shift ;;
    --smoke) smoke=1; shift ;;
    --no-pin) pin=0; shift ;;
    --print-config) print_config=1; shift ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

[[ -n $switchboard ]] || switchboard="$build/apps/switchboard/switchboard"
[[ -n $fanout ]] || fanout="$build/bench/switchboard_fanout"
work=$(mktemp -d /tmp/switchboard-serve-bench.XXXXXX)
server_pid=""
server_port=""

# shellcheck source=bench/bench_common.sh
source "$repo/bench/bench_common.sh"

server_cpu=(); loader_cpu=()
if [[ $pin == 1 && $(nproc) -ge 2 ]]; then
  server_cpu=(taskset -c 0); loader_cpu=(taskset -c 1)
fi

# The bench's server configuration. `bench` has no presence (a join push to
# every subscriber per subscribe would dominate set-up) and lets any
# connection publish (the publisher subscribes to nothing); `pres` has
# presence on, for the memory section. History keeps the default 100.
cat >"$work/serve.toml" <<'TOML'
[server]
threads = 1
max_connections = 30000
demo = false

[auth]
allow_anonymous = true

[api]
key = "k"

[limits]
command_rate = 10000000
command_burst = 10000000
max_subscriptions = 16
max_backpressure = 262144
backpressure_policy = "drop"

[log]
level = "warn"

[namespaces.bench]
presence = false
publish = "any"

[namespaces.pres]
presence = true
publish = "any"
TOML

if [[ $print_config == 1 ]]; then
  cat "$work/serve.toml"
  rm -rf "$work"
  exit 0
fi
[[ -n $results ]] || results=$(mktemp /tmp/switchboard-serve-bench.XXXXXX.jsonl)
touch "$results"

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

start_server() {
  ulimit -n "$(ulimit -Hn)"
  : >"$work/server.log"  # now, not in the child: the last section's port must not be read
  "${server_cpu[@]}" "$switchboard" serve --host 127.0.0.1 --port 0 --config "$work/serve.toml" \
    >"$work/server.log" 2>&1 &
  server_pid=$!
  wait_listening "$work/server.log" "$server_pid"
  server_port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
    "$work/server.log" | head -1)
  if [[ -z $server_port ]]; then
    log "switchboard serve did not start:"
    cat "$work/server.log" >&2
    server_pid=""
    return 1
  fi
}

# run SECTION FANOUT-ARGS...: one switchboard_fanout run against a fresh
# server; each JSON line it prints is tagged with SECTION and the load average.
run() {
  local section=$1; shift
  start_server || return 1
  local load out rc=0
  load=$(loadavg)
  out="$work/fanout.out"
  "${loader_cpu[@]}" "$fanout" --url "ws://127.0.0.1:$server_port/ws" --server-pid "$server_pid" \
    --json "$@" >"$out" 2>"$work/fanout.err" || rc=$?
  [[ $rc == 0 ]] || { log "switchboard_fanout failed ($rc) in $section:"; cat "$work/fanout.err" >&2; }
  local line
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    echo "{\"section\":\"$section\",\"load\":$load,\"smoke\":$smoke,\"r\":$line}" >>"$results"
    log "$section: $line"
  done <"$out"
  if ! kill -0 "$server_pid" 2>/dev/null; then
    log "the server died during $section:"
    tail -20 "$work/server.log" >&2
    rc=1
  fi
  stop_server
  return "$rc"
}

# User-space instructions per delivery, repeatable on this noisy machine: the
# server under callgrind, the whole run counted (its total is in the output
# file once it exits). Each point runs twice on a fresh server, at a rate and
# at twice it for the same time; the difference in instructions over the
# difference in deliveries (and publications) is the marginal cost, free of
# the set-up, the closes and the timers, which both runs share. The rates are
# low, so that (even at valgrind's pace) each publication mostly goes out on
# its own, as at low load natively.
run_instr() {
  command -v valgrind >/dev/null || { log "valgrind missing: instr skipped"; return 0; }
  local point
  for point in "fanout:1000:10" "fanout-compact:1000:10" "individual:1000:100"; do
    IFS=: read -r kind subs rate <<<"$point"
    local args=(--scenario fanout) seconds=4
    [[ $kind == individual ]] && args=(--scenario channels --publish individual)
    # The same fan-out with compact publication pushes (docs/protocol.md).
    [[ $kind == fanout-compact ]] && args=(--scenario fanout --compact)
    [[ $smoke == 1 ]] && { subs=20; seconds=0.5; }
    local -a ir=() delivered=() acked=()
    local factor
    for factor in 1 2; do
      ulimit -n "$(ulimit -Hn)"
      : >"$work/server.log"
      "${server_cpu[@]}" valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
        "$switchboard" serve --host 127.0.0.1 --port 0 --config "$work/serve.toml" \
        >"$work/server.log" 2>&1 &
      server_pid=$!
      for _ in $(seq 600); do grep -q 'listening on' "$work/server.log" && break; sleep 0.05; done
      server_port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
        "$work/server.log" | head -1)
      [[ -n $server_port ]] || { log "serve did not start under callgrind"; stop_server; return 1; }
      "${loader_cpu[@]}" "$fanout" --url "ws://127.0.0.1:$server_port/ws" --json "${args[@]}" \
        --subscribers "$subs" --rates "$((rate * factor))" --duration "$seconds" --warmup 0 \
        --drain 30 --connect-timeout 60 >"$work/fanout.out" 2>"$work/fanout.err" ||
        log "switchboard_fanout failed in instr $kind"
      stop_server  # callgrind writes its totals on exit
      local step
      step=$(grep '"step"' "$work/fanout.out" | head -1)
      [[ -n $step ]] || { log "instr $kind: no step result"; cat "$work/fanout.err" >&2; return 1; }
      ir+=("$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$work/callgrind.out")")
      delivered+=("$(sed -n 's/.*"delivered":\([0-9]*\).*/\1/p' <<<"$step")")
      acked+=("$(sed -n 's/.*"acked":\([0-9]*\).*/\1/p' <<<"$step")")
    done
    echo "{\"section\":\"instr-$kind\",\"load\":$(loadavg),\"smoke\":$smoke,\"r\":{\"instr\":{\"subscribers\":$subs,\"rates\":[$rate,$((rate * 2))],\"seconds\":$seconds,\"ir\":[${ir[0]},${ir[1]}],\"delivered\":[${delivered[0]},${delivered[1]}],\"publications\":[${acked[0]},${acked[1]}]}}}" >>"$results"
    log "instr $kind: Ir ${ir[*]}, delivered ${delivered[*]}, publications ${acked[*]}"
  done
}

status=0
if [[ $report_only == 0 ]]; then
  [[ -x $fanout ]] || { echo "no switchboard_fanout at $fanout" >&2; exit 1; }
  "$switchboard" serve --help >/dev/null 2>&1 || {
    echo "$switchboard has no working 'serve' command" >&2; exit 1; }
  if [[ $smoke == 1 ]]; then
    n1k=20; n10k=40; nmem=50; settle=0.2
    step=(--duration 0.5 --warmup 0.2 --drain 3)
    fan_rates=10,100; chan_rates=10,100; refine=(--refine 0)
  else
    n1k=1000; n10k=10000; nmem=10000; settle=2
    step=(--duration "$duration" --warmup "$warmup" --drain 30)
    fan_rates=1,10,100,300,1000,3000,10000
    chan_rates=1,100,1000,10000,30000,100000,300000
    refine=(--refine 3)
  fi
  sweep=(--until-saturated "${refine[@]}" --half --half-duration "$(awk -v d="$duration" 'BEGIN { print 2 * d }')")
  [[ $smoke == 1 ]] && sweep=(--half --half-duration 0.5)
  if [[ ,$only, == *,fanout1k,* ]]; then
    run fanout1k --scenario fanout --subscribers "$n1k" --rates "$fan_rates" "${step[@]}" \
      "${sweep[@]}" || status=1
  fi
  if [[ ,$only, == *,fanout10k,* ]]; then
    run fanout10k --scenario fanout --subscribers "$n10k" --source-ips "$sources" \
      --rates "$fan_rates" "${step[@]}" "${sweep[@]}" || status=1
  fi
  if [[ ,$only, == *,channels,* ]]; then
    for target in individual shared mixed; do
      rates=$chan_rates
      [[ $target == shared ]] && rates=$fan_rates
      [[ $target == mixed && $smoke == 0 ]] && rates=1,100,1000,3000,10000,30000,100000
      run "channels-$target" --scenario channels --publish "$target" --shared-every 100 \
        --subscribers "$n10k" --source-ips "$sources" --rates "$rates" "${step[@]}" \
        "${sweep[@]}" || status=1
    done
  fi
  if [[ ,$only, == *,instr,* ]]; then
    run_instr || status=1
  fi
  if [[ ,$only, == *,memory,* ]]; then
    # The target's figure (presence on, a channel each), then the same without
    # presence, and one channel for all without presence, to split the cost.
    # (One presence channel for all would send N²/2 join pushes.)
    for variant in presence-own:pres:own plain-own:bench:own plain-shared:bench:shared; do
      IFS=: read -r name ns channel <<<"$variant"
      run "memory-$name" --scenario memory --namespace "$ns" --memory-channel "$channel" \
        --subscribers "$nmem" --settle "$settle" --source-ips "$sources" || status=1
    done
  fi
fi

echo "Command: \`$command_line\`"
echo
echo "Server: \`switchboard serve\` with threads = 1$([[ $pin == 1 ]] && echo ", pinned to core 0; load generator on core 1"); $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%d). Results: $results"
echo
/usr/bin/python3 "$repo/bench/serve_report.py" "$results"
exit "$status"
