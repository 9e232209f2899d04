"""Helpers shared by the packaging tests (install_test.py, deb_test.py).

  * step(): prints what is being checked and how long it took, so a slow or
    failing step is easy to find in the ctest log.
  * run(): a command with a time bound; a non-zero exit raises with its
    output.
  * Process: a long-running program (a server) whose first stdout line is
    "listening on SCHEME://HOST:PORT", read with a time bound; stop() sends
    SIGTERM and expects exit 0.
  * free_port(), http_get(), http_post_json(): 127.0.0.1 only.

Standard library only; run with /usr/bin/python3.
"""

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


@contextlib.contextmanager
def step(name):
    start = time.monotonic()
    print(f"--- {name}", flush=True)
    yield
    print(f"    ok ({time.monotonic() - start:.1f} s)", flush=True)


def run(argv, timeout=120, env=None, cwd=None, input_text=None):
    """Runs argv; returns its stdout. Raises Failure on a non-zero exit or timeout."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=cwd, input=input_text)
    except subprocess.TimeoutExpired as e:
        raise Failure(f"timed out after {timeout} s: {' '.join(map(str, argv))}\n"
                      f"{e.stdout or ''}{e.stderr or ''}") from None
    if done.returncode != 0:
        raise Failure(f"exit {done.returncode}: {' '.join(map(str, argv))}\n"
                      f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}")
    return done.stdout


def read_line(proc, timeout):
    """The next stdout line of proc (without the newline), or Failure."""
    deadline = time.monotonic() + timeout
    data = b""
    fd = proc.stdout.fileno()
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure(f"no line from {proc.args[0]} within {timeout} s; got {data!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 1)
            if not chunk:
                raise Failure(f"{proc.args[0]} closed stdout (exit {proc.poll()}); got {data!r}")
            data += chunk
    return data.decode().rstrip("\n")


class Process:
    """A server started with its stdout piped and stderr in a file."""

    def __init__(self, argv, log_path, env=None, listening_timeout=15):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE,
                                     stderr=self.log, env=env)
        try:
            line = read_line(self.proc, listening_timeout)
        except Failure as e:
            self.kill()
            raise Failure(f"{e}\nstderr:\n{self.stderr()}") from None
        m = re.fullmatch(r"listening on (\w+)://127\.0\.0\.1:(\d+)", line)
        if not m:
            self.kill()
            raise Failure(f"unexpected first line {line!r}\nstderr:\n{self.stderr()}")
        self.scheme, self.port = m.group(1), int(m.group(2))

    def stderr(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read()[-4000:].decode(errors="replace")

    def stop(self, timeout=15):
        """SIGTERM; the server must exit 0 within timeout."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Failure(f"{self.proc.args[0]} still running {timeout} s after SIGTERM") from None
        finally:
            self.log.close()
        check(code == 0, f"{self.proc.args[0]} exited {code} after SIGTERM\n{self.stderr()}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if not self.log.closed:
            self.log.close()


def free_port():
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=10):
    """(status, body text) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def http_post_json(port, path, body, headers=None, timeout=10):
    """(status, parsed JSON body) of POST http://127.0.0.1:port/path."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read().decode() or "null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def main(body):
    """Runs body(); prints PASS, or FAIL with the reason, and exits 0 / 1."""
    start = time.monotonic()
    try:
        body()
    except Failure as e:
        print(f"FAIL: {e}", flush=True)
        sys.exit(1)
    print(f"PASS ({time.monotonic() - start:.1f} s)", flush=True)
