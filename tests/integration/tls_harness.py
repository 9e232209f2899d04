"""Helpers for the wss:// suite (tls_test.py), on top of harness.py.

What is here:
  * make_certs(): test certificates made with the `openssl` command — a test
    CA, server certificates for 127.0.0.1 + localhost (two subjects, for
    reload), an expired one, one for another host, a self-signed one, and a
    client certificate.
  * missing_tls_support(): what `switchboard echo --help` / `connect --help`
    lack of the TLS contract; the suite refuses to run without it.
  * TlsEchoServer: `switchboard echo --tls-cert ... --tls-key ...`, expecting
    `listening on wss://HOST:PORT`; reload() sends SIGHUP.
  * TlsRawClient: harness.RawClient over an ssl-wrapped socket, so the raw
    frame helpers (handshake, recv_frame, expect_close, ...) work over TLS.
  * served_subject(): the subject CN a TLS server presents right now.
  * PythonWssServer: a python3-websockets wss server in a thread (the peer for
    `switchboard connect wss://...`), and run_connect() / ConnectProcess.
  * node_wss(): node ws scenarios against a wss URL, trusting the test CA via
    `new WebSocket(url, {ca: fs.readFileSync(ca)})`.
"""

import asyncio
import logging
import os
import queue
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import harness
from harness import EchoServer, PeerClosed, RawClient, ServerError

import websockets

# The python peers log every refused handshake; the tests check outcomes instead.
logging.getLogger("websockets").setLevel(logging.CRITICAL)
logging.getLogger("asyncio").setLevel(logging.CRITICAL)

WAIT = 15.0  # seconds for any one wait on a subprocess or thread

# --- certificates -------------------------------------------------------------

_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
[other_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:other.example
[client_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
[ca]
default_ca = test_ca
[test_ca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any_name
unique_subject = no
[any_name]
commonName = supplied
"""

_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


class Pair:
    """A certificate file and its key file (PEM)."""

    def __init__(self, directory, name):
        self.cert = os.path.join(directory, name + ".pem")
        self.key = os.path.join(directory, name + ".key")

    def copy_to(self, cert, key):
        shutil.copyfile(self.cert, cert)
        shutil.copyfile(self.key, key)


class CertSet:
    """ca (file), and Pairs: server, server2, expired, other, self_signed, client."""

    def __init__(self, directory):
        self.dir = directory
        self.ca = os.path.join(directory, "ca.pem")
        self.server = Pair(directory, "server")        # CN=localhost
        self.server2 = Pair(directory, "server2")      # CN=localhost reloaded
        self.expired = Pair(directory, "expired")      # valid in January 2020 only
        self.other = Pair(directory, "other")          # other.example only
        self.self_signed = Pair(directory, "self")     # localhost, no CA
        self.client = Pair(directory, "client")        # CN=test client, clientAuth


def _openssl(directory, *args):
    result = subprocess.run(["openssl", *args], cwd=directory, capture_output=True,
                            timeout=WAIT)
    if result.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s" % (" ".join(args),
                                                       result.stderr.decode(errors="replace")))


def make_certs(directory):
    """Creates the certificates in `directory` (which must exist); returns a CertSet.

    The expired certificate: OpenSSL 3.0's `x509 -req` cannot set a start
    date in the past, so `openssl ca` issues it with explicit -startdate and
    -enddate from a throwaway CA database (index.txt, serial)."""
    with open(os.path.join(directory, "openssl.cnf"), "w") as f:
        f.write(_OPENSSL_CONFIG)
    open(os.path.join(directory, "index.txt"), "w").close()
    with open(os.path.join(directory, "serial"), "w") as f:
        f.write("2000\n")
    run = lambda *args: _openssl(directory, *args)  # noqa: E731

    def request(name, subject):
        run("req", "-new", "-config", "openssl.cnf", *_EC_KEY, "-keyout", name + ".key",
            "-out", name + ".csr", "-subj", subject)

    def sign(name, extensions, serial):
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-set_serial", str(serial), "-days", "365", "-extfile", "openssl.cnf",
            "-extensions", extensions, "-out", name + ".pem")

    run("req", "-x509", "-new", "-config", "openssl.cnf", *_EC_KEY, "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "3650", "-subj", "/CN=Switchboard wss Test CA",
        "-extensions", "v3_ca")
    for serial, (name, subject, ext) in enumerate((
            ("server", "/CN=localhost", "server_ext"),
            ("server2", "/CN=localhost reloaded", "server_ext"),
            ("other", "/CN=other.example", "other_ext"),
            ("client", "/CN=test client", "client_ext")), start=1):
        request(name, subject)
        sign(name, ext, serial)
    request("expired", "/CN=localhost expired")
    run("ca", "-batch", "-config", "openssl.cnf", "-name", "test_ca", "-cert", "ca.pem",
        "-keyfile", "ca.key", "-in", "expired.csr", "-out", "expired.pem", "-notext",
        "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
        "-extfile", "openssl.cnf", "-extensions", "server_ext")
    run("req", "-x509", "-new", "-config", "openssl.cnf", *_EC_KEY, "-keyout", "self.key",
        "-out", "self.pem", "-days", "365", "-subj", "/CN=localhost self-signed",
        "-extensions", "server_ext")
    return CertSet(directory)


# --- the contract check -----------------------------------------------------------

ECHO_FLAGS = ("--tls-cert", "--tls-key", "--tls-ca", "--tls-client-cert")
CONNECT_FLAGS = ("--ca-file", "--insecure-skip-verify")


def missing_tls_support(binary):
    """None if `binary` documents every TLS flag this suite uses, else why not."""
    missing = []
    for command, flags in (("echo", ECHO_FLAGS), ("connect", CONNECT_FLAGS)):
        try:
            result = subprocess.run([binary, command, "--help"], capture_output=True,
                                    timeout=WAIT)
        except (OSError, subprocess.TimeoutExpired) as e:
            return "cannot run `%s %s --help`: %s" % (binary, command, e)
        text = (result.stdout + result.stderr).decode(errors="replace")
        missing += ["%s %s" % (command, flag) for flag in flags
                    if not re.search(r"(^|[\s,])%s\b" % re.escape(flag), text)]
    if not missing:
        return None
    return ("`switchboard` does not offer the wss:// flags this suite tests (missing: %s). "
            "tls_test.py is meant to run once `echo --tls-cert/--tls-key` and "
            "`connect wss://... --ca-file/--insecure-skip-verify` exist."
            % ", ".join(missing))


# --- the server under test -----------------------------------------------------------

class TlsEchoServer(EchoServer):
    """`switchboard echo --tls-cert CERT --tls-key KEY ARGS...` on 127.0.0.1, port 0."""

    def __init__(self, pair, *args, startup_timeout=10.0):
        # EchoServer.__init__ insists on a ws:// line: the start-up is redone
        # here for the wss:// one; the rest of EchoServer (stop, signals,
        # /proc readings, stderr) applies unchanged.
        if harness.BINARY_PATH is None:
            raise ServerError("harness.main() was not called with the binary path")
        self.argv = [harness.BINARY_PATH, "echo", "--host", "127.0.0.1", "--port", "0",
                     "--tls-cert", pair.cert, "--tls-key", pair.key]
        self.argv += [str(a) for a in args]
        self._stderr = tempfile.TemporaryFile()
        self._stderr_saved = ""
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._stderr)
        self.pid = self.proc.pid
        self.extra_stdout = b""
        self.exit_code = None
        try:
            line = harness._read_line(self.proc.stdout.fileno(), startup_timeout * harness.SLOW)
        except ServerError as e:
            self.kill()
            raise ServerError("%s\n--- stderr ---\n%s" % (e, self.stderr_text()))
        self.listening_line = line
        m = re.fullmatch(rb"listening on wss://([^\s:]+):(\d+)\n", line)
        if not m:
            self.kill()
            raise ServerError("expected `listening on wss://HOST:PORT`, got %r\n%s"
                              % (line, self.stderr_text()))
        self.host = m.group(1).decode()
        self.port = int(m.group(2))
        self._drain = threading.Thread(target=self._drain_stdout, daemon=True)
        self._drain.start()

    @property
    def url(self):
        return "wss://127.0.0.1:%d/" % self.port

    def reload(self):
        """Asks the server to re-read its certificate and key (SIGHUP)."""
        self.send_signal(signal.SIGHUP)


# --- TLS contexts and raw TLS clients -----------------------------------------------

def client_context(ca=None, pair=None, alpn=None, max_version=None):
    """A verifying client context trusting `ca` (a file), optionally with a
    client certificate `pair`, ALPN list and highest TLS version."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        ctx.load_verify_locations(cafile=ca)
    if pair:
        ctx.load_cert_chain(pair.cert, pair.key)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def server_context(pair):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pair.cert, pair.key)
    return ctx


class TlsRawClient(RawClient):
    """RawClient whose socket is wrapped in TLS after the TCP connect; the
    handshake runs in the constructor (ssl.SSLError if it fails)."""

    def __init__(self, port, ctx, server_hostname="localhost", **kw):
        super().__init__(port, **kw)
        try:
            self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        except BaseException:
            self.close()
            raise

    def _fill(self, deadline):
        try:
            super()._fill(deadline)
        except ssl.SSLError as e:  # an alert or a broken record ends the connection too
            self.eof = "tls: %s" % e
            raise PeerClosed(self.eof, self.buf)


def served_subject(port, ca, server_hostname="localhost", timeout=5.0):
    """The commonName of the certificate the server at 127.0.0.1:port presents."""
    ctx = client_context(ca)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout * harness.SLOW) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
            subject = dict(item for rdn in tls.getpeercert()["subject"] for item in rdn)
    return subject.get("commonName")


def read_until_closed(sock, timeout=5.0):
    """Reads a plain socket until the peer closes it; returns (bytes, how).
    how: "eof", "reset", or "open" if it was still open at the timeout."""
    deadline = time.monotonic() + timeout * harness.SLOW
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, "open"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, "open"
        except ConnectionResetError:
            return data, "reset"
        if not chunk:
            return data, "eof"
        data += chunk


# --- a python3-websockets wss server, the peer of `switchboard connect` ----------------

class PythonWssServer:
    """websockets.serve(handler, ssl=server_context(pair)) on 127.0.0.1, port 0,
    in a background thread with its own asyncio loop; pair None serves plain ws."""

    def __init__(self, handler, pair, **kwargs):
        self.scheme = "wss" if pair else "ws"
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        failure = []

        async def start():
            try:
                ctx = server_context(pair) if pair else None
                self.server = await websockets.serve(handler, "127.0.0.1", 0, ssl=ctx, **kwargs)
                self.port = self.server.sockets[0].getsockname()[1]
            except Exception as e:  # reported to the constructor's caller
                failure.append(e)
            started.set()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(start())
            if not failure:
                self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        if not started.wait(WAIT) or failure:
            raise RuntimeError("python wss server did not start: %r" % failure)

    def url(self, host="127.0.0.1", path="/"):
        return "%s://%s:%d%s" % (self.scheme, host, self.port, path)

    def stop(self):
        async def shutdown():
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(WAIT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


async def echo_handler(ws, _path=None):
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass


# --- `switchboard connect` -------------------------------------------------------------

def run_connect(*args, stdin=b""):
    """`switchboard connect ARGS` with fixed input, to its end; CompletedProcess."""
    return subprocess.run([harness.BINARY_PATH, "connect", *args], input=stdin,
                          capture_output=True, timeout=WAIT * harness.SLOW)


class ConnectProcess:
    """`switchboard connect ARGS` with stdin a pipe and stdout read line by line."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([harness.BINARY_PATH, "connect", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.lines = queue.Queue()

        def pump():
            for line in iter(self.proc.stdout.readline, b""):
                self.lines.put(line)
            self.lines.put(None)

        self.reader = threading.Thread(target=pump, daemon=True)
        self.reader.start()

    def send_line(self, text):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def read_line(self):
        line = self.lines.get(timeout=WAIT * harness.SLOW)
        if line is None:
            code, err = self.finish(close_stdin=False)
            raise AssertionError("connect's stdout ended (exit %r): %s" % (code, err))
        return line.decode()

    def finish(self, close_stdin=True):
        """Waits for the exit (closing stdin first if asked): (code, stderr text)."""
        if close_stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout=WAIT * harness.SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("switchboard connect did not exit")
        err = self.proc.stderr.read().decode(errors="replace")
        self.reader.join(timeout=WAIT)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if not stream.closed:
                stream.close()
        return code, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --- node ws over wss --------------------------------------------------------------------

NODE_WSS_CLIENT = r"""
'use strict';
// node ws against a wss:// URL, trusting only the test CA given on the command line.
const fs = require('fs');
const WebSocket = require('ws');
const [scenario, url, caFile, ...args] = process.argv.slice(1);

function fail(why) { console.log('FAIL: ' + why); process.exit(1); }

function open(trusted = true) {
  const options = { maxPayload: 64 * 1024 * 1024, perMessageDeflate: false };
  if (trusted) options.ca = fs.readFileSync(caFile);
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function closed(ws) {
  return new Promise((resolve) => ws.once('close', (code, reason) =>
    resolve({ code, reason: reason.toString() })));
}

function echoOf(ws, payload, binary) {
  return new Promise((resolve, reject) => {
    const early = (code) => reject(new Error('closed with ' + code + ' before the echo'));
    ws.once('close', early);
    ws.once('message', (data, isBinary) => {
      ws.off('close', early);
      if (isBinary !== binary) reject(new Error('opcode changed for ' + payload.length + ' bytes'));
      else if (!Buffer.from(data).equals(payload)) reject(new Error('echo of ' + payload.length + ' bytes differs'));
      else resolve();
    });
    ws.send(payload, { binary });
  });
}

function bytes(n, seed) {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = 32 + ((i * 13 + seed) % 95);  // printable: valid text too
  return b;
}

const scenarios = {
  async sizes() {
    const ws = await open();
    for (const n of [0, 1, 125, 126, 127, 65535, 65536, 1 << 20]) {
      await echoOf(ws, bytes(n, 1), false);
      await echoOf(ws, bytes(n, 2), true);
    }
    const done = closed(ws);
    ws.close(1000);
    await done;
    console.log('ok');
  },
  async ping() {
    const ws = await open();
    for (const payload of [Buffer.alloc(0), Buffer.from('node wss ping'), bytes(125, 3)]) {
      const pong = new Promise((resolve) => ws.once('pong', resolve));
      ws.ping(payload);
      const got = await pong;
      if (!got.equals(payload)) fail('pong payload differs');
    }
    const done = closed(ws);
    ws.close(1000);
    await done;
    console.log('ok');
  },
  async close() {
    const code = Number(args[0]);
    const reason = args[1] || '';
    const ws = await open();
    const done = closed(ws);
    ws.close(code, reason);
    console.log(JSON.stringify(await done));
  },
  async 'wait-close'() {
    const ws = await open();
    const done = closed(ws);
    await echoOf(ws, Buffer.from('ready?'), false);
    console.log('open');
    console.log(JSON.stringify(await done));
  },
  async untrusted() {
    // Without the test CA the handshake must fail verification.
    try {
      const ws = await open(false);
      ws.terminate();
    } catch (e) {
      console.log(JSON.stringify({ error: e.code || e.message }));
      return;
    }
    fail('connected without trusting the test CA');
  },
};

const run = scenarios[scenario];
if (!run) fail('unknown scenario ' + scenario);
const timer = setTimeout(() => fail('timed out'), Number(process.env.NODE_SCENARIO_TIMEOUT_MS || 60000));
run().then(() => { clearTimeout(timer); process.exit(0); }, (e) => fail(e.stack || String(e)));
"""


def node_wss(scenario, url, ca, *args, timeout=60):
    """Starts a node ws scenario (see NODE_WSS_CLIENT); returns the Popen."""
    env = dict(os.environ, NODE_PATH="/usr/share/nodejs",
               NODE_SCENARIO_TIMEOUT_MS=str(int(timeout * 1000 * harness.SLOW)))
    return subprocess.Popen(["node", "-e", NODE_WSS_CLIENT, scenario, url, ca] +
                            [str(a) for a in args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
