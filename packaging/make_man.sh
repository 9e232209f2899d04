#!/bin/sh
# make_man.sh BINARY OUTPUT — writes switchboard(1), gzipped, to OUTPUT: help2man
# turns `switchboard --help` and `--version` into the page, and each subcommand's
# --help (serve, echo, connect, ... as `switchboard --help` lists them) becomes a
# section of its own, verbatim. Run at build time (packaging/CMakeLists.txt), so
# the page always says what the binary does.
set -eu
binary=$1
output=$2
here=$(cd "$(dirname "$0")" && pwd)

# Run the binary as plain "switchboard", so its usage lines say that and not
# the build path.
PATH="$(cd "$(dirname "$binary")" && pwd):$PATH"
export PATH
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The subcommands: the first word of each line of the "Subcommands:" block.
commands=$(switchboard --help | sed -n '/^Subcommands:/,/^$/p' | sed -n 's/^  \([a-z][a-z0-9-]*\) .*/\1/p')
[ -n "$commands" ] || { echo "make_man.sh: no subcommands in switchboard --help" >&2; exit 1; }

# help2man's include file: [SECTION] headings, roff bodies. Help text goes in
# no-fill mode with roff's specials escaped (backslash; a leading . or ').
{
  for command in $commands; do
    printf '[COMMAND: %s]\n.nf\n' "$(echo "$command" | tr a-z A-Z)"
    switchboard "$command" --help | sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"
    printf '.fi\n\n'
  done
  cat "$here/man_extra.h2m"
} > "$tmp/include.h2m"

help2man --no-info --no-discard-stderr \
  --name="WebSocket toolkit and realtime messaging server" \
  --include="$tmp/include.h2m" --output="$tmp/switchboard.1" switchboard
# -n: no name or time stamp in the gzip header, so the page is reproducible.
gzip -9 -n -c "$tmp/switchboard.1" > "$output"
