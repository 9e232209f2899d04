#!/usr/bin/python3
"""wss:// end to end: `switchboard echo --tls-cert/--tls-key` against
python3-websockets (10.4), node ws (8.x) and raw frames over TLS, and
`switchboard connect wss://...` against a python3-websockets wss server.

Usage: /usr/bin/python3 tls_test.py <path to switchboard>
       (NODE_PATH=/usr/share/nodejs for node ws; ctest sets it)

The contract under test (flags and behaviour):
  switchboard echo --tls-cert PEM --tls-key PEM [--tls-ca FILE
      --tls-client-cert none|request|require]
    serves wss:// on its port and prints `listening on wss://HOST:PORT`;
    SIGHUP re-reads the certificate and key: new connections get the new
    certificate, open ones carry on; a reload that fails keeps the old one.
    Plain HTTP or garbage on the port is dropped; the server keeps serving.
  switchboard connect wss://HOST:PORT/ [--ca-file CA.pem] [--insecure-skip-verify]
    verifies the server against CA.pem (else the system store); a
    certificate failure exits 2 with one line on stderr that carries
    OpenSSL's reason ("certificate has expired", "hostname mismatch",
    "self-signed certificate", ...); --insecure-skip-verify accepts any.

The suite refuses to run (exit 1, with the reason) unless `echo --help` and
`connect --help` list those flags: nothing is skipped silently.
Certificates are made at test time with the `openssl` command.
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import CLOSE, PING, PONG, TEXT, build_frame, close_payload  # noqa: E402
import tls_harness  # noqa: E402
from tls_harness import (ConnectProcess, Pair, PythonWssServer, TlsEchoServer,  # noqa: E402
                         TlsRawClient, client_context, echo_handler, node_wss,
                         read_until_closed, run_connect, served_subject)

import websockets  # noqa: E402  (Debian python3-websockets; run with /usr/bin/python3)

CERTS = None  # tls_harness.CertSet, made once for the whole run
SIZES = (0, 1, 125, 126, 127, 65535, 65536, 1 << 20)


def setUpModule():
    global CERTS
    CERTS = tls_harness.make_certs(tempfile.mkdtemp(prefix="switchboard-wss-"))


def tearDownModule():
    if CERTS is not None:
        shutil.rmtree(CERTS.dir, ignore_errors=True)


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout * harness.SLOW))


def connect(url, ctx=None, **kw):
    """A python3-websockets client trusting the test CA (unless `ctx` says otherwise)."""
    kw.setdefault("max_size", None)
    kw.setdefault("compression", None)
    kw.setdefault("open_timeout", 5 * harness.SLOW)
    kw.setdefault("close_timeout", 5 * harness.SLOW)
    return websockets.connect(url, ssl=ctx or client_context(CERTS.ca), **kw)


def pattern(n, seed):
    return bytes(32 + ((i * 13 + seed) % 95) for i in range(n))  # printable: valid text too


def subject_of(ws):
    cert = ws.transport.get_extra_info("peercert")
    return dict(item for rdn in cert["subject"] for item in rdn).get("commonName")


def wait_for_subject(port, want, timeout=5.0):
    """Polls the certificate new connections get until its CN is `want`; returns the last seen."""
    deadline = time.monotonic() + timeout * harness.SLOW
    seen = None
    while time.monotonic() < deadline:
        seen = served_subject(port, CERTS.ca)
        if seen == want:
            break
        time.sleep(0.05)
    return seen


def settled_fd_count(server):
    """The server's descriptor count once it has served a wss client and the
    count stopped changing: the signalfd appears only after the listening line
    (server.run() creates it), which a slow (ASan) start makes visible."""
    async def go():
        async with connect(server.url) as ws:
            await ws.send("baseline")
            assert await ws.recv() == "baseline"
    run(go(), 20)
    last, stable_since = server.fd_count(), time.monotonic()
    deadline = time.monotonic() + 3 * harness.SLOW
    while time.monotonic() - stable_since < 0.3 and time.monotonic() < deadline:
        time.sleep(0.05)
        n = server.fd_count()
        if n != last:
            last, stable_since = n, time.monotonic()
    return last


class TlsServerCase(unittest.TestCase):
    """One wss echo server per test class; subclasses set ARGS."""

    ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.server = TlsEchoServer(CERTS.server, *cls.ARGS)

    @classmethod
    def tearDownClass(cls):
        code, _ = cls.server.stop(timeout=10)
        if code != 0:
            raise AssertionError("server exit %r after SIGTERM\n%s"
                                 % (code, cls.server.stderr_text()))

    def setUp(self):
        self.assertTrue(self.server.alive(), self.server.stderr_text())

    def assertServing(self):
        """A fresh python3-websockets client still gets its echo."""
        async def go():
            async with connect(self.server.url) as ws:
                await ws.send("still serving?")
                self.assertEqual(await ws.recv(), "still serving?")
        run(go(), 20)


class Contract(unittest.TestCase):
    def test_binary_offers_the_tls_flags(self):
        self.assertIsNone(tls_harness.missing_tls_support(harness.BINARY_PATH))

    def test_listening_line_names_wss(self):
        server = TlsEchoServer(CERTS.server)
        self.addCleanup(server.kill)
        self.assertRegex(server.listening_line, rb"^listening on wss://127\.0\.0\.1:\d+\n$")
        server.stop_checked(self)


# --- independent clients against the wss echo ------------------------------------------

class PythonClient(TlsServerCase):
    ARGS = ("--max-message-size", str(4 << 20))

    def test_sizes_text_and_binary(self):
        async def go():
            async with connect(self.server.url) as ws:
                for n in SIZES:
                    data = pattern(n, n % 95)
                    await ws.send(data.decode("ascii"))
                    got = await ws.recv()
                    self.assertIsInstance(got, str, "text came back as binary (n=%d)" % n)
                    self.assertTrue(got == data.decode("ascii"), "text of %d bytes differs" % n)
                    await ws.send(data)
                    got = await ws.recv()
                    self.assertIsInstance(got, bytes, "binary came back as text (n=%d)" % n)
                    self.assertTrue(got == data, "binary of %d bytes differs" % n)
        run(go(), 90)

    def test_ping_awaits_pong(self):
        async def go():
            async with connect(self.server.url) as ws:
                for payload in (b"", b"wss ping", os.urandom(125)):
                    await asyncio.wait_for(await ws.ping(payload), 5 * harness.SLOW)
        run(go())

    def test_close_1000_and_4000(self):
        async def go():
            for code, reason in ((1000, ""), (1000, "done"), (4000, "custom reason ✓")):
                ws = await connect(self.server.url)
                await ws.send("before close")
                self.assertEqual(await ws.recv(), "before close")
                start = time.monotonic()
                await ws.close(code, reason)
                self.assertEqual(ws.close_code, code, "server echoed another close code")
                self.assertIn(ws.close_reason, (reason, ""))
                self.assertLess(time.monotonic() - start, 2.0 * harness.SLOW,
                                "the server was slow to finish the close over TLS")
        run(go())

    def test_negotiated_parameters(self):
        async def go():
            ctx = client_context(CERTS.ca, alpn=["h2", "http/1.1"])
            async with connect(self.server.url, ctx) as ws:
                tls = ws.transport.get_extra_info("ssl_object")
                self.assertEqual(tls.version(), "TLSv1.3")
                self.assertEqual(tls.selected_alpn_protocol(), "http/1.1")
                self.assertEqual(subject_of(ws), "localhost")
            ctx12 = client_context(CERTS.ca, max_version=ssl.TLSVersion.TLSv1_2)
            async with connect(self.server.url, ctx12) as ws:
                self.assertEqual(ws.transport.get_extra_info("ssl_object").version(), "TLSv1.2")
                await ws.send(b"over 1.2")
                self.assertEqual(await ws.recv(), b"over 1.2")
        run(go())

    def test_client_without_the_test_ca_refuses(self):
        async def go():
            with self.assertRaises(ssl.SSLCertVerificationError) as caught:
                await connect(self.server.url, ssl.create_default_context())
            self.assertIn("unable to get local issuer certificate", str(caught.exception))
        run(go())
        self.assertServing()


def run_node(testcase, scenario, url, *args, timeout=60):
    p = node_wss(scenario, url, CERTS.ca, *args, timeout=timeout)
    testcase.addCleanup(p.kill)
    out, _ = p.communicate(timeout=(timeout + 10) * harness.SLOW)
    out = out.decode(errors="replace")
    testcase.assertEqual(p.returncode, 0, "node %s failed:\n%s" % (scenario, out))
    return out.strip().splitlines()


class NodeClient(TlsServerCase):
    ARGS = ("--max-message-size", str(4 << 20))

    def test_sizes(self):
        self.assertEqual(run_node(self, "sizes", self.server.url, timeout=90)[-1], "ok")

    def test_ping(self):
        self.assertEqual(run_node(self, "ping", self.server.url)[-1], "ok")

    def test_close_codes(self):
        for code, reason in ((1000, ""), (4000, "node says bye")):
            result = json.loads(run_node(self, "close", self.server.url, code, reason)[-1])
            self.assertEqual(result["code"], code)
            self.assertIn(result["reason"], (reason, ""))

    def test_untrusted_without_the_ca(self):
        result = json.loads(run_node(self, "untrusted", self.server.url)[-1])
        self.assertIn(result["error"], ("UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
                                        "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
                                        "SELF_SIGNED_CERT_IN_CHAIN"))


class Shutdown(unittest.TestCase):
    """SIGTERM closes every wss connection with 1001, then the server exits 0."""

    def test_python_clients_get_1001(self):
        server = TlsEchoServer(CERTS.server, "--shutdown-timeout", "5")
        self.addCleanup(server.kill)

        async def go():
            clients = [await connect(server.url) for _ in range(5)]
            for ws in clients:
                await ws.send("hello")
                self.assertEqual(await ws.recv(), "hello")
            server.send_signal(signal.SIGTERM)
            for ws in clients:
                await asyncio.wait_for(ws.wait_closed(), 5 * harness.SLOW)
                self.assertEqual(ws.close_code, 1001)
        run(go(), 30)
        code = server.wait(10 * harness.SLOW)
        self.assertEqual(code, 0, "exit status %r\n%s" % (code, server.stderr_text()))

    def test_node_clients_get_1001(self):
        server = TlsEchoServer(CERTS.server, "--shutdown-timeout", "5")
        self.addCleanup(server.kill)
        procs = [node_wss("wait-close", server.url, CERTS.ca, timeout=20) for _ in range(3)]
        for p in procs:
            self.addCleanup(p.kill)
            line = p.stdout.readline().decode().strip()
            self.assertEqual(line, "open", "node client did not connect: %r" % line)
        server.send_signal(signal.SIGTERM)
        for p in procs:
            out, _ = p.communicate(timeout=15 * harness.SLOW)
            self.assertEqual(p.returncode, 0, out)
            self.assertEqual(json.loads(out.decode().strip().splitlines()[-1])["code"], 1001)
        code = server.wait(10 * harness.SLOW)
        self.assertEqual(code, 0, "exit status %r\n%s" % (code, server.stderr_text()))


# --- what is not TLS, on the TLS port -------------------------------------------------------

class NotTls(TlsServerCase):
    ARGS = ("--handshake-timeout", "1")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.baseline_fds = settled_fd_count(cls.server)

    def tearDown(self):
        # Whatever was dropped must not keep a descriptor in the server.
        deadline = time.monotonic() + 3 * harness.SLOW
        while self.server.fd_count() > self.baseline_fds and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.server.fd_count(), self.baseline_fds, "descriptors left behind")

    def dropped(self, data):
        """Sends `data` on a plain TCP connection; asserts that the server
        closes it answering at most a TLS alert, never HTTP."""
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as s:
            if data:
                s.sendall(data)
            got, how = read_until_closed(s, timeout=5)
        self.assertIn(how, ("eof", "reset"), "the server kept the connection open")
        self.assertFalse(got.startswith(b"HTTP/"), "answered in plain HTTP: %r" % got[:80])
        self.assertLess(len(got), 64, "more than an alert came back: %r" % got[:80])
        if got:
            self.assertEqual(got[0], 0x15, "not a TLS alert record: %r" % got[:16])

    def test_plain_http_upgrade_dropped(self):
        self.dropped(harness.handshake_request("/"))
        self.assertServing()

    def test_plain_http_get_dropped(self):
        self.dropped(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self.assertServing()

    def test_failed_handshake_is_logged_with_openssls_reason(self):
        self.dropped(b"GET /logged HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        deadline = time.monotonic() + 3 * harness.SLOW
        while "TLS handshake failed: " not in self.server.stderr_text() \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        # OpenSSL names plain HTTP on a TLS port "http request".
        self.assertIn("TLS handshake failed: ", self.server.stderr_text())
        self.assertIn("http request", self.server.stderr_text())

    def test_garbage_dropped(self):
        self.dropped(bytes((i * 37 + 11) % 256 for i in range(300)))
        self.dropped(b"\x16\x03\x01\x00\x05hello")  # a handshake record that makes no sense
        self.assertServing()

    def test_silent_client_dropped_at_handshake_timeout(self):
        start = time.monotonic()
        self.dropped(b"")
        self.assertLess(time.monotonic() - start, 3 * harness.SLOW)
        self.assertServing()

    def test_many_bad_clients_then_a_good_one(self):
        for i in range(20):
            self.dropped(b"GET /%d HTTP/1.1\r\n\r\n" % i if i % 2 else os.urandom(64))
        self.assertServing()


# --- certificate reload on SIGHUP ---------------------------------------------------------

class Reload(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=CERTS.dir)
        self.live = Pair(self.dir, "live")
        CERTS.server.copy_to(self.live.cert, self.live.key)
        self.server = TlsEchoServer(self.live)
        self.addCleanup(self.server.kill)

    def test_new_certificate_for_new_connections_open_one_keeps_echoing(self):
        async def go():
            async with connect(self.server.url) as old:
                await old.send("before")
                self.assertEqual(await old.recv(), "before")
                self.assertEqual(subject_of(old), "localhost")

                CERTS.server2.copy_to(self.live.cert, self.live.key)
                self.server.reload()
                seen = await asyncio.to_thread(wait_for_subject, self.server.port,
                                               "localhost reloaded")
                self.assertEqual(seen, "localhost reloaded", self.server.stderr_text())

                await old.send("after the reload")
                self.assertEqual(await old.recv(), "after the reload")
                async with connect(self.server.url) as new:
                    self.assertEqual(subject_of(new), "localhost reloaded")
                    await new.send(b"new")
                    self.assertEqual(await new.recv(), b"new")
                await old.send(b"x" * 100000)
                self.assertEqual(await old.recv(), b"x" * 100000)
                self.assertEqual(subject_of(old), "localhost")
        run(go())
        self.server.stop_checked(self)

    def test_failed_reload_keeps_the_old_certificate(self):
        with open(self.live.key, "w") as f:
            f.write("not a key\n")
        self.server.reload()
        time.sleep(0.5 * harness.SLOW)
        self.assertTrue(self.server.alive(), self.server.stderr_text())
        self.assertEqual(served_subject(self.server.port, CERTS.ca), "localhost")

        async def go():
            async with connect(self.server.url) as ws:
                await ws.send("still the old certificate")
                self.assertEqual(await ws.recv(), "still the old certificate")
        run(go())
        # And a good reload afterwards takes effect.
        CERTS.server2.copy_to(self.live.cert, self.live.key)
        self.server.reload()
        self.assertEqual(wait_for_subject(self.server.port, "localhost reloaded"),
                         "localhost reloaded")
        self.server.stop_checked(self)


# --- client certificates --------------------------------------------------------------------

class ClientCertificates(unittest.TestCase):

    def start(self, policy):
        server = TlsEchoServer(CERTS.server, "--tls-ca", CERTS.ca, "--tls-client-cert", policy)
        self.addCleanup(server.kill)
        return server

    def echo(self, server, pair):
        async def go():
            async with connect(server.url, client_context(CERTS.ca, pair)) as ws:
                await ws.send("mutual")
                self.assertEqual(await ws.recv(), "mutual")
        run(go(), 20)

    def refused(self, server, pair):
        async def go():
            try:
                async with connect(server.url, client_context(CERTS.ca, pair)) as ws:
                    await ws.send("should not arrive")
                    await ws.recv()
            except asyncio.TimeoutError:
                self.fail("the server neither accepted nor refused the client in time")
            except Exception as e:  # an alert, a reset or an EOF, depending on timing
                return e
            self.fail("a client without a certificate was served")
        return run(go(), 20)

    def test_require(self):
        server = self.start("require")
        self.echo(server, CERTS.client)
        self.refused(server, None)
        self.echo(server, CERTS.client)
        server.stop_checked(self)

    def test_request(self):
        server = self.start("request")
        self.echo(server, CERTS.client)
        self.echo(server, None)
        server.stop_checked(self)


# --- RFC 6455 over TLS, raw frames ---------------------------------------------------------

class ConformanceOverTls(TlsServerCase):
    ARGS = ("--max-message-size", "1024")

    def ws(self):
        c = TlsRawClient(self.server.port, client_context(CERTS.ca))
        self.addCleanup(c.close)
        c.handshake()
        return c

    def assertEcho(self, c, opcode, payload):
        op, got, controls, frames = c.recv_message(10)
        self.assertEqual((op, got), (opcode, payload))
        self.assertEqual(controls, [])
        for f in frames:
            self.assertFalse(f.masked, "server frame is masked")

    def assertFails(self, c, code, frames):
        c.send(frames)
        c.close_handshake_after_failure(code)

    def test_upgrade_and_echo(self):
        c = self.ws()
        for n in (0, 1, 125, 126, 1024):
            c.send_frame(TEXT, b"t" * n)
            self.assertEcho(c, TEXT, b"t" * n)
            c.send_frame(harness.BINARY, bytes(range(256)) * (n // 256) + bytes(n % 256))
            self.assertEcho(c, harness.BINARY, bytes(range(256)) * (n // 256) + bytes(n % 256))
        # Many frames in one TLS record, and one frame over many records.
        c.send(b"".join(build_frame(TEXT, b"%d" % i) for i in range(50)))
        for i in range(50):
            self.assertEcho(c, TEXT, b"%d" % i)
        for byte in build_frame(TEXT, b"byte by byte"):
            c.send(bytes([byte]))
        self.assertEcho(c, TEXT, b"byte by byte")

    def test_ping_answered_with_pong(self):
        c = self.ws()
        c.send_frame(PING, b"tls ping")
        f = c.recv_frame()
        self.assertEqual((f.opcode, f.payload), (PONG, b"tls ping"))

    def test_unmasked_frame_1002(self):
        self.assertFails(self.ws(), 1002, build_frame(TEXT, b"hello", mask=False))

    def test_invalid_utf8_1007(self):
        self.assertFails(self.ws(), 1007, build_frame(TEXT, b"\xce\xbail\xff"))

    def test_too_big_1009(self):
        c = self.ws()
        c.send_frame(harness.BINARY, b"z" * 1024)
        self.assertEcho(c, harness.BINARY, b"z" * 1024)
        c.send(build_frame(harness.BINARY, b"", length=1025)[:8])  # the header only
        c.close_handshake_after_failure(1009, timeout=3)

    def test_close_echoed_then_tcp_closed(self):
        for code in (1000, 4000):
            c = self.ws()
            c.send_frame(CLOSE, close_payload(code, "bye"))
            c.expect_close(code)
            self.assertLess(c.wait_closed(timeout=3), 3 * harness.SLOW)
        c = self.ws()
        c.send_frame(CLOSE, b"")
        self.assertEqual(c.expect_close(None).payload, b"")
        c.wait_closed(timeout=3)


# --- our client: switchboard connect wss:// ------------------------------------------------

class Connect(unittest.TestCase):
    LINES = ("hello", "h\u00e9llo \u2713 \u65e5\u672c\u8a9e \U0001f600", "a" * 5000, "last")

    def serve(self, pair):
        server = PythonWssServer(echo_handler, pair)
        self.addCleanup(server.stop)
        return server

    def echo_lines(self, *args):
        client = ConnectProcess(*args)
        self.addCleanup(client.kill)
        for line in self.LINES:
            client.send_line(line)
            self.assertEqual(client.read_line(), line + "\n")
        code, err = client.finish()
        self.assertEqual(code, 0, err)

    def assertRejected(self, result, *reasons):
        err = result.stderr.decode(errors="replace")
        self.assertEqual(result.returncode, 2, err)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, "expected one line on stderr, got:\n" + err)
        self.assertTrue(lines[0].startswith("switchboard: "), lines[0])
        self.assertTrue(any(r in lines[0] for r in reasons),
                        "none of %r in %r" % (reasons, lines[0]))
        self.assertEqual(result.stdout, b"")

    def test_echo_verified_against_the_ca_file(self):
        server = self.serve(CERTS.server)
        self.echo_lines(server.url(), "--ca-file", CERTS.ca)
        self.echo_lines(server.url("localhost"), "--ca-file", CERTS.ca)

    def test_system_store_does_not_trust_the_test_ca(self):
        server = self.serve(CERTS.server)
        self.assertRejected(run_connect(server.url()), "unable to get local issuer certificate")

    def test_expired_rejected(self):
        server = self.serve(CERTS.expired)
        self.assertRejected(run_connect(server.url(), "--ca-file", CERTS.ca),
                            "certificate has expired")

    def test_wrong_host_rejected(self):
        server = self.serve(CERTS.other)
        self.assertRejected(run_connect(server.url("localhost"), "--ca-file", CERTS.ca),
                            "hostname mismatch")
        self.assertRejected(run_connect(server.url("127.0.0.1"), "--ca-file", CERTS.ca),
                            "IP address mismatch")

    def test_self_signed_rejected(self):
        server = self.serve(CERTS.self_signed)
        self.assertRejected(run_connect(server.url(), "--ca-file", CERTS.ca),
                            "self-signed certificate")

    def test_insecure_skip_verify_accepts_each(self):
        for pair in (CERTS.expired, CERTS.other, CERTS.self_signed):
            with self.subTest(cert=os.path.basename(pair.cert)):
                server = PythonWssServer(echo_handler, pair)
                try:
                    self.echo_lines(server.url(), "--insecure-skip-verify")
                finally:
                    server.stop()

    def test_missing_ca_file_exits_2_naming_it(self):
        missing = os.path.join(CERTS.dir, "no-such-ca.pem")
        server = self.serve(CERTS.server)
        result = run_connect(server.url(), "--ca-file", missing)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn(missing.encode(), result.stderr)

    def test_wss_to_a_plain_server_fails_with_exit_2(self):
        server = self.serve(None)  # plain ws://
        result = run_connect("wss://127.0.0.1:%d/" % server.port, "--ca-file", CERTS.ca)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertTrue(result.stderr.startswith(b"switchboard: "), result.stderr)

    def test_against_our_own_wss_echo(self):
        server = TlsEchoServer(CERTS.server)
        self.addCleanup(server.kill)
        self.echo_lines(server.url, "--ca-file", CERTS.ca)
        server.stop_checked(self)


def main():
    if len(sys.argv) >= 2 and not sys.argv[1].startswith("-"):
        why = tls_harness.missing_tls_support(os.path.abspath(sys.argv[1]))
        if why:
            # Refuse loudly rather than skip: a wss suite that passes by
            # testing nothing would hide that TLS is missing.
            sys.stderr.write("tls_test.py: FAIL: %s\n" % why)
            sys.exit(1)
    harness.main()


if __name__ == "__main__":
    main()
