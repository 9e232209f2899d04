#!/usr/bin/env bash
# Instructions per operation for the protocol layer's hot paths, counted by
# callgrind (repeatable whatever else the machine is doing).
# usage: bench/protocol_instructions.sh [BUILD_DIR]   (default build/release)
set -euo pipefail
build=${1:-build/release}
bin=$build/bench/switchboard_protocol_instructions
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "| operation | instructions | per |"
echo "|---|---|---|"
# what  count  divisor  unit
while read -r what n div unit; do
  valgrind --tool=callgrind --callgrind-out-file="$out/$what" \
    --toggle-collect="*count_$what*" "$bin" "$what" "$n" >/dev/null 2>&1
  total=$(awk '/^totals:/ {print $2}' "$out/$what")
  awk -v t="$total" -v d="$div" -v w="$what" -v u="$unit" \
    'BEGIN { printf "| %s | %.2f | %s |\n", w, t / d, u }'
done <<'LIST'
handshake 20000 20000 handshake (parse + validate + 101)
reader_16b 200 200000 16-byte masked text frame
reader_64k 200 200 64 KiB masked text frame
unmask_64k 200 13107200 byte unmasked
utf8_mixed_64k 200 13107200 byte of mixed UTF-8
LIST
