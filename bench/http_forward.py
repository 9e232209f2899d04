#!/usr/bin/env python3
"""HTTP sessions across nodes (issue 10): what forwarding through Redis costs,
as same-run ratios against the same requests served by the session's own node.

Two `switchboard serve` nodes (threads = 1 each) on one redis-server the script
starts itself (127.0.0.1, free ports, a temporary directory, no persistence).
One HTTP session made on node A, subscribed to one channel:

  sends   N sequential `POST /rt/session/<id>/send` (one `ping` each, one
          keep-alive connection), first to A (local), then to B (forwarded to A
          and answered back): requests per second of each;
  stream  K publications (`POST /api/publish` on A, one keep-alive connection)
          delivered down the session's SSE stream, first held on A (local), then
          on B (each event relayed A -> Redis -> B): wall time until the last
          event arrived, and the CPU-seconds (utime + stime, /proc/PID/stat) of
          both nodes over the window.

Usage: /usr/bin/python3 bench/http_forward.py path/to/switchboard [--sends N] [--events K]
Bounded: N sends per mode (default 2000), K publications per mode (default 2000).
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_process import ServeProcess  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_node(binary, directory, name, redis_port):
    return ServeProcess(
        binary,
        '[server]\ndemo = false\nthreads = 1\n[auth]\nallow_anonymous = true\n'
        '[api]\nkey = "k"\n[broker]\nurls = ["redis://127.0.0.1:%d"]\n'
        '[namespaces.chat]\nhistory_size = 100\npresence = false\n'
        '[limits]\ncommand_rate = 1000000\ncommand_burst = 1000000\n'
        '[log]\nlevel = "warn"\n' % redis_port, directory, name, stop_timeout=10)


def wait_healthy(port):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.05)
    raise SystemExit("node on %d not healthy" % port)


class Stream:
    """A raw-socket SSE reader that counts `event: message` blocks."""

    def __init__(self, port, path):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        self.buf = b""

    def count_until(self, n, marker):
        """Reads until `n` events containing `marker` arrived."""
        seen = 0
        while seen < n:
            data = self.sock.recv(1 << 16)
            if not data:
                raise SystemExit("stream ended")
            self.buf += data
            seen += self.buf.count(marker)
            self.buf = self.buf[-(len(marker) - 1):]
        return seen

    def close(self):
        self.sock.close()


def sends_per_second(port, path, n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps({"id": 1, "cmd": "ping"})
    t0 = time.perf_counter()
    for _ in range(n):
        conn.request("POST", path + "/send", body=body)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 202:
            raise SystemExit("send answered %d" % resp.status)
    rate = n / (time.perf_counter() - t0)
    conn.close()
    return rate


def stream_window(stream_port, path, api_port, channel, k, nodes):
    s = Stream(stream_port, path + "/stream")
    time.sleep(0.3)  # the stream is attached (its buffer flushed)
    cpu0 = sum(cpu_seconds(p.pid) for p in nodes)
    conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=10)
    t0 = time.perf_counter()
    for i in range(k):
        conn.request("POST", "/api/publish", body=json.dumps({"channel": channel, "data": i}),
                     headers={"X-API-Key": "k"})
        resp = conn.getresponse()
        resp.read()
    s.count_until(k, b'"push":"message"')
    wall = time.perf_counter() - t0
    cpu = sum(cpu_seconds(p.pid) for p in nodes) - cpu0
    conn.close()
    s.close()
    return wall, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--sends", type=int, default=2000)
    ap.add_argument("--events", type=int, default=2000)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="switchboard-fwd-bench-")
    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                              "--dir", d, "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nodes = []
    try:
        time.sleep(0.3)
        for name in ("a", "b"):
            nodes.append(start_node(a.binary, d, name, redis_port))
        port_a, port_b = nodes[0].port, nodes[1].port
        for port in (port_a, port_b):
            wait_healthy(port)
        conn = http.client.HTTPConnection("127.0.0.1", port_a, timeout=10)
        conn.request("POST", "/rt/session")
        sid = json.loads(conn.getresponse().read())["session"]
        conn.close()
        path = "/rt/session/" + sid
        # Nobody reads the session's replies during the sends: poll them away after.
        local = sends_per_second(port_a, path, a.sends)
        forwarded = sends_per_second(port_b, path, a.sends)
        conn = http.client.HTTPConnection("127.0.0.1", port_a, timeout=10)
        conn.request("POST", path + "/send",
                     body=json.dumps({"id": 2, "cmd": "subscribe", "channel": "chat:bench"}))
        conn.getresponse().read()
        conn.close()
        procs = [n.proc for n in nodes]
        local_wall, local_cpu = stream_window(port_a, path, port_a, "chat:bench", a.events, procs)
        relay_wall, relay_cpu = stream_window(port_b, path, port_a, "chat:bench", a.events, procs)
    finally:
        for node in nodes:
            node.stop()
        redis.kill()
        redis.wait()
        shutil.rmtree(d, ignore_errors=True)
    print("sends: %d sequential POST /send per mode, one keep-alive connection" % a.sends)
    print("  on the session's node : %8.0f /s" % local)
    print("  forwarded (other node): %8.0f /s" % forwarded)
    print("  ratio forwarded/local : %.2fx" % (forwarded / local))
    print("stream: %d publications down the session's SSE stream per mode" % a.events)
    print("  held on the session's node: %.2f s wall, %.2f CPU-s (both nodes)"
          % (local_wall, local_cpu))
    print("  relayed from the other node: %.2f s wall, %.2f CPU-s (both nodes)"
          % (relay_wall, relay_cpu))
    print("  ratio relayed/local: %.2fx wall, %.2fx CPU" % (relay_wall / local_wall,
                                                          relay_cpu / max(local_cpu, 1e-9)))


if __name__ == "__main__":
    sys.exit(main())
