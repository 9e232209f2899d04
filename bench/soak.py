#!/usr/bin/python3
"""Soak test of `switchboard serve` (issue 14): many connections for a long time,
with churn, publications, presence and history, while the server's RSS and open
descriptors are sampled. Run by bench/soak.sh (15 minutes, 10,000 connections) and,
scaled down, by ctest under ASan (tests/integration/CMakeLists.txt).

What runs (all on 127.0.0.1, against a server this script starts with a temporary
config and a free port, and stops):
  * CONNECTIONS clients over CHANNELS channels of the namespace `soak` (presence on,
    history kept HISTORY_TTL seconds); each subscribes to one channel;
  * one publisher per channel (a stable client of that channel) publishes a sequence
    number every CHANNELS / RATE seconds, waiting for each acknowledgement;
  * CHURN of the clients are "churners": each lives a random 20-60 s (scaled by
    --churn-period), then drops its connection (half a clean close, half a TCP reset)
    and reconnects at once, subscribing with `since` its last offset;
  * every client asks `presence` (first page) and `history` (limit 5) now and then.

Checks (a failure is printed and makes the exit status 1):
  * no loss: every client sees its channel's offsets consecutively, each exactly once,
    in order, across reconnects (a resubscribe must say `recovered: true` and its
    recovered publications continue where the client was), and the sequence numbers
    in the data follow the offsets; at the end each client's last offset is its
    channel's last acknowledged one;
  * no error reply; presence counts at least the channel's stable members; history
    consecutive and not past the stream;
  * flat: after the warm-up (all connected, history at its TTL steady state) the
    samples are cut in thirds: RSS max of the last third <= (1 + RSS_TOLERANCE) x RSS
    max of the first third; open descriptors max of the last third <= first-third max
    + 2% of the connections; after every client closed, descriptors are back to the
    count before the first connection (+2);
  * the server exits 0 on SIGTERM (under ASan: no error report).

Output: progress lines, then one JSON line with the figures (docs/benchmarks.md).

The load side is asyncio with a minimal WebSocket client on asyncio.Protocol (one
object per connection, no task per connection): enough for 10,000 connections in one
process on this 2-core machine without being the bottleneck.

    bench/soak.py --switchboard build/release/apps/switchboard/switchboard \
        --connections 10000 --channels 200 --seconds 900
"""

import argparse
import asyncio
import base64
import json
import os
import random
import resource
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

NAMESPACE = "soak"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User + system CPU seconds of process `pid` so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Failures:
    """Counts failures by kind; keeps the first few messages of each."""

    def __init__(self):
        self.counts = {}
        self.examples = {}

    def add(self, kind, message):
        self.counts[kind] = self.counts.get(kind, 0) + 1
        ex = self.examples.setdefault(kind, [])
        if len(ex) < 3:
            ex.append(message)

    def total(self):
        return sum(self.counts.values())


class Connection(asyncio.Protocol):
    """One WebSocket connection speaking switchboard.v1 for a Member: the upgrade,
    then text frames as JSON to member.on_message(); pings answered; every frame it
    sends masked (RFC 6455 5.3)."""

    def __init__(self, member, port):
        self.member = member
        self.port = port
        self.transport = None
        self.buf = bytearray()
        self.upgraded = False
        self.closed = False
        self.opened = asyncio.get_running_loop().create_future()
        self.lost = asyncio.get_running_loop().create_future()
        self.mask = os.urandom(4)
        self.mask_int = int.from_bytes(self.mask, "big")
        self.fragments = None

    def connection_made(self, transport):
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: switchboard.v1\r\n"
                         "\r\n" % (self.port, key)).encode())

    def data_received(self, data):
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buf[:end]).split(b"\r\n", 1)[0]
            del self.buf[:end + 4]
            if b" 101 " not in status + b" ":
                if not self.opened.done():
                    self.opened.set_exception(ConnectionError(status.decode(errors="replace")))
                self.transport.close()
                return
            self.upgraded = True
            if not self.opened.done():
                self.opened.set_result(True)
        self.parse()

    def parse(self):
        buf = self.buf
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            n = b1 & 0x7F
            pos = 2
            if n == 126:
                if len(buf) < 4:
                    return
                n = struct.unpack_from("!H", buf, 2)[0]
                pos = 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n = struct.unpack_from("!Q", buf, 2)[0]
                pos = 10
            if b1 & 0x80:  # a server never masks (RFC 6455 5.1)
                self.member.failures.add("protocol", "masked frame from the server")
                self.transport.abort()
                return
            if len(buf) < pos + n:
                return
            payload = bytes(buf[pos:pos + n])
            del buf[:pos + n]
            fin, op = b0 & 0x80, b0 & 0x0F
            if op == 0x9:
                self.send_frame(0xA, payload)
            elif op == 0x8:
                if not self.closed:
                    self.closed = True
                    self.send_frame(0x8, payload[:2])
                self.member.on_server_close(self, payload)
                self.transport.close()
                return
            elif op in (0x1, 0x0):
                if op == 0x1:
                    self.fragments = [payload]
                elif self.fragments is not None:
                    self.fragments.append(payload)
                if fin:
                    text = b"".join(self.fragments)
                    self.fragments = None
                    self.member.on_message(self, json.loads(text))

    def send_frame(self, op, payload):
        if self.transport is None or self.transport.is_closing():
            return
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | op, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | op, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | op, 0x80 | 127, n)
        if n:
            key = (self.mask * ((n + 3) // 4))[:n]
            masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
        else:
            masked = b""
        self.transport.write(head + self.mask + masked)

    def send_json(self, obj):
        self.send_frame(0x1, json.dumps(obj, separators=(",", ":")).encode())

    def close_cleanly(self):
        if not self.closed:
            self.closed = True
            self.send_frame(0x8, struct.pack("!H", 1000))

    def connection_lost(self, exc):
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection lost before the upgrade"))
        if not self.lost.done():
            self.lost.set_result(True)
        self.member.on_lost(self)


class Member:
    """A client across its connections: its channel, where it is in the channel's
    stream, and the checks on everything it receives."""

    def __init__(self, soak, idx, channel, stable):
        self.soak = soak
        self.idx = idx
        self.channel = channel
        self.stable = stable
        self.failures = soak.failures
        self.conn = None
        self.epoch = None
        self.offset = None  # last offset seen (None: not subscribed yet)
        self.seq = None     # sequence number in the data of that offset
        self.next_id = 0
        self.pending = {}   # id -> (kind, future)
        self.subscribed = False
        self.reconnects = 0
        self.received = 0

    # --- sending -----------------------------------------------------------------------
    def request(self, cmd, **fields):
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = (cmd, fut)
        self.conn.send_json(dict({"id": self.next_id, "cmd": cmd}, **fields))
        return fut

    # --- receiving ---------------------------------------------------------------------
    def on_message(self, conn, msg):
        if conn is not self.conn:
            return
        if "push" in msg:
            kind = msg["push"]
            if kind == "message":
                if msg.get("channel") != self.channel:
                    self.failures.add("wrong_channel", "%d got %r" % (self.idx, msg.get("channel")))
                    return
                if not self.subscribed:
                    self.failures.add("early_push", "%d: message before the subscribe reply" % self.idx)
                    return
                self.take(msg, "live")
            elif kind == "presence":
                self.soak.presence_pushes += 1
            elif kind in ("refresh", "unsubscribe"):
                self.failures.add("unexpected_push", repr(msg)[:200])
            return
        entry = self.pending.pop(msg.get("id"), None)
        if entry is None:
            self.failures.add("unknown_reply", repr(msg)[:200])
            return
        cmd, fut = entry
        if "error" in msg:
            self.failures.add("error_" + cmd, "%d: %r" % (self.idx, msg["error"]))
        if cmd == "subscribe" and "result" in msg:
            self.on_subscribed(msg["result"])
        if not fut.done():
            fut.set_result(msg)

    def take(self, pub, how):
        """One publication (a push or recovered): the next offset, the next sequence."""
        offset = pub["offset"]
        data = pub.get("data") or {}
        seq = data.get("s")
        self.received += 1
        self.soak.deliveries += 1
        if self.offset is not None and offset != self.offset + 1:
            kind = "duplicate" if offset <= self.offset else "gap"
            self.failures.add(kind, "%s client %d (%s): offset %d after %d"
                              % (how, self.idx, self.channel, offset, self.offset))
        if self.seq is not None and seq is not None and seq != self.seq + 1 and \
                self.offset is not None and offset == self.offset + 1:
            self.failures.add("sequence", "client %d (%s): seq %r after %r at offset %d"
                              % (self.idx, self.channel, seq, self.seq, offset))
        if data.get("c") != self.channel:
            self.failures.add("data_channel", "client %d got data of %r" % (self.idx, data.get("c")))
        self.offset = max(offset, self.offset or 0)
        self.seq = seq

    def on_subscribed(self, result):
        if result.get("channel") != self.channel:
            self.failures.add("subscribe_reply", repr(result)[:200])
        if self.offset is None:  # first subscribe: the stream starts here for us
            self.epoch = result["epoch"]
            self.offset = result["offset"]
            self.seq = None
        else:
            if result.get("recovered") is not True:
                self.failures.add("not_recovered", "client %d (%s): %r"
                                  % (self.idx, self.channel, {k: v for k, v in result.items()
                                                              if k != "publications"}))
            if result["epoch"] != self.epoch:
                self.failures.add("epoch", "client %d: epoch %s -> %s"
                                  % (self.idx, self.epoch, result["epoch"]))
                self.epoch = result["epoch"]
            for pub in result.get("publications", []):
                self.take(pub, "recovered")
            if self.offset != result["offset"]:
                self.failures.add("gap", "client %d (%s): recovered up to %d, stream at %d"
                                  % (self.idx, self.channel, self.offset, result["offset"]))
                self.offset = result["offset"]
            self.soak.recoveries += 1
        self.subscribed = True

    def on_server_close(self, conn, payload):
        # (the answer to our own close is not the server closing)
        if conn is self.conn and not self.soak.stopping and not getattr(conn, "dropping", False):
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            self.failures.add("server_close", "client %d closed by the server: %d %r"
                              % (self.idx, code, payload[2:60]))

    def on_lost(self, conn):
        if conn is self.conn:
            self.subscribed = False
            for _, fut in self.pending.values():
                if not fut.done():
                    fut.cancel()
            self.pending.clear()
            if not self.soak.stopping and not getattr(conn, "dropping", False):
                self.failures.add("lost", "client %d lost its connection" % self.idx)

    # --- connecting ----------------------------------------------------------------------
    async def connect(self):
        loop = asyncio.get_running_loop()
        for attempt in range(20):
            conn = Connection(self, self.soak.port)
            try:
                await loop.create_connection(lambda: conn, "127.0.0.1", self.soak.port)
                await asyncio.wait_for(conn.opened, 30)
                break
            except (OSError, ConnectionError, asyncio.TimeoutError) as e:
                if conn.transport:
                    conn.transport.abort()
                if attempt == 19:
                    raise
                self.soak.connect_retries += 1
                if self.soak.connect_retries <= 3:
                    print("connect retry (%s)" % e, flush=True)
                await asyncio.sleep(0.2 + random.random())
        self.conn = conn
        fields = {"channel": self.channel}
        if self.offset is not None:
            fields["since"] = {"epoch": self.epoch, "offset": self.offset}
        reply = await asyncio.wait_for(self.request("subscribe", **fields), 60)
        if "error" in reply:
            raise RuntimeError("subscribe refused: %r" % reply)

    async def drop(self):
        """Ends the connection: half the time a clean close, else a TCP reset."""
        conn = self.conn
        conn.dropping = True
        if random.random() < 0.5:
            conn.close_cleanly()
            try:
                await asyncio.wait_for(asyncio.shield(conn.lost), 10)
            except asyncio.TimeoutError:
                conn.transport.abort()
        else:
            conn.transport.abort()
        try:
            await asyncio.wait_for(asyncio.shield(conn.lost), 10)
        except asyncio.TimeoutError:
            self.failures.add("close", "client %d: connection not closed" % self.idx)


class Soak:
    def __init__(self, args):
        self.args = args
        self.failures = Failures()
        self.port = free_port()
        self.stopping = False
        self.deliveries = 0
        self.recoveries = 0
        self.presence_pushes = 0
        self.connect_retries = 0
        self.published = {}  # channel -> last acknowledged offset
        self.first_offset = {}
        self.samples = []  # (t, rss KiB, fds, clients connected)
        self.proc = None
        self.tmp = tempfile.mkdtemp(prefix="switchboard-soak-")
        self.channels = ["%s:c%d" % (NAMESPACE, i) for i in range(args.channels)]
        self.members = []

    # --- the server ------------------------------------------------------------------------
    def start_server(self):
        a = self.args
        config = """
[server]
host = "127.0.0.1"
port = %d
demo = false
max_connections = %d
[auth]
allow_anonymous = true
[log]
level = "warn"
[namespaces.default]
[namespaces.%s]
history_size = 1000
history_ttl = %g
presence = true
publish = "subscribers"
""" % (self.port, a.connections + 1000, NAMESPACE, a.history_ttl)
        path = os.path.join(self.tmp, "soak.toml")
        with open(path, "w") as f:
            f.write(config)
        self.stderr = open(os.path.join(self.tmp, "stderr"), "w+")
        env = dict(os.environ)
        if a.asan_quarantine_mb is not None:
            # ASan keeps freed memory aside (256 MiB by default) before reusing it:
            # without a smaller quarantine RSS climbs for minutes whatever the server does.
            env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                                   ":quarantine_size_mb=%d" % a.asan_quarantine_mb).lstrip(":")
        self.proc = subprocess.Popen([a.switchboard, "serve", "--config", path],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=env)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            raise RuntimeError("serve did not start: %r %s" % (line, self.stderr_text()))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("serve is not accepting on %d" % self.port)

    def stderr_text(self):
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()

    def sample(self, t0):
        if self.proc.poll() is not None:
            return None
        connected = sum(1 for m in self.members if m.subscribed)
        s = (round(time.monotonic() - t0, 1), rss_kib(self.proc.pid), open_fds(self.proc.pid), connected)
        self.samples.append(s)
        return s

    # --- the load --------------------------------------------------------------------------
    async def publisher(self, member, until):
        """Publishes 1, 2, 3... on the member's channel, one in flight at a time."""
        a = self.args
        period = a.channels / a.rate
        await asyncio.sleep(random.random() * period)
        seq = 0
        while time.monotonic() < until:
            seq += 1
            started = time.monotonic()
            reply = await asyncio.wait_for(
                member.request("publish", channel=member.channel, data={"c": member.channel, "s": seq}),
                60)
            if "result" not in reply:
                self.failures.add("publish", repr(reply)[:200])
                return
            offset = reply["result"]["offset"]
            self.first_offset.setdefault(member.channel, offset)
            self.published[member.channel] = offset
            await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))

    async def queries(self, until):
        """Presence and history requests by random connected clients."""
        stable_counts = {}
        for m in self.members:
            if m.stable:
                stable_counts[m.channel] = stable_counts.get(m.channel, 0) + 1
        while time.monotonic() < until:
            await asyncio.sleep(1.0 / self.args.query_rate)
            m = random.choice(self.members)
            if not m.subscribed:
                continue
            try:
                if random.random() < 0.5:
                    r = await asyncio.wait_for(m.request("presence", channel=m.channel, limit=100), 30)
                    res = r.get("result")
                    if res is not None and res.get("count", 0) < stable_counts.get(m.channel, 0):
                        self.failures.add("presence_count", "%s: count %r < %d stable members"
                                          % (m.channel, res.get("count"), stable_counts[m.channel]))
                    self.presence_queries += 1
                else:
                    r = await asyncio.wait_for(m.request("history", channel=m.channel, limit=5), 30)
                    res = r.get("result")
                    if res is not None:
                        offs = [p["offset"] for p in res.get("publications", [])]
                        if offs and offs != list(range(offs[0], offs[0] + len(offs))):
                            self.failures.add("history", "%s: offsets %r" % (m.channel, offs))
                        if offs and offs[-1] > res["offset"]:
                            self.failures.add("history", "%s: %r past %d" % (m.channel, offs, res["offset"]))
                    self.history_queries += 1
            except asyncio.CancelledError:
                if self.stopping:
                    return
            except asyncio.TimeoutError:
                self.failures.add("query_timeout", m.channel)

    async def churner(self, member, until):
        a = self.args
        while True:
            life = random.uniform(20, 60) * a.churn_period
            wake = time.monotonic() + life
            if wake >= until:
                return
            await asyncio.sleep(life)
            await member.drop()
            member.reconnects += 1
            self.reconnects += 1
            try:
                await member.connect()
            except Exception as e:  # noqa: BLE001 - reported as a failure
                self.failures.add("reconnect", "client %d: %r" % (member.idx, e))
                return

    async def run(self):
        a = self.args
        self.reconnects = 0
        self.presence_queries = 0
        self.history_queries = 0
        baseline_fds = open_fds(self.proc.pid)
        baseline_rss = rss_kib(self.proc.pid)
        n_churn = int(a.connections * a.churn)
        for i in range(a.connections):
            channel = self.channels[i % a.channels]
            # The first client of each channel publishes; churners are taken from the end.
            self.members.append(Member(self, i, channel, stable=i < a.connections - n_churn))
        t0 = time.monotonic()
        print("server pid %d port %d: %d KiB RSS, %d descriptors; connecting %d clients"
              % (self.proc.pid, self.port, baseline_rss, baseline_fds, a.connections), flush=True)
        sem = asyncio.Semaphore(200)

        async def connect_one(m):
            async with sem:
                await m.connect()
        # The publishers (and the first client of each channel) first.
        await asyncio.gather(*(connect_one(m) for m in self.members))
        ramp = time.monotonic() - t0
        print("connected in %.1f s (%d retries)" % (ramp, self.connect_retries), flush=True)
        self.sample(t0)
        until = t0 + a.seconds
        warmup = max(a.min_warmup, ramp + a.history_ttl + 10)
        tasks = [asyncio.ensure_future(self.publisher(self.members[i], until))
                 for i in range(a.channels)]
        tasks += [asyncio.ensure_future(self.churner(m, until)) for m in self.members if not m.stable]
        tasks.append(asyncio.ensure_future(self.queries(until)))
        next_report = time.monotonic()
        while time.monotonic() < until:
            await asyncio.sleep(a.sample_interval)
            s = self.sample(t0)
            if s is None:
                self.failures.add("server_died", "serve exited with %r" % self.proc.returncode)
                break
            if time.monotonic() >= next_report:
                print("t=%5.0fs rss=%d KiB fds=%d connected=%d deliveries=%d reconnects=%d failures=%d"
                      % (s[0], s[1], s[2], s[3], self.deliveries, self.reconnects,
                         self.failures.total()), flush=True)
                next_report = time.monotonic() + a.report_interval
        await asyncio.gather(*tasks, return_exceptions=True)
        # Let the last deliveries arrive, then check every client is at its channel's end.
        await asyncio.sleep(3)
        for m in self.members:
            last = self.published.get(m.channel)
            if last is None:
                self.failures.add("no_publications", m.channel)
            elif not m.subscribed:
                self.failures.add("not_connected", "client %d at the end" % m.idx)
            elif m.offset != last:
                self.failures.add("missing_at_end", "client %d (%s): at %d, channel at %d"
                                  % (m.idx, m.channel, m.offset, last))
        self.stopping = True
        for m in self.members:
            if m.conn and m.conn.transport and not m.conn.transport.is_closing():
                m.conn.close_cleanly()
        await asyncio.sleep(2)
        for m in self.members:
            if m.conn and m.conn.transport:
                m.conn.transport.abort()
        # Descriptors back to where they were before the first connection.
        deadline = time.monotonic() + 30
        while True:
            fds_after = open_fds(self.proc.pid)
            if fds_after <= baseline_fds + 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        rss_after = rss_kib(self.proc.pid)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return dict(server_cpu_s=round(cpu_seconds(self.proc.pid), 1),
                    load_cpu_s=round(usage.ru_utime + usage.ru_stime, 1),
                    load_average=os.getloadavg()[0],
                    baseline_fds=baseline_fds, baseline_rss_kib=baseline_rss, ramp_s=round(ramp, 1),
                    warmup_s=round(warmup, 1), fds_after=fds_after, rss_after_kib=rss_after)

    def judge(self, figures):
        a = self.args
        steady = [s for s in self.samples if s[0] >= figures["warmup_s"]]
        if len(steady) < 6:
            self.failures.add("too_short", "only %d samples after the warm-up" % len(steady))
            return
        third = len(steady) // 3
        first, last = steady[:third], steady[-third:]
        rss_first = max(s[1] for s in first)
        rss_last = max(s[1] for s in last)
        fds_first = max(s[2] for s in first)
        fds_last = max(s[2] for s in last)
        figures.update(rss_first_third_max_kib=rss_first, rss_last_third_max_kib=rss_last,
                       rss_growth=round(rss_last / rss_first - 1, 4),
                       rss_peak_kib=max(s[1] for s in self.samples),
                       fds_first_third_max=fds_first, fds_last_third_max=fds_last,
                       fds_peak=max(s[2] for s in self.samples), steady_samples=len(steady))
        if rss_last > rss_first * (1 + a.rss_tolerance):
            self.failures.add("rss_growth", "RSS last-third max %d KiB > %.0f%% over first-third max %d KiB"
                              % (rss_last, a.rss_tolerance * 100, rss_first))
        if fds_last > fds_first + 0.02 * a.connections:
            self.failures.add("fd_growth", "descriptors last-third max %d > first-third max %d + 2%%"
                              % (fds_last, fds_first))
        if figures["fds_after"] > figures["baseline_fds"] + 2:
            self.failures.add("fd_leak", "%d descriptors after every client left, %d before"
                              % (figures["fds_after"], figures["baseline_fds"]))

    def stop_server(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
            self.failures.add("shutdown", "serve did not exit within 60 s of SIGTERM")
        err = self.stderr_text()
        if code != 0:
            self.failures.add("exit", "serve exited %r: %s" % (code, err[-2000:]))
        elif "ERROR: AddressSanitizer" in err or "runtime error:" in err or \
                "ERROR: LeakSanitizer" in err:
            self.failures.add("sanitizer", err[-4000:])
        return code


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--switchboard", required=True)
    p.add_argument("--connections", type=int, default=10000)
    p.add_argument("--channels", type=int, default=200)
    p.add_argument("--seconds", type=float, default=900)
    p.add_argument("--rate", type=float, default=100, help="publications per second, all channels")
    p.add_argument("--churn", type=float, default=0.3, help="fraction of clients that reconnect")
    p.add_argument("--churn-period", type=float, default=1.0,
                   help="scales the 20-60 s life of a churner's connection")
    p.add_argument("--history-ttl", type=float, default=60)
    p.add_argument("--query-rate", type=float, default=20, help="presence/history requests per second")
    p.add_argument("--sample-interval", type=float, default=2)
    p.add_argument("--report-interval", type=float, default=30)
    p.add_argument("--rss-tolerance", type=float, default=0.10)
    p.add_argument("--min-warmup", type=float, default=0,
                   help="seconds before the samples that are judged start, at least")
    p.add_argument("--asan-quarantine-mb", type=int, default=None,
                   help="for a sanitizer build: ASan's quarantine for the server")
    a = p.parse_args()
    if a.channels > a.connections - int(a.connections * a.churn):
        p.error("need at least one stable client per channel (its publisher)")

    # Both processes hold a descriptor per connection (the server inherits this limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, a.connections + 2000)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < a.connections + 200:
        sys.exit("RLIMIT_NOFILE hard limit %d is too low for %d connections" % (hard, a.connections))

    soak = Soak(a)
    soak.start_server()
    figures = {}
    try:
        figures = asyncio.run(soak.run())
        soak.judge(figures)
    except Exception as e:  # noqa: BLE001 - a crash of the load side is a failure too
        soak.failures.add("load", repr(e))
    finally:
        if soak.proc.poll() is None:
            figures["exit_code"] = soak.stop_server()
        else:
            soak.failures.add("server_died", "serve exited with %r: %s"
                              % (soak.proc.returncode, soak.stderr_text()[-2000:]))
    figures.update(connections=a.connections, channels=a.channels, seconds=a.seconds,
                   publications=sum(soak.published[c] - soak.first_offset[c] + 1 for c in soak.published),
                   deliveries=soak.deliveries, reconnects=soak.reconnects,
                   recoveries=soak.recoveries, presence_pushes=soak.presence_pushes,
                   presence_queries=getattr(soak, "presence_queries", 0),
                   history_queries=getattr(soak, "history_queries", 0),
                   connect_retries=soak.connect_retries, failures=soak.failures.counts)
    with open(os.path.join(soak.tmp, "samples.json"), "w") as f:
        json.dump(soak.samples, f)
    print("samples: %s" % os.path.join(soak.tmp, "samples.json"))
    for kind, examples in soak.failures.examples.items():
        print("FAIL %s (%d): %s" % (kind, soak.failures.counts[kind], " | ".join(examples)))
    print(json.dumps(figures, sort_keys=True), flush=True)
    sys.exit(1 if soak.failures.total() else 0)


if __name__ == "__main__":
    main()
