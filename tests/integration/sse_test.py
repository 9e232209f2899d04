#!/usr/bin/python3
"""The HTTP transports of `switchboard serve` from the outside, against
docs/protocol.md ("HTTP transports"): GET /sse for a bare EventSource and the
HTTP sessions of /rt/session (SSE or long-poll down, POST batches up).

The clients are raw sockets (an SSE reader that undoes chunked framing and
splits events the way the HTML standard's EventSource does) and http.client,
so nothing here depends on an SSE library. Each group starts its own server
(serve_test.ServeServer: a temp config, 127.0.0.1, a kernel-chosen port) and
stops it with SIGTERM expecting exit 0.

Covered: stream headers, the retry hint and its jitter range, subscribed /
error / publication events, ids with every channel's position, heartbeats at
a short configured interval, Last-Event-ID across channels exactly once (also
across a restart with a snapshot, and as ?last_event_id=), recovered:false
past history, 401/403 before the stream, Origin as /ws, max_connections,
max_connections_per_ip and handshake_rate per (forwarded) client address,
the rate and size limits of a session, session expiry, a POST batch with a bad
line, long-poll timeout and delivery, stream resume from a session's buffer,
and drain (SIGTERM -> event: reconnect).

Usage: /usr/bin/python3 sse_test.py <path to switchboard>
"""

import http.client
import json
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import serve_test as st  # noqa: E402  (its helpers; its test classes stay there)

slow = st.slow
token = st.token


def config(**overrides):
    sections = st.base_config(**overrides)
    sections.setdefault("api", {})["key"] = st.API_KEY
    return sections


class SseReader:
    """One HTTP request on a raw socket whose answer is read as a stream:
    the head, then (for 200 text/event-stream) SSE events as they arrive."""

    def __init__(self, port, path, headers=None, method="GET", body=b""):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=slow(5))
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1:%d" % port]
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        if body:
            lines.append("Content-Length: %d" % len(body))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        self.raw = b""      # bytes read, not yet decoded
        self.text = ""      # decoded body text not yet split into events
        self.chunked = False
        self.ended = False  # the body is over (last chunk or EOF)
        head = self._read_until(b"\r\n\r\n", slow(5))
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split(" ")[1])
        self.headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        if "content-length" in self.headers:
            n = int(self.headers["content-length"])
            while len(self.raw) < n:
                self._recv(slow(5))
            self.body = self.raw[:n]
            self.raw = self.raw[n:]
            self.ended = True

    def close(self):
        self.sock.close()

    def json(self):
        return json.loads(self.body)

    def _recv(self, timeout):
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            raise TimeoutError("nothing within %.1fs" % timeout)
        data = self.sock.recv(65536)
        if not data:
            self.ended = True
            raise EOFError("connection closed")
        self.raw += data

    def _read_until(self, marker, timeout):
        deadline = time.monotonic() + timeout
        while marker not in self.raw:
            self._recv(max(0.01, deadline - time.monotonic()))
        head, _, self.raw = self.raw.partition(marker)
        return head

    def _decode(self):
        """Moves complete body bytes from raw to text."""
        if not self.chunked:
            self.text += self.raw.decode()
            self.raw = b""
            return
        while True:
            line_end = self.raw.find(b"\r\n")
            if line_end < 0:
                return
            size = int(self.raw[:line_end].split(b";")[0], 16)
            if len(self.raw) < line_end + 2 + size + 2:
                return
            chunk = self.raw[line_end + 2:line_end + 2 + size]
            assert self.raw[line_end + 2 + size:line_end + 4 + size] == b"\r\n"
            self.raw = self.raw[line_end + 4 + size:]
            if size == 0:
                self.ended = True
                return
            self.text += chunk.decode()

    def event(self, timeout=5.0):
        """The next event or comment: {'event','id','data','retry','comment'}
        (absent fields missing). Raises TimeoutError / EOFError."""
        deadline = time.monotonic() + slow(timeout)
        while True:
            self._decode()
            if "\n\n" in self.text:
                block, _, self.text = self.text.partition("\n\n")
                out = {}
                data = []
                for line in block.split("\n"):
                    if line.startswith(":"):
                        out["comment"] = line[1:].strip()
                        continue
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data":
                        data.append(value)
                    else:
                        out[name] = value
                if data:
                    out["data"] = "\n".join(data)
                return out
            if self.ended:
                raise EOFError("stream over")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no event within %.1fs (have %r)" % (timeout, self.text))
            try:
                self._recv(left)
            except EOFError:
                self._decode()
                if "\n\n" not in self.text:
                    raise

    def events_until(self, pred, timeout=5.0, skip_comments=True):
        """Events up to and including the first for which pred(e) is true."""
        out = []
        deadline = time.monotonic() + slow(timeout)
        while True:
            e = self.event(max(0.05, (deadline - time.monotonic()) / harness.SLOW))
            if skip_comments and set(e) == {"comment"}:
                continue
            out.append(e)
            if pred(e):
                return out

    def quiet(self, seconds):
        """Asserts that no event but comments and presence comes within `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                e = self.event(left / harness.SLOW)
            except TimeoutError:
                return
            if set(e) != {"comment"} and e.get("event") != "presence":
                raise AssertionError("unexpected event %r" % e)


def auth(tok=None):
    return {"Authorization": "Bearer " + (tok or token())}


def publish(port, channel, data):
    status, answer = st.api_publish(port, {"channel": channel, "data": data})
    assert status == 200, (status, answer)
    return answer["offset"]


def post(port, path, body=None, headers=None):
    status, hdrs, raw = st.http_request(port, "POST", path, body, headers)
    return status, (json.loads(raw) if raw else None)


def open_session(port, headers=None, body=None):
    status, answer = post(port, "/rt/session", body, headers if headers is not None else auth())
    assert status == 201, (status, answer)
    return answer["session"]


def send(port, sid, *lines):
    body = "\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines)
    return post(port, "/rt/session/%s/send" % sid, body.encode())


def messages(reader, n, timeout=5.0):
    """n `message` events of a session stream: [(seq, parsed JSON)]."""
    out = []
    while len(out) < n:
        e = reader.events_until(lambda e: e.get("event") == "message", timeout)[-1]
        out.append((int(e["id"]), json.loads(e["data"])))
    return out


class SseCase(unittest.TestCase):
    CONFIG = {}

    @classmethod
    def setUpClass(cls):
        cls.server = st.ServeServer(config(**cls.CONFIG))

    @classmethod
    def tearDownClass(cls):
        try:
            code, _ = cls.server.stop(timeout=10)
            if code != 0:
                raise AssertionError("serve exited with %r after SIGTERM\n%s"
                                     % (code, cls.server.stderr_text()))
        finally:
            cls.server.cleanup()

    def setUp(self):
        self.assertTrue(self.server.alive(), self.server.stderr_text())
        self.readers = []

    def tearDown(self):
        for r in self.readers:
            r.close()

    def sse(self, path, headers=None, **kw):
        r = SseReader(self.server.port, path, headers, **kw)
        self.readers.append(r)
        return r

    def subscribed(self, r, n):
        """The retry hint, then n subscribed/error events: (retry, {channel: event})."""
        first = r.event()
        self.assertIn("retry", first)
        got = {}
        while len(got) < n:
            e = r.events_until(lambda e: e.get("event") in ("subscribed", "error"))[-1]
            got[json.loads(e["data"])["channel"]] = e
        return int(first["retry"]), got


class Stream(SseCase):
    CONFIG = {"sse": {"heartbeat": 0.3, "retry": 1}}

    def test_headers_retry_subscribed_and_publication_ids(self):
        r = self.sse("/sse?channel=chat:h1&channel=chat:h2", auth())
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["content-type"].startswith("text/event-stream"))
        self.assertEqual(r.headers["cache-control"], "no-cache")
        self.assertEqual(r.headers["x-accel-buffering"], "no")
        retry, subs = self.subscribed(r, 2)
        self.assertTrue(1000 <= retry < 2000, retry)  # [retry, 2 retry)
        a = json.loads(subs["chat:h1"]["data"])
        b = json.loads(subs["chat:h2"]["data"])
        self.assertNotIn("recovered", a)  # no position asked for
        offset = publish(self.server.port, "chat:h2", {"n": 1})
        e = r.events_until(lambda e: e.get("event") == "publication")[-1]
        push = json.loads(e["data"])
        self.assertEqual(push, {"push": "message", "channel": "chat:h2", "epoch": b["epoch"],
                                "offset": offset, "data": {"n": 1}})
        self.assertEqual(e["id"], "%s:%d,%s:%d" % (a["epoch"], a["offset"], b["epoch"], offset))

    def test_heartbeat_comments_at_the_configured_interval(self):
        r = self.sse("/sse?channel=chat:hb", auth())
        self.subscribed(r, 1)
        start = time.monotonic()
        e = r.event(timeout=3)
        while e.get("event") == "presence":  # our own join
            e = r.event(timeout=3)
        self.assertEqual(e, {"comment": "hb"})
        self.assertLess(time.monotonic() - start, slow(2))

    def test_last_event_id_recovers_every_channel_exactly_once(self):
        port = self.server.port
        r = self.sse("/sse?channel=chat:r1&channel=chat:r2", auth())
        self.subscribed(r, 2)
        publish(port, "chat:r1", "a1")
        publish(port, "chat:r2", "b1")
        last = r.events_until(lambda e: json.loads(e.get("data", "{}")).get("data") == "b1")[-1]
        r.close()
        missed = [("chat:r1", "a2"), ("chat:r2", "b2"), ("chat:r1", "a3")]
        for ch, d in missed:
            publish(port, ch, d)
        for how in ("header", "query"):
            if how == "header":
                r2 = self.sse("/sse?channel=chat:r1&channel=chat:r2",
                              dict(auth(), **{"Last-Event-ID": last["id"]}))
            else:
                r2 = self.sse("/sse?channel=chat:r1&channel=chat:r2&last_event_id="
                              + last["id"].replace(":", "%3A").replace(",", "%2C"), auth())
            self.assertEqual(r2.status, 200)
            self.assertIn("retry", r2.event())
            got = []
            subs = 0
            while subs < 2 or len(got) < 3:
                e = r2.events_until(lambda e: "event" in e)[-1]
                if e["event"] == "subscribed":
                    subs += 1
                    self.assertIs(json.loads(e["data"])["recovered"], True)
                elif e["event"] == "publication":
                    p = json.loads(e["data"])
                    got.append((p["channel"], p["data"]))
            self.assertEqual(sorted(got), sorted(missed))
            r2.quiet(0.5)  # nothing twice

    def test_no_gap_no_duplicate_while_publishing(self):
        """Subscribing while publications flow: every offset after the one
        `subscribed` reports arrives once, in order (the hub holds pushes while
        the read is in flight)."""
        import threading
        port = self.server.port
        stop = threading.Event()

        def flood():
            for i in range(400):
                if stop.is_set():
                    return
                publish(port, "chat:flow", i)
        t = threading.Thread(target=flood)
        t.start()
        try:
            time.sleep(0.05)
            readers = [self.sse("/sse?channel=chat:flow", auth()) for _ in range(3)]
        finally:
            t.join(timeout=slow(60))
            stop.set()
        _, _, raw = st.http_request(port, "GET", "/api/channels", headers={"X-API-Key": st.API_KEY})
        last = [c for c in json.loads(raw)["channels"] if c["channel"] == "chat:flow"][0]["offset"]
        for r in readers:
            _, subs = self.subscribed(r, 1)
            start = json.loads(subs["chat:flow"]["data"])["offset"]
            offsets = []
            while start + len(offsets) < last:
                e = r.events_until(lambda e: e.get("event") == "publication", timeout=10)[-1]
                offsets.append(json.loads(e["data"])["offset"])
            self.assertEqual(offsets, list(range(start + 1, last + 1)))
            r.quiet(0.2)

    def test_recovered_false_past_history(self):
        port = self.server.port
        r = self.sse("/sse?channel=short:x", auth())
        _, subs = self.subscribed(r, 1)
        first = subs["short:x"]
        r.close()
        for i in range(6):  # history_size 3 in namespace short
            publish(port, "short:x", i)
        r2 = self.sse("/sse?channel=short:x", dict(auth(), **{"Last-Event-ID": first["id"]}))
        _, subs = self.subscribed(r2, 1)
        d = json.loads(subs["short:x"]["data"])
        self.assertIs(d["recovered"], False)
        self.assertIn("reason", d)
        r2.quiet(0.3)  # no publications pretending to recover

    def test_refusals_before_the_stream(self):
        port = self.server.port
        cases = [
            ("/sse?channel=chat:a", {}, 401),                                   # no token
            ("/sse?channel=chat:a", auth("not.a.token"), 401),                  # bad token
            ("/sse?channel=chat:a", dict(auth(), Origin="https://evil.example"), 403),
            ("/sse", auth(), 400),                                              # no channel
            ("/sse?channel=bad%20name", auth(), 400),
            ("/sse?channel=chat:a&colour=red", auth(), 400),
            ("/sse?channel=chat:a", dict(auth(), **{"Last-Event-ID": "x:1,y:2"}), 400),
            ("/sse?channel=chat:a", dict(auth(), **{"Last-Event-ID": "zz"}), 400),
        ]
        for path, headers, status in cases:
            r = self.sse(path, headers)
            self.assertEqual(r.status, status, (path, headers, r.body))
            self.assertEqual(r.headers["content-type"], "application/json")
            self.assertEqual(r.json()["error"]["code"], status)

    def test_same_origin_is_allowed_and_a_denied_channel_is_an_error_event(self):
        port = self.server.port
        tok = token(channels=["chat:mine"])
        r = self.sse("/sse?channel=chat:mine&channel=chat:other",
                     dict(auth(tok), Origin="http://127.0.0.1:%d" % port))
        self.assertEqual(r.status, 200)
        _, subs = self.subscribed(r, 2)
        self.assertEqual(subs["chat:mine"]["event"], "subscribed")
        self.assertEqual(subs["chat:other"]["event"], "error")
        self.assertEqual(json.loads(subs["chat:other"]["data"])["code"], 403)

    def test_one_channel_stream_ids_recovery_and_live_exactly_once(self):
        """A stream of one channel (a server connection, sse_peer.hpp): its ids
        are that channel's position; Last-Event-ID recovers what it missed
        (the `subscribed` id is the position it resumes from), then live
        publications follow, each once; it is no WebSocket connection."""
        port = self.server.port
        r = self.sse("/sse?channel=chat:one", auth())
        _, subs = self.subscribed(r, 1)
        s = json.loads(subs["chat:one"]["data"])
        self.assertEqual(subs["chat:one"]["id"], "%s:%d" % (s["epoch"], s["offset"]))
        o1 = publish(port, "chat:one", "x1")
        e1 = r.events_until(lambda e: e.get("event") == "publication")[-1]
        self.assertEqual(e1["id"], "%s:%d" % (s["epoch"], o1))
        m = st.metric_samples(port)
        self.assertEqual(m["switchboard_connections"], 0)
        self.assertGreaterEqual(m["switchboard_sse_streams"], 1)
        r.close()
        missed = [publish(port, "chat:one", d) for d in ("x2", "x3")]
        r2 = self.sse("/sse?channel=chat:one", dict(auth(), **{"Last-Event-ID": e1["id"]}))
        _, subs = self.subscribed(r2, 1)
        self.assertIs(json.loads(subs["chat:one"]["data"])["recovered"], True)
        self.assertEqual(subs["chat:one"]["id"], e1["id"])
        got = []
        for _ in missed:
            e = r2.events_until(lambda e: e.get("event") == "publication")[-1]
            got.append((e["id"], json.loads(e["data"])["data"]))
        self.assertEqual(got, [("%s:%d" % (s["epoch"], o), d) for o, d in zip(missed, ("x2", "x3"))])
        o4 = publish(port, "chat:one", "x4")
        e = r2.events_until(lambda e: e.get("event") == "publication")[-1]
        self.assertEqual((e["id"], json.loads(e["data"])["data"]), ("%s:%d" % (s["epoch"], o4), "x4"))
        r2.quiet(0.3)  # nothing twice

    def test_metrics_count_streams_and_sessions(self):
        r = self.sse("/sse?channel=chat:m", auth())
        self.subscribed(r, 1)
        open_session(self.server.port)
        m = st.metric_samples(self.server.port)
        self.assertGreaterEqual(m["switchboard_sse_streams"], 1)
        self.assertGreaterEqual(m["switchboard_http_sessions"], 1)
        self.assertGreaterEqual(m['switchboard_transport_opens_total{transport="sse"}'], 1)


class Restart(unittest.TestCase):
    """Last-Event-ID across a restart: the snapshot keeps the epochs."""

    def test_last_event_id_across_a_restart(self):
        d = tempfile.mkdtemp(prefix="switchboard-sse-test-")
        try:
            cfg = config(history={"snapshot_file": os.path.join(d, "snap")})
            server = st.ServeServer(cfg)
            try:
                r = SseReader(server.port, "/sse?channel=chat:s1&channel=chat:s2", auth())
                first = r.event()
                self.assertIn("retry", first)
                publish(server.port, "chat:s1", "before")
                last = r.events_until(lambda e: e.get("event") == "publication")[-1]
                r.close()
                publish(server.port, "chat:s2", "missed")
                server.stop_checked(self)
            finally:
                server.cleanup()
            server = st.ServeServer(cfg)
            try:
                r = SseReader(server.port, "/sse?channel=chat:s1&channel=chat:s2",
                              dict(auth(), **{"Last-Event-ID": last["id"]}))
                self.assertEqual(r.status, 200)
                got, recovered = [], []
                while len(recovered) < 2 or not got:
                    e = r.events_until(lambda e: e.get("event") in ("subscribed", "publication"))[-1]
                    data = json.loads(e["data"])
                    if e["event"] == "subscribed":
                        recovered.append(data["recovered"])
                    else:
                        got.append(data["data"])
                self.assertEqual(recovered, [True, True])
                self.assertEqual(got, ["missed"])
                r.quiet(0.3)
                r.close()
                server.stop_checked(self)
            finally:
                server.cleanup()
        finally:
            shutil.rmtree(d, ignore_errors=True)


class Sessions(SseCase):
    CONFIG = {"sse": {"poll_timeout": 1, "session_idle_timeout": 1.5, "heartbeat": 5},
              "limits": {"command_rate": 5, "command_burst": 5, "rate_limit_close": 1000,
                         "max_message_size": 2048, "max_publication_size": 1024}}

    def test_batch_with_a_bad_line_replies_in_order_down_the_stream(self):
        port = self.server.port
        sid = open_session(port)
        self.assertRegex(sid, r"^[0-9a-f]{16}\.[0-9a-f]{32}$")  # <node>.<random>
        r = self.sse("/rt/session/%s/stream" % sid)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["x-accel-buffering"], "no")
        self.assertIn("retry", r.event())
        status, answer = send(port, sid,
                              {"id": 1, "cmd": "subscribe", "channel": "chat:s"},
                              "this is not json",
                              {"id": 3, "cmd": "publish", "channel": "chat:s", "data": "hi"})
        self.assertEqual((status, answer), (202, {"accepted": 3}))
        got = messages(r, 4)
        self.assertEqual([seq for seq, _ in got], [1, 2, 3, 4])
        by_kind = [m for _, m in got]
        self.assertEqual(by_kind[0]["id"], 1)
        self.assertIn("result", by_kind[0])
        self.assertEqual(by_kind[1]["error"]["code"], 400)
        rest = by_kind[2:]
        self.assertTrue(any(m.get("id") == 3 and "result" in m for m in rest), rest)
        self.assertTrue(any(m.get("push") == "message" and m["data"] == "hi" for m in rest), rest)

    def test_limits_rate_and_size(self):
        port = self.server.port
        sid = open_session(port)
        r = self.sse("/rt/session/%s/stream" % sid)
        r.event()
        status, answer = send(port, sid, *[{"id": i, "cmd": "ping"} for i in range(1, 9)])
        self.assertEqual(status, 202)
        got = [m for _, m in messages(r, 8)]
        codes = [m.get("error", {}).get("code") for m in got]
        self.assertEqual(codes[:5], [None] * 5)  # the burst
        self.assertIn(429, codes[5:])
        big = {"id": 0, "cmd": "publish", "channel": "chat:big", "data": "x" * 1500}
        status, answer = send(port, sid, {"id": 9, "cmd": "subscribe", "channel": "chat:big"})
        time.sleep(1.2)  # the bucket refills
        status, answer = send(port, sid, big)
        self.assertEqual(status, 202)
        replies = [m for _, m in messages(r, 2)]
        self.assertEqual(replies[-1]["error"]["code"], 413)  # over max_publication_size
        status, _, _ = st.http_request(port, "POST", "/rt/session/%s/send" % sid, b"x" * 5000)
        self.assertEqual(status, 413)  # the body over limits.max_message_size

    def test_long_poll_times_out_empty_and_delivers(self):
        port = self.server.port
        sid = open_session(port)
        start = time.monotonic()
        status, _, raw = st.http_request(port, "GET", "/rt/session/%s/poll" % sid)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(raw), {"messages": []})
        self.assertGreaterEqual(time.monotonic() - start, 0.9)
        send(port, sid, {"id": 7, "cmd": "ping"})
        status, _, raw = st.http_request(port, "GET", "/rt/session/%s/poll?after=0" % sid)
        msgs = json.loads(raw)["messages"]
        self.assertEqual(msgs[0]["seq"], 1)
        self.assertEqual(json.loads(msgs[0]["data"]), {"id": 7, "result": {}})
        # A held poll is answered as soon as something arrives.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=slow(5))
        try:
            conn.request("GET", "/rt/session/%s/poll?after=1" % sid)
            time.sleep(0.2)
            send(port, sid, {"id": 8, "cmd": "ping"})
            start = time.monotonic()
            resp = conn.getresponse()
            msgs = json.loads(resp.read())["messages"]
            self.assertLess(time.monotonic() - start, slow(0.8))
            self.assertEqual([m["seq"] for m in msgs], [2])
        finally:
            conn.close()

    def test_stream_resumes_from_the_buffer_without_loss_or_duplicates(self):
        port = self.server.port
        sid = open_session(port)
        r = self.sse("/rt/session/%s/stream" % sid)
        r.event()
        send(port, sid, {"id": 1, "cmd": "ping"}, {"id": 2, "cmd": "ping"})
        got = messages(r, 2)
        r.close()
        send(port, sid, {"id": 3, "cmd": "ping"})
        time.sleep(0.1)
        r2 = self.sse("/rt/session/%s/stream" % sid, {"Last-Event-ID": str(got[-1][0])})
        r2.event()
        more = messages(r2, 1)
        self.assertEqual(more, [(3, {"id": 3, "result": {}})])
        r2.quiet(0.3)

    def test_session_expires_without_downstream_and_unknown_is_404(self):
        port = self.server.port
        sid = open_session(port)
        time.sleep(slow(2.2))
        status, _, raw = st.http_request(port, "GET", "/rt/session/%s/poll" % sid)
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(raw)["error"]["message"], "session_not_found")
        for method, path in (("POST", "/rt/session/nope/send"), ("DELETE", "/rt/session/nope"),
                             ("GET", "/rt/session/nope/stream"), ("GET", "/rt/nothing")):
            status, _, _ = st.http_request(port, method, path)
            self.assertEqual(status, 404, path)
        # A well-formed id of this node that is gone is session_not_found; one
        # of another node says why this node cannot reach it (the memory broker).
        gone = sid.split(".")[0] + "." + "0" * 32
        status, _, raw = st.http_request(port, "POST", "/rt/session/%s/send" % gone, b"{}")
        self.assertEqual((status, json.loads(raw)["error"]["message"]), (404, "session_not_found"))
        other = ("f" if sid[0] != "f" else "e") + sid[1:16] + "." + "0" * 32
        for method, path in (("POST", "/rt/session/%s/send" % other),
                             ("GET", "/rt/session/%s/poll" % other),
                             ("GET", "/rt/session/%s/stream" % other),
                             ("DELETE", "/rt/session/%s" % other)):
            status, _, raw = st.http_request(port, method, path)
            self.assertEqual(status, 404, path)
            self.assertEqual(json.loads(raw)["error"]["message"],
                             "session_not_found: this node does not hold the session and the "
                             "embedded memory broker cannot reach other nodes (use sticky "
                             "sessions or the Redis broker)", path)

    def test_delete_closes_and_presence_leaves(self):
        port = self.server.port
        sid = open_session(port)
        send(port, sid, {"id": 1, "cmd": "subscribe", "channel": "chat:del"})
        status, _, _ = st.http_request(port, "GET", "/rt/session/%s/poll" % sid)
        watcher = open_session(port, auth(token(sub="watcher")))
        send(port, watcher, {"id": 1, "cmd": "subscribe", "channel": "chat:del"},
             {"id": 2, "cmd": "presence", "channel": "chat:del"})
        status, _, raw = st.http_request(port, "GET", "/rt/session/%s/poll" % watcher)
        replies = [json.loads(m["data"]) for m in json.loads(raw)["messages"]]
        presence = [m for m in replies if m.get("id") == 2][0]
        self.assertEqual(presence["result"]["count"], 2)
        status, _, _ = st.http_request(port, "DELETE", "/rt/session/%s" % sid)
        self.assertEqual(status, 204)
        status, _, _ = st.http_request(port, "GET", "/rt/session/%s/poll" % sid)
        self.assertEqual(status, 404)
        send(port, watcher, {"id": 3, "cmd": "presence", "channel": "chat:del"})
        deadline = time.monotonic() + slow(3)
        seen = 1
        while time.monotonic() < deadline:
            status, _, raw = st.http_request(port, "GET",
                                             "/rt/session/%s/poll?after=%d" % (watcher, seen))
            msgs = json.loads(raw)["messages"]
            if msgs:
                seen = msgs[-1]["seq"]
            if any(json.loads(m["data"]).get("id") == 3 for m in msgs):
                reply = [json.loads(m["data"]) for m in msgs
                         if json.loads(m["data"]).get("id") == 3][0]
                self.assertEqual(reply["result"]["count"], 1)
                break
        else:
            self.fail("no presence reply")

    def test_session_needs_connect_without_a_token(self):
        port = self.server.port
        status, answer = post(port, "/rt/session", None, {})
        self.assertEqual(status, 201)  # as /ws: connect comes later
        sid = answer["session"]
        send(port, sid, {"id": 1, "cmd": "subscribe", "channel": "chat:x"},
             {"id": 2, "cmd": "connect", "token": token()})
        status, _, raw = st.http_request(port, "GET", "/rt/session/%s/poll" % sid)
        replies = [json.loads(m["data"]) for m in json.loads(raw)["messages"]]
        self.assertEqual(replies[0]["error"]["code"], 401)
        self.assertEqual(replies[1]["id"], 2)
        self.assertIn("client", replies[1]["result"])
        status, answer = post(port, "/rt/session", {"token": "bad"}, {})
        self.assertEqual(status, 401)


class ServerApi(SseCase):
    """The server API's actions (docs/protocol.md, "Server API") on HTTP
    sessions as on /ws connections; a GET /sse stream keeps its query's
    channels but is disconnected like any client."""
    CONFIG = {"sse": {"heartbeat": 5}}

    def api(self, method, body):
        status, _, raw = st.http_request(self.server.port, "POST", "/api/" + method, body,
                                         {"Content-Type": "application/json",
                                          "X-API-Key": st.API_KEY})
        self.assertEqual(status, 200, raw)

    def test_subscribe_unsubscribe_and_disconnect_reach_http_clients(self):
        port = self.server.port
        sid = open_session(port, auth(token(sub="api-user")))
        s = self.sse("/rt/session/%s/stream" % sid)
        self.assertIn("retry", s.event())
        r = self.sse("/sse?channel=chat:api-own", auth(token(sub="api-user")))
        self.subscribed(r, 1)

        self.api("subscribe", {"user": "api-user", "channel": "chat:api"})
        [(_, push)] = messages(s, 1)
        self.assertEqual((push["push"], push["channel"]), ("subscribe", "chat:api"))
        offset = publish(port, "chat:api", {"n": 1})
        [(_, msg)] = messages(s, 1)
        self.assertEqual((msg["push"], msg["channel"], msg["offset"], msg["data"]),
                         ("message", "chat:api", offset, {"n": 1}))
        # The /sse stream of the same user was left as it is: its next
        # publication is its own channel's, not chat:api's.
        publish(port, "chat:api-own", {"n": 2})
        e = r.events_until(lambda e: e.get("event") == "publication")[-1]
        self.assertEqual(json.loads(e["data"])["channel"], "chat:api-own")

        self.api("unsubscribe", {"user": "api-user", "channel": "chat:api"})
        [(_, push)] = messages(s, 1)
        self.assertEqual(push, {"push": "unsubscribe", "channel": "chat:api",
                                "reason": "unsubscribed by the server"})
        publish(port, "chat:api", {"n": 3})

        self.api("disconnect", {"user": "api-user", "code": 4000, "reason": "bye"})
        for reader in (s, r):
            e = reader.events_until(lambda e: e.get("event") in ("message", "close"))[-1]
            self.assertEqual(json.loads(e["data"]),
                             {"push": "close", "code": 4000, "reason": "bye"})
        status, _, _ = st.http_request(port, "GET", "/rt/session/%s/poll" % sid)
        self.assertEqual(status, 404)


class Limits(SseCase):
    CONFIG = {"server": {"max_connections": 3}}

    def test_max_connections_counts_streams_and_sessions(self):
        port = self.server.port
        a = self.sse("/sse?channel=chat:a", auth())
        self.assertEqual(a.status, 200)
        open_session(port)
        refused = None
        for _ in range(3):
            r = self.sse("/sse?channel=chat:a", auth())
            if r.status != 200:
                refused = r
                break
        self.assertIsNotNone(refused)
        self.assertEqual(refused.status, 503)


class PerAddress(SseCase):
    """limits.max_connections_per_ip and handshake_rate / handshake_burst count
    GET /sse and session creation per client address, as for /ws (the
    forwarded address: 127.0.0.1 is a trusted proxy here)."""
    CONFIG = {"server": {"trusted_proxies": ["127.0.0.1"]},
              "limits": {"max_connections_per_ip": 2, "handshake_rate": 0.2,
                         "handshake_burst": 8}}

    def via(self, address):
        h = auth()
        h["X-Forwarded-For"] = address
        return h

    def test_open_streams_and_sessions_count_per_address(self):
        port = self.server.port
        a = self.sse("/sse?channel=chat:ip", self.via("10.1.0.1"))
        self.assertEqual(a.status, 200)
        sid = open_session(port, self.via("10.1.0.1"))
        refused = self.sse("/sse?channel=chat:ip", self.via("10.1.0.1"))
        self.assertEqual(refused.status, 429)
        self.assertEqual(refused.json()["error"]["message"],
                         "too many connections from this address (limits.max_connections_per_ip)")
        status, answer = post(port, "/rt/session", None, self.via("10.1.0.1"))
        self.assertEqual((status, answer["error"]["code"]), (429, 429))
        # /ws counts against the same address.
        ws = st.http_request(port, "GET", "/ws", None, dict(self.via("10.1.0.1"), **{
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}))
        self.assertEqual(ws[0], 429)
        # Another address is not affected.
        self.assertEqual(self.sse("/sse?channel=chat:ip", self.via("10.1.0.2")).status, 200)
        # A closed session gives its place back (and so does a closed stream).
        status, _, _ = st.http_request(port, "DELETE", "/rt/session/%s" % sid)
        self.assertEqual(status, 204)
        open_session(port, self.via("10.1.0.1"))
        a.close()
        time.sleep(slow(1))  # the server notices the closed stream
        r = self.sse("/sse?channel=chat:ip", self.via("10.1.0.1"))
        self.assertEqual(r.status, 200, getattr(r, "body", b""))

    def test_creation_rate_per_address(self):
        port = self.server.port
        for _ in range(8):
            sid = open_session(port, self.via("10.2.0.1"))
            status, _, _ = st.http_request(port, "DELETE", "/rt/session/%s" % sid)
            self.assertEqual(status, 204)
        status, answer = post(port, "/rt/session", None, self.via("10.2.0.1"))
        self.assertEqual(status, 429)
        self.assertEqual(answer["error"]["message"],
                         "too many connection attempts from this address (limits.handshake_rate)")
        r = self.sse("/sse?channel=chat:ip", self.via("10.2.0.1"))
        self.assertEqual(r.status, 429)
        # Another address starts with a full bucket.
        self.assertEqual(self.sse("/sse?channel=chat:ip", self.via("10.2.0.2")).status, 200)


class Drain(unittest.TestCase):
    def test_sigterm_sends_reconnect_then_ends(self):
        server = st.ServeServer(config())
        try:
            r = SseReader(server.port, "/sse?channel=chat:d", auth())
            r.event()
            sid = open_session(server.port)
            s = SseReader(server.port, "/rt/session/%s/stream" % sid)
            s.event()
            r.events_until(lambda e: e.get("event") == "subscribed")
            server.send_signal(signal.SIGTERM)
            e = r.events_until(lambda e: e.get("event") not in (None, "presence"))[-1]
            self.assertEqual(e["event"], "reconnect")
            events = s.events_until(lambda e: e.get("event") == "reconnect")
            close = json.loads(events[-2]["data"])
            self.assertEqual(close["push"], "close")
            self.assertEqual(close["code"], 1012)
            for reader in (r, s):
                with self.assertRaises(EOFError):
                    reader.event(timeout=5)
                reader.close()
            self.assertEqual(server.wait(slow(10)), 0, server.stderr_text())
        finally:
            server.cleanup()


if __name__ == "__main__":
    harness.main()
