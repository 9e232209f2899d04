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
#                             [--report-only]
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
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
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
  for server in raw switchboard beast; do start_server "$server" bench || true; done
  for server in raw switchboard beast; do
    record "$server" "100 x 16 B" --connections 100 --size 16 --inflight 4 "${common[@]}"
  done
  for server in raw switchboard beast; do
    record "$server" "1,000 x 16 B" --connections 1000 --size 16 --inflight 1 "${common[@]}"
  done
  for server in raw switchboard beast; do
    record "$server" "10,000 x 16 B" --connections 10000 --size 16 --inflight 1 \
      --source-ips "$sources" "${common[@]}"
  done
  for server in raw switchboard beast; do
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
  for server in raw switchboard beast; do
    local out cg_pid cg_port raw_flag=()
    [[ $server == raw ]] && raw_flag=(--raw)
    out=$(mktemp)
    case $server in
      raw) set -- "$raw_echo" --host 127.0.0.1 --port 0 ;;
      beast) set -- "$beast_echo" --host 127.0.0.1 --port 0 ;;
      switchboard) set -- "$switchboard" echo --host 127.0.0.1 --port 0 --threads 1 ;;
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
/usr/bin/python3 - "$results" <<'PY'
import json, sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
if all(r["server"].startswith(("deflate-", "tls-")) for r in rows):
    sys.exit(0)  # only compression / TLS results: their tables follow
def get(server, point):
    found = [r for r in rows if r["server"] == server and r["point"] == point]
    return found[-1] if found else None

def fmt(v):
    return "—" if v is None else f"{v:,.0f}"

def ratio(a, b):
    return "—" if not a or not b else f"{a / b:.2f}"

echo_points = ["100 x 16 B", "1,000 x 16 B", "10,000 x 16 B", "100 x 64 KiB"]
targets = {"100 x 64 KiB": (0.90, None)}
print("| messages/s (echo) | raw TCP | Switchboard | Beast | Switchboard / raw | "
      "Switchboard / Beast | target | met |")
print("|---|---:|---:|---:|---:|---:|---|---|")
def rate(server, point, key="messages_per_s"):
    r = get(server, point)
    return r["result"].get(key) if r and r.get("result") else None
for p in echo_points:
    raw, sb, be = (rate(s, p) for s in ("raw", "switchboard", "beast"))
    need_raw, need_beast = targets.get(p, (0.95, 1.8))
    target = f"≥ {need_raw:.0%} of raw" + (f", ≥ {need_beast}× Beast" if need_beast else "")
    met = "—"
    if raw and sb:
        ok = sb / raw >= need_raw and (need_beast is None or (be and sb / be >= need_beast))
        met = "yes" if ok else "**no**"
    print(f"| {p} | {fmt(raw)} | {fmt(sb)} | {fmt(be)} | {ratio(sb, raw)} | {ratio(sb, be)} | "
          f"{target} | {met} |")
sb, be = rate("switchboard", "handshakes", "handshakes_per_s"), rate("beast", "handshakes", "handshakes_per_s")
print(f"| handshakes/s (connect-storm, 64 at a time) | — | {fmt(sb)} | {fmt(be)} | — | {ratio(sb, be)} | — | — |")

print()
print("| latency µs p50 / p99 / p99.9 | raw TCP | Switchboard | Beast |")
print("|---|---|---|---|")
for p in echo_points:
    cells = []
    for s in ("raw", "switchboard", "beast"):
        r = get(s, p)
        lat = r["result"].get("latency_us") if r and r.get("result") else None
        cells.append("—" if not lat else f"{lat['p50']:.0f} / {lat['p99']:.0f} / {lat['p999']:.0f}")
    print(f"| {p} | " + " | ".join(cells) + " |")

print()
print("| server CPU (cores busy) · errors | raw TCP | Switchboard | Beast | load avg (1 min) |")
print("|---|---|---|---|---|")
for p in echo_points + ["handshakes"]:
    cells = []
    for s in ("raw", "switchboard", "beast"):
        r = get(s, p)
        if not r or not r.get("result"):
            cells.append("—")
            continue
        e = r["result"].get("errors", {})
        bad = sum(e.values())
        cells.append(f"{r['server_cpu']:.2f}" + (f" · {bad} errors" if bad else ""))
    loads = [r["load"] for r in rows if r["point"] == p and "load" in r]
    load = f"{min(loads):.1f}–{max(loads):.1f}" if loads else "—"
    print(f"| {p} | " + " | ".join(cells) + f" | {load} |")

print()
# CPU time the server spent (user + kernel) per echo over the whole run: what one
# message costs the server core, robust to how much of the core it was given.
print("| server CPU µs (user + sys) per echo | raw TCP | Switchboard | Beast | raw ÷ Switchboard | Beast ÷ Switchboard |")
print("|---|---:|---:|---:|---:|---:|")
for p in echo_points:
    v = {}
    for s in ("raw", "switchboard", "beast"):
        r = get(s, p)
        ok = r and r.get("result") and "server_cpu_s" in r and r["result"].get("echoes_total")
        v[s] = r["server_cpu_s"] * 1e6 / r["result"]["echoes_total"] if ok else None
    f = lambda x: "—" if x is None else f"{x:.2f}"
    print(f"| {p} | {f(v['raw'])} | {f(v['switchboard'])} | {f(v['beast'])} | "
          f"{ratio(v['raw'], v['switchboard'])} | {ratio(v['beast'], v['switchboard'])} |")

print()
print("| idle connections: user-space memory (VmRSS delta / N) | raw TCP | Switchboard | Beast | target | met |")
print("|---|---:|---:|---:|---|---|")
cells = {}
for s in ("raw", "switchboard", "beast"):
    r = get(s, "idle")
    cells[s] = r["idle"] if r else None
def kib(c):
    return "—" if not c or c["kib_per_connection"] is None else \
        f"{c['kib_per_connection']:.2f} KiB ({c['connections']:,} conns)"
sbk = cells["switchboard"]["kib_per_connection"] if cells["switchboard"] else None
met = "—" if sbk is None else ("yes" if sbk <= 0.25 else "**no**")
print(f"| KiB per idle connection | {kib(cells['raw'])} | {kib(cells['switchboard'])} | "
      f"{kib(cells['beast'])} | ≤ 0.25 KiB | {met} |")

print()
print("| server instructions per echoed message (callgrind) | raw TCP | Switchboard | Beast | raw ÷ Switchboard | Beast ÷ Switchboard |")
print("|---|---:|---:|---:|---:|---:|")
for p in ("100 x 16 B", "10 x 64 KiB"):
    v = {}
    for s in ("raw", "switchboard", "beast"):
        r = get(s, "instr " + p)
        i = r["instr"] if r else None
        v[s] = (i["echo_ir"] - i["setup_ir"]) / i["echoes"] if i and i["echoes"] else None
    # Fewer instructions is better: the ratios are raw / Switchboard and Beast / Switchboard.
    print(f"| {p} | {fmt(v['raw'])} | {fmt(v['switchboard'])} | {fmt(v['beast'])} | "
          f"{ratio(v['raw'], v['switchboard'])} | {ratio(v['beast'], v['switchboard'])} |")
PY

/usr/bin/python3 - "$results" <<'PY'
import json, sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
rows = [r for r in rows if r["server"].startswith("deflate-")]
if not rows:
    sys.exit(0)
modes = [("off", "deflate-off"), ("shared", "deflate-shared"), ("dedicated", "deflate-dedicated")]
def get(server, point):
    found = [r for r in rows if r["server"] == server and r["point"] == point]
    return found[-1] if found else None
def res(server, point):
    r = get(server, point)
    return r["result"] if r and r.get("result") else None
def fmt(v, spec=",.0f"):
    return "—" if v is None else format(v, spec)
def ratio(a, b):
    return "—" if not a or not b else f"{a / b:.2f}"

points = ["json 100 x 1 KiB", "json 1,000 x 1 KiB"]
print()
print("Compression: `switchboard echo --threads 1` with `--deflate` absent (off), `shared`, `dedicated`;")
print("1 KiB JSON-like text (`switchboard_loadgen --payload json --size 1024`, inflight 1). Offers: none")
print("(off); `--deflate-offer no-takeover` (shared); `--deflate-offer takeover`, as browsers (dedicated).")
print()
print("| echo, 1 KiB JSON text | off msg/s | shared msg/s | shared / off | dedicated msg/s | dedicated / off |")
print("|---|---:|---:|---:|---:|---:|")
for p in points:
    v = {m: (res(s, p) or {}).get("messages_per_s") for m, s in modes}
    print(f"| {p[5:]} | {fmt(v['off'])} | {fmt(v['shared'])} | {ratio(v['shared'], v['off'])} | "
          f"{fmt(v['dedicated'])} | {ratio(v['dedicated'], v['off'])} |")
print()
print("| server CPU µs (user + sys) per echo · cores busy | off | shared | dedicated |")
print("|---|---|---|---|")
for p in points:
    cells = []
    for m, s in modes:
        r = get(s, p)
        ok = r and r.get("result") and r["result"].get("echoes_total")
        cells.append("—" if not ok else
                     f"{r['server_cpu_s'] * 1e6 / r['result']['echoes_total']:.2f} · {r['server_cpu']:.2f}")
    print(f"| {p[5:]} | " + " | ".join(cells) + " |")
print()
print("| wire bytes / payload bytes (both directions, frame headers included) | off | shared | dedicated |")
print("|---|---:|---:|---:|")
for p in points:
    cells = []
    for m, s in modes:
        d = (res(s, p) or {}).get("deflate")
        cells.append("—" if not d else f"{d['wire_ratio']:.3f}")
    print(f"| {p[5:]} | " + " | ".join(cells) + " |")
print()
print("| latency µs p50 / p99 · errors | off | shared | dedicated |")
print("|---|---|---|---|")
for p in points:
    cells = []
    for m, s in modes:
        r = res(s, p)
        if not r:
            cells.append("—")
            continue
        lat, bad = r["latency_us"], sum(r.get("errors", {}).values())
        cells.append(f"{lat['p50']:.0f} / {lat['p99']:.0f}" + (f" · {bad} errors" if bad else ""))
    print(f"| {p[5:]} | " + " | ".join(cells) + " |")
print()
print("| user-space memory per idle connection (VmRSS delta / N) | off | shared | dedicated |")
print("|---|---:|---:|---:|")
for p, label in (("deflate idle 10,000", "10,000 idle, after the upgrade"),
                 ("deflate idle 1,000 after 1 message", "1,000 idle, after one 1 KiB echo each")):
    cells = []
    for m, s in modes:
        r = get(s, p)
        c = r["idle"] if r else None
        cells.append("—" if not c or c["kib_per_connection"] is None else
                     f"{c['kib_per_connection']:.2f} KiB ({c['connections']:,})")
    print(f"| {label} | " + " | ".join(cells) + " |")
PY

/usr/bin/python3 - "$results" <<'PY'
import json, sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
rows = [r for r in rows if r["server"].startswith("tls-")]
if not rows:
    sys.exit(0)
def get(server, point):
    found = [r for r in rows if r["server"] == server and r["point"] == point]
    return found[-1] if found else None
def res(server, point):
    r = get(server, point)
    return r["result"] if r and r.get("result") else None
def fmt(v, spec=",.0f"):
    return "—" if v is None else format(v, spec)
def ratio(a, b):
    return "—" if not a or not b else f"{a / b:.2f}"
def window(server, point):  # (server, loadgen) CPU seconds inside the measured window
    w = (res(server, point) or {}).get("window_cpu_s") or {}
    return w.get("server"), w.get("loadgen")
def per_op(server, point, count_key):  # server CPU µs (user + sys) per operation, in the window
    r = res(server, point)
    cpu, _ = window(server, point)
    n = r.get(count_key) if r else None
    return cpu * 1e6 / n if n and cpu is not None else None

tls = next((res("tls-wss", p) or {}).get("tls") for p in
           ("tls 100 x 16 B", "tls handshakes", "tls 1,000 x 16 B") if res("tls-wss", p))
suite = f"{tls['version']} {tls['cipher']}" if tls and tls.get("version") else "?"
points = [("tls 100 x 16 B", 4), ("tls 1,000 x 16 B", 1), ("tls 100 x 16 KiB", 1),
          ("tls 1,000 x 16 KiB", 1)]
print()
print("TLS: `switchboard echo --threads 1` plain (ws://) and with `--tls-cert/--tls-key` (wss://),")
print(f"both up at once, each point run against both back to back. Negotiated: {suite}; the load")
print("generator verifies the server certificate (`--ca-file`). CPU is user + sys inside the measured")
print("window (`switchboard_loadgen --server-pid`), divided by the echoes / handshakes counted in it;")
print("\"busy\" is cores used in the window (server on core 0, loadgen on core 1: 1.00 = saturated).")
print()
# Per server CPU-second: what the ratio would be if the server's core were the only limit
# (the shared machine and a loader doing the same crypto blur the wall-clock ratio).
print("| echo (conns × size, inflight) | ws msg/s | wss msg/s | wss / ws | wss / ws per server CPU-s | target (wss / ws) | met |")
print("|---|---:|---:|---:|---:|---|---|")
for p, k in points:
    ws, wss = ((res(s, p) or {}).get("messages_per_s") for s in ("tls-ws", "tls-wss"))
    cws, cwss = (per_op(s, p, "messages") for s in ("tls-ws", "tls-wss"))
    small = p.endswith("16 B")
    met = "—"
    if small and ws and wss:
        met = "yes" if wss / ws >= 0.70 else "**no**"
    print(f"| {p[4:]}, {k} | {fmt(ws)} | {fmt(wss)} | {ratio(wss, ws)} | {ratio(cws, cwss)} | "
          f"{'≥ 0.70' if small else '—'} | {met} |")
ws, wss = ((res(s, "tls handshakes") or {}).get("handshakes_per_s") for s in ("tls-ws", "tls-wss"))
cws, cwss = (per_op(s, "tls handshakes", "handshakes") for s in ("tls-ws", "tls-wss"))
print(f"| handshakes/s (connect-storm, 64 at a time; wss: full TLS handshake each) | {fmt(ws)} | "
      f"{fmt(wss)} | {ratio(wss, ws)} | {ratio(cws, cwss)} | — | — |")
print()
print("| server CPU µs per op · busy server / loadgen | ws | wss | wss ÷ ws | TLS adds µs |")
print("|---|---|---|---:|---:|")
for p, key, label in [(p, "messages", p[4:] + " echo") for p, _ in points] + \
        [("tls handshakes", "handshakes", "connect + upgrade + close (storm)")]:
    v = {s: per_op(s, p, key) for s in ("tls-ws", "tls-wss")}
    def cell(s):
        if v[s] is None:
            return "—"
        sec = res(s, p)["seconds"]
        server, loader = window(s, p)
        return f"{v[s]:.2f} · {server / sec:.2f} / {loader / sec:.2f}"
    add = "—" if v["tls-ws"] is None or v["tls-wss"] is None else f"{v['tls-wss'] - v['tls-ws']:.2f}"
    print(f"| {label} | {cell('tls-ws')} | {cell('tls-wss')} | {ratio(v['tls-wss'], v['tls-ws'])} | {add} |")
print()
print("| latency µs p50 / p99 · errors | ws | wss |")
print("|---|---|---|")
for p, _ in points + [("tls handshakes", 0)]:
    cells = []
    for s in ("tls-ws", "tls-wss"):
        r = res(s, p)
        if not r:
            cells.append("—")
            continue
        lat, bad = r["latency_us"], sum(r.get("errors", {}).values())
        cell = "—" if p == "tls handshakes" else f"{lat['p50']:.0f} / {lat['p99']:.0f}"
        cells.append(cell + (f" · {bad} errors" if bad else ""))
    print(f"| {p[4:]} | " + " | ".join(cells) + " |")
print()
print("| user-space memory per idle connection (VmRSS delta / N, server defaults) | ws | wss | wss − ws |")
print("|---|---:|---:|---:|")
c = {s: (get(s, "tls idle") or {}).get("idle") for s in ("tls-ws", "tls-wss")}
k = {s: c[s]["kib_per_connection"] if c[s] else None for s in c}
cell = lambda s: "—" if k[s] is None else f"{k[s]:.2f} KiB ({c[s]['connections']:,})"
diff = "—" if k["tls-ws"] is None or k["tls-wss"] is None else f"{k['tls-wss'] - k['tls-ws']:.2f} KiB"
print(f"| 10,000 idle, after the upgrade | {cell('tls-ws')} | {cell('tls-wss')} | {diff} |")
PY
