#!/usr/bin/python3
"""GET /sse against /ws in `switchboard serve`, same run (issue 10, section 5).

Two servers with the same configuration (anonymous access, presence off, the
demo page off), one per transport, so neither inherits the other's heap:

  memory   N idle subscribers of one channel: the server's VmRSS before and
           after they connected and subscribed (2 s idle, after the
           housekeeping's trim), per subscriber. WebSocket clients are raw
           sockets that upgrade and send one subscribe; SSE clients send one
           GET /sse?channel=bench and read the head.
  deliver  K publications (one WebSocket publisher, bursts of 50) to the N
           subscribers; every client socket is read by one epoll thread that
           counts the deliveries (`"push":"message"` frames / `event:
           publication` events). Reported: deliveries per second of server
           CPU (utime + stime from /proc/PID/stat over the publish window).

    bench/sse_bench.py BUILD/apps/switchboard/switchboard [--subscribers 1000] [--publications 200]

Loopback only, bounded in count and time. Needs RLIMIT_NOFILE above
2 x subscribers + 100 (the soft limit is raised to the hard one).
"""

import argparse
import base64
import json
import os
import resource
import select
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
max_connections = 100000
[auth]
allow_anonymous = true
[limits]
command_rate = 100000
command_burst = 100000
[namespaces.default]
presence = false
publish = "any"
history_size = 10
[log]
level = "warn"
"""

WS_MARK = b'"push":"message"'
SSE_MARK = b"event: publication"


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def masked_text_frame(payload):
    data = payload.encode()
    key = os.urandom(4)
    n = len(data)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


def read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def ws_subscriber(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (port, key)).encode())
    head, rest = read_head(s)
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n")[0])
    s.sendall(masked_text_frame(json.dumps({"id": 1, "cmd": "subscribe", "channel": "bench"})))
    while b'"result"' not in rest:  # the subscribe reply
        rest += s.recv(4096)
    return s


def sse_subscriber(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(("GET /sse?channel=bench HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port).encode())
    head, rest = read_head(s)
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(head.split(b"\r\n")[0])
    while b"event: subscribed" not in rest:
        rest += s.recv(4096)
    return s


def publish_and_count(port, socks, mark, k, burst, seconds):
    """K publications of ~100 bytes to channel "bench" from a WebSocket publisher (bursts
    of `burst`), the subscribers' sockets read by one epoll loop until every one got all
    K (each counted by `mark`) or `seconds` passed. Returns the deliveries counted."""
    ep = select.epoll()
    tails = {}
    for s in socks:
        s.setblocking(False)
        ep.register(s.fileno(), select.EPOLLIN)
        tails[s.fileno()] = b""
    by_fd = {s.fileno(): s for s in socks}
    pub = ws_subscriber(port)  # subscribed too: not counted
    expected, counted, sent = len(socks) * k, 0, 0
    deadline = time.monotonic() + seconds
    try:
        while counted < expected and time.monotonic() < deadline:
            if sent < k:
                n = min(burst, k - sent)
                pub.sendall(b"".join(masked_text_frame(json.dumps(
                    {"id": sent + i + 2, "cmd": "publish", "channel": "bench",
                     "data": {"seq": sent + i, "pad": "x" * 64}})) for i in range(n)))
                sent += n
            for fd, _ in ep.poll(0.05):
                try:
                    data = by_fd[fd].recv(1 << 18)
                except BlockingIOError:
                    continue
                buf = tails[fd] + data
                counted += buf.count(mark)
                tails[fd] = buf[-(len(mark) - 1):]
            try:  # the publisher's own copies and replies: drain, not counted
                pub.setblocking(False)
                while pub.recv(1 << 18):
                    pass
            except BlockingIOError:
                pass
            finally:
                pub.setblocking(True)
    finally:
        pub.close()
        ep.close()
    return counted


class Server(ServeProcess):
    """`switchboard serve` with CONFIG; `prefix` runs it under a tool (valgrind),
    `extra` adds options."""

    def __init__(self, binary, tmp, name, prefix=(), extra=()):
        super().__init__(binary, CONFIG, tmp, name, prefix=prefix, extra=extra)


def measure(binary, tmp, transport, n, k):
    server = Server(binary, tmp, transport)
    try:
        time.sleep(1)
        before = rss_kib(server.proc.pid)
        make = ws_subscriber if transport == "websocket" else sse_subscriber
        socks = [make(server.port) for _ in range(n)]
        time.sleep(2.5)  # idle, past the housekeeping trim (every 2 s)
        after = rss_kib(server.proc.pid)
        per_sub = (after - before) * 1024 / n

        mark = WS_MARK if transport == "websocket" else SSE_MARK
        cpu0 = cpu_seconds(server.proc.pid)
        t0 = time.monotonic()
        counted = publish_and_count(server.port, socks, mark, k, burst=50, seconds=60)
        expected = n * k
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(server.proc.pid) - cpu0
        for s in socks:
            s.close()
        return {"transport": transport, "subscribers": n, "rss_before_kib": before,
                "rss_after_kib": after, "bytes_per_subscriber": per_sub,
                "deliveries": counted, "expected": expected, "seconds": elapsed,
                "server_cpu_s": cpu, "deliveries_per_cpu_s": counted / cpu if cpu > 0 else 0}
    finally:
        server.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--publications", type=int, default=200)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * a.subscribers + 100
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
    tmp = tempfile.mkdtemp(prefix="switchboard-sse-bench-")
    results = [measure(a.binary, tmp, t, a.subscribers, a.publications)
               for t in ("websocket", "sse")]
    ws, sse = results
    print("| transport | subscribers | bytes per idle subscriber | deliveries | server CPU s "
          "| deliveries per CPU-second |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print("| %s | %d | %.0f | %d / %d | %.2f | %.0f |" % (
            r["transport"], r["subscribers"], r["bytes_per_subscriber"], r["deliveries"],
            r["expected"], r["server_cpu_s"], r["deliveries_per_cpu_s"]))
    print()
    print("memory SSE / WebSocket: %.2fx (target <= 1.5x)" % (
        sse["bytes_per_subscriber"] / ws["bytes_per_subscriber"]))
    if ws["deliveries_per_cpu_s"] and sse["deliveries_per_cpu_s"]:
        print("deliveries per CPU-second SSE / WebSocket: %.2fx" % (
            sse["deliveries_per_cpu_s"] / ws["deliveries_per_cpu_s"]))
    else:  # /proc counts CPU in 10 ms ticks
        print("deliveries per CPU-second: too little CPU to measure (more --publications)")
    ok = all(r["deliveries"] == r["expected"] for r in results)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
