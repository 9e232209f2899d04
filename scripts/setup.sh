#!/usr/bin/env bash
# Installs the Debian 12 packages Switchboard needs to build and test, and only
# those that are missing: `dpkg -s` first, then one `apt-get update` and one
# `apt-get install`. Quiet and idempotent when everything is present.
set -euo pipefail

packages=(
  # toolchain
  cmake ninja-build g++ clang libclang-rt-14-dev pkg-config
  # libraries (see the dependency table in README.md)
  libssl-dev zlib1g-dev libsimdjson-dev libcli11-dev
  libtomlplusplus-dev
  libspdlog-dev
  libjwt-dev
  # the io_uring event-loop backend (src/net/uring_engine.cpp)
  liburing-dev
  # the Redis broker: hiredis's RESP reader and formatter; redis-server for its tests
  libhiredis-dev redis-server
  # the load balancer of the cluster test and scripts/cluster.sh (never run as a service)
  nginx
  # the openssl command makes test certificates at run time
  openssl ca-certificates
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev libboost-dev valgrind
  python3-prometheus-client python3-jwt
  # real peers for the integration tests
  python3 python3-websockets nodejs node-ws
  # browser interop test (tests/browser)
  chromium
  # packaging (packaging/, tests/packaging): the man page, cpack's Debian
  # packages (dpkg-shlibdeps computes Depends, file finds the ELF files),
  # systemd-analyze checks the unit
  help2man dpkg-dev file systemd
)

sudo=()
if ((EUID != 0)) && command -v sudo >/dev/null; then sudo=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done
# --- browser test dependencies (tests/browser) -------------------------------
# playwright-core, pinned by tests/browser/package-lock.json, drives Debian's
# /usr/bin/chromium (playwright's own browser download does not work here).
# Runs after apt (called at both exits below): `npm ci` only when node_modules is
# missing or older than the lock file; quiet otherwise.
browser_deps() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/browser"
  [[ -f $dir/package-lock.json ]] || return 0
  [[ ! -d $dir/node_modules || $dir/package-lock.json -nt $dir/node_modules ]] || return 0
  if ! command -v npm >/dev/null; then
    # Debian's nodejs ships without npm (a NodeSource nodejs includes it).
    echo "setup: installing npm" >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
  echo "setup: npm ci in tests/browser" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  touch "$dir/node_modules"
}
# -----------------------------------------------------------------------------

((${#missing[@]} == 0)) && { browser_deps; exit 0; }

echo "setup: installing ${missing[*]}" >&2
if ((EUID != 0)) && ((${#sudo[@]} == 0)); then
  echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done" >&2
browser_deps
