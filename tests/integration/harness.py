"""Shared helpers for the integration suites that drive `switchboard echo`.

What is here:
  * EchoServer: starts `switchboard echo --port 0 ...` (or another subcommand
    with the same contract), reads the one
    `listening on ws://HOST:PORT` line with a timeout, stops the process with a
    signal and reports its exit status (killing it if it overstays), and reads
    its RSS and open-fd count from /proc.
  * Frame helpers: build_frame() writes masked (or deliberately broken) client
    frames byte by byte; parse_frame() reads one frame from a byte buffer.
  * RawClient: a blocking socket that performs the opening handshake by hand and
    reads frames and HTTP responses with deadlines.
  * main(): every script runs as `python3 <script> <path-to-switchboard>`; it
    prints unittest's summary and exits non-zero unless every test passed.

Only the Python standard library is used here, so the raw suites do not depend
on any WebSocket implementation besides the one under test.
"""

import base64
import hashlib
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Opcodes (RFC 6455 section 5.2).
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

BINARY_PATH = None  # set by main() from argv[1]

# Sanitizer builds are several times slower; scale the generous time bounds.
SLOW = float(os.environ.get("SWITCHBOARD_IT_SLOWDOWN", "1"))
# Set (to epoll or io_uring) by the ctest registrations that run a suite on a
# given event-loop backend: every EchoServer gets --io-backend, and one that
# fell back to epoll fails to start instead of passing on the wrong backend.
IO_BACKEND = os.environ.get("SWITCHBOARD_IT_IO_BACKEND", "")


class ServerError(Exception):
    pass


def _read_line(fd, timeout):
    """Read bytes from fd up to and including the first newline, or raise."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise ServerError("timed out waiting for the listening line; got %r" % data)
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 1)
        if not chunk:
            raise ServerError("stdout closed before the listening line; got %r" % data)
        data += chunk
    return data


class EchoServer:
    """One `switchboard echo` process bound to 127.0.0.1 on a kernel-chosen port.

    `command` and `scheme` serve other subcommands with the same start-up
    contract: `switchboard COMMAND --host 127.0.0.1 --port 0 ARGS...`, whose
    first stdout line is `listening on SCHEME://HOST:PORT` (serve_test.py runs
    `serve`, which prints an http:// line)."""

    def __init__(self, *args, startup_timeout=10.0, command="echo", scheme="ws",
                 preexec_fn=None):
        if BINARY_PATH is None:
            raise ServerError("harness.main() was not called with the binary path")
        self.argv = [BINARY_PATH, command, "--host", "127.0.0.1", "--port", "0"]
        if IO_BACKEND and command in ("echo", "serve"):
            self.argv += ["--io-backend", IO_BACKEND]
        self.argv += [str(a) for a in args]
        self._stderr = tempfile.TemporaryFile()
        self._stderr_saved = ""
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._stderr,
                                     preexec_fn=preexec_fn)
        self.pid = self.proc.pid
        self.extra_stdout = b""
        try:
            line = _read_line(self.proc.stdout.fileno(), startup_timeout * SLOW)
        except ServerError as e:
            self.kill()
            raise ServerError("%s\n--- stderr ---\n%s" % (e, self.stderr_text()))
        self.listening_line = line
        if IO_BACKEND and "io_uring unavailable" in self.stderr_text():
            self.kill()
            raise ServerError("asked for --io-backend %s, got a fallback:\n%s"
                              % (IO_BACKEND, self.stderr_text()))
        m = re.fullmatch(rb"listening on " + re.escape(scheme.encode()) + rb"://([^\s:]+):(\d+)\n",
                         line)
        if not m:
            self.kill()
            raise ServerError("unexpected first stdout line %r" % line)
        self.host = m.group(1).decode()
        self.port = int(m.group(2))
        # Drain stdout in the background so the child can never block on a full pipe;
        # what arrives is kept for the test that checks the one-line contract.
        self._drain = threading.Thread(target=self._drain_stdout, daemon=True)
        self._drain.start()
        self.exit_code = None

    def _drain_stdout(self):
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.extra_stdout += chunk

    @property
    def url(self):
        return "ws://127.0.0.1:%d" % self.port

    def alive(self):
        return self.proc.poll() is None

    def stderr_text(self, limit=6000):
        if self._stderr.closed:
            text = self._stderr_saved
        else:
            self._stderr.seek(0)
            text = self._stderr.read().decode(errors="replace")
        return text if len(text) <= limit else "...\n" + text[-limit:]

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Wait for exit; returns the exit code or None if still running."""
        try:
            self.exit_code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._release()
        return self.exit_code

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signal the server and wait; returns (exit code or None if killed, seconds)."""
        if self.proc.poll() is not None:
            self.exit_code = self.proc.returncode
            return self.exit_code, 0.0
        start = time.monotonic()
        self.proc.send_signal(sig)
        code = self.wait(timeout * SLOW)
        elapsed = time.monotonic() - start
        if code is None:
            self.kill()
            return None, elapsed
        return code, elapsed

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._release()

    def _release(self):
        if self.proc.poll() is not None:
            self._drain.join(timeout=1) if hasattr(self, "_drain") else None
            if not self._stderr.closed:
                self._stderr.seek(0)
                self._stderr_saved = self._stderr.read().decode(errors="replace")
            for f in (self.proc.stdout, self._stderr):
                try:
                    f.close()
                except (OSError, ValueError):
                    pass

    def stop_checked(self, testcase, timeout=10.0):
        """SIGTERM, then assert a clean exit 0 within the timeout."""
        code, elapsed = self.stop(timeout=timeout)
        testcase.assertIsNotNone(
            code, "server did not exit within %.1fs of SIGTERM (killed)\n%s"
            % (timeout * SLOW, self.stderr_text()))
        testcase.assertEqual(
            code, 0, "server exited with %r after SIGTERM\n--- stderr ---\n%s"
            % (code, self.stderr_text()))
        return elapsed

    # --- /proc introspection -------------------------------------------------

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise ServerError("no VmRSS in /proc/%d/status" % self.pid)

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        return False


# --- handshake ----------------------------------------------------------------

def make_key():
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def handshake_request(path="/", key=None, method="GET", version="HTTP/1.1",
                      headers=None, host="127.0.0.1"):
    """Build an opening handshake. `headers` maps a header name to a value, or to
    None to leave that header out; names not among the defaults are appended."""
    key = make_key() if key is None else key
    fields = [("Host", host), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
              ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]
    overrides = dict(headers or {})
    out = []
    for name, value in fields:
        if name in overrides:
            value = overrides.pop(name)
        if value is not None:
            out.append((name, value))
    for name, value in overrides.items():
        if value is not None:
            out.append((name, value))
    head = "%s %s %s\r\n" % (method, path, version)
    head += "".join("%s: %s\r\n" % nv for nv in out) + "\r\n"
    return head.encode("latin-1")


class HttpResponse:
    def __init__(self, status, reason, headers, raw):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (lower-case name, value)
        self.raw = raw

    def get(self, name):
        values = [v for n, v in self.headers if n == name.lower()]
        return ", ".join(values) if values else None

    def __repr__(self):
        return "HttpResponse(%r)" % self.raw[:400]


def parse_http_head(raw):
    lines = raw.decode("latin-1").split("\r\n")
    m = re.fullmatch(r"HTTP/1\.1 (\d{3})(?: (.*))?", lines[0])
    if not m:
        raise AssertionError("bad status line %r" % lines[0])
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise AssertionError("bad header line %r" % line)
        headers.append((name.strip().lower(), value.strip()))
    return HttpResponse(int(m.group(1)), m.group(2) or "", headers, raw)


# --- frames ---------------------------------------------------------------------

def mask_bytes(payload, key):
    if not payload:
        return b""
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, key=None,
                length=None, length_form=None):
    """One frame as a client would write it. `length` overrides the announced
    payload length (to lie about it); `length_form` forces 7/16/64 as the encoding."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    if form == 7:
        head = struct.pack("!BB", b0, mbit | n)
    elif form == 16:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        key = os.urandom(4) if key is None else key
        return head + key + mask_bytes(payload, key)
    return head + payload


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, masked, payload, minimal_length, header_len):
        self.fin, self.rsv, self.opcode = fin, rsv, opcode
        self.masked, self.payload = masked, payload
        self.minimal_length = minimal_length
        self.header_len = header_len

    @property
    def close_code(self):
        if self.opcode != CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self):
        return self.payload[2:]

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return "Frame(fin=%d rsv=%d op=%d masked=%d len=%d %r)" % (
            self.fin, self.rsv, self.opcode, self.masked, len(self.payload), p)


def parse_frame(buf):
    """Parse one frame from the start of buf: (Frame, bytes consumed) or None if
    more bytes are needed."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    n = b1 & 0x7F
    pos = 2
    minimal = True
    if n == 126:
        if len(buf) < 4:
            return None
        n = struct.unpack_from("!H", buf, 2)[0]
        pos = 4
        minimal = n >= 126
    elif n == 127:
        if len(buf) < 10:
            return None
        n = struct.unpack_from("!Q", buf, 2)[0]
        pos = 10
        minimal = n >= 65536 and not (n >> 63)
    masked = bool(b1 & 0x80)
    key = b""
    if masked:
        if len(buf) < pos + 4:
            return None
        key = bytes(buf[pos:pos + 4])
        pos += 4
    if len(buf) < pos + n:
        return None
    payload = bytes(buf[pos:pos + n])
    if masked:
        payload = mask_bytes(payload, key)
    f = Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, masked, payload, minimal, pos)
    return f, pos + n


class PeerClosed(Exception):
    """The server closed (FIN) or reset the TCP connection."""

    def __init__(self, how, pending=b""):
        super().__init__("server closed the TCP connection (%s); %d unparsed bytes"
                         % (how, len(pending)))
        self.how = how


class RecvTimeout(AssertionError):
    pass


class RawClient:
    """A blocking TCP client that speaks WebSocket by hand."""

    def __init__(self, port, host="127.0.0.1", rcvbuf=None, timeout=5.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout * SLOW)
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = None

    # context manager so tests never leak sockets
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Close with an RST (SO_LINGER 0)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(build_frame(opcode, payload, **kw))

    def _fill(self, deadline):
        """Receive more bytes into buf; raises PeerClosed or RecvTimeout."""
        if self.eof:
            raise PeerClosed(self.eof, self.buf)
        left = deadline - time.monotonic()
        if left <= 0:
            raise RecvTimeout("timed out waiting for data from the server")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise RecvTimeout("timed out waiting for data from the server")
        except (ConnectionResetError, BrokenPipeError) as e:
            self.eof = "reset: %s" % e
            raise PeerClosed(self.eof, self.buf)
        if not chunk:
            self.eof = "eof"
            raise PeerClosed("eof", self.buf)
        self.buf += chunk

    # --- HTTP -------------------------------------------------------------------

    def recv_http(self, timeout=5.0):
        deadline = time.monotonic() + timeout * SLOW
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                raw = bytes(self.buf[:end + 4])
                del self.buf[:end + 4]
                resp = parse_http_head(raw)
                # Skip a body the server announced so frames that follow are aligned.
                length = resp.get("content-length")
                if length and resp.status != 101:
                    want = int(length)
                    while len(self.buf) < want:
                        try:
                            self._fill(deadline)
                        except PeerClosed:
                            break
                    resp.body = bytes(self.buf[:want])
                    del self.buf[:want]
                return resp
            self._fill(deadline)

    def handshake(self, path="/", extra=b"", expect_status=101, **kw):
        """Send an opening handshake (plus `extra` bytes in the same write) and
        read the response; by default assert a valid 101."""
        key = kw.pop("key", None) or make_key()
        self.sock.sendall(handshake_request(path, key=key, **kw) + extra)
        resp = self.recv_http()
        if expect_status is not None and resp.status != expect_status:
            raise AssertionError("expected HTTP %d, got %r" % (expect_status, resp))
        if resp.status == 101:
            got = resp.get("sec-websocket-accept")
            if got != accept_for(key):
                raise AssertionError("bad Sec-WebSocket-Accept %r for key %r" % (got, key))
        resp.key = key
        return resp

    # --- frames -------------------------------------------------------------------

    def recv_frame(self, timeout=5.0):
        deadline = time.monotonic() + timeout * SLOW
        while True:
            parsed = parse_frame(self.buf)
            if parsed:
                frame, used = parsed
                del self.buf[:used]
                return frame
            self._fill(deadline)

    def recv_message(self, timeout=5.0):
        """Read frames until a whole data message arrives, answering nothing.
        Returns (opcode, payload, control frames seen before it, data frames)."""
        deadline = time.monotonic() + timeout * SLOW
        controls, parts, opcode, frames = [], [], None, []
        while True:
            f = self.recv_frame(max(0.0, deadline - time.monotonic()) / SLOW)
            if f.opcode >= 8:
                if f.opcode == CLOSE:
                    raise AssertionError("close frame %r (code %r) instead of a message"
                                         % (f, f.close_code))
                controls.append(f)
                continue
            frames.append(f)
            if opcode is None:
                if f.opcode == CONT:
                    raise AssertionError("server sent a continuation frame first: %r" % f)
                opcode = f.opcode
            elif f.opcode != CONT:
                raise AssertionError("server started a new message inside one: %r" % f)
            parts.append(f.payload)
            if f.fin:
                return opcode, b"".join(parts), controls, frames

    def expect_close(self, code, timeout=5.0, skip_data=True):
        """Read until a close frame; assert its code (None = empty payload)."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            try:
                f = self.recv_frame(max(0.0, deadline - time.monotonic()) / SLOW)
            except PeerClosed as e:
                raise AssertionError("expected a close frame with %r, but %s" % (code, e))
            if f.opcode == CLOSE:
                break
            if not skip_data:
                raise AssertionError("expected a close frame, got %r" % f)
        if f.masked:
            raise AssertionError("server close frame is masked")
        if not f.fin:
            raise AssertionError("server close frame has FIN clear")
        if code is None:
            if f.payload:
                raise AssertionError("expected an empty close, got code %r payload %r"
                                     % (f.close_code, f.payload))
        elif f.close_code != code:
            raise AssertionError("expected close code %r, got %r (payload %r)"
                                 % (code, f.close_code, f.payload))
        try:
            f.close_reason.decode("utf-8")
        except UnicodeDecodeError:
            raise AssertionError("server close reason is not UTF-8: %r" % f.payload)
        return f

    def wait_closed(self, timeout=3.0):
        """Discard frames until the server closes TCP; returns seconds waited.
        An RST counts as closed too; a timeout raises RecvTimeout."""
        start = time.monotonic()
        deadline = start + timeout * SLOW
        while True:
            try:
                self._fill(deadline)
            except PeerClosed:
                return time.monotonic() - start
            self.buf.clear()

    def close_handshake_after_failure(self, code, timeout=5.0):
        """The server failed the connection: expect its close frame with `code`,
        answer it as a good client would, and expect TCP to be closed."""
        f = self.expect_close(code, timeout)
        try:
            self.send_frame(CLOSE, close_payload(code))
        except OSError:
            pass  # the server may already have closed TCP
        self.wait_closed()
        return f


def main():
    """Entry point of every suite: python3 <script> <switchboard binary> [unittest args]."""
    global BINARY_PATH
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.stderr.write("usage: %s <path to switchboard binary> [unittest args]\n" % sys.argv[0])
        sys.exit(2)
    BINARY_PATH = os.path.abspath(sys.argv.pop(1))
    if not os.access(BINARY_PATH, os.X_OK):
        sys.stderr.write("not an executable: %s\n" % BINARY_PATH)
        sys.exit(2)
    start = time.monotonic()
    prog = unittest.main(module="__main__", exit=False, verbosity=2)
    result = prog.result
    print("%s: %d tests, %d failures, %d errors, %d skipped in %.1fs" % (
        os.path.basename(sys.argv[0]), result.testsRun, len(result.failures),
        len(result.errors), len(result.skipped), time.monotonic() - start))
    ok = result.wasSuccessful() and result.testsRun > 0 and not result.skipped
    sys.exit(0 if ok else 1)
