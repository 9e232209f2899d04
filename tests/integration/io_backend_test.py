#!/usr/bin/env python3
"""The event-loop backend choice of `switchboard echo` and `switchboard serve`.

--io-backend io_uring serves on io_uring; where the kernel refuses io_uring
(here: a seccomp filter, installed in the child before exec, that fails
io_uring_setup with ENOSYS, as a container runtime's profile does) the
server falls back to epoll with exactly one log line and still serves; a
value that is neither backend is refused at start-up.

The suites themselves run on io_uring through the integration.*_io_uring
registrations (SWITCHBOARD_IT_IO_BACKEND, read by harness.py).
"""
import ctypes
import os
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import TEXT  # noqa: E402

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
NR_IO_URING_SETUP = 425  # the same number on every architecture the project builds for
ENOSYS = 38


def refuse_io_uring():
    """preexec_fn: a seccomp filter failing io_uring_setup(2) with ENOSYS."""
    def insn(code, jt, jf, k):
        return struct.pack("HBBI", code, jt, jf, k)
    program = b"".join([
        insn(0x20, 0, 0, 0),                      # A = seccomp_data.nr
        insn(0x15, 0, 1, NR_IO_URING_SETUP),      # if A == io_uring_setup
        insn(0x06, 0, 0, 0x00050000 | ENOSYS),    #   return ERRNO(ENOSYS)
        insn(0x06, 0, 0, 0x7fff0000),             # return ALLOW
    ])
    buf = ctypes.create_string_buffer(program, len(program))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    prog = SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        os._exit(97)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        os._exit(98)


FALLBACK = "io_uring unavailable (Function not implemented), using epoll"


def rings(pid):
    """The io_uring instances process `pid` holds (its anon_inode:[io_uring] descriptors)."""
    count = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            count += os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "anon_inode:[io_uring]"
        except OSError:
            pass
    return count


def echo_once(testcase, port):
    with harness.RawClient(port) as c:
        c.handshake("/ws")
        c.send_frame(TEXT, b"backend check")
        opcode, payload, _, _ = c.recv_message()
        testcase.assertEqual((opcode, payload), (TEXT, b"backend check"))


class Echo(unittest.TestCase):
    def test_io_uring_serves_without_falling_back(self):
        with harness.EchoServer("--io-backend", "io_uring", "--threads", "2") as server:
            echo_once(self, server.port)
            self.assertNotIn("io_uring unavailable", server.stderr_text())
            self.assertEqual(rings(server.pid), 2)  # one ring per loop

    def test_refused_io_uring_falls_back_to_epoll_with_one_line(self):
        with harness.EchoServer("--io-backend", "io_uring", "--threads", "2",
                                preexec_fn=refuse_io_uring) as server:
            echo_once(self, server.port)
            echo_once(self, server.port)
            # One line for the process, not one per loop.
            self.assertEqual(server.stderr_text().count(FALLBACK), 1, server.stderr_text())
            self.assertEqual(rings(server.pid), 0)

    def test_epoll_is_not_affected_by_the_filter(self):
        with harness.EchoServer("--io-backend", "epoll", preexec_fn=refuse_io_uring) as server:
            echo_once(self, server.port)
            self.assertEqual(rings(server.pid), 0)
            self.assertNotIn("io_uring", server.stderr_text())

    def test_an_unknown_backend_is_refused(self):
        result = subprocess.run([harness.BINARY_PATH, "echo", "--port", "0", "--io-backend",
                                 "kqueue"], capture_output=True, timeout=10)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(b"--io-backend", result.stderr)
        self.assertEqual(result.stdout, b"")


class Serve(unittest.TestCase):
    def serve(self, toml, *args, **kw):
        tmp = tempfile.mkdtemp(prefix="switchboard-io-backend-")
        path = os.path.join(tmp, "serve.toml")
        with open(path, "w") as f:
            f.write(toml)
        self.addCleanup(lambda: __import__("shutil").rmtree(tmp, ignore_errors=True))
        return harness.EchoServer("--config", path, *args, command="serve", scheme="http", **kw)

    def subscribe_and_ping(self, port):
        # A WebSocket upgrade on /ws that the server accepts proves it serves.
        with harness.RawClient(port) as c:
            c.handshake("/ws")

    def test_the_toml_key_selects_io_uring(self):
        with self.serve('[server]\nio_backend = "io_uring"\nthreads = 1\n'
                        '[auth]\nallow_anonymous = true\n') as server:
            self.subscribe_and_ping(server.port)
            self.assertGreaterEqual(rings(server.pid), 1)
            self.assertNotIn("io_uring unavailable", server.stderr_text())

    def test_refused_io_uring_falls_back_with_one_warning(self):
        with self.serve('[server]\nio_backend = "io_uring"\nthreads = 2\n'
                        '[auth]\nallow_anonymous = true\n',
                        preexec_fn=refuse_io_uring) as server:
            self.subscribe_and_ping(server.port)
            text = server.stderr_text()
            self.assertEqual(text.count(FALLBACK), 1, text)
            self.assertIn("warn", text.split(FALLBACK)[0].splitlines()[-1])

    def test_a_bad_toml_value_exits_2_naming_the_choices(self):
        tmp = tempfile.mkdtemp(prefix="switchboard-io-backend-")
        path = os.path.join(tmp, "serve.toml")
        with open(path, "w") as f:
            f.write('[server]\nio_backend = "uring"\n')
        result = subprocess.run([harness.BINARY_PATH, "serve", "--config", path, "--port", "0"],
                                capture_output=True, timeout=10)
        __import__("shutil").rmtree(tmp, ignore_errors=True)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn(b"io_backend", result.stderr)
        self.assertIn(b"io_uring", result.stderr)


if __name__ == "__main__":
    harness.main()
