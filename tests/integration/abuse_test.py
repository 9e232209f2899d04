#!/usr/bin/python3
"""`switchboard echo` under abuse: slow and silent peers, peers that stop reading,
10,000 concurrent connections, abrupt resets, garbage, and graceful shutdown with
many clients. Every case is bounded in time and connection count, on 127.0.0.1.

Usage: /usr/bin/python3 abuse_test.py <path to switchboard>
"""

import asyncio
import os
import random
import resource
import select
import signal
import socket
import struct
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (BINARY, CLOSE, PING, PONG, TEXT, EchoServer, PeerClosed,  # noqa: E402
                     RawClient, RecvTimeout, build_frame, close_payload, parse_frame)

SLOW = harness.SLOW
VALID_CLOSE = set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))


def raise_nofile_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class AbuseCase(unittest.TestCase):

    def start(self, *args):
        server = EchoServer(*args)
        self.addCleanup(server.kill)
        return server

    def client(self, server, **kw):
        c = RawClient(server.port, **kw)
        self.addCleanup(c.close)
        return c

    def assertServes(self, server, what="after the abuse"):
        self.assertTrue(server.alive(), "server died %s (exit %r)\n%s"
                        % (what, server.proc.returncode, server.stderr_text()))
        c = self.client(server)
        c.handshake()
        c.send_frame(TEXT, b"still serving?")
        op, payload, _, _ = c.recv_message()
        self.assertEqual((op, payload), (TEXT, b"still serving?"))
        c.send_frame(CLOSE, close_payload(1000))
        c.expect_close(1000)
        c.close()

    def settled_fd_count(self, server):
        """The server's fd count once it has served a client and stopped changing
        (some descriptors, e.g. a signalfd, appear only after the listening line)."""
        self.assertServes(server, "before the test")
        last, stable_since = server.fd_count(), time.monotonic()
        deadline = time.monotonic() + 3 * SLOW
        while time.monotonic() - stable_since < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
            n = server.fd_count()
            if n != last:
                last, stable_since = n, time.monotonic()
        return last

    def wait_fd_baseline(self, server, baseline, timeout=5.0):
        deadline = time.monotonic() + timeout * SLOW
        while True:
            n = server.fd_count()
            if n <= baseline or time.monotonic() > deadline:
                return n
            time.sleep(0.05)


# --- slow and silent peers ----------------------------------------------------------


class Slowloris(AbuseCase):

    def test_trickled_handshake_dropped_at_timeout_while_others_served(self):
        server = self.start("--handshake-timeout", "1")
        slow = socket.create_connection(("127.0.0.1", server.port))
        self.addCleanup(slow.close)
        slow.setblocking(False)
        start = time.monotonic()
        head = harness.handshake_request(headers={"X-Padding": "p" * 4000})
        sent, served_at, dropped_at = 0, None, None
        while time.monotonic() - start < 4 * SLOW and dropped_at is None:
            try:
                slow.send(head[sent:sent + 1])  # one byte every 50 ms, never finishing
                sent += 1
            except (BrokenPipeError, ConnectionResetError):
                dropped_at = time.monotonic() - start
                break
            except BlockingIOError:
                pass
            try:
                data = slow.recv(4096)
                if not data:
                    dropped_at = time.monotonic() - start
                    break
                # A 408 response before the close is fine; keep waiting for the close.
            except BlockingIOError:
                pass
            except ConnectionResetError:
                dropped_at = time.monotonic() - start
                break
            if served_at is None and time.monotonic() - start > 0.3:
                t0 = time.monotonic()
                c = self.client(server)
                c.handshake()
                c.send_frame(TEXT, b"served meanwhile")
                op, payload, _, _ = c.recv_message(timeout=1)
                self.assertEqual(payload, b"served meanwhile")
                served_at = time.monotonic() - t0
                c.close()
            time.sleep(0.05)
        self.assertIsNotNone(served_at, "the other client was not served")
        self.assertLess(served_at, 0.5 * SLOW, "another client waited %.2fs" % served_at)
        self.assertIsNotNone(dropped_at, "a client trickling its handshake (%d bytes in %.1fs)"
                             " was never dropped" % (sent, time.monotonic() - start))
        self.assertGreater(dropped_at, 0.8, "dropped before the handshake timeout")
        self.assertLess(dropped_at, 2.5 * SLOW, "dropped %.2fs after connecting" % dropped_at)
        self.assertLess(sent, len(head), "the whole handshake got through")
        self.assertServes(server)

    def test_complete_handshake_in_time_not_dropped(self):
        server = self.start("--handshake-timeout", "1")
        c = self.client(server)
        req = harness.handshake_request()
        c.send(req[:20])
        time.sleep(0.5)
        c.send(req[20:])
        resp = c.recv_http()
        self.assertEqual(resp.status, 101)
        time.sleep(1.2)  # past the handshake timeout: an open connection stays open
        c.send_frame(TEXT, b"alive")
        op, payload, _, _ = c.recv_message()
        self.assertEqual(payload, b"alive")


class Keepalive(AbuseCase):

    def test_silent_peer_closed_polite_peer_kept(self):
        # --close-timeout 1 bounds the wait for the dead peer's close frame after ours.
        server = self.start("--ping-interval", "0.5", "--pong-timeout", "0.5",
                            "--close-timeout", "1")
        silent = self.client(server)
        silent.handshake()
        polite = self.client(server)
        polite.handshake()
        start = time.monotonic()
        first_ping, close_frame_at, tcp_closed_at, polite_pings = None, None, None, 0
        while time.monotonic() - start < 4.0 * SLOW and tcp_closed_at is None:
            ready, _, _ = select.select([silent.sock, polite.sock], [], [], 0.05)
            if polite.sock in ready:
                f = polite.recv_frame(timeout=1)
                self.assertNotEqual(f.opcode, CLOSE, "a peer answering pings was closed: %r" % f)
                if f.opcode == PING:
                    polite_pings += 1
                    polite.send_frame(PONG, f.payload)
            if silent.sock in ready:
                try:
                    f = silent.recv_frame(timeout=1)
                    if f.opcode == PING:
                        first_ping = first_ping or time.monotonic() - start
                        self.assertFalse(f.masked)
                    elif f.opcode == CLOSE:
                        self.assertTrue(f.close_code is None or f.close_code in VALID_CLOSE,
                                        "close code %r" % f.close_code)
                        close_frame_at = time.monotonic() - start
                    else:
                        self.fail("unexpected frame %r" % f)
                except PeerClosed:
                    tcp_closed_at = time.monotonic() - start
        timings = "first ping %s, close frame %s, TCP closed %s" % (first_ping, close_frame_at,
                                                                    tcp_closed_at)
        self.assertIsNotNone(first_ping, "no ping with --ping-interval 0.5: " + timings)
        self.assertLess(first_ping, 1.2 * SLOW, timings)
        self.assertIsNotNone(tcp_closed_at, "a peer that never answers pings still has its TCP"
                             " connection after 4 s: " + timings)
        self.assertGreater(tcp_closed_at, 0.5, "closed before any pong could be due: " + timings)
        self.assertLess(tcp_closed_at, 3.0 * SLOW, timings)
        if close_frame_at is not None:
            self.assertLess(close_frame_at, 2.0 * SLOW, timings)
        self.assertGreaterEqual(polite_pings, 2, "the polite peer saw %d pings" % polite_pings)
        polite.send_frame(TEXT, b"still open")
        op, payload, _, _ = polite.recv_message()
        self.assertEqual(payload, b"still open")
        print("\n  silent peer: " + timings, file=sys.stderr)


class IdleTimeout(AbuseCase):

    def test_idle_connection_closed_active_one_kept(self):
        server = self.start("--idle-timeout", "0.6", "--ping-interval", "0")
        idle = self.client(server)
        idle.handshake()
        busy = self.client(server)
        busy.handshake()
        start = time.monotonic()
        closed_at = None
        while time.monotonic() - start < 3 * SLOW and closed_at is None:
            busy.send_frame(TEXT, b"tick")
            op, payload, _, _ = busy.recv_message()
            self.assertEqual(payload, b"tick")
            if select.select([idle.sock], [], [], 0.1)[0]:
                f = idle.expect_close(1001, skip_data=False)
                closed_at = time.monotonic() - start
        self.assertIsNotNone(closed_at, "idle connection not closed with --idle-timeout 0.6")
        self.assertGreater(closed_at, 0.5)
        self.assertLess(closed_at, 1.5 * SLOW)
        idle.send_frame(CLOSE, close_payload(1001))
        idle.wait_closed()


# --- a peer that stops reading ----------------------------------------------------------


class RssSampler(threading.Thread):
    def __init__(self, server):
        super().__init__(daemon=True)
        self.server = server
        self.peak = server.rss_kib()
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            try:
                self.peak = max(self.peak, self.server.rss_kib())
            except (OSError, harness.ServerError):
                return
            time.sleep(0.02)

    def stop(self):
        self.stop_flag.set()
        self.join()
        return self.peak


class Backpressure(AbuseCase):
    CAP = 262144
    MSG = 16384
    TOTAL = 64 << 20  # what an unbounded server would buffer, give or take kernel buffers
    RSS_BOUND_KIB = 24 * 1024

    def flood(self, server, client):
        """Send numbered binary messages without reading until TOTAL bytes are out or the
        server stops taking them for a second; returns the number of messages sent."""
        client.sock.setblocking(False)
        seq, pending, last_progress = 0, b"", time.monotonic()
        deadline = time.monotonic() + 10 * SLOW
        sent_bytes = 0
        while sent_bytes < self.TOTAL and time.monotonic() < deadline:
            if not pending:
                body = struct.pack("!I", seq) + bytes([seq & 0xFF]) * (self.MSG - 4)
                pending = build_frame(BINARY, body, key=b"\x01\x02\x03\x04")
                seq += 1
            try:
                n = client.sock.send(pending)
            except BlockingIOError:
                if time.monotonic() - last_progress > 1.0:
                    break
                select.select([], [client.sock], [], 0.05)
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            pending = pending[n:]
            sent_bytes += n
            last_progress = time.monotonic()
        client.sock.setblocking(True)
        return seq, sent_bytes

    def read_echoes(self, client, quiet=1.0):
        """Read echoed messages until `quiet` seconds pass without data or a close."""
        seqs, close = [], None
        while True:
            try:
                f = client.recv_frame(timeout=quiet)
            except (RecvTimeout, PeerClosed):
                return seqs, close
            self.assertFalse(f.masked)
            if f.opcode == CLOSE:
                return seqs, f
            self.assertEqual(f.opcode, BINARY, "unexpected frame %r" % f)
            self.assertTrue(f.fin)
            self.assertEqual(len(f.payload), self.MSG, "a partial message was echoed")
            s = struct.unpack("!I", f.payload[:4])[0]
            self.assertEqual(f.payload[4:], bytes([s & 0xFF]) * (self.MSG - 4),
                             "echoed message %d is corrupt" % s)
            seqs.append(s)

    def test_close_policy_1008_and_bounded_rss(self):
        server = self.start("--max-backpressure", str(self.CAP), "--backpressure-policy", "close",
                            "--max-message-size", str(1 << 20))
        c = self.client(server, rcvbuf=32768)
        c.handshake()
        base = server.rss_kib()
        sampler = RssSampler(server)
        sampler.start()
        count, sent = self.flood(server, c)
        time.sleep(0.3)
        peak = sampler.stop()
        seqs, close = self.read_echoes(c)
        self.assertIsNotNone(close, "no close frame after %d messages (%d MiB) were not read;"
                             " %d echoes came back" % (count, sent >> 20, len(seqs)))
        self.assertEqual(close.close_code, 1008)
        self.assertEqual(seqs, sorted(seqs), "echoes out of order")
        self.assertLess(peak - base, self.RSS_BOUND_KIB,
                        "server RSS grew by %d KiB while the peer did not read" % (peak - base))
        self.assertLess(len(seqs), count, "every message was echoed, nothing was held back")
        print("\n  close policy: %d messages (%d MiB) sent, %d echoed, then 1008; RSS +%d KiB"
              % (count, sent >> 20, len(seqs), peak - base), file=sys.stderr)
        try:
            c.send_frame(CLOSE, close_payload(1008))
        except OSError:
            pass
        c.wait_closed(timeout=3)
        self.assertServes(server)

    def test_drop_policy_keeps_connection_and_bounded_rss(self):
        server = self.start("--max-backpressure", str(self.CAP), "--backpressure-policy", "drop",
                            "--max-message-size", str(1 << 20))
        c = self.client(server, rcvbuf=32768)
        c.handshake()
        base = server.rss_kib()
        sampler = RssSampler(server)
        sampler.start()
        count, sent = self.flood(server, c)
        time.sleep(0.3)
        peak = sampler.stop()
        self.assertGreater(sent, 32 << 20, "the server stopped reading (only %d KiB taken) instead"
                           " of dropping" % (sent >> 10))
        seqs, close = self.read_echoes(c)
        self.assertIsNone(close, "drop policy closed the connection: %r" % close)
        self.assertEqual(seqs, sorted(set(seqs)), "echoes out of order or duplicated")
        self.assertLess(len(seqs), count, "nothing was dropped although the peer did not read")
        self.assertGreater(len(seqs), 0, "nothing was echoed at all")
        self.assertLess(peak - base, self.RSS_BOUND_KIB,
                        "server RSS grew by %d KiB while the peer did not read" % (peak - base))
        print("\n  drop policy: %d messages (%d MiB) sent, %d echoed; RSS +%d KiB"
              % (count, sent >> 20, len(seqs), peak - base), file=sys.stderr)
        # The connection is alive and reading again after the drain.
        c.send_frame(TEXT, b"after the flood")
        op, payload, _, _ = c.recv_message(timeout=5)
        self.assertEqual((op, payload), (TEXT, b"after the flood"))
        self.assertServes(server)


# --- many connections ---------------------------------------------------------------------


async def _open_and_echo(port, i, sem):
    async with sem:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = harness.make_key()
        msg = b"conn-%d" % i
        writer.write(harness.handshake_request(key=key) + build_frame(TEXT, msg))
        head = await reader.readuntil(b"\r\n\r\n")
        resp = harness.parse_http_head(head)
        if resp.status != 101 or resp.get("sec-websocket-accept") != harness.accept_for(key):
            raise AssertionError("connection %d: %r" % (i, resp))
        buf = b""
        while True:
            parsed = parse_frame(buf)
            if parsed:
                break
            chunk = await reader.read(4096)
            if not chunk:
                raise AssertionError("connection %d closed before its echo" % i)
            buf += chunk
        f, _ = parsed
        if (f.opcode, f.payload) != (TEXT, msg):
            raise AssertionError("connection %d got %r" % (i, f))
        return reader, writer


async def _close(reader, writer, i, sem):
    async with sem:
        writer.write(build_frame(CLOSE, close_payload(1000)))
        buf = b""
        while True:
            parsed = parse_frame(buf)
            if parsed:
                break
            chunk = await reader.read(4096)
            if not chunk:
                raise AssertionError("connection %d: TCP closed without a close frame" % i)
            buf += chunk
        f, used = parsed
        if f.opcode != CLOSE or f.close_code != 1000:
            raise AssertionError("connection %d: expected close 1000, got %r" % (i, f))
        rest = await asyncio.wait_for(reader.read(), 5 * SLOW)  # until the server's FIN
        writer.close()
        return rest


class ManyConnections(AbuseCase):
    N = 10000

    def test_10000_concurrent_connections_echo(self):
        limit = raise_nofile_limit()
        self.assertGreater(limit, self.N + 200, "RLIMIT_NOFILE %d too low for the test" % limit)
        server = self.start("--max-connections", str(self.N + 1000))
        baseline = self.settled_fd_count(server)

        async def go():
            sem = asyncio.Semaphore(400)
            start = time.monotonic()
            conns = await asyncio.gather(*(_open_and_echo(server.port, i, sem)
                                           for i in range(self.N)))
            opened = time.monotonic() - start
            open_fds = server.fd_count()
            await asyncio.gather(*(_close(r, w, i, sem) for i, (r, w) in enumerate(conns)))
            return opened, open_fds, time.monotonic() - start

        opened, open_fds, total = asyncio.run(asyncio.wait_for(go(), 60 * SLOW))
        self.assertGreaterEqual(open_fds - baseline, self.N,
                                "server held %d fds with %d clients open" % (open_fds, self.N))
        after = self.wait_fd_baseline(server, baseline)
        self.assertLessEqual(after, baseline, "fds: %d at start, %d after all closed"
                             % (baseline, after))
        print("\n  %d connections opened+echoed in %.1fs, all closed at %.1fs"
              % (self.N, opened, total), file=sys.stderr)
        self.assertServes(server)
        server.stop_checked(self)


# --- resets and garbage -----------------------------------------------------------------


class Resets(AbuseCase):

    def test_500_resets_mid_frame(self):
        server = self.start()
        baseline = self.settled_fd_count(server)
        for batch in range(10):
            clients = []
            for _ in range(50):
                c = RawClient(server.port)
                c.handshake()
                clients.append(c)
            for i, c in enumerate(clients):
                frame = build_frame(BINARY if i % 2 else TEXT, b"h" * 1000)
                c.send(frame[:len(frame) // 2])
            time.sleep(0.01)
            for c in clients:
                c.abort()
        self.assertServes(server, "after 500 resets")
        after = self.wait_fd_baseline(server, baseline)
        self.assertLessEqual(after, baseline, "fd leak: %d fds before, %d after 500 resets"
                             % (baseline, after))
        server.stop_checked(self)


def classify_garbage(data, limit):
    """What a correct server can do with `data` sent after the handshake: 'fail' if
    some frame in it is invalid per RFC 6455 (or too big), 'incomplete' if every frame
    is valid so far and the server may legitimately wait for more bytes."""
    pos, open_msg = 0, False
    while True:
        parsed = parse_frame(data[pos:])
        b = data[pos:pos + 2]
        if len(b) < 2:
            return "incomplete"
        b0, b1 = b[0], b[1]
        opcode, fin, rsv = b0 & 0xF, b0 >> 7, (b0 >> 4) & 7
        if rsv or opcode in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15) or not (b1 & 0x80):
            return "fail"
        n = b1 & 0x7F
        if opcode >= 8 and (n > 125 or not fin):
            return "fail"
        if opcode == 0 and not open_msg or opcode in (1, 2) and open_msg:
            return "fail"
        if n == 127:
            if len(data) - pos < 10:
                return "incomplete"
            if struct.unpack_from("!Q", data, pos + 2)[0] > limit:
                return "fail"  # MSB set (1002) or over the size limit (1009)
        elif n == 126:
            if len(data) - pos < 4:
                return "incomplete"
            if struct.unpack_from("!H", data, pos + 2)[0] > limit:
                return "fail"
        if not parsed:
            return "incomplete"
        f, used = parsed
        if opcode == CLOSE:
            return "fail" if len(f.payload) == 1 else "closed"
        if opcode in (1, 2):
            open_msg = not fin
        elif opcode == 0 and fin:
            open_msg = False
        pos += used


class Garbage(AbuseCase):

    def test_random_bytes_after_handshake(self):
        limit = 4096
        server = self.start("--max-message-size", str(limit))
        outcomes = {}
        for seed in range(20):
            data = random.Random(seed).randbytes(8192)
            expect = classify_garbage(data, limit)
            c = RawClient(server.port)
            c.handshake()
            c.send(data)
            outcome = None
            try:
                while outcome is None:
                    f = c.recv_frame(timeout=3)
                    if f.opcode == CLOSE:
                        outcome = "close %s" % f.close_code
                        self.assertIn(f.close_code, (1000, 1002, 1007, 1009, None),
                                      "seed %d: close %r" % (seed, f))
            except PeerClosed:
                outcome = "tcp close"
            except RecvTimeout:
                outcome = "waiting"
                self.assertEqual(expect, "incomplete",
                                 "seed %d: the bytes hold an invalid frame but the server"
                                 " neither closed nor failed the connection in 3 s" % seed)
            if outcome.startswith("close"):
                try:
                    c.send_frame(CLOSE, b"")
                except OSError:
                    pass
                c.wait_closed(timeout=3)
            c.close()
            outcomes[seed] = outcome
        reacted = sum(1 for o in outcomes.values() if o != "waiting")
        self.assertGreaterEqual(reacted, 15, "outcomes: %r" % outcomes)
        self.assertServes(server, "after garbage")

    def test_garbage_instead_of_handshake(self):
        server = self.start()
        for seed in range(10):
            c = RawClient(server.port)
            c.send(random.Random(100 + seed).randbytes(2048) + b"\r\n\r\n")
            try:
                resp = c.recv_http(timeout=3)
                self.assertTrue(400 <= resp.status < 500, "seed %d: %r" % (seed, resp))
            except PeerClosed:
                pass  # closing without a response is acceptable for garbage
            c.close()
        self.assertServes(server, "after garbage handshakes")


# --- graceful shutdown -------------------------------------------------------------------


class Shutdown(AbuseCase):
    CLIENTS = 100
    DEADLINE = 3.0

    def shutdown(self, extra, want):
        server = self.start("--shutdown-timeout", str(self.DEADLINE), *extra)
        clients = []
        for i in range(self.CLIENTS):
            c = self.client(server)
            c.handshake()
            clients.append(c)
        for i, c in enumerate(clients):
            c.send_frame(TEXT, b"hello %d" % i)
        for i, c in enumerate(clients):
            op, payload, _, _ = c.recv_message()
            self.assertEqual(payload, b"hello %d" % i)
        start = time.monotonic()
        server.send_signal(signal.SIGTERM)
        codes = []
        for i, c in enumerate(clients):
            f = c.expect_close(want, timeout=self.DEADLINE)
            codes.append(f.close_code)
            if i % 2 == 0:  # half answer the close as they should, half stay silent
                c.send_frame(CLOSE, close_payload(want))
        self.assertEqual(codes, [want] * self.CLIENTS)
        code = server.wait(self.DEADLINE + 2 * SLOW)
        elapsed = time.monotonic() - start
        self.assertIsNotNone(code, "server still running %.1fs after SIGTERM" % elapsed)
        self.assertEqual(code, 0, "exit status %r\n%s" % (code, server.stderr_text()))
        self.assertLess(elapsed, self.DEADLINE + 0.5 * SLOW,
                        "exited %.2fs after SIGTERM with a %.1fs deadline" % (elapsed, self.DEADLINE))
        for c in clients:
            c.wait_closed(timeout=1)

    def test_100_clients_get_1001(self):
        self.shutdown((), 1001)

    def test_100_clients_get_1012(self):
        self.shutdown(("--shutdown-code", "1012"), 1012)

    def test_shutdown_with_no_clients_is_quick(self):
        server = self.start("--shutdown-timeout", "5")
        elapsed = server.stop_checked(self)
        self.assertLess(elapsed, 1.0 * SLOW, "idle server took %.2fs to exit" % elapsed)


if __name__ == "__main__":
    harness.main()
