#!/usr/bin/python3
"""Instructions per delivery, GET /sse against /ws, under callgrind (issue 10, section 5).

The same two servers as bench/sse_bench.py (one per transport, same configuration), each
run twice under `valgrind --tool=callgrind`: N subscribers, then K and 2K publications of
~100 bytes from one WebSocket publisher. The marginal cost is the difference of the two
runs' instruction counts over the difference of their deliveries, so set-up, closes and
timers cancel out. User space only (the kernel's sends are not counted); independent of
the machine's load, unlike CPU time.

    bench/sse_instructions.py BUILD/apps/switchboard/switchboard [--subscribers 200] [--publications 100]

Loopback only, bounded in count and time (about a minute with the defaults).
"""

import argparse
import os
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sse_bench  # noqa: E402
from serve_process import CallgrindServe  # noqa: E402


def callgrind_server(binary, tmp, name):
    return CallgrindServe(binary, sse_bench.CONFIG, tmp, name, extra=("--threads", "1"))


def run_once(binary, tmp, transport, n, k):
    server = callgrind_server(binary, tmp, "%s-%d" % (transport, k))
    make = sse_bench.ws_subscriber if transport == "websocket" else sse_bench.sse_subscriber
    socks = [make(server.port) for _ in range(n)]
    mark = sse_bench.WS_MARK if transport == "websocket" else sse_bench.SSE_MARK
    counted = sse_bench.publish_and_count(server.port, socks, mark, k, burst=10, seconds=300)
    expected = n * k
    for s in socks:
        s.close()
    instructions = server.stop()
    if counted != expected:
        raise RuntimeError("%s: %d of %d deliveries" % (transport, counted, expected))
    return instructions, counted


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--subscribers", type=int, default=200)
    ap.add_argument("--publications", type=int, default=100)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="switchboard-sse-instr-")
    rows = {}
    for transport in ("websocket", "sse"):
        i1, d1 = run_once(a.binary, tmp, transport, a.subscribers, a.publications)
        i2, d2 = run_once(a.binary, tmp, transport, a.subscribers, 2 * a.publications)
        rows[transport] = (i2 - i1) / (d2 - d1)
        print("%s: %d instructions for %d deliveries, %d for %d: %.0f per delivery" % (
            transport, i1, d1, i2, d2, rows[transport]), flush=True)
    print("SSE / WebSocket instructions per delivery: %.2fx" % (rows["sse"] / rows["websocket"]))


if __name__ == "__main__":
    main()
