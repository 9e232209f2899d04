"""The server half of the client-role conformance suite (client_conformance_test.py).

What is here:
  * PlainWire / TlsWire: one accepted TCP connection, plain or TLS. TLS runs
    over memory BIOs (ssl.SSLObject), so the test can send close_notify and
    then half-close TCP while still reading: that is how it watches the
    client close its side after the server closed first.
  * Peer: the test server's end of one connection, speaking raw bytes: reads
    and checks the client's upgrade request, writes any response head, writes
    server frames (broken on purpose when asked) and reads the client's
    frames, checking that each is masked (and keeping every masking key).
  * Listener: 127.0.0.1, port chosen by the kernel, one connection accepted.
  * Driver and its two kinds, LibraryDriver (tests/client/conformance_driver:
    switchboard::client directly, events on stdout) and EchoDriver
    (`switchboard connect URL --echo`): how to start the client under test
    and how to read its verdict (exit status and its one line of reason).

Only the standard library (and tls_harness for certificates) is used: the
server side is written byte by byte, so nothing else judges the client.
"""

import base64
import os
import re
import socket
import ssl
import struct
import subprocess
import time
import zlib

import harness
from harness import CLOSE, CONT, PING, PONG, TEXT, BINARY, accept_for, mask_bytes  # noqa: F401

WAIT = 5.0  # seconds for any one read; scaled by harness.SLOW


class Timeout(AssertionError):
    pass


class Eof(AssertionError):
    """The client closed TCP while the test expected more bytes."""


def _deadline(timeout):
    return time.monotonic() + timeout * harness.SLOW


# --- one accepted connection, plain or TLS ---------------------------------------

class PlainWire:
    def __init__(self, sock):
        self.sock = sock
        self.reset = False

    def recv(self, deadline):
        """Some bytes, or b"" once the client closed TCP (FIN or RST)."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("no bytes from the client in time")
        self.sock.settimeout(left)
        try:
            return self.sock.recv(65536)
        except socket.timeout:
            raise Timeout("no bytes from the client in time")
        except ConnectionResetError:
            self.reset = True
            return b""

    def send(self, data):
        self.sock.sendall(data)

    def shutdown_write(self):
        """The server closes TCP first (RFC 6455 7.1.1): FIN, but keep reading."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.sock.close()


class TlsWire(PlainWire):
    """TLS over memory BIOs: close_notify and the TCP half-close are separate steps."""

    def __init__(self, sock, ctx, timeout=WAIT):
        super().__init__(sock)
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_side=True)
        deadline = _deadline(timeout)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                if not self._pull(deadline):
                    raise Eof("the client closed TCP during the TLS handshake")
        self._flush()

    def _flush(self):
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _pull(self, deadline):
        data = PlainWire.recv(self, deadline)
        if not data:
            self.incoming.write_eof()
            return False
        self.incoming.write(data)
        return True

    def recv(self, deadline):
        while True:
            try:
                data = self.tls.read(65536)
                self._flush()
                return data
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""  # close_notify, or TCP ended without one
            except ssl.SSLWantReadError:
                if not self._pull(deadline):
                    return b""

    def send(self, data):
        self.tls.write(data)
        self._flush()

    def shutdown_write(self):
        try:
            self.tls.unwrap()  # writes our close_notify; the client's comes later
        except ssl.SSLError:
            pass
        try:
            self._flush()
        except OSError:
            pass
        PlainWire.shutdown_write(self)


# --- frames ----------------------------------------------------------------------------

class Frame:
    def __init__(self, fin, rsv, opcode, key, payload, minimal):
        self.fin, self.rsv, self.opcode = fin, rsv, opcode
        self.key = key  # None when the frame was not masked
        self.payload = payload
        self.minimal = minimal

    @property
    def close_code(self):
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return "Frame(fin=%d rsv=%d op=%d masked=%d len=%d %r)" % (
            self.fin, self.rsv, self.opcode, self.key is not None, len(self.payload), p)


def parse_client_frame(buf):
    """(Frame, consumed) from the start of buf, or None if incomplete."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    n, pos, minimal = b1 & 0x7F, 2, True
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = struct.unpack_from("!H", buf, 2)[0], 4
        minimal = n >= 126
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = struct.unpack_from("!Q", buf, 2)[0], 10
        minimal = n >= 65536
    key = None
    if b1 & 0x80:
        if len(buf) < pos + 4:
            return None
        key, pos = bytes(buf[pos:pos + 4]), pos + 4
    if len(buf) < pos + n:
        return None
    payload = bytes(buf[pos:pos + n])
    if key is not None:
        payload = mask_bytes(payload, key)
    return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, key, payload, minimal), pos + n


def server_frame(opcode, payload=b"", fin=True, rsv=0, mask_key=None, length=None,
                 length_form=None):
    """One frame as a server writes it: unmasked unless mask_key is given (a
    broken frame); `length` lies about the payload size, `length_form` forces
    the 7/16/64-bit encoding."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask_key is not None else 0
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    if form == 7:
        head = struct.pack("!BB", b0, mbit | n)
    elif form == 16:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask_key is not None:
        return head + mask_key + mask_bytes(payload, mask_key)
    return head + payload


def close_body(code=None, reason=b""):
    if code is None:
        return b""
    return struct.pack("!H", code) + (reason.encode() if isinstance(reason, str) else reason)


def deflate_message(payload, compressor=None, wbits=15):
    """RFC 7692 7.2.1: deflate, sync flush, drop the 00 00 ff ff tail."""
    c = compressor or zlib.compressobj(9, zlib.DEFLATED, -wbits)
    data = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


# --- the request the client sends ---------------------------------------------------

class Request:
    def __init__(self, raw):
        self.raw = raw
        lines = raw.decode("latin-1").split("\r\n")
        self.request_line = lines[0]
        self.headers = []
        for line in lines[1:]:
            if line:
                name, sep, value = line.partition(":")
                if not sep or name != name.strip():
                    raise AssertionError("bad header line in the request: %r" % line)
                self.headers.append((name.lower(), value.strip()))

    def values(self, name):
        return [v for n, v in self.headers if n == name.lower()]

    def get(self, name):
        values = self.values(name)
        return ", ".join(values) if values else None

    def tokens(self, name):
        value = self.get(name) or ""
        return [t.strip().lower() for t in value.split(",") if t.strip()]

    @property
    def key(self):
        return self.get("Sec-WebSocket-Key")


# --- the server's end of one connection ------------------------------------------------

class Peer:
    def __init__(self, wire):
        self.wire = wire
        self.buf = bytearray()
        self.keys = []  # every masking key the client used, in order
        self.eof = False

    def _fill(self, deadline):
        if self.eof:
            raise Eof("the client had already closed TCP")
        data = self.wire.recv(deadline)
        if not data:
            self.eof = True
            raise Eof("the client closed TCP")
        self.buf += data

    # handshake

    def read_request(self, timeout=WAIT):
        deadline = _deadline(timeout)
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 16384:
                raise AssertionError("request head over 16 KiB: %r" % bytes(self.buf[:200]))
            self._fill(deadline)
        end = self.buf.index(b"\r\n\r\n") + 4
        raw = bytes(self.buf[:end])
        del self.buf[:end]
        if self.buf:
            raise AssertionError("the client sent bytes before the 101: %r" % bytes(self.buf))
        return Request(raw)

    def send(self, data):
        self.wire.send(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.wire.send(server_frame(opcode, payload, **kw))

    # the client's frames

    def recv_frame(self, timeout=WAIT):
        """The client's next frame; it must be masked (RFC 6455 5.1, 5.3)."""
        deadline = _deadline(timeout)
        while True:
            parsed = parse_client_frame(self.buf)
            if parsed:
                frame, used = parsed
                del self.buf[:used]
                if frame.key is None:
                    raise AssertionError("the client sent an unmasked frame: %r" % frame)
                if not frame.minimal:
                    raise AssertionError("the client encoded a length non-minimally: %r" % frame)
                self.keys.append(frame.key)
                return frame
            self._fill(deadline)

    def recv_message(self, timeout=WAIT, inflater=None):
        """(opcode, payload, compressed) of the client's next data message; a
        control frame before it fails the test."""
        first = self.recv_frame(timeout)
        if first.opcode not in (TEXT, BINARY):
            raise AssertionError("expected a data frame from the client, got %r" % first)
        parts, frame = [first.payload], first
        while not frame.fin:
            frame = self.recv_frame(timeout)
            if frame.opcode != CONT or frame.rsv:
                raise AssertionError("expected a plain continuation, got %r" % frame)
            parts.append(frame.payload)
        payload = b"".join(parts)
        compressed = bool(first.rsv & 4)
        if first.rsv & 3 or (compressed and inflater is None):
            raise AssertionError("the client set RSV bits it may not use: %r" % first)
        if compressed:
            payload = inflater.decompress(payload + b"\x00\x00\xff\xff")
        return first.opcode, payload, compressed

    def expect_close(self, code, timeout=WAIT):
        """The client's next frame is a close with `code` (None: empty payload)."""
        frame = self.recv_frame(timeout)
        if frame.opcode != CLOSE:
            raise AssertionError("expected the client's close %s, got %r" % (code, frame))
        if code is None:
            if frame.payload:
                raise AssertionError("expected an empty close, got %r" % frame)
        elif frame.close_code != code:
            raise AssertionError("expected close code %d, got %r" % (code, frame))
        return frame

    def expect_eof(self, timeout=WAIT):
        """The client closes TCP, sending nothing more."""
        deadline = _deadline(timeout)
        while not self.eof:
            try:
                self._fill(deadline)
            except Eof:
                break
        if self.buf:
            raise AssertionError("the client sent more before closing TCP: %r" % bytes(self.buf[:80]))

    def close_first(self, timeout=WAIT):
        """The server closes TCP first (RFC 6455 7.1.1); the client must then close too."""
        self.wire.shutdown_write()
        self.expect_eof(timeout)

    def assert_quiet(self, seconds):
        """Nothing arrives and TCP stays open for `seconds` (not scaled)."""
        deadline = time.monotonic() + seconds
        try:
            self._fill(deadline)
        except Timeout:
            return
        except Eof:
            raise AssertionError("the client closed TCP before the server did")
        raise AssertionError("the client sent %r while it should wait" % bytes(self.buf[:80]))

    def closed_by_client(self, seconds):
        """True if the client closed TCP within `seconds` (bytes it sends are kept)."""
        try:
            self._fill(time.monotonic() + seconds)
        except Timeout:
            return False
        except Eof:
            return True
        return False

    def close(self):
        self.wire.close()


class Listener:
    """127.0.0.1 on a port the kernel picks; accept() one client, TLS if ctx."""

    def __init__(self, tls_ctx=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.tls_ctx = tls_ctx

    def url(self, path="/"):
        return "%s://127.0.0.1:%d%s" % ("wss" if self.tls_ctx else "ws", self.port, path)

    def accept(self, timeout=WAIT):
        self.sock.settimeout(timeout * harness.SLOW)
        try:
            conn, _ = self.sock.accept()
        except socket.timeout:
            raise Timeout("the client did not connect")
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return Peer(TlsWire(conn, self.tls_ctx) if self.tls_ctx else PlainWire(conn))

    def close(self):
        self.sock.close()


def response_head(request, status="101 Switching Protocols", accept=None, upgrade="websocket",
                  connection="Upgrade", protocol=None, extensions=None, extra=()):
    """A response head for `request`; pass None for a header to leave it out,
    accept=None computes the right Sec-WebSocket-Accept."""
    fields = []
    if upgrade is not None:
        fields.append(("Upgrade", upgrade))
    if connection is not None:
        fields.append(("Connection", connection))
    if accept is not False:
        fields.append(("Sec-WebSocket-Accept", accept or accept_for(request.key)))
    if protocol is not None:
        fields.append(("Sec-WebSocket-Protocol", protocol))
    for value in ([extensions] if isinstance(extensions, str) else extensions or []):
        fields.append(("Sec-WebSocket-Extensions", value))
    fields += list(extra)
    head = "HTTP/1.1 %s\r\n" % status + "".join("%s: %s\r\n" % f for f in fields) + "\r\n"
    return head.encode("latin-1")


# --- the client under test ---------------------------------------------------------------

class Options:
    """What the client is asked to offer and allow. Drivers turn it into arguments."""

    def __init__(self, protocols=(), deflate=False, deflate_no_client_window=False,
                 deflate_server_no_context_takeover=False, max_message_size=None,
                 close_timeout_ms=None, handshake_timeout_ms=None, path="/"):
        self.protocols = list(protocols)
        self.deflate = deflate
        self.deflate_no_client_window = deflate_no_client_window
        self.deflate_server_no_context_takeover = deflate_server_no_context_takeover
        self.max_message_size = max_message_size
        self.close_timeout_ms = close_timeout_ms
        self.handshake_timeout_ms = handshake_timeout_ms
        self.path = path


class Result:
    def __init__(self, code, stdout, stderr):
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def __repr__(self):
        return "exit %s\n--- stdout\n%s--- stderr\n%s" % (self.code, self.stdout, self.stderr)


class Run:
    """The client process of one case."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)

    def wait(self, timeout=WAIT * 2):
        try:
            out, err = self.proc.communicate(timeout=timeout * harness.SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError("the client did not exit in time:\n%r" % Result(
                None, out.decode(errors="replace"), err.decode(errors="replace")))
        return Result(self.proc.returncode, out.decode(errors="replace"),
                      err.decode(errors="replace"))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


class Driver:
    """Starts the client under test and judges its verdict. Subclasses say how."""

    name = None
    # Options this driver cannot express (the case is not generated for it).
    unsupported = ()

    def __init__(self, path, ca_file=None):
        self.path = path
        self.ca_file = ca_file

    def supports(self, options):
        return not any(getattr(options, o) for o in self.unsupported)


class LibraryDriver(Driver):
    """tests/client/conformance_driver.cpp: switchboard::client, events on stdout."""

    name = "library"

    def argv(self, url, o):
        args = [self.path, url]
        for p in o.protocols:
            args += ["--protocol", p]
        if o.deflate:
            args.append("--deflate")
        if o.deflate_no_client_window:
            args.append("--deflate-no-client-window")
        if o.deflate_server_no_context_takeover:
            args.append("--deflate-server-no-context-takeover")
        if o.max_message_size:
            args += ["--max-message-size", str(o.max_message_size)]
        if o.close_timeout_ms:
            args += ["--close-timeout-ms", str(o.close_timeout_ms)]
        if o.handshake_timeout_ms:
            args += ["--handshake-timeout-ms", str(o.handshake_timeout_ms)]
        if self.ca_file:
            args += ["--ca-file", self.ca_file]
        return args

    def check_normal(self, tc, r):
        tc.assertEqual(r.code, 0, r)
        tc.assertIn("close 1000 ", r.stdout, r)
        tc.assertNotIn("error ", r.stdout, r)

    def check_closed(self, tc, r, code, reason=""):
        tc.assertEqual(r.code, 0 if code == 1000 else 1, r)
        tc.assertIn("close %d %s\n" % (code, reason), r.stdout, r)
        tc.assertNotIn("error ", r.stdout, r)

    def check_protocol_error(self, tc, r, code, rule):
        tc.assertEqual(r.code, 1, r)
        tc.assertRegex(r.stdout, r"error switchboard\.protocol \d+ %d .*%s" % (code, re.escape(rule)))

    def check_handshake_error(self, tc, r, rule):
        tc.assertEqual(r.code, 1, r)
        tc.assertNotIn("open ", r.stdout, r)
        tc.assertRegex(r.stdout, r"error switchboard\.\w+ \d+ handshake failed: .*%s" % re.escape(rule))

    def check_dropped(self, tc, r):
        tc.assertEqual(r.code, 1, r)
        tc.assertIn("error switchboard.client", r.stdout, r)
        tc.assertIn("close 1006 ", r.stdout, r)


class EchoDriver(Driver):
    """`switchboard connect URL --echo`: the exit status and one line on stderr."""

    name = "connect_echo"
    unsupported = ("deflate_no_client_window", "deflate_server_no_context_takeover",
                   "handshake_timeout_ms")

    def argv(self, url, o):
        args = [self.path, "connect", url, "--echo"]
        for p in o.protocols:
            args += ["--protocol", p]
        if o.deflate:
            args.append("--deflate")
        if o.max_message_size:
            args += ["--max-message-size", str(o.max_message_size)]
        if o.close_timeout_ms:
            args += ["--close-timeout", "%g" % (o.close_timeout_ms / 1000)]
        if self.ca_file:
            args += ["--ca-file", self.ca_file]
        return args

    def check_normal(self, tc, r):
        tc.assertEqual(r.code, 0, r)
        tc.assertEqual(r.stderr, "", r)
        tc.assertEqual(r.stdout, "", r)

    def check_closed(self, tc, r, code, reason=""):
        if code == 1000:
            return self.check_normal(tc, r)
        tc.assertEqual(r.code, 3, r)
        tc.assertEqual(r.stderr, "closed: %d %s\n" % (code, reason), r)

    def check_protocol_error(self, tc, r, code, rule):
        tc.assertEqual(r.code, 3, r)
        tc.assertRegex(r.stderr, r"^switchboard: protocol error from server: .*%s.*; we closed with %d\n$"
                       % (re.escape(rule), code))

    def check_handshake_error(self, tc, r, rule):
        tc.assertEqual(r.code, 2, r)
        tc.assertRegex(r.stderr, r"^switchboard: handshake failed: .*%s.*\n$" % re.escape(rule))

    def check_dropped(self, tc, r):
        tc.assertEqual(r.code, 3, r)
        tc.assertRegex(r.stderr, r"^switchboard: connection lost: .*\n$")


def is_base64_key(value):
    try:
        return len(base64.b64decode(value, validate=True)) == 16 and len(value) == 24
    except (ValueError, TypeError):
        return False
