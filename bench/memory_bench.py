#!/usr/bin/python3
"""Memory of `switchboard serve` per idle connection: marginal cost and fixed step.

Issue 12 section 3 and issue 10 section 5. For each scenario a fresh server
(threads = 1 by default, anonymous access, rate limits on as shipped, the demo
page off) gets N idle clients, added in steps; after each step the clients sit
idle for --settle seconds (past the housekeeping's 2 s malloc_trim) and the
server's VmRSS is read. A least-squares line through the readings from the
first checkpoint on gives

  marginal  bytes per added connection (the slope), and
  step      what the first connections cost above that line: the fitted
            intercept minus the RSS of the server before any client.

Scenarios (--scenarios, comma-separated):
  ws-open      WebSocket upgraded, no subscription
  ws-shared    WebSocket, subscribed to one channel shared by all (presence off)
  ws-own       WebSocket, each subscribed to a channel of its own (presence off)
  ws-presence  WebSocket, each on a channel of its own with presence on
  sse-shared   GET /sse?channel=... of one shared channel (presence off)

Derived figures: per-channel state = ws-own - ws-shared; presence per member =
ws-presence - ws-own; SSE / WebSocket = sse-shared / ws-shared.

    bench/memory_bench.py BUILD/apps/switchboard/switchboard [--connections 10000]
        [--checkpoints 4] [--repeat 3] [--threads 1|N|auto] [--json FILE]

Clients are raw sockets (one process, blocking connect + upgrade + one
command each), loopback only, bounded in count and time. Needs RLIMIT_NOFILE
above the connection count + 100 (the soft limit is raised to the hard one).
"""

import argparse
import base64
import json
import os
import resource
import socket
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_process import ServeProcess  # noqa: E402

CONFIG = """
[server]
demo = false
threads = {threads}
max_connections = 100000
[auth]
allow_anonymous = true
[limits]
max_subscriptions = 16
[namespaces.default]
presence = false
publish = "any"
[namespaces.pres]
presence = true
publish = "any"
[log]
level = "warn"
"""

SCENARIOS = ("ws-open", "ws-shared", "ws-own", "ws-presence", "sse-shared")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def masked_text_frame(payload):
    data = payload.encode()
    key = os.urandom(4)
    n = len(data)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


def read_until(s, buf, mark):
    while mark not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed while waiting for %r" % mark)
        buf += chunk
    return buf


def ws_client(port, channel):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (port, key)).encode())
    buf = read_until(s, b"", b"\r\n\r\n")
    if not buf.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(buf.split(b"\r\n")[0])
    if channel is not None:
        s.sendall(masked_text_frame(json.dumps({"id": 1, "cmd": "subscribe", "channel": channel})))
        read_until(s, buf, b'"result"')
    return s


def sse_client(port, channel):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(("GET /sse?channel=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
               % (channel, port)).encode())
    buf = read_until(s, b"", b"\r\n\r\n")
    if not buf.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(buf.split(b"\r\n")[0])
    read_until(s, buf, b"event: subscribed")
    return s


def client_of(scenario, port, i):
    if scenario == "ws-open":
        return ws_client(port, None)
    if scenario == "ws-shared":
        return ws_client(port, "mem")
    if scenario == "ws-own":
        return ws_client(port, "m%d" % i)
    if scenario == "ws-presence":
        return ws_client(port, "pres:m%d" % i)
    if scenario == "sse-shared":
        return sse_client(port, "mem")
    raise ValueError(scenario)


def start_server(binary, tmp, threads, pin):
    config = CONFIG.format(threads=threads if threads.isdigit() else '"%s"' % threads)
    return ServeProcess(binary, config, tmp, prefix=("taskset", "-c", "0") if pin else ())


def fit(points):
    """Least squares y = a + b x over [(x, y)]: (a, b)."""
    n = len(points)
    sx = sum(x for x, _ in points)
    sy = sum(y for _, y in points)
    sxx = sum(x * x for x, _ in points)
    sxy = sum(x * y for x, y in points)
    b = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    return (sy - b * sx) / n, b


def measure(binary, tmp, scenario, n, checkpoints, settle, threads, pin):
    server = start_server(binary, tmp, threads, pin)
    socks = []
    try:
        time.sleep(1.5)  # the start-up's allocations and the first trim
        before = rss_kib(server.proc.pid)
        marks = [n * (k + 1) // checkpoints for k in range(checkpoints)]
        readings = []
        for mark in marks:
            while len(socks) < mark:
                socks.append(client_of(scenario, server.port, len(socks)))
            time.sleep(settle)
            readings.append((mark, rss_kib(server.proc.pid) * 1024))
        intercept, slope = fit(readings)
        return {"scenario": scenario, "connections": n, "threads": threads,
                "rss_before": before * 1024, "readings": readings,
                "marginal": slope, "step": intercept - before * 1024,
                "average": (readings[-1][1] - before * 1024) / n}
    finally:
        for s in socks:
            s.close()
        server.stop()


def spread(values):
    return "%.0f" % values[0] if len(values) == 1 else "%.0f (%.0f–%.0f)" % (
        sorted(values)[len(values) // 2], min(values), max(values))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--checkpoints", type=int, default=4)
    ap.add_argument("--settle", type=float, default=2.5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", default="1")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--json", help="append one JSON line per measurement to this file")
    a = ap.parse_args()
    scenarios = a.scenarios.split(",")
    for s in scenarios:
        if s not in SCENARIOS:
            ap.error("unknown scenario %r (one of %s)" % (s, ", ".join(SCENARIOS)))
    if a.checkpoints < 2:
        ap.error("--checkpoints must be at least 2 (a line needs two points)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < a.connections + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Pinned to core 0 unless told otherwise; threads = "auto" counts the
    # usable CPUs (the affinity mask), so it runs unpinned.
    pin = not a.no_pin and a.threads.isdigit() and os.cpu_count() >= 2
    tmp = tempfile.mkdtemp(prefix="switchboard-memory-bench-")
    results = {s: [] for s in scenarios}
    for r in range(a.repeat):
        for s in scenarios:
            m = measure(a.binary, tmp, s, a.connections, a.checkpoints, a.settle, a.threads, pin)
            results[s].append(m)
            print("# run %d %s: marginal %.0f B, step %.0f KiB, average %.0f B" % (
                r + 1, s, m["marginal"], m["step"] / 1024, m["average"]), file=sys.stderr)
            if a.json:
                with open(a.json, "a") as f:
                    f.write(json.dumps(m) + "\n")

    print("| scenario (%d connections, threads = %s, %d runs) | marginal B per connection "
          "| step KiB | average B (RSS delta / N) |" % (a.connections, a.threads, a.repeat))
    print("|---|---:|---:|---:|")
    for s in scenarios:
        ms = results[s]
        print("| %s | %s | %s | %s |" % (s, spread([m["marginal"] for m in ms]),
                                         spread([m["step"] / 1024 for m in ms]),
                                         spread([m["average"] for m in ms])))

    def med(s, key):
        v = sorted(m[key] for m in results[s])
        return v[len(v) // 2]

    print()
    if "ws-own" in results and "ws-shared" in results:
        print("per-channel state (ws-own - ws-shared, medians): %.0f B" % (
            med("ws-own", "marginal") - med("ws-shared", "marginal")))
    if "ws-presence" in results and "ws-own" in results:
        print("presence per member (ws-presence - ws-own, medians): %.0f B" % (
            med("ws-presence", "marginal") - med("ws-own", "marginal")))
    if "sse-shared" in results and "ws-shared" in results:
        print("SSE / WebSocket (sse-shared / ws-shared marginal, medians): %.2fx" % (
            med("sse-shared", "marginal") / med("ws-shared", "marginal")))


if __name__ == "__main__":
    main()
