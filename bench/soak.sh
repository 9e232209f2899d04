#!/usr/bin/env bash
# soak.sh [SWITCHBOARD] — issue 14's soak of `switchboard serve`, not part of ./test:
# 15 minutes, 10,000 connections over 200 channels (presence on, history kept 60 s),
# 30% of them reconnecting every 20-60 s with recovery, 100 publications a second,
# presence and history requests; the server's RSS and open descriptors sampled every
# 2 s must stay flat, and no client may miss or repeat a publication
# (bench/soak.py says exactly what is checked). One JSON line of figures at the end;
# docs/benchmarks.md has them. Exit status 0 only if every check passed.
#
# Both processes hold a descriptor per connection: the soft RLIMIT_NOFILE is raised to
# 12,000 (within the machine's 20,000 hard limit); the server inherits it.
# Environment: SOAK_SECONDS, SOAK_CONNECTIONS, SOAK_CHANNELS override the defaults.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
switchboard=${1:-$here/../build/release/apps/switchboard/switchboard}
connections=${SOAK_CONNECTIONS:-10000}
hard=$(ulimit -Hn)
want=$((connections + 2000))
if [[ $hard != unlimited && $hard -lt $want ]]; then
  echo "soak.sh: the hard descriptor limit ($hard) is below $want" >&2
  exit 2
fi
ulimit -Sn "$want"
exec /usr/bin/python3 "$here/soak.py" --switchboard "$switchboard" \
  --connections "$connections" --channels "${SOAK_CHANNELS:-200}" \
  --seconds "${SOAK_SECONDS:-900}" --history-ttl 60 --rate 100 --churn 0.3
