#!/usr/bin/python3
"""Instructions one node spends per publication through Redis, under callgrind (issue 9, section 5).

`switchboard serve` (one loop thread, plus the Redis broker's own loop) runs under
`valgrind --tool=callgrind` twice per broker: one WebSocket publisher sends P, then 2P,
publications of ~100 bytes pipelined (bursts of --burst, no wait for replies) to one
channel (or round-robin over --channels), read by one WebSocket subscriber of them all on
the same node. Every publication goes
publisher → node → Redis (the publish script) → pub/sub → node → subscriber. The marginal
cost is the difference of the two runs' instruction counts over P, so start-up, the
subscriber's join and shutdown cancel out. User space of the node only (all its threads;
the kernel's socket work and Redis itself are not counted: bench/redis_script_instructions.py
counts Redis). The memory broker gives the reference: the same traffic without Redis.

    bench/redis_node_instructions.py BUILD/apps/switchboard/switchboard [--publications 2000]
        [--burst 64] [--channels 1] [--brokers redis,memory] [--keep DIR]

A redis-server is started on a free 127.0.0.1 port in a temporary directory (no
persistence) and shut down at the end; never the system one. Loopback only, bounded in
count and time (a few minutes with the defaults). `--keep DIR` keeps the callgrind files
for callgrind_annotate.
"""

import argparse
import base64
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_process import CallgrindServe  # noqa: E402

CONFIG = """
[server]
demo = false
[auth]
allow_anonymous = true
[limits]
command_rate = 1000000
command_burst = 1000000
[namespaces.default]
presence = false
publish = "any"
history_size = 100
[log]
level = "warn"
"""

DELIVERY_MARK = b'"push":"message"'
REPLY_MARK = b'"id":'


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def masked_text_frame(payload):
    data = payload.encode()
    key = os.urandom(4)
    n = len(data)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126
                            else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


def ws_connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (port, key)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the handshake's head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n")[0])
    return s, rest


def channel_name(i, channels):
    return "bench" if channels == 1 else "bench%d" % (i % channels)


def subscribe(port, channels):
    s, rest = ws_connect(port)
    for i in range(channels):
        s.sendall(masked_text_frame(json.dumps(
            {"id": 1, "cmd": "subscribe", "channel": channel_name(i, channels)})))
        while b'"result"' not in rest:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("closed before the subscribe reply")
            rest += chunk
        rest = rest[rest.index(b'"result"') + 8:]
    return s


class Redis:
    def __init__(self, tmp):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if self.cli("PING") == "PONG":
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                              text=True, timeout=30).stdout.strip()

    def stop(self):
        if self.proc.poll() is None:
            self.cli("SHUTDOWN", "NOSAVE")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class CallgrindServer(CallgrindServe):
    def __init__(self, binary, tmp, name, broker_url):
        config = CONFIG
        if broker_url:
            config += '[broker]\nurls = ["%s"]\nkey_prefix = "%s:"\n' % (broker_url, name)
        super().__init__(binary, config, tmp, name, extra=("--threads", "1"))

    def wait_healthy(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    head = s.recv(4096)
                if head.startswith(b"HTTP/1.1 200"):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the node never became healthy")


def run_once(binary, tmp, name, broker_url, count, burst, channels):
    """Total instructions of a node that carried `count` publications to one subscriber."""
    server = CallgrindServer(binary, tmp, name, broker_url)
    try:
        server.wait_healthy()
        sub = subscribe(server.port, channels)
        pub, pub_rest = ws_connect(server.port)
        for s in (sub, pub):
            s.setblocking(False)
        ep = select.epoll()
        ep.register(sub.fileno(), select.EPOLLIN)
        ep.register(pub.fileno(), select.EPOLLIN)
        counts = {sub.fileno(): 0, pub.fileno(): pub_rest.count(REPLY_MARK)}
        marks = {sub.fileno(): DELIVERY_MARK, pub.fileno(): REPLY_MARK}
        tails = {sub.fileno(): b"", pub.fileno(): b""}
        by_fd = {sub.fileno(): sub, pub.fileno(): pub}
        errors = 0
        sent = 0
        deadline = time.monotonic() + 600
        while ((counts[sub.fileno()] < count or counts[pub.fileno()] < count)
               and time.monotonic() < deadline):
            if sent < count and sent - counts[pub.fileno()] < 4 * burst:
                n = min(burst, count - sent)
                pub.setblocking(True)
                pub.sendall(b"".join(masked_text_frame(json.dumps(
                    {"id": sent + i + 2, "cmd": "publish",
                     "channel": channel_name(sent + i, channels),
                     "data": {"seq": sent + i, "pad": "x" * 64}})) for i in range(n)))
                pub.setblocking(False)
                sent += n
            for fd, _ in ep.poll(0.05):
                try:
                    data = by_fd[fd].recv(1 << 18)
                except BlockingIOError:
                    continue
                if not data:
                    raise ConnectionError("the node closed a connection")
                buf = tails[fd] + data
                counts[fd] += buf.count(marks[fd])
                if fd == pub.fileno():
                    errors += buf.count(b'"error"')
                tails[fd] = buf[-(len(marks[fd]) - 1):]
        delivered, replied = counts[sub.fileno()], counts[pub.fileno()]
        sub.close()
        pub.close()
    finally:
        instructions = server.stop()
    if delivered != count or replied != count or errors:
        raise RuntimeError("%s: %d of %d deliveries, %d of %d replies, %d errors" % (
            name, delivered, count, replied, count, errors))
    return instructions


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--publications", type=int, default=2000)
    ap.add_argument("--burst", type=int, default=64)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--brokers", default="redis,memory")
    ap.add_argument("--keep", help="a directory to keep the callgrind files in")
    a = ap.parse_args()
    for tool in ("valgrind", "redis-server", "redis-cli"):
        if not shutil.which(tool):
            sys.exit("%s is not installed" % tool)
    tmp = tempfile.mkdtemp(prefix="switchboard-redis-node-instr-")
    redis = None
    try:
        print("| broker | instructions, %d publications | %d publications "
              "| node instructions per publication |" % (a.publications, 2 * a.publications))
        print("|---|---:|---:|---:|", flush=True)
        for broker in a.brokers.split(","):
            url = None
            if broker == "redis":
                redis = redis or Redis(tmp)
                url = "redis://127.0.0.1:%d" % redis.port
            elif broker != "memory":
                sys.exit("unknown broker %r (redis or memory)" % broker)
            i1 = run_once(a.binary, tmp, "%s-1" % broker, url, a.publications, a.burst,
                          a.channels)
            i2 = run_once(a.binary, tmp, "%s-2" % broker, url, 2 * a.publications, a.burst,
                          a.channels)
            print("| %s | %d | %d | %.0f |" % (broker, i1, i2, (i2 - i1) / a.publications),
                  flush=True)
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
            for f in os.listdir(tmp):
                if f.endswith(".callgrind"):
                    shutil.copy(os.path.join(tmp, f), a.keep)
    finally:
        if redis:
            redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
