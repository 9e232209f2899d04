#!/usr/bin/python3
"""permessage-deflate interoperability: python3-websockets (10.4) and node ws
against `switchboard echo --deflate shared|dedicated`, and `switchboard connect
--deflate` against a python3-websockets server with compression.

Usage: /usr/bin/python3 deflate_interop_test.py <path to switchboard>
"""

import asyncio
import os
import subprocess
import sys
import threading
import unittest

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import EchoServer  # noqa: E402

import websockets  # noqa: E402  (Debian python3-websockets; run with /usr/bin/python3)
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory  # noqa: E402

SIZES = (0, 1, 127, 128, 4096, 65536, 1 << 20, 4 << 20)


def words(n, seed=1):
    vocab = [b"switch ", b"board ", b"deflate ", b"frame ", b"window ", b"topic "]
    out, x = bytearray(), seed
    while len(out) < n:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out += vocab[(x >> 16) % len(vocab)]
    return bytes(out[:n])


def noisy(n, seed=1):
    # Binary that still compresses a little.
    b = bytearray(words(n, seed))
    for i in range(0, n, 3):
        b[i] = (i * 31 + seed) & 0xFF
    return bytes(b)


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout * harness.SLOW))


def ext_params(value):
    return [p.strip() for p in (value or "").split(";") if p.strip()]


async def round_trips(url, testcase, label, **kw):
    """Text and binary of every size, then 200 similar messages; returns the
    negotiated Sec-WebSocket-Extensions."""
    async with websockets.connect(url, max_size=None, **kw) as ws:
        for size in SIZES:
            text = words(size, size).decode()
            await ws.send(text)
            testcase.assertEqual(await ws.recv(), text, (label, size))
            data = noisy(size, size)
            await ws.send(data)
            testcase.assertEqual(await ws.recv(), data, (label, size))
        for n in range(200):
            msg = '{"seq":%d,"body":"%s"}' % (n, words(300, 4).decode())
            await ws.send(msg)
            testcase.assertEqual(await ws.recv(), msg, (label, n))
        return ws.response_headers.get("Sec-WebSocket-Extensions")


class PythonClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.shared = EchoServer("--deflate", "shared")
        cls.dedicated = EchoServer("--deflate", "dedicated")

    @classmethod
    def tearDownClass(cls):
        cls.shared.stop()
        cls.dedicated.stop()

    def test_default_compression_shared(self):
        ext = run(round_trips(self.shared.url, self, "shared"))
        self.assertEqual(ext_params(ext), ["permessage-deflate", "server_no_context_takeover",
                                           "client_no_context_takeover"])

    def test_default_compression_dedicated(self):
        # websockets offers a bare client_max_window_bits: the lean defaults
        # hold both directions to window 11 (server/compression.hpp).
        ext = run(round_trips(self.dedicated.url, self, "dedicated"))
        self.assertEqual(ext_params(ext), ["permessage-deflate", "server_max_window_bits=11",
                                           "client_max_window_bits=11"])

    def test_windows_and_takeover_combinations(self):
        async def go(url, **factory):
            ext = [ClientPerMessageDeflateFactory(**factory)]
            async with websockets.connect(url, max_size=None, extensions=ext) as ws:
                for size in (0, 300, 70000, 1 << 20):
                    data = words(size, size)
                    await ws.send(data)
                    self.assertEqual(await ws.recv(), data, (url, factory, size))
                for n in range(30):
                    msg = "message %d %s" % (n, words(200, 2).decode())
                    await ws.send(msg)
                    self.assertEqual(await ws.recv(), msg, (url, factory, n))
                return ext_params(ws.response_headers.get("Sec-WebSocket-Extensions"))

        for bits in range(9, 16):
            for nct in (False, True):
                for server in (self.shared, self.dedicated):
                    factory = dict(server_no_context_takeover=nct, client_no_context_takeover=nct,
                                   server_max_window_bits=bits, client_max_window_bits=bits)
                    p = run(go(server.url, **factory))
                    self.assertIn("permessage-deflate", p)
                    # Dedicated answers at most its default window, 11, both ways.
                    want = bits if server is self.shared else min(bits, 11)
                    if want < 15:
                        self.assertIn("server_max_window_bits=%d" % want, p, factory)
                        self.assertIn("client_max_window_bits=%d" % want, p, factory)
                    if nct or server is self.shared:
                        self.assertIn("server_no_context_takeover", p, factory)
                        self.assertIn("client_no_context_takeover", p, factory)

    def test_without_compression_still_works(self):
        async def go():
            async with websockets.connect(self.shared.url, compression=None) as ws:
                await ws.send("plain")
                self.assertEqual(await ws.recv(), "plain")
                self.assertIsNone(ws.response_headers.get("Sec-WebSocket-Extensions"))
        run(go())


NODE_SCRIPT = r"""
'use strict';
const WebSocket = require('ws');
const [url, mode] = process.argv.slice(1);
function words(n, seed) {
  const vocab = ['switch ', 'board ', 'deflate ', 'frame ', 'window ', 'topic '];
  let s = '', x = seed >>> 0;
  while (s.length < n) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; s += vocab[(x >>> 16) % 6]; }
  return s.slice(0, n);
}
const sizes = [0, 1, 127, 128, 4096, 65536, 1 << 20, 4 << 20];
const plan = [];
for (const n of sizes) { plan.push(words(n, n)); plan.push(Buffer.from(words(n, n + 1))); }
for (let i = 0; i < 200; i++) plan.push('{"seq":' + i + ',"body":"' + words(300, 4) + '"}');
const ws = new WebSocket(url, { perMessageDeflate: true, maxPayload: 64 << 20 });
let k = 0;
const timer = setTimeout(() => { console.log('FAIL: timeout at ' + k); process.exit(1); }, 25000);
ws.on('upgrade', (res) => console.log('ext ' + (res.headers['sec-websocket-extensions'] || '')));
ws.on('open', () => ws.send(plan[0]));
ws.on('message', (data, isBinary) => {
  const want = plan[k];
  const ok = typeof want === 'string' ? (!isBinary && data.toString() === want)
                                      : (isBinary && Buffer.compare(data, want) === 0);
  if (!ok) { console.log('FAIL: message ' + k + ' differs'); process.exit(1); }
  if (++k === plan.length) { ws.close(1000); return; }
  ws.send(plan[k]);
});
ws.on('close', (code) => {
  clearTimeout(timer);
  if (k !== plan.length) { console.log('FAIL: closed ' + code + ' after ' + k); process.exit(1); }
  console.log('ok ' + ws.extensions);
});
ws.on('error', (e) => { console.log('FAIL: ' + e.message); process.exit(1); });
"""


class NodeClient(unittest.TestCase):
    def run_node(self, mode):
        with EchoServer("--deflate", mode) as server:
            env = dict(os.environ, NODE_PATH="/usr/share/nodejs")
            out = subprocess.run(["node", "-e", NODE_SCRIPT, server.url, mode],
                                 capture_output=True, env=env, timeout=40 * harness.SLOW)
            text = out.stdout.decode()
            self.assertEqual(out.returncode, 0, text + out.stderr.decode())
            self.assertIn("ok", text)
            line = [l for l in text.splitlines() if l.startswith("ext ")][0]
            return ext_params(line[4:])

    def test_node_shared(self):
        p = self.run_node("shared")
        self.assertEqual(p[0], "permessage-deflate")
        self.assertIn("server_no_context_takeover", p)
        self.assertIn("client_no_context_takeover", p)

    def test_node_dedicated(self):
        # ws offers a bare client_max_window_bits, like browsers.
        p = self.run_node("dedicated")
        self.assertEqual(p, ["permessage-deflate", "server_max_window_bits=11",
                             "client_max_window_bits=11"])


class ConnectAgainstPython(unittest.TestCase):
    """`switchboard connect --deflate` against a python3-websockets server."""

    def serve(self, **kwargs):
        self.negotiated = []
        ready = threading.Event()
        self.loop = asyncio.new_event_loop()

        async def handler(ws, path=None):
            self.negotiated.append(ws.response_headers.get("Sec-WebSocket-Extensions"))
            async for msg in ws:
                await ws.send(msg)

        async def start():
            self.server = await websockets.serve(handler, "127.0.0.1", 0, max_size=None,
                                                 **kwargs)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        def main():
            self.loop.run_until_complete(start())
            self.loop.run_forever()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        self.assertTrue(ready.wait(10))

    def tearDown(self):
        async def stop():
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def connect(self, *args, stdin=b""):
        """Writes `stdin`, reads one echo per line, then ends stdin (EOF closes
        with 1000, so every echo must be in before it)."""
        proc = subprocess.Popen([harness.BINARY_PATH, "connect",
                                 "ws://127.0.0.1:%d/" % self.port, *args],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        proc.stdin.write(stdin)
        proc.stdin.flush()
        got = b"".join(proc.stdout.readline() for _ in range(stdin.count(b"\n")))
        proc.stdin.close()
        proc.wait(timeout=20 * harness.SLOW)
        rest, err = proc.stdout.read(), proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        return subprocess.CompletedProcess(proc.args, proc.returncode, got + rest, err)

    def test_compressed_echo(self):
        self.serve(compression="deflate")
        lines = [words(n, n) for n in (1, 50, 200, 5000, 100000)] + [b"same line again"] * 50
        out = self.connect("--deflate", stdin=b"\n".join(lines) + b"\n")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.split(b"\n")[:-1], lines)
        self.assertIn("permessage-deflate", self.negotiated[0] or "")

    def test_server_with_no_context_takeover_and_small_windows(self):
        from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
        self.serve(extensions=[ServerPerMessageDeflateFactory(
            server_no_context_takeover=True, client_no_context_takeover=True,
            server_max_window_bits=10, client_max_window_bits=9)])
        lines = [words(3000, n) for n in range(20)]
        out = self.connect("--deflate", stdin=b"\n".join(lines) + b"\n")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.split(b"\n")[:-1], lines)
        p = ext_params(self.negotiated[0])
        self.assertIn("client_max_window_bits=9", p)
        self.assertIn("server_max_window_bits=10", p)

    def test_without_flag_no_offer(self):
        self.serve(compression="deflate")
        out = self.connect(stdin=b"hello\n")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, b"hello\n")
        self.assertIsNone(self.negotiated[0])


if __name__ == "__main__":
    harness.main()
