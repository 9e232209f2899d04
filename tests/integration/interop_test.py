#!/usr/bin/python3
"""Interoperability of `switchboard echo` with independent WebSocket clients:
python3-websockets (Debian, 10.4) and node ws (Debian node-ws, 8.x).

Usage: /usr/bin/python3 interop_test.py <path to switchboard>
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import EchoServer  # noqa: E402

import websockets  # noqa: E402  (Debian python3-websockets; run with /usr/bin/python3)

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_CLIENT = os.path.join(HERE, "node_client.js")
SIZES = (0, 1, 125, 126, 127, 65535, 65536, 1 << 20, 16 << 20)
BIG_LIMIT = str(64 << 20)


def pattern(n, seed):
    # printable ASCII so it works as text and as binary
    return bytes(33 + ((i * 7 + seed) % 90) for i in range(min(n, 4096))) * (n // 4096 + 1)


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout * harness.SLOW))


def connect(url, **kw):
    kw.setdefault("max_size", None)
    kw.setdefault("open_timeout", 5 * harness.SLOW)
    kw.setdefault("close_timeout", 5 * harness.SLOW)
    return websockets.connect(url, **kw)


class PythonClient(unittest.TestCase):
    """python3-websockets against one long-lived server."""

    @classmethod
    def setUpClass(cls):
        cls.server = EchoServer("--max-message-size", BIG_LIMIT)

    @classmethod
    def tearDownClass(cls):
        code, _ = cls.server.stop(timeout=10)
        if code != 0:
            raise AssertionError("server exit %r after SIGTERM\n%s" % (code, cls.server.stderr_text()))

    def setUp(self):
        self.assertTrue(self.server.alive(), self.server.stderr_text())

    def test_sizes_text_and_binary(self):
        async def go():
            async with connect(self.server.url) as ws:
                for n in SIZES:
                    data = pattern(n, n % 90)[:n]
                    await ws.send(data.decode("ascii"))
                    got = await ws.recv()
                    self.assertIsInstance(got, str, "text came back as binary (n=%d)" % n)
                    self.assertTrue(got == data.decode("ascii"), "text of %d bytes differs" % n)
                    await ws.send(data)
                    got = await ws.recv()
                    self.assertIsInstance(got, bytes, "binary came back as text (n=%d)" % n)
                    self.assertTrue(got == data, "binary of %d bytes differs" % n)
        run(go(), 90)

    def test_sizes_without_compression(self):
        async def go():
            async with connect(self.server.url, compression=None) as ws:
                for n in (0, 126, 65536, 1 << 20):
                    data = os.urandom(n)
                    await ws.send(data)
                    self.assertEqual(await ws.recv(), data)
        run(go())

    def test_unicode_text(self):
        async def go():
            async with connect(self.server.url) as ws:
                text = "Grüße, ☃, 𝄞, 日本語, emoji 😀" * 1000
                await ws.send(text)
                self.assertEqual(await ws.recv(), text)
        run(go())

    def test_fragmented_messages(self):
        async def go():
            async with connect(self.server.url, compression=None) as ws:
                await ws.send(["Hel", "", "lo, ", "wörld"])  # an iterable goes out as fragments
                self.assertEqual(await ws.recv(), "Hello, wörld")
                parts = [os.urandom(70000), b"\x00", os.urandom(200000)]
                await ws.send(parts)
                self.assertEqual(await ws.recv(), b"".join(parts))

                async def agen():
                    for i in range(50):
                        yield "piece%02d;" % i
                await ws.send(agen())
                self.assertEqual(await ws.recv(), "".join("piece%02d;" % i for i in range(50)))
        run(go())

    def test_ping_awaits_pong(self):
        async def go():
            async with connect(self.server.url) as ws:
                for payload in (b"", b"python-ping", os.urandom(125)):
                    waiter = await ws.ping(payload)
                    await asyncio.wait_for(waiter, 5 * harness.SLOW)
                # pings while messages are in flight
                waiters = []
                for i in range(20):
                    await ws.send("m%d" % i)
                    waiters.append(await ws.ping(b"p%d" % i))
                await asyncio.wait_for(asyncio.gather(*waiters), 5 * harness.SLOW)
                for i in range(20):
                    self.assertEqual(await ws.recv(), "m%d" % i)
        run(go())

    def test_client_close_1000_and_4000_with_reason(self):
        async def go():
            for code, reason in ((1000, ""), (1000, "done"), (4000, "custom reason ✓")):
                ws = await connect(self.server.url)
                await ws.send("before close")
                self.assertEqual(await ws.recv(), "before close")
                start = time.monotonic()
                await ws.close(code, reason)
                elapsed = time.monotonic() - start
                self.assertEqual(ws.close_code, code, "server echoed another close code")
                # RFC 6455 5.5.1 asks for the code back; echoing the reason is optional.
                self.assertIn(ws.close_reason, (reason, ""))
                # The server closes TCP right after the close exchange; the client does not
                # have to wait for its own close timeout.
                self.assertLess(elapsed, 2.0 * harness.SLOW, "close took %.2fs" % elapsed)
        run(go())

    def test_protocol_error_forces_close_1002(self):
        async def go():
            async with connect(self.server.url, compression=None) as ws:
                # bypass the client's framing: an unmasked text frame
                ws.transport.write(b"\x81\x02hi")
                await asyncio.wait_for(ws.wait_closed(), 5 * harness.SLOW)
                self.assertEqual(ws.close_code, 1002)
        run(go())

    def test_invalid_utf8_forces_close_1007(self):
        async def go():
            async with connect(self.server.url, compression=None) as ws:
                ws.transport.write(harness.build_frame(harness.TEXT, b"\xce\xbail\xff"))
                await asyncio.wait_for(ws.wait_closed(), 5 * harness.SLOW)
                self.assertEqual(ws.close_code, 1007)
        run(go())

    def test_many_messages_in_flight(self):
        async def go():
            async with connect(self.server.url) as ws:
                n = 3000
                msgs = ["%05d:" % i + "y" * (i % 500) for i in range(n)]

                async def sender():
                    for m in msgs:
                        await ws.send(m)

                async def receiver():
                    return [await ws.recv() for _ in range(n)]
                _, got = await asyncio.gather(sender(), receiver())
                self.assertEqual(got, msgs)
        run(go())

    def test_many_clients_concurrently(self):
        async def client(i):
            async with connect(self.server.url) as ws:
                for j in range(50):
                    await ws.send(b"%d/%d" % (i, j))
                for j in range(50):
                    self.assertEqual(await ws.recv(), b"%d/%d" % (i, j))
        async def go():
            await asyncio.gather(*(client(i) for i in range(50)))
        run(go())


class PythonClientThreads(unittest.TestCase):
    """Several event loops (--threads 4, SO_REUSEPORT) serve clients side by side."""

    def test_many_clients_on_four_loops(self):
        server = EchoServer("--threads", "4")
        self.addCleanup(server.kill)

        async def client(i):
            async with connect(server.url) as ws:
                for j in range(20):
                    await ws.send("%d:%d" % (i, j))
                    self.assertEqual(await ws.recv(), "%d:%d" % (i, j))
        async def go():
            await asyncio.gather(*(client(i) for i in range(64)))
        run(go())
        code, _ = server.stop(timeout=10)
        self.assertEqual(code, 0, server.stderr_text())


class PythonShutdown(unittest.TestCase):
    """Server-initiated close on SIGTERM, seen by python3-websockets clients."""

    def shutdown(self, args, want_code):
        server = EchoServer(*args)
        self.addCleanup(server.kill)

        async def go():
            clients = [await connect(server.url) for _ in range(5)]
            for ws in clients:
                await ws.send("hello")
                self.assertEqual(await ws.recv(), "hello")
            server.send_signal(signal.SIGTERM)
            for ws in clients:
                await asyncio.wait_for(ws.wait_closed(), 5 * harness.SLOW)
                self.assertEqual(ws.close_code, want_code)
        run(go(), 30)
        code = server.wait(10 * harness.SLOW)
        self.assertEqual(code, 0, "exit status %r\n%s" % (code, server.stderr_text()))

    def test_sigterm_closes_with_1001(self):
        self.shutdown(("--shutdown-timeout", "5"), 1001)

    def test_shutdown_code_1012(self):
        self.shutdown(("--shutdown-code", "1012", "--shutdown-timeout", "5"), 1012)

    def test_sigint_closes_with_1001(self):
        server = EchoServer()
        self.addCleanup(server.kill)

        async def go():
            async with connect(server.url) as ws:
                server.send_signal(signal.SIGINT)
                await asyncio.wait_for(ws.wait_closed(), 5 * harness.SLOW)
                self.assertEqual(ws.close_code, 1001)
        run(go(), 30)
        code = server.wait(10 * harness.SLOW)
        self.assertEqual(code, 0, "exit status %r\n%s" % (code, server.stderr_text()))


def node(scenario, url, *args, timeout=60):
    env = dict(os.environ, NODE_PATH="/usr/share/nodejs",
               NODE_SCENARIO_TIMEOUT_MS=str(int(timeout * 1000 * harness.SLOW)))
    return subprocess.Popen(["node", NODE_CLIENT, scenario, url] + [str(a) for a in args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)


class NodeClient(unittest.TestCase):
    """node ws against one long-lived server."""

    @classmethod
    def setUpClass(cls):
        cls.server = EchoServer("--max-message-size", BIG_LIMIT)

    @classmethod
    def tearDownClass(cls):
        code, _ = cls.server.stop(timeout=10)
        if code != 0:
            raise AssertionError("server exit %r after SIGTERM\n%s" % (code, cls.server.stderr_text()))

    def scenario(self, name, *args, timeout=60):
        p = node(name, self.server.url, *args, timeout=timeout)
        out, _ = p.communicate(timeout=(timeout + 10) * harness.SLOW)
        out = out.decode(errors="replace")
        self.assertEqual(p.returncode, 0, "node %s failed:\n%s\n--- server stderr ---\n%s"
                         % (name, out, self.server.stderr_text()))
        return out.strip().splitlines()

    def test_sizes(self):
        self.assertEqual(self.scenario("sizes", timeout=90)[-1], "ok")

    def test_fragments(self):
        self.assertEqual(self.scenario("fragments")[-1], "ok")

    def test_ping(self):
        self.assertEqual(self.scenario("ping")[-1], "ok")

    def test_client_close_codes(self):
        for code, reason in ((1000, ""), (4000, "node says bye")):
            result = json.loads(self.scenario("close", code, reason)[-1])
            self.assertEqual(result["code"], code)
            self.assertIn(result["reason"], (reason, ""))  # echoing the reason is optional
            self.assertLess(result["ms"], 2000 * harness.SLOW,
                            "server took %d ms to finish the close" % result["ms"])

    def test_many_in_flight(self):
        self.assertEqual(self.scenario("many", 3000)[-1], "ok")

    def test_protocol_error_1002(self):
        result = json.loads(self.scenario("protocol-error")[-1])
        self.assertEqual(result["code"], 1002)


class NodeShutdown(unittest.TestCase):

    def shutdown(self, args, want):
        server = EchoServer(*args)
        self.addCleanup(server.kill)
        procs = [node("wait-close", server.url, timeout=20) for _ in range(3)]
        for p in procs:
            self.addCleanup(p.kill)
            line = p.stdout.readline().decode().strip()
            self.assertEqual(line, "open", "node client did not connect: %r" % line)
        server.send_signal(signal.SIGTERM)
        for p in procs:
            out, _ = p.communicate(timeout=15 * harness.SLOW)
            self.assertEqual(p.returncode, 0, out)
            result = json.loads(out.decode().strip().splitlines()[-1])
            self.assertEqual(result["code"], want)
        code = server.wait(10 * harness.SLOW)
        self.assertEqual(code, 0, "exit status %r\n%s" % (code, server.stderr_text()))

    def test_sigterm_1001(self):
        self.shutdown(("--shutdown-timeout", "5"), 1001)

    def test_shutdown_code_1012(self):
        self.shutdown(("--shutdown-code", "1012", "--shutdown-timeout", "5"), 1012)


if __name__ == "__main__":
    harness.main()
