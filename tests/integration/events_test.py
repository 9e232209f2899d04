#!/usr/bin/python3
"""Lifecycle events of `switchboard serve` ([events], docs/hooks.md) delivered
at least once to a webhook: an http.server receiver in a thread of this
process, on a run-time port, that checks each batch's signature and can be
"down" (answers 503).

Covered: the receiver down for a while then back, with only 10 events held
in memory (the rest read back from the outbox file; no event lost or sent
twice, each client's events in order: connect, subscribe, presence.join, unsubscribe,
presence.leave, disconnect with the close code and reason; ids unique once
duplicates are dropped; batches); kill -9 of the node while the receiver is
down, then a restart on the same outbox: every event recorded before the
kill is delivered after it, in order, followed by the new ones.

With the Redis broker (a redis-server started here, three nodes): kill -9 of
a node with connected clients, and exactly one `disconnect` per client,
marked orphaned (code 1006, the lost node's id), emitted by one of the two
survivors once the node's lease ran out; a lost node with 10,000 clients
(its record written straight into Redis) emitted once each; a node stopped
cleanly (SIGTERM) sends its clients' disconnects itself, leaves no record
and nobody emits orphaned ones for it.

Usage: /usr/bin/python3 events_test.py <path to switchboard>
"""

import asyncio
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from serve_test import (ServeServer, Session, base_config, connect_ws, metric_samples,  # noqa: E402
                        run, slow, token)
from redis_cluster_test import RedisServer, redis_command, wait_health  # noqa: E402

SECRET = "events-test-shared-secret"


class Receiver:
    def __init__(self):
        self.up = False
        self.batches = []  # lists of events, as acknowledged
        self.refused = 0
        self.bad_signatures = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.handle(body, self.headers)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        # listen() backlog: http.server's 5 drops the SYNs of a burst of new
        # connections, and the kernel retries them a second later.
        self.httpd = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 128})(
            ("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d/events" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, body, headers):
        ts = headers.get("X-Switchboard-Timestamp", "")
        want = hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        with self.lock:
            if headers.get("X-Switchboard-Signature", "") != "v1=" + want:
                self.bad_signatures += 1
                return 401
            if not self.up:
                self.refused += 1
                return 503
            self.batches.append(json.loads(body)["events"])
            return 200

    def events(self):
        """Every acknowledged event once (duplicates dropped by id), in arrival order."""
        seen, out = set(), []
        with self.lock:
            for batch in self.batches:
                for e in batch:
                    if e["id"] not in seen:
                        seen.add(e["id"])
                        out.append(e)
        return out

    def wait_for(self, predicate, timeout=20.0):
        deadline = time.monotonic() + slow(timeout)
        while time.monotonic() < deadline:
            if predicate(self.events()):
                return True
            time.sleep(0.05)
        return False


def events_config(receiver, outbox):
    # A window of 10 events in memory: most of the 80 events of a test wait in
    # the outbox file only and are read back from it.
    sections = base_config(events={"url": receiver.url, "outbox": outbox, "batch": 7,
                                   "retry_max": 0.3, "memory_window": 10},
                           hooks={"secret": SECRET, "timeout": 1})
    sections["namespaces.room"] = {"presence": True, "publish": "any"}
    return sections


def per_client(events):
    by = {}
    for e in events:
        by.setdefault(e["client"], []).append(e)
    return by


async def client_lifecycle(port, user, channel):
    ws = await connect_ws(port, token_value=token(user))
    s = Session(ws)
    r = await s.request("ping")
    assert "error" not in r, r
    r = await s.request("subscribe", channel=channel)
    assert "result" in r, r
    r = await s.request("unsubscribe", channel=channel)
    assert "result" in r, r
    await s.request("subscribe", channel=channel)
    await ws.close(code=4321, reason="bye now")
    return


EXPECTED = ["connect", "subscribe", "presence.join", "unsubscribe", "presence.leave",
            "subscribe", "presence.join", "unsubscribe", "presence.leave", "disconnect"]


class Events(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="switchboard-events-test-")
        self.outbox = os.path.join(self.dir, "events.outbox")
        self.receiver = Receiver()
        self.servers = []

    def tearDown(self):
        for server in self.servers:
            server.cleanup()
        self.receiver.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self):
        server = ServeServer(events_config(self.receiver, self.outbox))
        self.servers.append(server)
        return server

    def check_client(self, events, user, expected):
        self.assertEqual([e["type"] for e in events], expected, events)
        self.assertTrue(all(e.get("user") == user for e in events), events)
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, sorted(seqs))
        self.assertTrue(all(isinstance(e["time"], int) for e in events))

    def test_receiver_down_then_back_loses_and_reorders_nothing(self):
        server = self.start()
        users = ["u%d" % i for i in range(8)]

        async def go():
            await asyncio.gather(*(client_lifecycle(server.port, u, "room:r%d" % (i % 3))
                                   for i, u in enumerate(users)))
        run(go())
        time.sleep(slow(1.0))  # retries meanwhile, all refused
        self.assertGreater(self.receiver.refused, 1)
        self.assertEqual(self.receiver.events(), [])
        total = len(users) * len(EXPECTED)
        m = metric_samples(server.port)
        self.assertEqual(m["switchboard_events_emitted_total"], total)
        self.assertEqual(m["switchboard_events_pending"], total)
        self.assertEqual(m["switchboard_events_acknowledged_total"], 0)
        self.assertGreater(m["switchboard_events_retries_total"], 0)
        self.assertGreater(m["switchboard_events_outbox_bytes"], 0)
        self.assertEqual(m["switchboard_events_in_memory"], 10)  # the window, not the 80
        self.receiver.up = True
        self.assertTrue(self.receiver.wait_for(lambda ev: len(ev) >= len(users) * len(EXPECTED)),
                        self.receiver.events())
        m = metric_samples(server.port)
        self.assertEqual(m["switchboard_events_pending"], 0)
        self.assertEqual(m["switchboard_events_acknowledged_total"], total)
        self.assertEqual(m["switchboard_events_in_memory"], 0)
        # Each event once (no duplicate came back from the file), all in seq order.
        self.assertEqual(sum(len(b) for b in self.receiver.batches), total)
        events = self.receiver.events()
        self.assertEqual([e["seq"] for e in events], list(range(1, total + 1)))
        self.assertEqual(len(events), len(users) * len(EXPECTED))
        by = per_client(events)
        self.assertEqual(len(by), len(users))
        for evs in by.values():
            self.check_client(evs, evs[0]["user"], EXPECTED)
            self.assertEqual(evs[-1]["code"], 4321)
            self.assertEqual(evs[-1]["reason"], "bye now")
        self.assertTrue(all(len(b) <= 7 for b in self.receiver.batches))
        self.assertEqual(self.receiver.bad_signatures, 0)
        # The new families in the 0.0.4 format, read by an independent parser.
        check = subprocess.run(
            ["/usr/bin/python3", os.path.join(HERE, "..", "realtime", "parse_metrics.py"),
             "http://127.0.0.1:%d/metrics" % server.port,
             "switchboard_events_emitted_total:counter", "switchboard_events_pending:gauge",
             "switchboard_events_in_memory:gauge", "switchboard_hook_calls_total:counter",
             "switchboard_hook_duration_seconds:histogram",
             "--sample=switchboard_events_acknowledged_total %d" % total],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        code, _ = server.stop(timeout=10)
        self.assertEqual(code, 0)

    def test_kill_9_mid_stream_then_restart_delivers_everything_recorded(self):
        server = self.start()
        users = ["k%d" % i for i in range(5)]

        async def before():
            conns = []
            for u in users:
                ws = await connect_ws(server.port, token_value=token(u))
                s = Session(ws)
                r = await s.request("subscribe", channel="room:kill")
                self.assertIn("result", r)
                conns.append(ws)
            # SIGKILL while the connections are open (leaving run() would
            # close them first): no disconnect is ever emitted, nothing flushed.
            server.kill()
            for ws in conns:
                ws.transport.abort()
        run(before())
        self.assertEqual(self.receiver.events(), [])
        self.receiver.up = True
        server = self.start()  # the same outbox

        async def after():
            await client_lifecycle(server.port, "late", "room:late")
        run(after())
        want = len(users) * 3 + len(EXPECTED)
        self.assertTrue(self.receiver.wait_for(lambda ev: len(ev) >= want), self.receiver.events())
        events = self.receiver.events()
        by = per_client(events)
        killed = [evs for evs in by.values() if evs[0].get("user", "").startswith("k")]
        self.assertEqual(len(killed), len(users))
        for evs in killed:
            self.check_client(evs, evs[0]["user"], ["connect", "subscribe", "presence.join"])
        late = [evs for evs in by.values() if evs[0].get("user") == "late"]
        self.assertEqual(len(late), 1)
        self.check_client(late[0], "late", EXPECTED)
        # The recorded events come first, in their order, then the new ones.
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, sorted(seqs))
        code, _ = server.stop(timeout=10)
        self.assertEqual(code, 0)


def resp(*args):
    """One command in RESP (inline commands are limited to 64 KB)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def redis_send(port, payload):
    """Sends commands; reads until the last reply line is an integer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        data = b""
        while not data.endswith(b"\r\n") or not data.split(b"\r\n")[-2].startswith(b":"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


LEASE = 1.5
PREFIX = "ev%d:" % os.getpid()


class OrphanedDisconnects(unittest.TestCase):
    """Three nodes on one Redis, each with its own outbox, one receiver."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="switchboard-orphans-test-")
        self.receiver = Receiver()
        self.receiver.up = True
        self.redis = RedisServer()
        self.nodes = []
        self.outboxes = []
        try:
            for i in range(3):
                self.nodes.append(self.start(i))
            # Connected to Redis first: a subscribe before that is answered 503.
            for n in self.nodes:
                wait_health(n.port, 200)
        except BaseException:
            self.tearDown()
            raise

    def tearDown(self):
        for n in self.nodes:
            n.cleanup()
        self.redis.cleanup()
        self.receiver.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, i):
        sections = base_config(
            events={"url": self.receiver.url, "outbox": os.path.join(self.dir, "n%d.outbox" % i),
                    "batch": 500, "retry_max": 0.3},
            hooks={"secret": SECRET, "timeout": 2},
            broker={"urls": [self.redis.url], "key_prefix": PREFIX,
                    "presence_lease": LEASE, "presence_refresh": 0.3})
        sections["namespaces.room"] = {"presence": True, "publish": "any"}
        self.outboxes.append(sections["events"]["outbox"])
        return ServeServer(sections)

    def wait_metric(self, node, name, predicate, timeout=10.0):
        deadline = time.monotonic() + slow(timeout)
        while time.monotonic() < deadline:
            value = metric_samples(node.port).get(name)
            if value is not None and predicate(value):
                return value
            time.sleep(0.05)
        raise AssertionError("%s never matched on port %d" % (name, node.port))

    def raw(self):
        """Every acknowledged event, duplicates included."""
        with self.receiver.lock:
            return [e for b in self.receiver.batches for e in b]

    def orphaned(self):
        return [e for e in self.raw() if e.get("orphaned")]

    def test_killed_node_clients_disconnect_once_marked_orphaned(self):
        a, b = self.nodes[0], self.nodes[1]
        users = ["o%d" % i for i in range(4)]

        async def go():
            conns = []
            for u in users:
                ws = await connect_ws(a.port, token_value=token(u))
                r = await Session(ws).request("subscribe", channel="chat:orphans")
                self.assertIn("result", r)
                conns.append(ws)
            stay = await connect_ws(b.port, token_value=token("stay"))
            self.assertTrue(self.receiver.wait_for(
                lambda ev: len([e for e in ev if e["type"] == "connect"]) >= len(users) + 1))
            self.assertEqual(metric_samples(a.port)["switchboard_events_tracked_clients"],
                             len(users))
            a.kill()
            killed = time.monotonic()
            for ws in conns:
                ws.transport.abort()
            self.assertTrue(self.receiver.wait_for(
                lambda ev: len([e for e in ev if e.get("orphaned")]) >= len(users)),
                self.receiver.events())
            took = time.monotonic() - killed
            # Not before the lease ran out (renewed at most 0.3 s before the kill).
            self.assertGreater(took, LEASE - 0.3 - 0.05)
            time.sleep(slow(1.0))  # two more scans of both survivors: no second copy
            await stay.close()
        run(go())
        a_node = next(e["id"].split("-")[0] for e in self.raw()
                      if e.get("user") == users[0] and e["type"] == "connect")
        lost = self.orphaned()
        self.assertEqual(sorted(e["user"] for e in lost), users, lost)
        for e in lost:
            self.assertEqual(e["type"], "disconnect")
            self.assertEqual(e["code"], 1006)
            self.assertEqual(e["reason"], "node lost")
            self.assertEqual(e["node"], a_node)
            self.assertEqual(e["id"], "%s-lost-%s" % (a_node, e["client"]))
        # Each killed client: its connect (from A), then its orphaned disconnect.
        by = per_client([e for e in self.receiver.events() if e.get("user") in users])
        for evs in by.values():
            self.assertEqual([e["type"] for e in evs][0], "connect")
            self.assertEqual([e["type"] for e in evs][-1], "disconnect")
        # The lost node's record is gone from Redis.
        self.assertEqual(redis_command(self.redis.port,
                                       ("EXISTS %sevents:clients:%s" % (PREFIX, a_node)).encode()), 0)
        self.assertEqual(redis_command(self.redis.port,
                                       ("SISMEMBER %sevents:nodes %s" % (PREFIX, a_node)).encode()), 0)
        self.assertEqual(self.receiver.bad_signatures, 0)

    def test_sender_killed_with_its_disk_loses_nothing_redis_took(self):
        """events.store = "auto" is the Redis stream here: the node that sends
        it is killed while the webhook is down, and its outbox file deleted."""
        self.receiver.up = False
        sender = None
        deadline = time.monotonic() + slow(10)
        while sender is None and time.monotonic() < deadline:
            for i, n in enumerate(self.nodes):
                if metric_samples(n.port).get("switchboard_events_sender") == 1:
                    sender = i
            time.sleep(0.05)
        self.assertIsNotNone(sender)
        s_node = self.nodes[sender]
        others = [n for i, n in enumerate(self.nodes) if i != sender]
        held = ["s%d" % i for i in range(3)]
        done = ["t%d" % i for i in range(2)]

        async def go():
            conns = []
            for u in held:
                ws = await connect_ws(s_node.port, token_value=token(u))
                r = await Session(ws).request("subscribe", channel="room:held")
                self.assertIn("result", r)
                conns.append(ws)
            for u in done:
                await client_lifecycle(others[0].port, u, "room:done")
            # Every node handed its events to Redis (the outbox files hold none
            # unsent), then SIGKILL with the connections open (leaving run()
            # would close them first).
            for n in self.nodes:
                self.wait_metric(n, "switchboard_events_pending", lambda v: v == 0)
            s_node.kill()
            for ws in conns:
                ws.transport.abort()
        run(go())
        for path in (self.outboxes[sender], self.outboxes[sender] + ".acked"):
            if os.path.exists(path):
                os.remove(path)  # the disk went with the node
        self.receiver.up = True
        want = len(held) * 4 + len(done) * len(EXPECTED)
        self.assertTrue(self.receiver.wait_for(lambda ev: len(ev) >= want, timeout=20),
                        self.receiver.events())
        by = per_client(self.receiver.events())
        self.assertEqual(len(by), len(held) + len(done))
        for evs in by.values():
            if evs[0]["user"] in held:
                self.assertEqual([e["type"] for e in evs],
                                 ["connect", "subscribe", "presence.join", "disconnect"], evs)
                self.assertTrue(evs[-1]["orphaned"])
            else:
                self.check_events(evs, EXPECTED)
        # One survivor took the role over.
        roles = [metric_samples(n.port)["switchboard_events_sender"] for n in others]
        self.assertEqual(sorted(roles), [0, 1])
        delivered = sum(metric_samples(n.port)["switchboard_events_delivered_total"]
                        for n in others)
        self.assertGreaterEqual(delivered, want - len(held) * 3)

    def check_events(self, evs, expected):
        self.assertEqual([e["type"] for e in evs], expected, evs)
        seqs = [e["seq"] for e in evs]
        self.assertEqual(seqs, sorted(seqs))

    def test_lost_node_with_10000_clients_each_disconnected_once(self):
        n = 10000
        fields = []
        for i in range(n):
            fields += ["c%05d" % i, "u%d" % i]
        # A node that never renewed a lease: its record only.
        out = redis_send(self.redis.port,
                         resp("HSET", PREFIX + "events:clients:deadbeef", *fields) +
                         resp("SADD", PREFIX + "events:nodes", "deadbeef"))
        self.assertTrue(out.startswith(b":%d" % n), out[:40])
        self.assertTrue(self.receiver.wait_for(
            lambda ev: len([e for e in ev if e.get("node") == "deadbeef"]) >= n, timeout=20))
        time.sleep(slow(0.7))
        lost = [e for e in self.orphaned() if e.get("node") == "deadbeef"]
        self.assertEqual(len(lost), n)  # once each, duplicates not dropped
        self.assertEqual(len({e["client"] for e in lost}), n)
        self.assertTrue(all(e["user"] == "u" + str(int(e["client"][1:])) for e in lost))
        self.assertEqual(redis_command(self.redis.port,
                                       ("EXISTS %sevents:clients:deadbeef" % PREFIX).encode()), 0)
        emitted = sum(metric_samples(node.port)["switchboard_events_orphaned_total"]
                      for node in self.nodes)
        self.assertEqual(emitted, n)

    def test_clean_stop_leaves_no_record_and_no_orphans(self):
        c = self.nodes[2]

        async def go():
            ws = await connect_ws(c.port, token_value=token("clean"))
            self.assertTrue(self.receiver.wait_for(
                lambda ev: any(e.get("user") == "clean" for e in ev)))
            code, _ = c.stop(timeout=10)
            self.assertEqual(code, 0)
            try:
                await ws.recv()
            except Exception:
                pass
        run(go())
        self.assertTrue(self.receiver.wait_for(
            lambda ev: any(e.get("user") == "clean" and e["type"] == "disconnect" for e in ev)))
        node = next(e["id"].split("-")[0] for e in self.raw() if e.get("user") == "clean")
        self.assertEqual(redis_command(self.redis.port,
                                       ("SISMEMBER %sevents:nodes %s" % (PREFIX, node)).encode()), 0)
        self.assertEqual(redis_command(self.redis.port,
                                       ("EXISTS %sevents:clients:%s" % (PREFIX, node)).encode()), 0)
        time.sleep(slow(LEASE + 0.7))  # the lease is gone: survivors scan meanwhile
        clean = [e for e in self.raw() if e.get("user") == "clean"]
        self.assertEqual([e["type"] for e in clean], ["connect", "disconnect"], clean)
        self.assertFalse(clean[-1].get("orphaned"))


if __name__ == "__main__":
    harness.main()
