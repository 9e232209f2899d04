#!/usr/bin/env bash
# run_server_bench.sh — whole-server echo benchmarks: Switchboard's `switchboard
# echo` against the raw TCP ceiling (switchboard_raw_echo) and Boost.Beast
# (switchboard_beast_echo), side by side in one run, each server pinned to core
# 0 and switchboard_loadgen to core 1. Prints Markdown tables: messages/s per
# point with ratios to the ceiling and to Beast, latency, server CPU use,
# handshakes/s, and user-space memory per idle connection.
#
#   bench/run_server_bench.sh [--build DIR] [--switchboard PATH] [--seconds S]
#                             [--warmup S] [--only echo,storm,idle,instr,deflate,tls]
#                             [--results FILE] [--tls-key-type p256|rsa2048]
#                             [--report-only] [--peer NAME=COMMAND]...
#
# --only runs some sections and appends to --results (JSON lines); run the rest
# later with the same --results and the tables cover everything recorded there
# (a way to keep each command short). A full run takes about 4-5 minutes.
# `deflate` (not in the default set, about 3 minutes) compares `switchboard echo`
# with compression off, `--deflate shared` and `--deflate dedicated`: 1 KiB
# JSON-like text echo (messages/s, server CPU, wire/payload ratio) and memory
# per idle connection with compression negotiated.
# `tls` (not in the default set, about 2.5 minutes with --seconds 5) runs
# `switchboard echo` twice, plain and with --tls-cert/--tls-key (a test CA and a
# certificate for 127.0.0.1 made with `openssl` in a temp dir; ECDSA P-256
# unless --tls-key-type rsa2048), and compares wss:// with ws:// in the same
# run: echo messages/s and server CPU per echo, connect-storm handshakes/s
# (full TLS handshake + upgrade + close each) and memory per idle connection.
# --peer NAME=COMMAND (repeatable) adds a server to the echo and instr
# sections: COMMAND must print "listening on HOST:PORT" and echo every
# WebSocket message on ws://127.0.0.1:PORT/ (e.g. `switchboard echo
# --threads 1 --io-backend io_uring`, or another library's echo server built
# for the run); the report compares each with Switchboard, same run.
# Benchmarks are not tests: ctest runs only the bench-smoke check.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build="$repo/build/bench-release"
switchboard="$repo/build/release/apps/switchboard/switchboard"
seconds=10
warmup=2
only="echo,storm,idle,instr"
results=""
report_only=0
tls_key_type=p256
tls_dir=""
command_line="bench/run_server_bench.sh $*"
peer_names=()
declare -A peer_cmd

while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --switchboard) switchboard=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --report-only) report_only=1; shift ;;
    --tls-key-type) tls_key_type=$2; shift 2 ;;
    --peer) peer_names+=("${2%%=*}"); peer_cmd[${2%%=*}]=${2#*=}; shift 2 ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

loadgen="$build/bench/switchboard_loadgen"
raw_echo="$build/bench/switchboard_raw_echo"
beast_echo="$build/bench/switchboard_beast_echo"
[[ -n $results ]] || results=$(mktemp /tmp/switchboard-bench.XXXXXX.jsonl)
touch "$results"

# shellcheck source=bench/bench_common.sh
source "$repo/bench/bench_common.sh"
declare -A pid port  # per server name

# start_server NAME MODE: MODE "bench" pins the server to one loop thread where
# it has a choice; "defaults" starts it exactly as a user would.
start_server() {
  local name=$1 mode=$2 out
  out=$(mktemp)
  case $name in
    raw) taskset -c 0 "$raw_echo" --host 127.0.0.1 --port 0 >"$out" 2>&1 & ;;
    beast) taskset -c 0 "$beast_echo" --host 127.0.0.1 --port 0 >"$out" 2>&1 & ;;
    switchboard)
      if [[ $mode == bench ]]; then
        taskset -c 0 "$switchboard" echo --host 127.0.0.1 --port 0 --threads 1 >"$out" 2>&1 &
      else
        taskset -c 0 "$switchboard" echo --host 127.0.0.1 --port 0 >"$out" 2>&1 &
      fi ;;
    deflate-off)
      taskset -c 0 "$switchboard" echo --host 127.0.0.1 --port 0 --threads 1 >"$out" 2>&1 & ;;
    deflate-shared|deflate-dedicated)
      taskset -c 0 "$switchboard" echo --host 127.0.0.1 --port 0 --threads 1 \
        --deflate "${name#deflate-}" >"$out" 2>&1 & ;;
    tls-ws|tls-wss)
      local args=(echo --host 127.0.0.1 --port 0)
      [[ $mode == bench ]] && args+=(--threads 1)
      [[ $name == tls-wss ]] && args+=(--tls-cert "$tls_dir/server.pem" --tls-key "$tls_dir/server.key")
      taskset -c 0 "$switchboard" "${args[@]}" >"$out" 2>&1 & ;;
    *)
      [[ -n ${peer_cmd[$name]:-} ]] || { log "unknown server $name"; return 1; }
      # shellcheck disable=SC2086
      taskset -c 0 ${peer_cmd[$name]} >"$out" 2>&1 & ;;
  esac
  pid[$name]=$!
  wait_listening "$out" "${pid[$name]}"
  port[$name]=$(sed -n 's/.*listening on .*:\([0-9][0-9]*\)\/\{0,1\}$/\1/p' "$out" | head -1)
  rm -f "$out"
  if [[ -z ${port[$name]} ]]; then
    log "$name did not start"
    kill "${pid[$name]}" 2>/dev/null || true
    unset "pid[$name]"
    return 1
  fi
}

stop_server() {
  local name=$1 p=${pid[$1]:-}
  [[ -n $p ]] || return 0
  unset "pid[$name]"
  stop_pid "$name" "$p"
}
stop_all() { for name in "${!pid[@]}"; do stop_server "$name"; done; }
cleanup() {
  stop_all
  [[ -z $tls_dir ]] || rm -rf "$tls_dir"
}
trap cleanup EXIT

# CPU seconds (user + system) server NAME has used so far.
cpu_seconds() {
  awk -v tck="$(getconf CLK_TCK)" '{ print ($14 + $15) / tck }' "/proc/${pid[$1]}/stat"
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/${pid[$1]}/status"; }

# The URL of server NAME: wss:// for the TLS one.
server_url() {
  local scheme=ws
  [[ $1 == tls-wss ]] && scheme=wss
  echo "$scheme://127.0.0.1:${port[$1]}/"
}

# record SERVER POINT LOADGEN-ARGS...: one loadgen run, its JSON extended with
# the server, the point's name and the server's CPU use during the run.
record() {
  local server=$1 point=$2; shift 2
  [[ -n ${pid[$server]:-} ]] || return 0
  local url extra=() cpu0 cpu1 t0 t1 json load
  url=$(server_url "$server")
  [[ $server == raw ]] && extra=(--raw)
  [[ $server == tls-wss ]] && extra=(--ca-file "$tls_dir/ca.pem")  # verify, as clients do
  load=$(loadavg)
  cpu0=$(cpu_seconds "$server"); t0=$(date +%s.%N)
  if ! json=$(taskset -c 1 "$loadgen" --url "$url" "${extra[@]}" --json \
      --server-pid "${pid[$server]}" "$@"); then
    log "loadgen failed: $server $point"
  fi
  cpu1=$(cpu_seconds "$server"); t1=$(date +%s.%N)
  [[ -n $json ]] || json='{}'
  local cpu
  cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.2f", (b - a) / (e - s) }')
  local cpu_s
  cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')
  echo "{\"server\":\"$server\",\"point\":\"$point\",\"server_cpu\":$cpu,\"server_cpu_s\":$cpu_s,\"load\":$load,\"result\":$json}" >>"$results"
  log "$server $point: $json"
}

# All three servers run at once (an idle one costs no CPU); each point is run
# against raw, Switchboard and Beast back to back, so the figures compared in
# a row saw the same machine load (this machine is shared).
run_echo() {
  local server common=(--duration "$seconds" --warmup "$warmup")
  for server in raw switchboard beast "${peer_names[@]}"; do start_server "$server" bench || true; done
  for server in raw switchboard beast "${peer_names[@]}"; do
    record "$server" "100 x 16 B" --connections 100 --size 16 --inflight 4 "${common[@]}"
  done
  for server in raw switchboard beast "${peer_names[@]}"; do
    record "$server" "1,000 x 16 B" --connections 1000 --size 16 --inflight 1 "${common[@]}"
  done
  for server in raw switchboard beast "${peer_names[@]}"; do
    record "$server" "10,000 x 16 B" --connections 10000 --size 16 --inflight 1 \
      --source-ips "$sources" "${common[@]}"
  done
  for server in raw switchboard beast "${peer_names[@]}"; do
    record "$server" "100 x 64 KiB" --connections 100 --size 65536 --inflight 1 "${common[@]}"
  done
  stop_all
}

run_storm() {
  local server
  for server in switchboard beast; do start_server "$server" bench || true; done
  for server in switchboard beast; do
    record "$server" "handshakes" --mode connect-storm --connections 64 --source-ips "$sources" \
      --duration "$seconds" --warmup "$warmup"
  done
  stop_all
}

# Memory per idle connection: VmRSS before and after 10,000 upgraded, idle
# connections, over N. Kernel socket memory is not in VmRSS: this is user space.
run_idle() {
  local server n=10000 before after log_file
  for server in raw switchboard beast; do
    start_server "$server" defaults || continue
    local raw_flag=()
    [[ $server == raw ]] && raw_flag=(--raw)
    # One short echo first, so one-time costs (first touch of the loop's
    # receive buffer, lazy allocations) are in the baseline, not in the delta.
    taskset -c 1 "$loadgen" --url "ws://127.0.0.1:${port[$server]}/" "${raw_flag[@]}" \
      --connections 1 --duration 0.3 --warmup 0 >/dev/null || true
    sleep 0.5
    before=$(rss_kib "$server")
    log_file=$(mktemp)
    taskset -c 1 "$loadgen" --url "ws://127.0.0.1:${port[$server]}/" "${raw_flag[@]}" --mode idle \
      --connections "$n" --source-ips "$sources" --duration 8 --warmup 0 --json \
      >"$log_file.json" 2>"$log_file" &
    local loader=$!
    for _ in $(seq 600); do
      grep -q 'connections open' "$log_file" && break
      sleep 0.05
    done
    sleep 2  # let the server settle: nothing is in flight on an idle connection
    after=$(rss_kib "$server")
    local opened
    opened=$(sed -n 's/.*idle: \([0-9]*\) of.*/\1/p' "$log_file")
    wait "$loader" || true
    rm -f "$log_file" "$log_file.json"
    opened=${opened:-0}
    local per
    per=$(awk -v a="$before" -v b="$after" -v n="$opened" \
      'BEGIN { if (n > 0) printf "%.3f", (b - a) / n; else print "null" }')
    echo "{\"server\":\"$server\",\"point\":\"idle\",\"idle\":{\"connections\":$opened,\"rss_before_kib\":$before,\"rss_after_kib\":$after,\"kib_per_connection\":$per}}" >>"$results"
    log "$server idle: $opened connections, VmRSS $before -> $after KiB, $per KiB each"
    stop_server "$server"
  done
}

# Server instructions per echoed message under callgrind: repeatable where
# wall time is not (DESIGN.md). Ir of an echo run minus Ir of the same
# connections opened and closed without traffic, over the echoes received.
callgrind_ir() {  # total Ir of all threads of the callgrind run PID since the last zero
  callgrind_control -e Ir "$1" | awk '$1 == "Th" { gsub(",", "", $3); sum += $3 } END { print sum + 0 }'
}
run_instr() {
  local server size conns
  command -v callgrind_control >/dev/null || { log "valgrind missing: instr skipped"; return 0; }
  for server in raw switchboard beast "${peer_names[@]}"; do
    local out cg_pid cg_port raw_flag=()
    [[ $server == raw ]] && raw_flag=(--raw)
    out=$(mktemp)
    case $server in
      raw) set -- "$raw_echo" --host 127.0.0.1 --port 0 ;;
      beast) set -- "$beast_echo" --host 127.0.0.1 --port 0 ;;
      switchboard) set -- "$switchboard" echo --host 127.0.0.1 --port 0 --threads 1 ;;
      # shellcheck disable=SC2086
      *) set -- ${peer_cmd[$server]} ;;
    esac
    [[ -x $1 ]] || continue
    taskset -c 0 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" >"$out" 2>/dev/null &
    cg_pid=$!
    for _ in $(seq 600); do grep -q 'listening on' "$out" && break; sleep 0.05; done
    cg_port=$(sed -n 's/.*listening on .*:\([0-9][0-9]*\)\/\{0,1\}$/\1/p' "$out" | head -1)
    rm -f "$out"
    [[ -n $cg_port ]] || { log "$server did not start under callgrind"; kill "$cg_pid"; continue; }
    for point in "100 x 16 B" "10 x 64 KiB"; do
      if [[ $point == "100 x 16 B" ]]; then size=16; conns=100; else size=65536; conns=10; fi
      local url="ws://127.0.0.1:$cg_port/" setup echo_ir json echoes
      callgrind_control -z "$cg_pid" >/dev/null
      taskset -c 1 "$loadgen" --url "$url" "${raw_flag[@]}" --mode idle --connections "$conns" \
        --duration 0.2 --warmup 0 >/dev/null 2>&1 || true
      sleep 0.5
      setup=$(callgrind_ir "$cg_pid")
      callgrind_control -z "$cg_pid" >/dev/null
      json=$(taskset -c 1 "$loadgen" --url "$url" "${raw_flag[@]}" --connections "$conns" \
        --size "$size" --duration 4 --warmup 0 --json || true)
      sleep 0.5
      echo_ir=$(callgrind_ir "$cg_pid")
      echoes=$(sed -n 's/.*"echoes_total":\([0-9]*\).*/\1/p' <<<"$json")
      echo "{\"server\":\"$server\",\"point\":\"instr $point\",\"instr\":{\"setup_ir\":$setup,\"echo_ir\":$echo_ir,\"echoes\":${echoes:-0}}}" >>"$results"
      log "$server instr $point: setup $setup Ir, echo $echo_ir Ir, ${echoes:-0} echoes"
    done
    kill -TERM "$cg_pid"; wait "$cg_pid" 2>/dev/null || true
  done
}

# Compression: `switchboard echo` off / --deflate shared / --deflate dedicated,
# one loop thread each. The load generator offers what fits the mode: nothing
# for off; no context takeover both ways for shared (what the server answers
# anyway); a browser's offer (context takeover) for dedicated, since a client
# that asks for no context takeover gets it from a dedicated server too.
deflate_client_args() {
  case $1 in
    deflate-off) ;;
    deflate-shared) echo --deflate-offer no-takeover ;;
    deflate-dedicated) echo --deflate-offer takeover ;;
  esac
}
deflate_modes=(deflate-off deflate-shared deflate-dedicated)

# VmRSS delta / N for N idle connections to a fresh server of each mode, after
# the upgrade only, or after each connection echoed IDLE_MESSAGES messages.
deflate_idle() {
  local point=$1 n=$2 idle_messages=$3 server before after opened log_file loader
  for server in "${deflate_modes[@]}"; do
    start_server "$server" bench || continue
    local url="ws://127.0.0.1:${port[$server]}/" client=()
    read -ra client <<<"$(deflate_client_args "$server")"
    # Warm up once, so per-loop state (the receive buffer, shared zlib streams)
    # is in the baseline, not in the per-connection delta.
    taskset -c 1 "$loadgen" --url "$url" "${client[@]}" --payload json --size 1024 \
      --connections 1 --duration 0.3 --warmup 0 >/dev/null || true
    sleep 0.5
    before=$(rss_kib "$server")
    log_file=$(mktemp)
    taskset -c 1 "$loadgen" --url "$url" "${client[@]}" --payload json --size 1024 --mode idle \
      --idle-messages "$idle_messages" --connections "$n" --source-ips "$sources" \
      --duration 8 --warmup 0 >/dev/null 2>"$log_file" &
    loader=$!
    for _ in $(seq 1200); do
      grep -q 'connections open' "$log_file" && break
      sleep 0.05
    done
    sleep 2
    after=$(rss_kib "$server")
    opened=$(sed -n 's/.*idle: \([0-9]*\) of.*/\1/p' "$log_file")
    wait "$loader" || true
    rm -f "$log_file"
    opened=${opened:-0}
    local per
    per=$(awk -v a="$before" -v b="$after" -v n="$opened" \
      'BEGIN { if (n > 0) printf "%.3f", (b - a) / n; else print "null" }')
    echo "{\"server\":\"$server\",\"point\":\"$point\",\"idle\":{\"connections\":$opened,\"rss_before_kib\":$before,\"rss_after_kib\":$after,\"kib_per_connection\":$per}}" >>"$results"
    log "$server $point: $opened connections, VmRSS $before -> $after KiB, $per KiB each"
    stop_server "$server"
  done
}

run_deflate() {
  local server common=(--payload json --size 1024 --inflight 1 --duration "$seconds" --warmup "$warmup")
  for server in "${deflate_modes[@]}"; do start_server "$server" bench || true; done
  local point conns client=()
  for point in "json 100 x 1 KiB" "json 1,000 x 1 KiB"; do
    conns=100; [[ $point == "json 1,000 x 1 KiB" ]] && conns=1000
    for server in "${deflate_modes[@]}"; do
      read -ra client <<<"$(deflate_client_args "$server")"
      record "$server" "$point" --connections "$conns" "${client[@]}" "${common[@]}"
    done
  done
  stop_all
  deflate_idle "deflate idle 10,000" 10000 0
  deflate_idle "deflate idle 1,000 after 1 message" 1000 1
}

# TLS: a throwaway CA and a server certificate for 127.0.0.1 (IP SAN), so the
# load generator verifies the server exactly as a client with a CA file would.
make_tls_certs() {
  local key=()
  case $tls_key_type in
    p256) key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
    rsa2048) key=(-newkey rsa:2048) ;;
    *) echo "--tls-key-type: expected p256 or rsa2048" >&2; exit 2 ;;
  esac
  tls_dir=$(mktemp -d /tmp/switchboard-bench-tls.XXXXXX)
  (
    cd "$tls_dir"
    openssl req -x509 "${key[@]}" -nodes -days 2 -subj "/CN=Switchboard bench CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
      -keyout ca.key -out ca.pem
    openssl req -new "${key[@]}" -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
    printf '%s\n' "subjectAltName=IP:127.0.0.1" "extendedKeyUsage=serverAuth" \
      "basicConstraints=CA:FALSE" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile server.ext -out server.pem
    openssl verify -CAfile ca.pem server.pem
  ) >/dev/null 2>"$tls_dir/openssl.log" || { cat "$tls_dir/openssl.log" >&2; exit 1; }
}

# VmRSS delta / N for N idle connections to a fresh server (its defaults) of
# each kind, as run_idle; wss:// pays a TLS handshake per connection first.
tls_idle() {
  local server n=10000 before after opened log_file loader url
  for server in tls-ws tls-wss; do
    start_server "$server" defaults || continue
    url=$(server_url "$server")
    local ca=()
    [[ $server == tls-wss ]] && ca=(--ca-file "$tls_dir/ca.pem")
    # Warm up every loop (a few connections), so per-thread state — the receive
    # buffer, OpenSSL's per-thread caches — is in the baseline, not the delta.
    taskset -c 1 "$loadgen" --url "$url" "${ca[@]}" --connections 8 --duration 0.3 --warmup 0 \
      >/dev/null || true
    sleep 0.5
    before=$(rss_kib "$server")
    log_file=$(mktemp)
    taskset -c 1 "$loadgen" --url "$url" "${ca[@]}" --mode idle --connections "$n" \
      --source-ips "$sources" --duration 8 --warmup 0 --json >"$log_file.json" 2>"$log_file" &
    loader=$!
    for _ in $(seq 1800); do
      grep -q 'connections open' "$log_file" && break
      sleep 0.05
    done
    sleep 2  # let the server settle: nothing is in flight on an idle connection
    after=$(rss_kib "$server")
    opened=$(sed -n 's/.*idle: \([0-9]*\) of.*/\1/p' "$log_file")
    wait "$loader" || true
    rm -f "$log_file" "$log_file.json"
    opened=${opened:-0}
    local per
    per=$(awk -v a="$before" -v b="$after" -v n="$opened" \
      'BEGIN { if (n > 0) printf "%.3f", (b - a) / n; else print "null" }')
    echo "{\"server\":\"$server\",\"point\":\"tls idle\",\"idle\":{\"connections\":$opened,\"rss_before_kib\":$before,\"rss_after_kib\":$after,\"kib_per_connection\":$per}}" >>"$results"
    log "$server idle: $opened connections, VmRSS $before -> $after KiB, $per KiB each"
    stop_server "$server"
  done
}

# wss:// against ws:// on `switchboard echo --threads 1`, both servers up at
# once and each point run against both back to back (same machine load).
run_tls() {
  if ! "$switchboard" echo --help 2>/dev/null | grep -q -- --tls-cert; then
    log "$switchboard echo has no --tls-cert: tls skipped"
    return 0
  fi
  command -v openssl >/dev/null || { log "openssl missing: tls skipped"; return 0; }
  make_tls_certs
  local server common=(--duration "$seconds" --warmup "$warmup")
  for server in tls-ws tls-wss; do start_server "$server" bench || true; done
  for server in tls-ws tls-wss; do
    record "$server" "tls 100 x 16 B" --connections 100 --size 16 --inflight 4 "${common[@]}"
  done
  for server in tls-ws tls-wss; do
    record "$server" "tls 1,000 x 16 B" --connections 1000 --size 16 --inflight 1 "${common[@]}"
  done
  for server in tls-ws tls-wss; do
    record "$server" "tls 100 x 16 KiB" --connections 100 --size 16384 --inflight 1 "${common[@]}"
  done
  for server in tls-ws tls-wss; do
    record "$server" "tls 1,000 x 16 KiB" --connections 1000 --size 16384 --inflight 1 \
      "${common[@]}"
  done
  for server in tls-ws tls-wss; do
    record "$server" "tls handshakes" --mode connect-storm --connections 64 \
      --source-ips "$sources" "${common[@]}"
  done
  stop_all
  tls_idle
}

if [[ $report_only -eq 0 ]]; then
  [[ -x $switchboard ]] || log "warning: $switchboard missing; its rows stay empty"
  tools=("$loadgen")  # the deflate section needs only the load generator
  [[ ,$only, =~ ,(echo|storm|idle|instr), ]] && tools+=("$raw_echo" "$beast_echo")
  for tool in "${tools[@]}"; do
    [[ -x $tool ]] || { echo "missing $tool (build it first)" >&2; exit 1; }
  done
  log "results: $results"
  [[ ,$only, == *,echo,* ]] && run_echo
  [[ ,$only, == *,storm,* ]] && run_storm
  [[ ,$only, == *,idle,* ]] && run_idle
  [[ ,$only, == *,instr,* ]] && run_instr
  [[ ,$only, == *,deflate,* ]] && run_deflate
  [[ ,$only, == *,tls,* ]] && run_tls
fi

echo "Command: \`$command_line\`"
echo
echo "${seconds} s per point after ${warmup} s warm-up; each server pinned to core 0, loadgen to"
echo "core 1; $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%d). Results: $results"
echo
/usr/bin/python3 "$repo/bench/server_report.py" "$results"

/usr/bin/python3 "$repo/bench/deflate_report.py" "$results"

/usr/bin/python3 "$repo/bench/tls_report.py" "$results"
