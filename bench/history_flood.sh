#!/usr/bin/env bash
# history_flood.sh [SWITCHBOARD] — issue 14's history flood (12 anonymous clients
# publishing 65 KB messages into new channels for 26 s) against `switchboard serve`,
# not part of ./test. Two configurations:
#   defaults   config/demo.toml's namespaces (history a day) and every limit at its
#              default: peak RSS must stay under 512 MiB;
#   spike      the same with history_ttl = 5 s: once the channels expire, RSS should
#              come back to within 2x of the baseline;
# each under four allocators: glibc without trimming (SWITCHBOARD_MALLOC_TRIM=0),
# glibc with the housekeeping malloc_trim (the default), jemalloc and mimalloc
# (LD_PRELOAD, Debian's libjemalloc2 / libmimalloc2.0 when installed).
# One JSON line per run (bench/history_flood.py); docs/benchmarks.md has the figures.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
switchboard=${1:-$here/../build/release/apps/switchboard/switchboard}
seconds=${SWITCHBOARD_FLOOD_SECONDS:-26}
tmp=$(mktemp -d /tmp/switchboard-flood.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

make_config() {  # NAME TTL
  cat >"$tmp/$1.toml" <<TOML
[server]
demo = false
[auth]
allow_anonymous = true
[namespaces.default]
[namespaces.chat]
history_size = 100
history_ttl = $2
presence = true
publish = "subscribers"
TOML
}
make_config defaults 86400
make_config spike 5

allocators=("glibc-no-trim SWITCHBOARD_MALLOC_TRIM=0" "glibc-trim SWITCHBOARD_MALLOC_TRIM=1")
for lib in /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/lib/x86_64-linux-gnu/libmimalloc.so.2; do
  [[ -e $lib ]] && allocators+=("$(basename "$lib" | cut -d. -f1) LD_PRELOAD=$lib")
done

for cfg in defaults spike; do
  for a in "${allocators[@]}"; do
    read -r label env <<<"$a"
    /usr/bin/python3 "$here/history_flood.py" --switchboard "$switchboard" \
      --config "$tmp/$cfg.toml" --seconds "$seconds" --settle 12 \
      --env "$env" --label "$cfg/$label"
  done
done
