#!/usr/bin/env python3
"""client_interop_test.py — `switchboard connect` against independent servers.

Runs our interactive client (the contract documented in
apps/switchboard/connect_command.cpp) against a python3-websockets 10.4 server
and a node `ws` 8 server: echo of several lines (UTF-8 included), `--echo` as
the peer of a server that talks first (text, binary, deflate), subprotocol
choice, request headers, a server-initiated close with 4000 (exit 3), a
handshake rejected with 403 (exit 2), and failures found before any handshake.

Usage: /usr/bin/python3 client_interop_test.py PATH/TO/switchboard
Every subprocess runs under a timeout; every server is stopped at the end.
"""
import asyncio
import http
import os
import queue
import subprocess
import sys
import threading
import unittest

import websockets

BINARY = None
TIMEOUT = 15  # seconds for any one wait

NODE_SERVER = r"""
const { WebSocketServer } = require('ws');
const wss = new WebSocketServer({
  host: '127.0.0.1', port: 0,
  handleProtocols: (offered) => (offered.has('b.v2') ? 'b.v2' : false),
});
wss.on('listening', () => console.log(wss.address().port));
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    const text = data.toString();
    if (!isBinary && text === 'close-me') ws.close(4000, 'node bye');
    else if (!isBinary && text === 'protocol?') ws.send(ws.protocol || '(none)');
    else ws.send(data, { binary: isBinary });
  });
});
// The test closes our stdin to stop us.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
"""


def _pump(stream, sink):
    """Copies lines from a subprocess pipe into a queue; None marks EOF."""
    for line in iter(stream.readline, b""):
        sink.put(line)
    sink.put(None)


class connect_process:
    """`switchboard connect ARGS...` with stdin a pipe and stdout read line by line."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([BINARY, "connect", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=_pump, args=(self.proc.stdout, self.lines),
                                       daemon=True)
        self.reader.start()

    def send(self, data: bytes):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read_line(self) -> bytes:
        line = self.lines.get(timeout=TIMEOUT)
        if line is None:
            raise AssertionError("stdout ended; stderr: " + self.stderr_so_far())
        return line

    def stderr_so_far(self):
        return "(read after exit)" if self.proc.poll() is None else self.proc.stderr.read().decode()

    def finish(self, close_stdin=True):
        """Waits for the exit (closing stdin first if asked); returns (code, stderr)."""
        if close_stdin:
            self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        err = self.proc.stderr.read().decode()
        self.reader.join(timeout=TIMEOUT)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        return code, err


def run_connect(*args, stdin=b""):
    """Runs connect to the end with fixed input; returns the CompletedProcess."""
    return subprocess.run([BINARY, "connect", *args], input=stdin, capture_output=True,
                          timeout=TIMEOUT)


class python_server:
    """websockets.serve on 127.0.0.1, port 0, in a background asyncio thread."""

    def __init__(self, handler, **kwargs):
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        async def start():
            self.server = await websockets.serve(handler, "127.0.0.1", 0, **kwargs)
            self.port = self.server.sockets[0].getsockname()[1]
            started.set()

        self.thread = threading.Thread(target=self._run, args=(start,), daemon=True)
        self.thread.start()
        if not started.wait(TIMEOUT):
            raise RuntimeError("python websockets server did not start")

    def _run(self, start):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def url(self, path="/"):
        return "ws://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        async def shutdown():
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()


async def echo(ws):
    try:
        async for message in ws:
            if message == "close-me":
                await ws.close(4000, "bye now")
            elif message == "info?":
                await ws.send("%s|%s|%s|%s" % (ws.subprotocol, ws.request_headers.get("X-Test"),
                                               ws.request_headers.get("Origin"), ws.path))
            else:
                await ws.send(message)
    except websockets.ConnectionClosed:
        pass  # the client closed while we were echoing: expected at EOF


LINES = ["hello", "h\u00e9llo \u2713 \u65e5\u672c\u8a9e \U0001f600", "", "a" * 5000, "last"]


class python_websockets_test(unittest.TestCase):
    def setUp(self):
        self.server = python_server(echo, subprotocols=["b.v2", "c"])

    def tearDown(self):
        self.server.stop()

    def test_echo_of_several_lines_including_utf8(self):
        client = connect_process(self.server.url())
        for line in LINES:
            client.send(line.encode() + b"\n")
            self.assertEqual(client.read_line(), line.encode() + b"\n")
        code, err = client.finish()
        self.assertEqual(code, 0, err)

    def test_last_line_without_newline_is_sent_at_eof(self):
        # At EOF the client sends its close right after the last message, so
        # the server may answer the close before echoing: judge by what the
        # server received, not by the echoes.
        received = []

        async def record(ws):
            try:
                async for message in ws:
                    received.append(message)
            except websockets.ConnectionClosed:
                pass

        server = python_server(record)
        try:
            result = run_connect(server.url(), stdin=b"one\ntwo")
        finally:
            server.stop()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(received, ["one", "two"])

    def test_subprotocol_headers_origin_and_path(self):
        client = connect_process(self.server.url("/room?x=1"), "--protocol", "a",
                                 "--protocol", "b.v2", "--header", "X-Test: 42",
                                 "--origin", "http://origin.test")
        client.send(b"info?\n")
        self.assertEqual(client.read_line(), b"b.v2|42|http://origin.test|/room?x=1\n")
        code, err = client.finish()
        self.assertEqual(code, 0, err)

    def test_server_close_4000_exits_3(self):
        client = connect_process(self.server.url())
        client.send(b"close-me\n")
        code, err = client.finish(close_stdin=False)
        self.assertEqual(code, 3, err)
        self.assertIn("closed: 4000 bye now", err)


class python_echo_peer_test(unittest.TestCase):
    """`connect --echo` as the peer of a python3-websockets server that talks first."""

    def run_echo(self, close_code, *args):
        got = []
        self.extensions = []

        async def talk(ws):
            self.extensions = [e.name for e in ws.extensions]
            messages = ["hello", "h\u00e9llo \U0001f600", "", b"\x00\xff raw", "a" * 70000]
            for message in messages:
                await ws.send(message)
                got.append(await ws.recv())
            await ws.close(close_code, "done")

        server = python_server(talk)
        try:
            result = run_connect(server.url(), "--echo", *args)
        finally:
            server.stop()
        self.assertEqual(got, ["hello", "h\u00e9llo \U0001f600", "", b"\x00\xff raw", "a" * 70000])
        return result

    def test_echo_exits_0_on_1000_and_prints_nothing(self):
        result = self.run_echo(1000)
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, b"", b""))
        self.assertEqual(self.extensions, [])

    def test_echo_with_deflate(self):
        result = self.run_echo(1000, "--deflate")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.extensions, ["permessage-deflate"])

    def test_echo_exits_3_on_another_code(self):
        result = self.run_echo(4000)
        self.assertEqual(result.returncode, 3, result.stderr)
        self.assertEqual(result.stderr, b"closed: 4000 done\n")


class python_rejection_test(unittest.TestCase):
    def test_403_exits_2_with_a_clear_message(self):
        async def reject(path, headers):
            return http.HTTPStatus.FORBIDDEN, [], b"go away\n"

        server = python_server(echo, process_request=reject)
        try:
            result = run_connect(server.url())
        finally:
            server.stop()
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn(b"switchboard: handshake failed: server answered 403 Forbidden",
                      result.stderr)

    def test_unexpected_subprotocol_exits_2(self):
        # The server insists on "c" although we offered "a".
        async def choose_c(ws):
            await ws.wait_closed()

        server = python_server(choose_c, subprotocols=["c"],
                               select_subprotocol=lambda offered, available: "c")
        try:
            result = run_connect(server.url(), "--protocol", "a")
        finally:
            server.stop()
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn(b"switchboard: handshake failed", result.stderr)


class failure_before_handshake_test(unittest.TestCase):
    def test_connection_refused_exits_2(self):
        import socket
        with socket.socket() as s:  # a port with nothing listening on it
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        result = run_connect("ws://127.0.0.1:%d/" % port)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn(b"switchboard: cannot connect to 127.0.0.1:", result.stderr)

    def test_wss_connection_refused_exits_2(self):
        # wss:// is spoken now (tls_test.py covers it): a closed port fails
        # like ws://, before any TLS.
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        result = run_connect("wss://127.0.0.1:%d/" % port, "--insecure-skip-verify")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn(b"switchboard: cannot connect to 127.0.0.1:", result.stderr)

    def test_bad_url_exits_2(self):
        result = run_connect("ws://host:0/")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn(b"malformed URL", result.stderr)


class node_ws_test(unittest.TestCase):
    def setUp(self):
        env = dict(os.environ, NODE_PATH="/usr/share/nodejs")
        self.node = subprocess.Popen(["node", "-e", NODE_SERVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env)
        ports = queue.Queue()
        threading.Thread(target=_pump, args=(self.node.stdout, ports), daemon=True).start()
        line = ports.get(timeout=TIMEOUT)
        if line is None:
            self.node.wait(TIMEOUT)
            self.fail("node ws server did not start (exit %s)" % self.node.returncode)
        self.url = "ws://127.0.0.1:%d/" % int(line)

    def tearDown(self):
        self.node.stdin.close()
        try:
            self.node.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.node.kill()
            self.node.wait()
        self.node.stdout.close()

    def test_echo_of_text_lines_including_utf8(self):
        client = connect_process(self.url)
        for line in LINES:
            client.send(line.encode() + b"\n")
            self.assertEqual(client.read_line(), line.encode() + b"\n")
        code, err = client.finish()
        self.assertEqual(code, 0, err)

    def test_binary_mode(self):
        client = connect_process(self.url, "--binary")
        client.send(b"\x00\x01\xff raw\n")
        self.assertEqual(client.read_line(), b"\x00\x01\xff raw\n")
        code, err = client.finish()
        self.assertEqual(code, 0, err)

    def test_subprotocol_choice(self):
        client = connect_process(self.url, "-p", "a", "-p", "b.v2")
        client.send(b"protocol?\n")
        self.assertEqual(client.read_line(), b"b.v2\n")
        code, err = client.finish()
        self.assertEqual(code, 0, err)

    def test_server_close_4000_exits_3(self):
        client = connect_process(self.url)
        client.send(b"close-me\n")
        code, err = client.finish(close_stdin=False)
        self.assertEqual(code, 3, err)
        self.assertIn("closed: 4000 node bye", err)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: client_interop_test.py PATH/TO/switchboard [unittest args]")
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
