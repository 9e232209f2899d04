#!/usr/bin/python3
"""`switchboard sub` and `switchboard pub` (the C++ realtime client) against a
`switchboard serve` process started with a temporary config on a run-time port.

Covered: sub prints what pub publishes (WebSocket with an HS256 token, and the
HTTP API with --api-key), one JSON line each with channel, epoch, offset and
data; --string; --history and --since; --presence joins and leaves; recovery
across a serve restart with the snapshot file (every publication once, in
order, same epoch); the error exits with their reason (bad token, channel not
granted, not JSON, invalid channel name, connection refused, bad API key, bad
--since) and --help. `pub --api-key` keeps one HTTP connection for every line
while the server keeps it alive and opens a new one when it answers
"Connection: close" (against a python HTTP/1.1 server that counts its
connections), and speaks https:// to a TLS serve (CA file checked; an
unknown CA refused with the reason; --insecure-skip-verify).

Usage: /usr/bin/python3 pubsub_test.py <path to switchboard>
"""

import http.server
import json
import os
import threading
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from serve_test import API_KEY, ServeServer, base_config, slow, token  # noqa: E402


def config(**overrides):
    sections = base_config(api={"key": API_KEY}, **overrides)
    sections["namespaces.secret"] = {}
    return sections


class Process:
    """A `switchboard sub|pub ...` child whose stdout lines and stderr are
    read with deadlines."""

    def __init__(self, *args, stdin=subprocess.DEVNULL):
        self.argv = [harness.BINARY_PATH] + [str(a) for a in args]
        self.proc = subprocess.Popen(self.argv, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = b""
        self.err = b""

    def _pump(self, timeout):
        streams = [s for s in (self.proc.stdout, self.proc.stderr) if s and not s.closed]
        if not streams:
            time.sleep(timeout)
            return False
        ready, _, _ = select.select(streams, [], [], timeout)
        got = False
        for s in ready:
            chunk = os.read(s.fileno(), 65536)
            if not chunk:
                s.close()
                continue
            got = True
            if s is self.proc.stdout:
                self.out += chunk
            else:
                self.err += chunk
        return got

    def wait_for(self, predicate, timeout=10.0):
        deadline = time.monotonic() + slow(timeout)
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not self._pump(min(left, 0.1)) and self.proc.poll() is not None:
                # Exited: read what is left, then decide.
                while self._pump(0):
                    pass
                return predicate()
        return True

    def wait_stderr(self, text, timeout=10.0):
        return self.wait_for(lambda: text.encode() in self.err, timeout)

    def lines(self):
        return [json.loads(l) for l in self.out.decode().splitlines() if l.strip()]

    def finish(self, timeout=10.0):
        """Waits for the exit; returns the exit status."""
        deadline = time.monotonic() + slow(timeout)
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._pump(0.05)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        while self._pump(0):
            pass
        return self.proc.returncode

    def stop(self, timeout=10.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.finish(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def text(self):
        return "argv: %s\nstdout: %s\nstderr: %s" % (self.argv, self.out.decode(errors="replace"),
                                                     self.err.decode(errors="replace"))


def run_pub(*args, input_text=None, timeout=10.0):
    p = subprocess.run([harness.BINARY_PATH, "pub"] + [str(a) for a in args],
                       input=(input_text or "").encode(), capture_output=True,
                       timeout=slow(timeout))
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class Base(unittest.TestCase):
    CONFIG = {}

    @classmethod
    def setUpClass(cls):
        cls.server = ServeServer(config(**cls.CONFIG))

    @classmethod
    def tearDownClass(cls):
        try:
            code, _ = cls.server.stop(timeout=10)
            if code != 0:
                raise AssertionError("serve exited with %r\n%s" % (code, cls.server.stderr_text()))
        finally:
            cls.server.cleanup()

    def setUp(self):
        self.children = []

    def tearDown(self):
        for c in self.children:
            c.kill()

    @property
    def url(self):
        return self.server.url

    def sub(self, *args):
        p = Process("sub", self.url, *args)
        self.children.append(p)
        return p

    def subscribed(self, p, channel):
        self.assertTrue(p.wait_stderr(channel + ": "), p.text())


class PubSub(Base):
    def test_sub_prints_what_pub_publishes_over_websocket(self):
        s = self.sub("chat:ws", "--token", token("alice"), "--count", "3")
        self.subscribed(s, "chat:ws")
        code, out, err = run_pub(self.url, "chat:ws", "--token", token("bob"),
                                 input_text='{"text": "hi"}\n\n42\n"three"')
        self.assertEqual(code, 0, err)
        answers = [json.loads(l) for l in out.splitlines()]
        self.assertEqual([a["offset"] for a in answers], [1, 2, 3])
        self.assertEqual(s.finish(), 0, s.text())
        lines = s.lines()
        self.assertEqual([l["offset"] for l in lines], [1, 2, 3], s.text())
        self.assertEqual([l["data"] for l in lines], [{"text": "hi"}, 42, "three"])
        for l in lines:
            self.assertEqual((l["push"], l["channel"], l["user"]), ("message", "chat:ws", "bob"))
            self.assertEqual(l["epoch"], answers[0]["epoch"])

    def test_pub_over_the_http_api_and_as_strings(self):
        s = self.sub("chat:http", "--token", token("alice"), "--count", "2")
        self.subscribed(s, "chat:http")
        code, out, err = run_pub("http://127.0.0.1:%d" % self.server.port, "chat:http",
                                 '{"n": 1}', "--api-key", API_KEY)
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["offset"], 1)
        code, out, err = run_pub(self.url, "chat:http", "--string", "--token", token("bob"),
                                 "plain text, not JSON")
        self.assertEqual(code, 0, err)
        self.assertEqual(s.finish(), 0, s.text())
        self.assertEqual([l["data"] for l in s.lines()], [{"n": 1}, "plain text, not JSON"])
        self.assertNotIn("user", s.lines()[0], "the HTTP API publishes without a user")

    def test_history_and_since(self):
        for i in range(1, 6):
            code, _, err = run_pub(self.url, "chat:hist", str(i), "--api-key", API_KEY)
            self.assertEqual(code, 0, err)
        s = self.sub("chat:hist", "--token", token("alice"), "--history", "2", "--count", "3")
        self.subscribed(s, "chat:hist")
        code, out, err = run_pub(self.url, "chat:hist", "6", "--token", token("bob"))
        self.assertEqual(code, 0, err)
        epoch = json.loads(out)["epoch"]
        self.assertEqual(s.finish(), 0, s.text())
        self.assertEqual([(l["offset"], l["data"]) for l in s.lines()], [(4, 4), (5, 5), (6, 6)])

        since = self.sub("chat:hist", "--token", token("alice"), "--since", "%s:2" % epoch,
                         "--count", "4")
        self.assertEqual(since.finish(), 0, since.text())
        self.assertEqual([l["offset"] for l in since.lines()], [3, 4, 5, 6])

    def test_presence_prints_joins_and_leaves(self):
        a = self.sub("chat:room", "--token", token("alice"), "--presence")
        self.subscribed(a, "chat:room")
        b = self.sub("chat:room", "--token", token("bob"))
        self.subscribed(b, "chat:room")
        self.assertTrue(a.wait_for(lambda: b'"user":"bob"' in a.out), a.text())
        self.assertEqual(b.stop(), 0, b.text())
        self.assertTrue(a.wait_for(lambda: b'"leave"' in a.out), a.text())
        self.assertEqual(a.stop(), 0, a.text())
        events = [(l["push"], l.get("user")) for l in a.lines()]
        # Joins within one server tick come in one push, in client-id order.
        self.assertEqual(sorted(events[:2]), [("join", "alice"), ("join", "bob")])
        self.assertEqual(events[2:], [("leave", "bob")])


class Errors(Base):
    def test_pub_errors_exit_non_zero_with_the_reason(self):
        cases = [
            # args, expected exit status, text expected on stderr
            ((self.url, "chat:e", "1", "--token", token("x", key="wrong-secret")), 2,
             "authentication failed: bad signature"),
            ((self.url, "secret:e", "1", "--token", token("x", channels=["chat:*"])), 1,
             "refused (403)"),
            ((self.url, "chat:e", "not json", "--token", token("x")), 1,
             "not a JSON value: not json (use --string"),
            ((self.url, "chat:bad name", "1", "--token", token("x")), 1, "refused (422)"),
            (("ws://127.0.0.1:1/ws", "chat:e", "1"), 2, "Connection refused"),
            (("http://127.0.0.1:1", "chat:e", "1", "--api-key", API_KEY), 2, "Connection refused"),
            (("http://127.0.0.1:%d" % self.server.port, "chat:e", "1", "--api-key", "nope"), 2,
             "answered 401"),
            (("http://127.0.0.1:%d" % self.server.port, "chat:bad name", "1", "--api-key", API_KEY),
             1, "answered 422"),
        ]
        for args, want_code, want_text in cases:
            with self.subTest(args=args[1:3]):
                code, out, err = run_pub(*args)
                self.assertEqual(code, want_code, err)
                self.assertIn(want_text, err)
                self.assertEqual(out, "")

    def test_pub_stops_at_the_first_bad_line(self):
        s = self.sub("chat:stop", "--token", token("alice"))
        self.subscribed(s, "chat:stop")
        code, out, err = run_pub(self.url, "chat:stop", "--token", token("bob"),
                                 input_text="1\n2\noops\n4\n")
        self.assertEqual(code, 1, err)
        self.assertIn("line 3: not a JSON value: oops", err)
        self.assertIn("--string", err)
        self.assertEqual([json.loads(l)["offset"] for l in out.splitlines()], [1, 2])
        self.assertTrue(s.wait_for(lambda: len(s.lines()) >= 2), s.text())
        time.sleep(0.2)
        self.assertEqual(s.stop(), 0, s.text())
        self.assertEqual([l["data"] for l in s.lines()], [1, 2])

    def test_sub_errors_exit_2_with_the_reason(self):
        cases = [
            (("secret:x", "--token", token("x", channels=["chat:*"])), "subscribe refused"),
            (("chat:x", "--token", token("x", key="wrong-secret")), "authentication failed"),
            (("chat:x", "--since", "nocolon"), "bad --since"),
            (("chat:x", "chat:y", "--since", "abc:1"), "exactly one CHANNEL"),
        ]
        for args, want in cases:
            with self.subTest(args=args[0]):
                p = self.sub(*args)
                self.assertEqual(p.finish(), 2, p.text())
                self.assertIn(want, p.err.decode())
        p = Process("sub", "ws://127.0.0.1:1/ws", "chat:x", "--max-attempts", "2")
        self.children.append(p)
        self.assertEqual(p.finish(), 2, p.text())
        self.assertIn("gave up after 2 failed attempts", p.err.decode())

    def test_help(self):
        for cmd, words in (("sub", ["--since", "--history", "--presence", "--token", "Exit status"]),
                           ("pub", ["--api-key", "--string", "--token", "Exit status"])):
            p = subprocess.run([harness.BINARY_PATH, cmd, "--help"], capture_output=True)
            self.assertEqual(p.returncode, 0)
            for w in words:
                self.assertIn(w, p.stdout.decode(), cmd)


class Restart(unittest.TestCase):
    def test_sub_recovers_across_a_serve_restart(self):
        state = tempfile.mkdtemp(prefix="switchboard-pubsub-test-")
        sections = config(history={"snapshot_file": os.path.join(state, "snap.json")})
        sub = None
        first = ServeServer(sections)
        try:
            url = first.url
            sub = Process("sub", url, "chat:r", "--token", token("alice"), "--count", "6")
            self.assertTrue(sub.wait_stderr("chat:r: "), sub.text())
            for i in range(1, 4):
                self.assertEqual(run_pub(url, "chat:r", i, "--api-key", API_KEY)[0], 0)
            self.assertTrue(sub.wait_for(lambda: len(sub.lines()) >= 3), sub.text())
            first.stop_checked(self)
        finally:
            first.cleanup()
        try:
            self.assertTrue(sub.wait_stderr("disconnected (1012"), sub.text())
            second = ServeServer(sections, extra_args=("--port", first.port))
            try:
                for i in range(4, 7):
                    self.assertEqual(run_pub(url, "chat:r", i, "--api-key", API_KEY)[0], 0)
                self.assertEqual(sub.finish(20), 0, sub.text())
                lines = sub.lines()
                self.assertEqual([l["offset"] for l in lines], [1, 2, 3, 4, 5, 6], sub.text())
                self.assertEqual([l["data"] for l in lines], [1, 2, 3, 4, 5, 6])
                self.assertEqual(len({l["epoch"] for l in lines}), 1, "the snapshot kept the epoch")
                self.assertIn(b"chat:r: resumed, nothing missed", sub.err)
                second.stop_checked(self)
            finally:
                second.cleanup()
        finally:
            if sub:
                sub.kill()
            shutil.rmtree(state, ignore_errors=True)


class ApiRecorder(http.server.ThreadingHTTPServer):
    """An HTTP/1.1 stand-in for POST /api/publish on 127.0.0.1: counts the
    connections it accepted and answers each publication with the next
    offset; `close_each` sends "Connection: close" with every answer."""

    daemon_threads = True

    def __init__(self, close_each):
        self.close_each = close_each
        self.connections = 0
        self.bodies = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), self.Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            with self.server.lock:
                self.server.connections += 1

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with self.server.lock:
                self.server.bodies.append((self.path, self.headers.get("X-API-Key"), body))
                offset = len(self.server.bodies)
            answer = json.dumps({"channel": body["channel"], "epoch": "e", "offset": offset})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            if self.server.close_each:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(answer.encode())


class PubHttpConnections(unittest.TestCase):
    LINES = "".join('{"n": %d}\n' % i for i in range(1, 6))

    def publish_to(self, close_each):
        server = ApiRecorder(close_each)
        try:
            code, out, err = run_pub("http://127.0.0.1:%d" % server.server_address[1], "chat:k",
                                     "--api-key", "k1", input_text=self.LINES)
            self.assertEqual(code, 0, err)
            self.assertEqual([json.loads(l)["offset"] for l in out.splitlines()], [1, 2, 3, 4, 5])
            self.assertEqual([b for b in server.bodies],
                             [("/api/publish", "k1", {"channel": "chat:k", "data": {"n": i}})
                              for i in range(1, 6)])
            return server.connections
        finally:
            server.shutdown()
            server.server_close()

    def test_one_kept_alive_connection_for_every_line(self):
        self.assertEqual(self.publish_to(close_each=False), 1)

    def test_a_new_connection_after_connection_close(self):
        self.assertEqual(self.publish_to(close_each=True), 5)


class PubOverHttps(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import tls_harness
        cls.dir = tempfile.mkdtemp(prefix="switchboard-pub-tls-")
        cls.certs = tls_harness.make_certs(cls.dir)
        sections = config()
        sections["server"] = dict(sections.get("server", {}), tls_cert=cls.certs.server.cert,
                                  tls_key=cls.certs.server.key)
        cls.server = ServeServer(sections, scheme="https")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop(timeout=10)
        finally:
            cls.server.cleanup()
            shutil.rmtree(cls.dir, ignore_errors=True)

    def test_https_with_the_ca_file(self):
        url = "https://127.0.0.1:%d" % self.server.port
        code, out, err = run_pub(url, "chat:tls-ca", "--api-key", API_KEY, "--ca-file",
                                 self.certs.ca, input_text='1\n2\n')
        self.assertEqual(code, 0, err)
        self.assertEqual([json.loads(l)["offset"] for l in out.splitlines()], [1, 2])

    def test_an_unknown_ca_is_refused_with_the_reason(self):
        url = "https://127.0.0.1:%d" % self.server.port
        code, out, err = run_pub(url, "chat:tls-unknown", "1", "--api-key", API_KEY)
        self.assertEqual(code, 2, err)
        self.assertIn("certificate verification failed", err)
        self.assertEqual(out, "")
        code, out, err = run_pub(url, "chat:tls-unknown", "1", "--api-key", API_KEY,
                                 "--insecure-skip-verify")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["offset"], 1)


if __name__ == "__main__":
    harness.main()
