#!/usr/bin/python3
"""The presence flood of issue 14 against `switchboard serve`, bounded.

N anonymous clients open /ws on 127.0.0.1, subscribe to one channel of a
namespace with presence, and never read again (raw sockets: the upgrade
answer is the last thing they read). One observer subscribed first reads
everything and counts the presence pushes. The server runs with every limit
at its default (only allow_anonymous on and the demo page off, so anonymous
clients can connect at all). Reported: the server's RSS before, at its peak
while the clients hold on, and after they all closed (after the housekeeping
trim), the presence pushes the observer got, and /metrics' outbound gauges.

    bench/presence_flood.py BUILD/apps/switchboard/switchboard [--clients 9999]

Not part of ./test: the 10,000-connection run takes a minute and most of the
machine's descriptors. tests/integration/presence_flood_test.py runs a
1,000-client version through flood() and checks the bounds. Needs
RLIMIT_NOFILE above clients + 100 (the script raises the soft limit to the
hard one; the server inherits it).
"""

import argparse
import base64
import json
import os
import re
import resource
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

CONFIG = """
[server]
demo = false
[auth]
allow_anonymous = true
[log]
level = "warn"
"""

CHANNEL = "flood"  # the default namespace: presence on, presence_max_members 1000


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def masked_text_frame(payload):
    data = payload.encode()
    key = os.urandom(4)
    head = bytes([0x81])
    n = len(data)
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


def upgrade(port, rcvbuf=None, timeout=10.0):
    """A connected, upgraded raw socket (the 101 read, nothing more)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n" % (port, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        # The server sends nothing after the 101 before a command: no frame
        # bytes can follow the head here.
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the upgrade")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError("upgrade refused: %r" % head.split(b"\r\n")[0])
    return s


class Observer(threading.Thread):
    """A client that reads everything and counts presence pushes."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = upgrade(port)
        self.sock.sendall(masked_text_frame(json.dumps(
            {"id": 1, "cmd": "subscribe", "channel": CHANNEL})))
        self.presence_pushes = 0
        self.joins = 0
        self.counts_only = 0
        self.last_count = None
        self.stop_flag = False

    def run(self):
        buf = b""
        self.sock.setblocking(False)
        while not self.stop_flag:
            ready, _, _ = select.select([self.sock], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = self.sock.recv(1 << 16)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 2:
                n = buf[1] & 0x7F
                off = 2
                if n == 126:
                    if len(buf) < 4:
                        break
                    n, off = struct.unpack("!H", buf[2:4])[0], 4
                elif n == 127:
                    if len(buf) < 10:
                        break
                    n, off = struct.unpack("!Q", buf[2:10])[0], 10
                if len(buf) < off + n:
                    break
                op, payload, buf = buf[0] & 0x0F, buf[off:off + n], buf[off + n:]
                if op == 0x9:  # answer pings, or the keepalive closes us
                    pong = bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload
                    self.sock.setblocking(True)
                    self.sock.sendall(pong)
                    self.sock.setblocking(False)
                if op != 0x1:
                    continue
                msg = json.loads(payload)
                if msg.get("push") == "presence":
                    self.presence_pushes += 1
                    self.last_count = msg.get("count")
                    if "joins" in msg:
                        self.joins += len(msg["joins"])
                    else:
                        self.counts_only += 1

    def close(self):
        self.stop_flag = True
        self.join(2)
        self.sock.close()


def metric(port, name):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    m = re.search(rb"^" + re.escape(name.encode()) + rb" ([0-9.e+]+)$", data, re.M)
    return float(m.group(1)) if m else None


def start_server(binary, extra_config=""):
    tmp = tempfile.mkdtemp(prefix="switchboard-flood-")
    path = os.path.join(tmp, "serve.toml")
    with open(path, "w") as f:
        f.write(CONFIG + extra_config)
    proc = subprocess.Popen([binary, "serve", "--config", path, "--host", "127.0.0.1",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline().decode()
    m = re.match(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        raise RuntimeError("no listening line: %r %r" % (line, proc.stderr.read()))
    return proc, int(m.group(1))


def flood(binary, clients, hold=5.0, settle=8.0, rcvbuf=None, extra_config="", log=print):
    """Runs the flood; returns a dict of the measurements."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < clients + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    proc, port = start_server(binary, extra_config)
    socks = []
    out = {}
    peak = [0]
    sampling = [True]

    def sample():
        while sampling[0]:
            try:
                peak[0] = max(peak[0], rss_kib(proc.pid))
            except OSError:
                return
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        time.sleep(0.3)
        out["rss_start_kib"] = rss_kib(proc.pid)
        observer = Observer(port)
        observer.start()
        sampler.start()
        started = time.monotonic()
        subscribe = masked_text_frame(json.dumps({"id": 1, "cmd": "subscribe", "channel": CHANNEL}))
        for i in range(clients):
            s = upgrade(port, rcvbuf)
            s.sendall(subscribe)
            socks.append(s)
            if (i + 1) % 2000 == 0:
                log("  %d clients, RSS %d KiB" % (i + 1, rss_kib(proc.pid)))
        out["join_seconds"] = time.monotonic() - started
        time.sleep(hold)  # every client joined, none reads
        out["rss_held_kib"] = rss_kib(proc.pid)
        out["outbound_bytes"] = metric(port, "switchboard_outbound_bytes")
        out["outbound_memory_drops"] = metric(port, "switchboard_outbound_memory_drops_total")
        out["presence_pushes_total"] = metric(port, "switchboard_presence_pushes_total")
        out["messages_sent"] = metric(port, "switchboard_messages_sent_total")
        out["observer_presence_pushes"] = observer.presence_pushes
        out["observer_joins_listed"] = observer.joins
        out["observer_counts_only_pushes"] = observer.counts_only
        out["observer_last_count"] = observer.last_count
        out["flood_seconds"] = time.monotonic() - started
        for s in socks:
            s.close()
        socks = []
        closed = time.monotonic()
        # The leaves, the freed queues, then the housekeeping trim (every 5 s).
        time.sleep(settle)
        out["rss_after_kib"] = rss_kib(proc.pid)
        out["settle_seconds"] = time.monotonic() - closed
        sampling[0] = False
        out["rss_peak_kib"] = peak[0]
        observer.close()
        out["server_alive"] = proc.poll() is None
    finally:
        sampling[0] = False
        for s in socks:
            s.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--clients", type=int, default=9999,
                    help="flood clients (default 9999: with the observer, the default "
                         "max_connections of 10,000)")
    ap.add_argument("--hold", type=float, default=10.0, help="seconds to hold them open")
    ap.add_argument("--settle", type=float, default=8.0, help="seconds after closing them")
    ap.add_argument("--rcvbuf", type=int, default=None,
                    help="SO_RCVBUF of the flood sockets (default: the kernel's)")
    args = ap.parse_args()
    r = flood(args.binary, args.clients, args.hold, args.settle, args.rcvbuf)
    for k, v in r.items():
        print("%-28s %s" % (k, v))


if __name__ == "__main__":
    sys.exit(main())
