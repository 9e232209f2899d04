#!/usr/bin/python3
"""Several `switchboard serve` nodes on one Redis (the redis broker), from the
outside: python3-websockets clients and the HTTP API against two or three
nodes and a redis-server the test starts itself (127.0.0.1, a free port, a
temporary directory, no persistence; never the system service).

Covered: a client on node A gets what is published on node B (WebSocket and
HTTP API); history and recovery across nodes; presence cluster-wide with
join/leave pushes, and a killed node's clients leaving within the lease; a
node's SUBSCRIBE connection lost mid-stream (its subscribers still get every
publication once, in order, from the stream);
/api/channels on any node; a node SIGTERMed mid-stream (its client gets 1012,
reconnects to another node and recovers exactly once); channels sharded over
two redis-servers (both hold some, every node reaches every channel, node
lists in different orders agree); 10 clients reconnecting at random to either node
while 300 publications go through both nodes, each ending with 1..300
exactly once and in order; Redis unreachable at start (/healthz 503 with the
reason, then 200 once Redis is there); Redis restarted empty (a new epoch,
subscribers closed with 1012, `recovered: false` with "epoch changed" on
resubscribe, nothing delivered twice); publishes answered 503 while Redis is
down; subscribes whose read is held in Redis (CLIENT PAUSE) checked again when it
completes (a `refresh` that dropped the channel, a duplicate, max_subscriptions);
and behind nginx (the shipped deploy/nginx.conf) 20 clients reconnecting
at random through it while 1,000 publications go through three nodes, one
node SIGTERMed, one killed, and a durable Redis killed and restarted, each
client ending with every offset exactly once, in order; a durable Redis killed
and restarted five times under two nodes while publications keep coming
(refused with 503 while it is away, accepted again within 20 s of its return,
every subscriber ending with every offset once, in order). HTTP sessions across
nodes: one session's send, poll, stream and DELETE alternating between the
nodes (every command answered once, every publication once and in order, also
across a drop of every pub/sub connection), a
session whose node was killed (its relayed stream ends, then 404), and the SDK
on SSE and on long-polling through nginx round-robin without stickiness.
broker.packed_publish = false: a burst goes out as single-form PUBLISHes only
(watched with PSUBSCRIBE), the default node packs the same burst, and each
node reads the other's.

Usage: /usr/bin/python3 redis_cluster_test.py <path to switchboard>
"""

import asyncio
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from serve_test import (COMPACT, Session, ServeServer, api_publish,  # noqa: E402
                        api_publish_async, base_config, close_code_of, connect_ws, http_request,
                        run, slow, token)
from sse_test import SseReader  # noqa: E402

import websockets  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """redis-server on 127.0.0.1:`port` with its data in a temporary directory."""

    def __init__(self, port=None, durable=False):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="switchboard-redis-it-")
        self.proc = None
        # durable: every write in the append-only file, fsynced before Redis
        # answers it (appendfsync always), so a restart -- even after kill -9 --
        # finds every acknowledged publication (docs/scaling.md).
        self.persistence = (["--appendonly", "yes", "--appendfsync", "always"] if durable
                            else ["--appendonly", "no"])
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--logfile", os.path.join(self.dir, "redis.log")] + self.persistence,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise AssertionError("redis-server did not start on port %d" % self.port)

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def describe(self):
        """On a failure: whether redis-server still runs, and the end of its log."""
        state = "running" if self.proc.poll() is None else "exited with %s" % self.proc.returncode
        try:
            with open(os.path.join(self.dir, "redis.log"), errors="replace") as f:
                log = f.read()[-3000:]
        except OSError as e:
            log = repr(e)
        sys.stderr.write("---- redis-server on port %d: %s\n%s\n" % (self.port, state, log))


API_KEY = "serve-test-key"


def node_config(redis_url, **extra):
    overrides = {
        "namespaces.brief": {"history_ttl": 1, "history_size": 10, "publish": "any"},
        "auth": {"allow_anonymous": True},
        "api": {"key": API_KEY},
        "broker": {"urls": [redis_url], "key_prefix": "it%d:" % os.getpid(),
                   "presence_lease": 2, "presence_refresh": 0.4},
        # A relayed session stream whose home node died ends after two
        # heartbeats of silence (docs/scaling.md).
        "sse": {"heartbeat": 1},
    }
    overrides.update(extra)
    return base_config(**overrides)


def describe_nodes(nodes, alive=None):
    """On a failure: each node's /healthz and the end of its log, on stderr."""
    for k, n in enumerate(nodes):
        state = "" if alive is None else (" (alive)" if n in alive else " (stopped by the test)")
        try:
            status, _, body = http_request(n.port, "GET", "/healthz", timeout=2)
            health = "%s %s" % (status, body[:300].decode(errors="replace"))
        except Exception as e:  # noqa: BLE001 -- a report must not hide the failure it reports
            health = repr(e)
        sys.stderr.write("---- node %d, port %d%s: /healthz %s\n%s\n" % (
            k, n.port, state, health, n.stderr_text(4000)))


def run_describing(coro, timeout, redis, nodes, stats, alive=None):
    """run(coro), and on a failure what the cluster was doing: how many publications
    were refused and the last refusal, each node's /healthz and log, and redis-server's
    state and log."""
    try:
        run(coro, timeout=timeout)
    except BaseException:
        sys.stderr.write("%d publications refused, the last: %r\n" % (stats["refused"],
                                                                        stats["last_refusal"]))
        describe_nodes(nodes, alive)
        redis.describe()
        raise

def wait_health(port, status, timeout=10.0, contains=b""):
    deadline = time.monotonic() + slow(timeout)
    last = None
    while time.monotonic() < deadline:
        try:
            last = http_request(port, "GET", "/healthz", timeout=1)
            if last[0] == status and contains in last[2]:
                return last
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise AssertionError("/healthz did not answer %d within %.0fs: %r" % (status, timeout, last))


async def recovering_subscriber(test, pick_port, channel, done, on_subscribed, rng, drop_one_in,
                                stats):
    """One client of the fault cases: connects to pick_port(), subscribes (with `since`
    once it has a position, and then recovery must succeed), collects every offset
    delivered, drops its own connection about once in `drop_one_in` messages (a phone
    changing networks), and starts again after any failure until `done` is set; then
    subscribes once more for what it missed, and returns the offsets in the order
    received. Counts its own drops in stats["reconnects"] and the close codes it got
    in stats["closes"]; calls on_subscribed() after each successful subscribe."""
    got, position = [], None
    while True:
        finished = done.is_set()
        try:
            async with connect_ws(pick_port()) as ws:
                s = Session(ws)
                fields = {"channel": channel}
                if position:
                    fields["since"] = position
                r = await s.request("subscribe", **fields)
                if "error" in r:  # Redis away: try again shortly
                    test.assertEqual(r["error"]["code"], 503, r)
                    await asyncio.sleep(0.1)
                    continue
                res = r["result"]
                if position:
                    test.assertIs(res["recovered"], True, r)
                got.extend(p["offset"] for p in res.get("publications", []))
                position = {"epoch": res["epoch"], "offset": got[-1] if got else res["offset"]}
                on_subscribed()
                if finished:
                    return got
                try:
                    while not done.is_set():
                        try:
                            m = await s.recv(0.2)
                        except asyncio.TimeoutError:
                            continue
                        if m.get("push") == "message":
                            got.append(m["offset"])
                            position["offset"] = m["offset"]
                            if rng.random() < 1 / drop_one_in:
                                stats["reconnects"] += 1
                                break
                except websockets.ConnectionClosed:
                    stats["closes"].append(ws.close_code)
        except (OSError, websockets.InvalidStatusCode, websockets.InvalidHandshake,
                websockets.ConnectionClosed, asyncio.TimeoutError):
            # No node for us yet (behind a balancer), or the node went (killed,
            # restarted) between the upgrade and the subscribe: try again.
            pass
        await asyncio.sleep(rng.uniform(0.01, 0.1))


class Cluster(unittest.TestCase):
    """Two nodes on one Redis, shared by the cases (each uses its own channels)."""

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()
        cls.nodes = []
        try:
            for _ in range(2):
                cls.nodes.append(ServeServer(node_config(cls.redis.url)))
            for n in cls.nodes:
                wait_health(n.port, 200)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for n in cls.nodes:
                code, _ = n.stop(timeout=10)
                if code != 0:
                    raise AssertionError("serve exited with %r\n%s" % (code, n.stderr_text()))
        finally:
            for n in cls.nodes:
                n.cleanup()
            cls.redis.cleanup()

    def setUp(self):
        # Every node's subscriber connection is in pub/sub mode (the server API's control
        # channel), so a case that kills pub/sub clients leaves each node reconnecting for
        # a moment: the next case starts once every node is healthy again.
        for n in self.nodes:
            wait_health(n.port, 200)

    @property
    def a(self):
        return self.nodes[0].port

    @property
    def b(self):
        return self.nodes[1].port

    def test_publications_cross_nodes(self):
        async def go():
            async with connect_ws(self.a) as wa, connect_ws(self.b) as wb:
                sa, sb = Session(wa), Session(wb)
                a_client = (await sa.request("connect"))["result"]["client"]
                r = await sa.request("subscribe", channel="chat:cross")
                self.assertEqual(r["result"]["offset"], 0, r)
                epoch = r["result"]["epoch"]
                r = await sb.request("subscribe", channel="chat:cross")
                self.assertEqual(r["result"]["epoch"], epoch, "one stream, one epoch, any node")
                # A's own join, then B's join pushed across nodes.
                join = await sa.push("join", "chat:cross",
                                     match=lambda m: m["info"]["client"] != a_client)
                pub = await sb.request("publish", channel="chat:cross", data={"n": 1})
                self.assertEqual(pub["result"], {"epoch": epoch, "offset": 1})
                m = await sa.push("message", "chat:cross")
                self.assertEqual((m["offset"], m["data"], m["epoch"]), (1, {"n": 1}, epoch))
                self.assertEqual(m["client"], join["info"]["client"])
                status, answer = await api_publish_async(self.b, {"channel": "chat:cross",
                                                                  "data": "over http"})
                self.assertEqual((status, answer), (200, {"epoch": epoch, "offset": 2}))
                m = await sa.push("message", "chat:cross")
                self.assertEqual((m["offset"], m["data"]), (2, "over http"))
                # Presence is cluster-wide: both nodes list both clients, and
                # the count of each presence push (Redis's ZCARD) says two too.
                for s in (sa, sb):
                    p = await s.request("presence", channel="chat:cross")
                    self.assertEqual(len(p["result"]["clients"]), 2, p)
                batched = [m for m in sa.inbox if m.get("push") == "presence"]
                self.assertTrue(batched, sa.inbox)
                self.assertEqual(batched[-1]["count"], 2, batched)
                # The HTTP API's channel list is cluster-wide too.
                status, _, body = http_request(self.a, "GET", "/api/channels",
                                               headers={"X-API-Key": API_KEY})
                self.assertEqual(status, 200)
                self.assertIn(b'"channel":"chat:cross"', body)
                self.assertIn(b'"offset":2', body)
        run(go())

    def test_http_session_requests_alternate_between_nodes(self):
        """One HTTP session, made on A, driven through both nodes: every
        command answered once, every publication once and in order, whichever
        node holds the stream or the poll (docs/protocol.md, "HTTP transports
        across nodes")."""
        a, b, channel = self.a, self.b, "chat:fwd"
        status, _, raw = http_request(a, "POST", "/rt/session")
        self.assertEqual(status, 201, raw)
        sid = json.loads(raw)["session"]
        path = "/rt/session/" + sid
        delivered = {}  # seq -> message: each sequence number once

        def take(seq, data):
            self.assertNotIn(seq, delivered)
            delivered[seq] = json.loads(data)

        def send(port, *cmds):
            body = "\n".join(json.dumps(c) for c in cmds).encode()
            status, _, raw = http_request(port, "POST", path + "/send", body)
            self.assertEqual((status, json.loads(raw)), (202, {"accepted": len(cmds)}))

        def stream_until(reader, pred):
            while True:
                e = reader.events_until(lambda e: e.get("event") == "message", timeout=5)[-1]
                take(int(e["id"]), e["data"])
                if pred():
                    return

        def replies():
            return [m["id"] for m in delivered.values() if "id" in m]

        def offsets():
            return [m["offset"] for _, m in sorted(delivered.items())
                    if m.get("push") == "message"]

        # The stream on B (relayed from A); commands sent through both.
        r = SseReader(b, path + "/stream")
        try:
            self.assertEqual((r.status, r.headers["content-type"]), (200, "text/event-stream"))
            self.assertEqual(r.headers["x-accel-buffering"], "no")
            self.assertIn("retry", r.event())
            send(b, {"id": 1, "cmd": "subscribe", "channel": channel})
            stream_until(r, lambda: 1 in replies())
            # 202 is "accepted", not "done": each publish is awaited before the
            # next goes another way, so that data and offsets follow one order.
            send(a, {"id": 2, "cmd": "publish", "channel": channel, "data": 1})
            stream_until(r, lambda: 2 in replies())
            send(b, {"id": 3, "cmd": "publish", "channel": channel, "data": 2})
            stream_until(r, lambda: 3 in replies())
            for i in range(3, 11):
                api_publish((a, b)[i % 2], {"channel": channel, "data": i})
            stream_until(r, lambda: len(offsets()) == 10 and {2, 3} <= set(replies()))
            # Redis drops every pub/sub connection: what was relayed to B in the
            # meantime could be lost, so B ends the stream; the client resumes
            # with Last-Event-ID from the session's buffer on A, exactly.
            self.assertGreaterEqual(redis_command(self.redis.port, b"CLIENT KILL TYPE pubsub"), 2)
            with self.assertRaises(EOFError):
                while True:
                    e = r.event(timeout=5)
                    if e.get("event") == "message":
                        take(int(e["id"]), e["data"])
        finally:
            r.close()
        for port in (a, b):
            wait_health(port, 200)
        api_publish(b, {"channel": channel, "data": 11})
        api_publish(a, {"channel": channel, "data": 12})
        r = SseReader(b, path + "/stream", {"Last-Event-ID": str(max(delivered))})
        try:
            self.assertEqual(r.status, 200)
            r.event()
            stream_until(r, lambda: len(offsets()) == 12)
        finally:
            r.close()
        # A held poll on B, answered (from A) when a publication comes.
        last = max(delivered)
        conn = http.client.HTTPConnection("127.0.0.1", b, timeout=slow(10))
        try:
            conn.request("GET", "%s/poll?after=%d" % (path, last))
            time.sleep(0.3)
            api_publish(a, {"channel": channel, "data": 13})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            for m in json.loads(resp.read())["messages"]:
                take(m["seq"], m["data"])
        finally:
            conn.close()
        # Polls through both nodes, then the stream on A (local) from the last seen.
        send(b, {"id": 4, "cmd": "ping"})
        send(a, {"id": 5, "cmd": "ping"})
        for port in (a, b):
            status, _, raw = http_request(port, "GET", "%s/poll?after=%d" % (path, max(delivered)))
            self.assertEqual(status, 200, raw)
            for m in json.loads(raw)["messages"]:
                take(m["seq"], m["data"])
            if {4, 5} <= set(replies()):
                break
        api_publish(b, {"channel": channel, "data": 14})
        r = SseReader(a, path + "/stream", {"Last-Event-ID": str(max(delivered))})
        try:
            self.assertEqual(r.status, 200)
            r.event()
            stream_until(r, lambda: len(offsets()) == 14 and {4, 5} <= set(replies()))
            r.quiet(0.3)
        finally:
            r.close()
        self.assertEqual(sorted(delivered), list(range(1, max(delivered) + 1)), "no gap")
        self.assertEqual(sorted(replies()), [1, 2, 3, 4, 5], "each command answered once")
        self.assertEqual(offsets(), list(range(1, 15)), "each publication once, in order")
        self.assertEqual([m["data"] for _, m in sorted(delivered.items())
                          if m.get("push") == "message"], list(range(1, 15)))
        # DELETE through B ends it everywhere.
        status, _, _ = http_request(b, "DELETE", path)
        self.assertEqual(status, 204)
        for port in (a, b):
            status, _, raw = http_request(port, "GET", path + "/poll")
            self.assertEqual((status, json.loads(raw)["error"]["message"]),
                             (404, "session_not_found"))
        # An id of a node that does not exist (stopped, or never was).
        nobody = "0123456789abcdef." + "0" * 32
        status, _, raw = http_request(a, "POST", "/rt/session/%s/send" % nobody, b"{}")
        self.assertEqual((status, json.loads(raw)["error"]["message"]),
                         (404, "session_not_found: the node that held the session is gone"))
        # Each node counts what it forwarded: B the requests for A's session.
        status, _, body = http_request(b, "GET", "/metrics")
        self.assertRegex(body.decode(),
                         r'switchboard_http_forwards_total\{result="answered"\} [1-9]')
        status, _, body = http_request(a, "GET", "/metrics")
        self.assertRegex(body.decode(), r'switchboard_http_forwards_total\{result="gone"\} [1-9]')

    def test_sdk_sessions_through_a_round_robin_balancer(self):
        """nginx without stickiness in front of both nodes: each request of the
        SDK's HTTP session goes to the next node, and SSE and long-polling
        both work (the home node answers through the broker)."""
        lb = Nginx([self.a, self.b], sticky=False)
        try:
            script = os.path.join(HERE, "sdk_session_client.mjs")
            for transport in ("sse", "long-polling"):
                out = subprocess.run(
                    ["node", script, "ws://127.0.0.1:%d/ws" % lb.port, transport,
                     "chat:rr-" + transport, "20"],
                    capture_output=True, text=True, timeout=slow(30),
                    env=dict(os.environ, NODE_PATH="/usr/share/nodejs"))
                self.assertEqual((out.returncode, out.stdout.strip()), (0, "ok " + transport),
                                 out.stdout + out.stderr)
        finally:
            lb.cleanup()

    def test_history_and_recovery_across_nodes(self):
        async def go():
            epoch = None
            for i in range(1, 6):
                status, answer = api_publish(self.a, {"channel": "chat:hist", "data": i})
                self.assertEqual(status, 200, answer)
                epoch = answer["epoch"]
            async with connect_ws(self.b) as wb:
                s = Session(wb)
                r = await s.request("subscribe", channel="chat:hist",
                                    since={"epoch": epoch, "offset": 2})
                self.assertIs(r["result"]["recovered"], True, r)
                self.assertEqual([p["data"] for p in r["result"]["publications"]], [3, 4, 5])
                h = await s.request("history", channel="chat:hist", limit=2)
                self.assertEqual([p["offset"] for p in h["result"]["publications"]], [4, 5])
                r = await s.request("history", channel="chat:hist",
                                    since={"epoch": "other", "offset": 1})
                self.assertEqual((r["result"]["recovered"], r["result"]["reason"]),
                                 (False, "epoch changed"))
                r = await s.request("subscribe", channel="chat:hist2",
                                    since={"epoch": epoch, "offset": 1})
                self.assertEqual(r["result"]["reason"], "epoch changed", r)
                r = await s.request("history", channel="chat:hist",
                                    since={"epoch": epoch, "offset": 99})
                self.assertEqual((r["result"]["recovered"], r["result"]["reason"]),
                                 (False, "offset ahead of the stream"), r)
                # short keeps 3: recovery from offset 1 of 6 is too far behind.
                for i in range(6):
                    status, answer = api_publish(self.a, {"channel": "short:hist", "data": i})
                r = await s.request("subscribe", channel="short:hist",
                                    since={"epoch": answer["epoch"], "offset": 1})
                self.assertEqual((r["result"]["recovered"], r["result"]["reason"]),
                                 (False, "too far behind"), r)
                # The stream is trimmed approximately (MAXLEN ~ keeps whole
                # nodes: all 6 are still in Redis), yet exactly the last 3
                # count as kept, as on the memory broker.
                xlen = b"XLEN it%d:s:short:hist" % os.getpid()
                self.assertEqual(redis_status(self.redis.port, xlen), b":6")
                h = await s.request("history", channel="short:hist")
                self.assertEqual([p["data"] for p in h["result"]["publications"]], [3, 4, 5], h)
                h = await s.request("history", channel="short:hist", limit=10)
                self.assertEqual([p["offset"] for p in h["result"]["publications"]], [4, 5, 6])
                r = await s.request("history", channel="short:hist",
                                    since={"epoch": answer["epoch"], "offset": 3})
                self.assertEqual([p["offset"] for p in r["result"]["publications"]], [4, 5, 6], r)
                self.assertIs(r["result"]["recovered"], True, r)
        run(go())

    def test_many_publications_at_once_are_batched_in_order(self):
        # 200 publications over one WebSocket without waiting: the node sends
        # them to Redis in batches (one script call per loop iteration, at
        # most 64 each); every one is acknowledged with the next offset and
        # reaches a subscriber on the other node once, in order.
        async def go():
            async with connect_ws(self.b) as wb, connect_ws(self.a) as wa:
                sub = Session(wb)
                r = await sub.request("subscribe", channel="chat:batch")
                self.assertIn("result", r)
                pub = Session(wa)
                for i in range(1, 201):
                    await wa.send(json.dumps({"id": 1000 + i, "cmd": "publish",
                                              "channel": "chat:batch", "data": i}))
                offsets = {}
                while len(offsets) < 200:
                    m = json.loads(await asyncio.wait_for(wa.recv(), 10))
                    if m.get("id", 0) > 1000:
                        offsets[m["id"] - 1000] = m["result"]["offset"]
                self.assertEqual([offsets[i] for i in range(1, 201)], list(range(1, 201)))
                got = []
                while len(got) < 200:
                    m = json.loads(await asyncio.wait_for(wb.recv(), 10))
                    if m.get("push") == "message":
                        got.append((m["offset"], m["data"]))
                self.assertEqual(got, [(i, i) for i in range(1, 201)])
        run(go())

    def test_publications_to_several_channels_in_one_call_keep_their_order(self):
        # 120 publications alternating over three channels without waiting:
        # one script call groups them by channel (one packed pub/sub message
        # each), yet the replies come back in the order of the commands, each
        # channel's offsets are 1..40, and subscribers on the other node get
        # each channel's publications once, in order.
        names = ["chat:mix0", "chat:mix1", "chat:mix2"]

        async def go():
            async with connect_ws(self.b) as wb, connect_ws(self.a) as wa:
                sub = Session(wb)
                for name in names:
                    r = await sub.request("subscribe", channel=name)
                    self.assertIn("result", r)
                for i in range(120):
                    await wa.send(json.dumps({"id": 2000 + i, "cmd": "publish",
                                              "channel": names[i % 3], "data": i}))
                ids, offsets = [], {}
                while len(ids) < 120:
                    m = json.loads(await asyncio.wait_for(wa.recv(), 10))
                    if m.get("id", 0) >= 2000:
                        ids.append(m["id"] - 2000)
                        offsets[m["id"] - 2000] = m["result"]["offset"]
                self.assertEqual(ids, list(range(120)))
                self.assertEqual([offsets[i] for i in range(120)],
                                 [i // 3 + 1 for i in range(120)])
                got = {name: [] for name in names}
                while sum(len(v) for v in got.values()) < 120:
                    m = json.loads(await asyncio.wait_for(wb.recv(), 10))
                    if m.get("push") == "message":
                        got[m["channel"]].append((m["offset"], m["data"]))
                for k, name in enumerate(names):
                    self.assertEqual(got[name], [(i // 3 + 1, i) for i in range(k, 120, 3)])
        run(go())

    def test_scripts_flushed_from_redis_are_sent_again(self):
        status, answer = api_publish(self.a, {"channel": "chat:flush", "data": 1})
        self.assertEqual(status, 200, answer)
        self.assertEqual(redis_status(self.redis.port, b"SCRIPT FLUSH"), b"+OK")
        # EVALSHA now answers NOSCRIPT: the broker falls back to EVAL (which loads it).
        for i in (2, 3):
            status, answer = api_publish(self.b, {"channel": "chat:flush", "data": i})
            self.assertEqual((status, answer["offset"]), (200, i), answer)

    def test_key_prefix_keeps_deployments_apart(self):
        other = ServeServer(node_config(self.redis.url,
                                        broker={"urls": [self.redis.url], "key_prefix": "other:"}))
        try:
            wait_health(other.port, 200)
            for _ in range(3):
                status, answer = api_publish(self.a, {"channel": "chat:apart", "data": "a"})
            self.assertEqual(answer["offset"], 3)
            status, answer = api_publish(other.port, {"channel": "chat:apart", "data": "b"})
            self.assertEqual((status, answer["offset"]), (200, 1), "its own stream")
            other.stop_checked(self)
        finally:
            other.cleanup()

    def test_history_ttl_is_kept_in_redis(self):
        async def go():
            for i in range(3):
                status, answer = api_publish(self.a, {"channel": "brief:t", "data": i})
                self.assertEqual(status, 200, answer)
            epoch = answer["epoch"]
            async with connect_ws(self.b) as wb:
                s = Session(wb)
                h = await s.request("history", channel="brief:t")
                self.assertEqual([p["data"] for p in h["result"]["publications"]], [0, 1, 2])
                await asyncio.sleep(1.3)  # history_ttl = 1 s
                h = await s.request("history", channel="brief:t")
                self.assertEqual(h["result"]["publications"], [], h)
                self.assertEqual((h["result"]["epoch"], h["result"]["offset"]), (epoch, 3))
                r = await s.request("subscribe", channel="brief:t",
                                    since={"epoch": epoch, "offset": 1})
                self.assertEqual((r["result"]["recovered"], r["result"]["reason"]),
                                 (False, "too far behind"), r)
                r2 = await s.request("history", channel="brief:t",
                                     since={"epoch": epoch, "offset": 3})
                self.assertIs(r2["result"]["recovered"], True, "nothing missed: exact")
        run(go())

    def test_churn_across_nodes_exactly_once_in_order(self):
        total, clients = 300, 10
        channel = "chat:churn"
        rng = random.Random(9)

        subscribed = []
        all_subscribed = asyncio.Event()

        async def client(idx, done):
            got = []
            position = None
            while True:
                finished = done.is_set()
                port = rng.choice([self.a, self.b])
                async with connect_ws(port) as ws:
                    s = Session(ws)
                    fields = {"channel": channel}
                    if position:
                        fields["since"] = position
                    r = await s.request("subscribe", **fields)
                    res = r["result"]
                    if position:
                        self.assertIs(res.get("recovered"), True, (idx, r))
                    for p in res.get("publications", []):
                        got.append(p["offset"])
                    position = {"epoch": res["epoch"], "offset": got[-1] if got else res["offset"]}
                    if idx not in subscribed:  # the publisher starts once everyone is in
                        subscribed.append(idx)
                        if len(subscribed) == clients:
                            all_subscribed.set()
                    if finished:
                        self.assertEqual(got, list(range(1, total + 1)), "client %d" % idx)
                        return
                    deadline = time.monotonic() + rng.uniform(0.05, 0.4)
                    for m in s.inbox:
                        if m.get("push") == "message":
                            got.append(m["offset"])
                    s.inbox.clear()
                    while time.monotonic() < deadline:
                        try:
                            m = await s.recv(max(0.01, deadline - time.monotonic()))
                        except asyncio.TimeoutError:
                            break
                        if m.get("push") == "message":
                            self.assertEqual(m["epoch"], position["epoch"])
                            got.append(m["offset"])
                    # Exactly once, in order, so far.
                    self.assertEqual(got, list(range(1, len(got) + 1)), "client %d" % idx)
                    if got:
                        position["offset"] = got[-1]
                await asyncio.sleep(rng.uniform(0, 0.1))

        async def publisher(done):
            await all_subscribed.wait()
            for i in range(1, total + 1):
                port = self.a if i % 2 else self.b
                status, answer = await api_publish_async(port, {"channel": channel, "data": i})
                self.assertEqual(status, 200, answer)
                self.assertEqual(answer["offset"], i)
                await asyncio.sleep(0.005)
            done.set()

        async def main():
            done = asyncio.Event()
            await asyncio.gather(publisher(done), *(client(i, done) for i in range(clients)))

        run(main(), timeout=90)

    def test_sigterm_node_clients_recover_elsewhere_exactly_once(self):
        third = ServeServer(node_config(self.redis.url))
        try:
            wait_health(third.port, 200)
            total = 60
            channel = "chat:deploy"

            async def go():
                got = []
                done = asyncio.Event()
                ready = asyncio.Event()
                watching = asyncio.Event()  # the watcher is subscribed: it sees the join

                async def publisher():
                    await ready.wait()
                    for i in range(1, total + 1):
                        status, answer = await api_publish_async(self.a, {"channel": channel,
                                                                          "data": i})
                        self.assertEqual((status, answer["offset"]), (200, i))
                        if i == total // 2:
                            third.send_signal(signal.SIGTERM)  # the deploy case
                        await asyncio.sleep(0.01)
                    done.set()

                async def watcher():
                    # On another node: the SIGTERMed node's client leaves at once
                    # (its leave goes out before the node stops), not after the lease.
                    async with connect_ws(self.a) as wa:
                        sw = Session(wa)
                        await sw.request("subscribe", channel=channel)
                        watching.set()
                        await ready.wait()
                        await sw.push("join", channel,
                                      match=lambda m: m["info"]["client"] == victim[0])
                        await done.wait()
                        leave = await sw.push("leave", channel, timeout=1.5,
                                              match=lambda m: m["info"]["client"] == victim[0])
                        self.assertEqual(leave["info"]["client"], victim[0])

                victim = []

                async def client():
                    async with connect_ws(third.port) as ws:
                        s = Session(ws)
                        victim.append((await s.request("connect"))["result"]["client"])
                        await watching.wait()
                        r = await s.request("subscribe", channel=channel)
                        epoch = r["result"]["epoch"]
                        ready.set()
                        try:
                            while True:
                                m = await s.recv(10)
                                if m.get("push") == "message":
                                    got.append(m["offset"])
                        except websockets.ConnectionClosed:
                            pass
                        self.assertEqual(ws.close_code, 1012)
                    # Reconnect through "the load balancer" to another node.
                    async with connect_ws(self.b) as ws:
                        s = Session(ws)
                        r = await s.request("subscribe", channel=channel,
                                            since={"epoch": epoch,
                                                   "offset": got[-1] if got else 0})
                        self.assertIs(r["result"]["recovered"], True, r)
                        got.extend(p["offset"] for p in r["result"]["publications"])
                        while len(got) < total:
                            m = await s.push("message", channel, timeout=10)
                            got.append(m["offset"])
                    self.assertEqual(got, list(range(1, total + 1)))

                await asyncio.gather(publisher(), client(), watcher())
            run(go(), timeout=60)
            self.assertEqual(third.wait(10), 0, third.stderr_text())
        finally:
            third.cleanup()

    def test_lost_subscriber_connection_is_caught_up_from_the_stream(self):
        total, channel = 120, "chat:catchup"

        async def go():
            async with connect_ws(self.a) as wa:
                s = Session(wa)
                await s.request("subscribe", channel=channel)
                got = []

                async def publisher():
                    for i in range(1, total + 1):
                        # The last kill comes just before the last publications:
                        # only the node's catch-up read after its reconnect can
                        # deliver them (no later publication reveals the gap).
                        if i in (30, 70, total - 4):
                            # Every node's SUBSCRIBE connection drops; publications
                            # go on through node B's command connection meanwhile.
                            self.assertGreaterEqual(redis_command(self.redis.port,
                                                                  b"CLIENT KILL TYPE pubsub"), 1)
                        status, answer = await api_publish_async(self.b, {"channel": channel,
                                                                          "data": i})
                        self.assertEqual((status, answer["offset"]), (200, i))
                        await asyncio.sleep(0.004)

                async def reader():
                    while len(got) < total:
                        m = await s.push("message", channel, timeout=10)
                        got.append(m["offset"])

                await asyncio.gather(publisher(), reader())
                self.assertEqual(got, list(range(1, total + 1)), "caught up, once, in order")
                self.assertFalse(wa.closed)
        run(go())

    def test_killed_node_clients_leave_within_the_lease(self):
        third = ServeServer(node_config(self.redis.url))
        try:
            wait_health(third.port, 200)

            async def go():
                async with connect_ws(self.a) as wa:
                    sa = Session(wa)
                    await sa.request("connect")
                    await sa.request("subscribe", channel="chat:lease")
                    async with connect_ws(third.port) as wt:
                        st = Session(wt)
                        victim = (await st.request("connect"))["result"]["client"]
                        await st.request("subscribe", channel="chat:lease")
                        await sa.push("join", "chat:lease",
                                      match=lambda m: m["info"]["client"] == victim)
                        p = await sa.request("presence", channel="chat:lease")
                        self.assertEqual(len(p["result"]["clients"]), 2, p)
                        gone = [c for c in p["result"]["clients"] if c["client"] == victim]
                        third.kill()  # kill -9: no leave from it
                        started = time.monotonic()
                        leave = await sa.push("leave", "chat:lease", timeout=6)
                        self.assertEqual(leave["info"], gone[0])
                        # lease 2 s + one refresh period (0.4 s) + slack
                        self.assertLess(time.monotonic() - started, slow(4))
                        p = await sa.request("presence", channel="chat:lease")
                        self.assertEqual(len(p["result"]["clients"]), 1, p)

            # An HTTP session on the third node, its stream relayed through A.
            status, _, raw = http_request(third.port, "POST", "/rt/session")
            self.assertEqual(status, 201, raw)
            path = "/rt/session/" + json.loads(raw)["session"]
            r = SseReader(self.a, path + "/stream")
            try:
                self.assertEqual(r.status, 200)
                r.event()
                run(go())  # kills the third node
                # A ends the stream once the home node is silent for two
                # heartbeats (1 s here) and a second...
                started = time.monotonic()
                with self.assertRaises(EOFError):
                    while True:
                        r.event(timeout=6)
                self.assertLess(time.monotonic() - started, slow(5))
            finally:
                r.close()
            # ...and the client's next request learns that the session is gone.
            status, _, raw = http_request(self.a, "GET", path + "/poll")
            self.assertEqual((status, json.loads(raw)["error"]["message"]),
                             (404, "session_not_found: the node that held the session is gone"))
        finally:
            third.cleanup()


class Nginx:
    """Debian's nginx with deploy/nginx.conf, its upstreams and listen port
    rewritten to the test's, in a scratch prefix (never the system service)."""

    def __init__(self, node_ports, sticky=True):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="switchboard-nginx-it-")
        os.makedirs(os.path.join(self.dir, "tmp"))
        with open(os.path.join(os.path.dirname(os.path.dirname(HERE)), "deploy",
                               "nginx.conf")) as f:
            conf = f.read()
        for shipped, actual in zip((8081, 8082, 8083), node_ports):
            conf = conf.replace("127.0.0.1:%d" % shipped, "127.0.0.1:%d" % actual)
        conf = conf.replace("listen 127.0.0.1:8080;", "listen 127.0.0.1:%d;" % self.port)
        if not sticky:  # round-robin: each request to the next node
            self.unsticky = "hash $remote_addr consistent;"
            assert self.unsticky in conf
            conf = conf.replace(self.unsticky, "")
        for shipped in (8081, 8082, 8083)[len(node_ports):]:  # fewer nodes than shipped
            conf = "\n".join(l for l in conf.split("\n") if "127.0.0.1:%d" % shipped not in l)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-p", self.dir, "-e", "stderr", "-c", self.conf,
                                      "-g", "daemon off;"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_health(self.port, 200)

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class BehindNginx(unittest.TestCase):
    """Redis (durable: AOF, fsync always), three nodes and nginx with the shipped
    config: 20 clients that also drop their connection at random reconnect
    through nginx while 1,000 publications are made through different nodes;
    one node gets SIGTERM, another kill -9, then Redis itself is killed and
    restarted. Every client ends with every offset exactly once, in order."""

    def test_deploy_crash_and_redis_restart_through_the_load_balancer(self):
        redis = RedisServer(durable=True)
        nodes, lb = [], None
        try:
            nodes = [ServeServer(node_config(redis.url, server={"demo": False,
                                                                "trusted_proxies": ["127.0.0.1"]}))
                     for _ in range(3)]
            for n in nodes:
                wait_health(n.port, 200)
            lb = Nginx([n.port for n in nodes])
            total, clients, channel = 1000, 20, "chat:lb"
            alive = list(nodes)
            rng = random.Random(9)
            offsets = []  # every acknowledged offset, in order
            stats = {"closes": [], "reconnects": 0, "refused": 0, "last_refusal": None}

            def node_with_subscribers():
                for n in alive:
                    status, _, body = http_request(n.port, "GET", "/api/channels",
                                                   headers={"X-API-Key": API_KEY})
                    if status == 200 and b'"subscribers":0' not in body and channel.encode() in body:
                        return n
                return None

            async def go():
                done = asyncio.Event()
                subscribed = []
                everyone_in = asyncio.Event()

                async def client(idx):
                    def subscribed_once():
                        if idx not in subscribed:
                            subscribed.append(idx)
                            if len(subscribed) == clients:
                                everyone_in.set()
                    got = await recovering_subscriber(self, lambda: lb.port, channel, done,
                                                      subscribed_once, rng, 150, stats)
                    self.assertEqual(got, offsets, "client %d" % idx)

                async def publish(i):
                    # Through the nodes in turn; while Redis is away a node answers
                    # 503 and the publication is made again once it is back. (A
                    # publication whose answer was lost with Redis may have been
                    # made: its offset is then skipped by the next, never reused.)
                    # Redis is back within seconds (reconnect backoff at most 5 s): a
                    # node still refusing after 20 s is a failure of its own, reported
                    # with its answer rather than as the case's overall timeout.
                    refused_since = None
                    while True:
                        n = alive[i % len(alive)]
                        status, answer = await api_publish_async(n.port, {"channel": channel,
                                                                          "data": i})
                        if status == 200:
                            self.assertGreater(answer["offset"], offsets[-1] if offsets else 0)
                            offsets.extend(range(offsets[-1] + 1 if offsets else 1,
                                                 answer["offset"] + 1))
                            return
                        self.assertEqual(status, 503, answer)
                        stats["refused"] += 1
                        stats["last_refusal"] = (n.port, answer)
                        refused_since = refused_since or time.monotonic()
                        self.assertLess(time.monotonic() - refused_since, slow(20),
                                        "publication %d refused for 20 s by the node on port %d;"
                                        " its last answer: %r" % (i, n.port, answer))
                        await asyncio.sleep(0.05)

                async def publisher():
                    await everyone_in.wait()
                    for i in range(1, total + 1):
                        if i in (total // 4, total // 2):
                            victim = node_with_subscribers()
                            self.assertIsNotNone(victim, "nobody subscribed anywhere?")
                            alive.remove(victim)
                            if i == total // 4:
                                victim.send_signal(signal.SIGTERM)  # deploy: 1012
                            else:
                                victim.kill()  # crash
                        if i == 3 * total // 4:
                            redis.kill()  # kill -9; the AOF has every acknowledged write
                            await asyncio.sleep(0.3)
                            redis.start()
                        await publish(i)
                        await asyncio.sleep(0.002)
                    done.set()

                await asyncio.gather(publisher(), *(client(i) for i in range(clients)))
            run_describing(go(), 180, redis, nodes, stats, alive)
            print("behind nginx: %d offsets, %d client-side reconnects, closes %s, %d publications "
                  "refused while Redis was away" % (len(offsets), stats["reconnects"],
                                                    sorted(set(stats["closes"])),
                                                    stats["refused"]), file=sys.stderr)
            self.assertIn(1012, stats["closes"], "the SIGTERMed node's clients got 1012")
            self.assertGreater(stats["reconnects"], 20, stats)
            self.assertGreater(len(offsets), total - 1)
            self.assertEqual(offsets[-1], len(offsets))
        finally:
            if lb:
                lb.cleanup()
            for n in nodes:
                n.cleanup()
            redis.cleanup()


def redis_command(port, line):
    """An inline command; the integer it answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(line + b"\r\n")
        reply = s.recv(64)
    assert reply.startswith(b":"), reply
    return int(reply[1:].strip())


def redis_status(port, line):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(line + b"\r\n")
        return s.recv(64).strip()


def redis_dbsize(port):
    return redis_command(port, b"DBSIZE")


class InFlightSubscribe(unittest.TestCase):
    """Issue 14: with Redis a subscribe's read is answered later, and commands that
    arrive meanwhile run first. CLIENT PAUSE holds Redis while a `refresh` drops a
    channel from the token, a second subscribe to one channel and one past
    limits.max_subscriptions are sent: none of them may land when Redis answers."""

    def test_refresh_and_limits_are_checked_again_when_the_read_completes(self):
        redis = RedisServer()
        node = None
        try:
            node = ServeServer(node_config(redis.url, auth={"allow_anonymous": False},
                                           limits={"max_subscriptions": 3}))
            # Connected to Redis first: a subscribe before that is answered 503.
            wait_health(node.port, 200)

            async def go():
                grants = ["brief:warm", "brief:revoked", "brief:kept", "brief:over", "brief:o2"]
                async with connect_ws(node.port, token("alice", channels=grants)) as ws:
                    s = Session(ws)
                    r = await s.request("subscribe", channel="brief:warm")
                    self.assertIn("result", r)
                    self.assertEqual(redis_status(redis.port, b"CLIENT PAUSE 1500 ALL"), b"+OK")
                    commands = [
                        {"id": 101, "cmd": "subscribe", "channel": "brief:revoked"},
                        {"id": 102, "cmd": "subscribe", "channel": "brief:kept"},
                        {"id": 103, "cmd": "subscribe", "channel": "brief:kept"},
                        {"id": 104, "cmd": "subscribe", "channel": "brief:over"},
                        {"id": 105, "cmd": "subscribe", "channel": "brief:o2"},
                        {"id": 106, "cmd": "refresh", "token": token(
                            "alice", channels=[g for g in grants if g != "brief:revoked"])},
                    ]
                    # Redis answers none of the reads before the pause ends (1.5 s).
                    for c in commands:
                        await s.send(c)
                    replies = {}
                    while len(replies) < len(commands):
                        m = await s.recv(timeout=10)
                        if "id" in m:
                            replies[m["id"]] = m
                        else:
                            s.inbox.append(m)
                    self.assertIn("result", replies[106], replies[106])
                    self.assertEqual(replies[101].get("error", {}).get("code"), 403, replies[101])
                    self.assertIn("result", replies[102], replies[102])
                    self.assertEqual(replies[103].get("error", {}).get("code"), 409, replies[103])
                    self.assertIn("result", replies[104], replies[104])
                    self.assertEqual(replies[105].get("error", {}).get("code"), 429, replies[105])
                    # What landed is what the server delivers: one copy on brief:kept,
                    # nothing on the revoked channel or the one past the limit.
                    for channel in ("brief:revoked", "brief:kept", "brief:o2"):
                        status, _ = await api_publish_async(node.port, {"channel": channel,
                                                                        "data": channel})
                        self.assertEqual(status, 200)
                    await s.quiet(slow(1.0))
                    got = [m["channel"] for m in s.inbox if m.get("push") == "message"]
                    self.assertEqual(got, ["brief:kept"], s.inbox)
                    # And the server agrees on what this connection holds: unsubscribing
                    # the refused ones says "not subscribed".
                    r = await s.request("unsubscribe", channel="brief:revoked")
                    self.assertEqual(r.get("error", {}).get("code"), 404, r)
                    r = await s.request("unsubscribe", channel="brief:kept")
                    self.assertIn("result", r)
                    r = await s.request("unsubscribe", channel="brief:kept")
                    self.assertEqual(r.get("error", {}).get("code"), 404, r)
            run(go(), timeout=60)
        finally:
            if node:
                node.cleanup()
            redis.cleanup()


class PubSubMonitor:
    """A connection of the test's own in pub/sub mode on `pattern`
    (PSUBSCRIBE): what the nodes PUBLISH, as Redis carries it."""

    def __init__(self, port, pattern):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=slow(10))
        self.reader = self.sock.makefile("rb")
        self.send(b"PSUBSCRIBE", pattern.encode())
        confirm = self.read()
        assert confirm[0] == b"psubscribe", confirm

    def send(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)

    def read(self):
        line = self.reader.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        if kind == b"$":
            return self.reader.read(int(rest) + 2)[:-2]
        if kind == b":":
            return int(rest)
        raise AssertionError("unexpected RESP line %r" % line)

    def messages(self):
        """Every (channel, payload) published so far: a PING's pong comes
        after them on this connection."""
        self.send(b"PING")
        out = []
        while True:
            m = self.read()
            if m[0] == b"pong":
                return out
            assert m[0] == b"pmessage", m
            out.append((m[2].decode(), m[3]))

    def close(self):
        self.reader.close()
        self.sock.close()


class PackedPublish(unittest.TestCase):
    """broker.packed_publish (docs/scaling.md, "Rolling upgrades"): a node
    with false PUBLISHes each publication in the single form "m…", the only
    one a node of the version before the packed form reads; a node with the
    default packs a burst of one channel ("M…"). Both read either form."""

    def test_false_puts_only_the_single_form_on_the_wire(self):
        redis = RedisServer()
        prefix = "pk%d:" % os.getpid()
        nodes = []
        monitor = None
        try:
            for packed in (False, True):
                nodes.append(ServeServer(node_config(redis.url, broker={
                    "urls": [redis.url], "key_prefix": prefix, "packed_publish": packed})))
            for n in nodes:
                wait_health(n.port, 200)
            monitor = PubSubMonitor(redis.port, prefix + "c:chat:*")

            async def burst(publisher, reader, channel, n=100):
                # n publications over one WebSocket without waiting (one loop
                # iteration takes many: a batch), read on the other node.
                async with connect_ws(reader) as wr, connect_ws(publisher) as wp:
                    sub = Session(wr)
                    self.assertIn("result", await sub.request("subscribe", channel=channel))
                    for i in range(1, n + 1):
                        await wp.send(json.dumps({"id": i, "cmd": "publish", "channel": channel,
                                                  "data": i}))
                    got = []
                    while len(got) < n:
                        m = json.loads(await asyncio.wait_for(wr.recv(), slow(10)))
                        if m.get("push") == "message":
                            got.append((m["offset"], m["data"]))
                    self.assertEqual(got, [(i, i) for i in range(1, n + 1)])
                    replies = 0
                    while replies < n:  # read, or the close waits behind them
                        m = json.loads(await asyncio.wait_for(wp.recv(), slow(10)))
                        self.assertIn("result", m)
                        replies += 1
            a, b = nodes[0].port, nodes[1].port
            run(burst(a, b, "chat:single"))
            run(burst(b, a, "chat:packed"))
            wire = monitor.messages()
            # Publications only ("j…", "l…" are presence).
            single = [p for c, p in wire if c == prefix + "c:chat:single" and p[:1] in b"mM"]
            packed = [p for c, p in wire if c == prefix + "c:chat:packed" and p[:1] in b"mM"]
            self.assertEqual(len(single), 100)
            self.assertEqual({p[:1] for p in single}, {b"m"}, single[:3])
            # The control: the same burst from a node with the default is packed.
            self.assertIn(b"M", {p[:1] for p in packed})
            self.assertLess(len(packed), 100)
        finally:
            if monitor:
                monitor.close()
            codes = []
            for n in nodes:
                codes.append(n.stop(timeout=10)[0])
                n.cleanup()
            redis.cleanup()
        self.assertEqual(codes, [0, 0], "serve exit codes after SIGTERM")


class Sharded(unittest.TestCase):
    def test_channels_spread_over_two_redis_and_still_reach_every_node(self):
        shards = [RedisServer(), RedisServer()]
        nodes = []
        try:
            urls = [r.url for r in shards]
            nodes = [ServeServer(node_config(urls[0], broker={"urls": urls,
                                                              "key_prefix": "shard:"})),
                     ServeServer(node_config(urls[0], broker={"urls": list(reversed(urls)),
                                                              "key_prefix": "shard:"}))]
            for n in nodes:
                wait_health(n.port, 200)
            names = ["chat:room%d" % i for i in range(20)]

            async def go():
                async with connect_ws(nodes[1].port) as ws:
                    s = Session(ws)
                    for name in names:
                        self.assertIn("result", await s.request("subscribe", channel=name))
                    for i, name in enumerate(names):
                        status, answer = await api_publish_async(
                            nodes[0].port, {"channel": name, "data": i})
                        self.assertEqual((status, answer["offset"]), (200, 1), answer)
                    for i, name in enumerate(names):
                        m = await s.push("message", name)
                        self.assertEqual(m["data"], i)
            run(go())
            # Both shards hold channels (20 names on 2 shards: all on one has p = 2^-19).
            self.assertGreater(redis_dbsize(shards[0].port), 0)
            self.assertGreater(redis_dbsize(shards[1].port), 0)
            status, _, body = http_request(nodes[1].port, "GET", "/api/channels",
                                           headers={"X-API-Key": API_KEY})
            self.assertEqual(status, 200)
            for name in names:
                self.assertIn(('"channel":"%s"' % name).encode(), body)
            for n in nodes:
                n.stop_checked(self)
        finally:
            for n in nodes:
                n.cleanup()
            for r in shards:
                r.cleanup()


class RedisFaults(unittest.TestCase):
    def test_unreachable_at_start_then_healthy(self):
        port = free_port()
        node = ServeServer(node_config("redis://127.0.0.1:%d" % port))
        redis = None
        try:
            # "connecting" first, then why the last attempt failed.
            status, _, body = wait_health(node.port, 503, contains=b"refused")
            self.assertIn(b"redis://127.0.0.1:%d" % port, body)
            status, answer = api_publish(node.port, {"channel": "chat:x", "data": 1})
            self.assertEqual(status, 503, answer)
            self.assertIn("broker unavailable", answer["error"]["message"])

            async def ws_error():
                async with connect_ws(node.port) as ws:
                    r = await Session(ws).request("subscribe", channel="chat:x")
                    self.assertEqual(r["error"]["code"], 503, r)
            run(ws_error())
            redis = RedisServer(port)
            wait_health(node.port, 200, timeout=10)
            status, answer = api_publish(node.port, {"channel": "chat:x", "data": 1})
            self.assertEqual((status, answer["offset"]), (200, 1), answer)
            node.stop_checked(self)
        finally:
            node.cleanup()
            if redis:
                redis.cleanup()

    def test_redis_restarted_empty_new_epoch_nothing_twice(self):
        redis = RedisServer()
        nodes = []
        try:
            nodes = [ServeServer(node_config(redis.url)) for _ in range(2)]
            a, b = nodes[0].port, nodes[1].port
            for n in nodes:
                wait_health(n.port, 200)

            async def go():
                seen = set()

                def note(m):
                    key = (m["epoch"], m["offset"])
                    self.assertNotIn(key, seen, "delivered twice")
                    seen.add(key)

                async def compact_push(session):
                    while True:
                        m = await session.recv()
                        if m.get("m") == "chat:lost":
                            return m

                # A compact subscriber beside the full one: its pushes carry no
                # epoch, so the change must reach it the same way (1012, then
                # recovered: false with the new epoch), with nothing twice.
                async with connect_ws(a) as wa, connect_ws(a, subprotocols=(COMPACT,)) as wc:
                    s, sc = Session(wa), Session(wc)
                    r = await s.request("subscribe", channel="chat:lost")
                    old = r["result"]["epoch"]
                    rc = await sc.request("subscribe", channel="chat:lost")
                    self.assertEqual(rc["result"]["epoch"], old)
                    for i in range(1, 4):
                        status, _ = await api_publish_async(b, {"channel": "chat:lost", "data": i})
                        self.assertEqual(status, 200)
                        note(await s.push("message", "chat:lost"))
                        self.assertEqual(await compact_push(sc), {"m": "chat:lost", "o": i, "d": i})
                    redis.kill()
                    wait_health(a, 503)
                    status, answer = await api_publish_async(b, {"channel": "chat:lost", "data": 9})
                    self.assertEqual(status, 503, answer)
                    redis.start()  # empty: no save, no AOF
                    for port in (a, b):
                        wait_health(port, 200)
                    # Node A finds the stream gone: its subscribers are told to start again.
                    self.assertEqual(await close_code_of(wa, timeout=10), 1012)
                    self.assertEqual(await close_code_of(wc, timeout=10), 1012)
                for m in s.inbox:
                    if m.get("push") == "message":
                        note(m)
                status, answer = await api_publish_async(b, {"channel": "chat:lost", "data": 4})
                self.assertEqual(status, 200)
                new = answer["epoch"]
                self.assertNotEqual(new, old)
                async with connect_ws(random.choice([a, b])) as wa:
                    s = Session(wa)
                    r = await s.request("subscribe", channel="chat:lost",
                                        since={"epoch": old, "offset": 3})
                    res = r["result"]
                    self.assertEqual((res["recovered"], res["reason"], res["epoch"]),
                                     (False, "epoch changed", new), r)
                    self.assertEqual(res["publications"], [])
                    status, answer = await api_publish_async(a, {"channel": "chat:lost", "data": 5})
                    m = await s.push("message", "chat:lost")
                    note(m)
                    self.assertEqual((m["epoch"], m["offset"]), (new, answer["offset"]))
                async with connect_ws(a, subprotocols=(COMPACT,)) as wc:
                    sc = Session(wc)
                    r = await sc.request("subscribe", channel="chat:lost",
                                         since={"epoch": old, "offset": 3})
                    res = r["result"]
                    self.assertEqual((res["recovered"], res["reason"], res["epoch"]),
                                     (False, "epoch changed", new), r)
                    # History of the new epoch, in the short form (what the SDK reloads).
                    h = await sc.request("history", channel="chat:lost")
                    self.assertEqual([(p["o"], p["d"]) for p in h["result"]["publications"]],
                                     [(1, 4), (2, 5)])
                    status, answer = await api_publish_async(b, {"channel": "chat:lost", "data": 6})
                    self.assertEqual(await compact_push(sc),
                                     {"m": "chat:lost", "o": answer["offset"], "d": 6})
            run(go(), timeout=60)
            for n in nodes:
                n.stop_checked(self)
        finally:
            for n in nodes:
                n.cleanup()
            redis.cleanup()


class RedisCrashCycles(unittest.TestCase):
    """A durable Redis (AOF, fsync always) killed -9 and restarted five times while
    publications keep coming through two nodes and 10 subscribers reconnect at random
    with `since`: while Redis is away publications are refused with 503, each time a
    node accepts them again within 20 s of Redis being back, and every client ends
    with every offset exactly once, in order."""

    def test_publications_resume_after_every_crash_exactly_once(self):
        redis = RedisServer(durable=True)
        nodes = []
        try:
            nodes = [ServeServer(node_config(redis.url)) for _ in range(2)]
            for n in nodes:
                wait_health(n.port, 200)
            total, clients, channel, crashes = 500, 10, "chat:crash", 5
            rng = random.Random(5)
            offsets = []  # every acknowledged offset, in order
            stats = {"refused": 0, "last_refusal": None, "resumed_after": [], "reconnects": 0,
                     "closes": []}

            async def go():
                done = asyncio.Event()
                subscribed = set()
                everyone_in = asyncio.Event()

                async def client(idx):
                    def subscribed_once():
                        subscribed.add(idx)
                        if len(subscribed) == clients:
                            everyone_in.set()
                    got = await recovering_subscriber(self, lambda: nodes[rng.randrange(2)].port,
                                                      channel, done, subscribed_once, rng, 100,
                                                      stats)
                    self.assertEqual(got, offsets, "client %d" % idx)

                async def crash():
                    redis.kill()
                    await asyncio.sleep(rng.uniform(0, 0.5))
                    # Started off the event loop: publications go on meanwhile.
                    await asyncio.get_running_loop().run_in_executor(None, redis.start)
                    return time.monotonic()

                async def publisher():
                    await everyone_in.wait()
                    restarted = None
                    for i in range(1, total + 1):
                        if i % (total // (crashes + 1)) == 0 and len(stats["resumed_after"]) < crashes:
                            restarted = asyncio.ensure_future(crash())
                        n = nodes[i % 2]
                        while True:
                            status, answer = await api_publish_async(n.port, {"channel": channel,
                                                                              "data": i})
                            if status == 200:
                                break
                            self.assertEqual(status, 503, answer)
                            stats["refused"] += 1
                            stats["last_refusal"] = (n.port, answer)
                            if restarted and restarted.done():
                                self.assertLess(time.monotonic() - restarted.result(), slow(20),
                                                "publication %d refused for 20 s after Redis came "
                                                "back, by the node on port %d: %r"
                                                % (i, n.port, answer))
                            await asyncio.sleep(0.05)
                        if restarted and restarted.done():
                            stats["resumed_after"].append(time.monotonic() - restarted.result())
                            restarted = None
                        self.assertGreater(answer["offset"], offsets[-1] if offsets else 0)
                        offsets.extend(range(offsets[-1] + 1 if offsets else 1,
                                             answer["offset"] + 1))
                        await asyncio.sleep(0.002)
                    done.set()

                await asyncio.gather(publisher(), *(client(i) for i in range(clients)))
            run_describing(go(), 120, redis, nodes, stats)
            print("redis crash cycles: %d offsets, %d refusals, accepted again %s s after each "
                  "restart" % (len(offsets), stats["refused"],
                               ["%.2f" % t for t in stats["resumed_after"]]), file=sys.stderr)
            self.assertEqual(len(stats["resumed_after"]), crashes)
            self.assertGreater(stats["refused"], 0, "no publication met Redis away")
            self.assertGreaterEqual(len(offsets), total)
            self.assertEqual(offsets[-1], len(offsets))
            for n in nodes:
                n.stop_checked(self)
        finally:
            for n in nodes:
                n.cleanup()
            redis.cleanup()


if __name__ == "__main__":
    harness.main()
