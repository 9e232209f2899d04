#!/usr/bin/python3
"""`switchboard serve` start-up: --help, a bad config file, and the demo config.

Usage: /usr/bin/python3 serve_config_test.py <path to switchboard>

The contract under test:
  switchboard serve --help
    exits 0 and documents every flag with its TOML key and default, the keys
    that exist only in the file, and points to docs/protocol.md and
    docs/configuration.md.
  switchboard serve --config FILE   (FILE has a mistake)
    exits 2 before listening, prints nothing on stdout and one line on stderr,
    "switchboard serve: FILE:LINE:COL: reason".
  switchboard serve --config config/demo.toml --port 0
    prints exactly one stdout line, "listening on http://127.0.0.1:PORT", and
    exits 0 on SIGTERM.

The parsing itself is unit-tested in tests/app/serve_config_test.cpp; this
checks the binary wires it up.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEMO_CONFIG = os.path.join(REPO, "config", "demo.toml")

FLAGS = ["--config", "--host", "--port", "--threads", "--allowed-origin", "--jwt-secret",
         "--allow-anonymous", "--api-key", "--max-connections", "--max-message-size",
         "--ping-interval", "--pong-timeout", "--shutdown-timeout", "--snapshot-file",
         "--compression", "--tls-cert", "--tls-key", "--no-demo", "--log-format", "--log-level"]


def run(args, timeout=30, **kwargs):
    return subprocess.run([harness.BINARY_PATH, "serve"] + args, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout * harness.SLOW, **kwargs)


class ServeConfigTest(unittest.TestCase):

    def test_help_documents_every_option(self):
        result = run(["--help"])
        self.assertEqual(result.returncode, 0, result.stderr.decode(errors="replace"))
        text = result.stdout.decode()
        for flag in FLAGS:
            self.assertIn(flag, text)
        # TOML keys with their defaults, for flags and for file-only keys.
        for entry in ['server.port = 8080', 'server.host = "127.0.0.1"',
                      'auth.jwt_secret = ""; env SWITCHBOARD_JWT_SECRET',
                      'limits.command_rate = 100', 'shutdown.code = 1012',
                      'namespaces.NAME.history_size = 100',
                      'namespaces.NAME.publish = "subscribers"',
                      'docs/protocol.md', 'docs/configuration.md']:
            self.assertIn(entry, text)

    def test_bad_config_file_exits_2_naming_file_and_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bad.toml")
            with open(path, "w") as f:
                f.write('[server]\nhost = "127.0.0.1"\nprot = 8080\n')
            result = run(["--config", path])
            stderr = result.stderr.decode(errors="replace")
            self.assertEqual(result.returncode, 2, stderr)
            self.assertEqual(result.stdout, b"", "nothing on stdout before listening")
            self.assertIn("switchboard serve: %s:3:1: unknown key server.prot" % path, stderr)

    def test_origin_that_can_never_match_exits_2(self):
        result = run(["--allow-anonymous", "--port", "0",
                      "--allowed-origin", "https://app.example.com/"])
        stderr = result.stderr.decode(errors="replace")
        self.assertEqual(result.returncode, 2, stderr)
        self.assertIn("allowed_origins: 'https://app.example.com/' has a path or a trailing "
                      "slash", stderr)

    def test_short_jwt_secret_exits_2(self):
        result = run(["--port", "0", "--jwt-secret", "x"])
        stderr = result.stderr.decode(errors="replace")
        self.assertEqual(result.returncode, 2, stderr)
        self.assertIn("jwt_secret is 1 bytes; an HS256 secret needs at least 32", stderr)

    def test_trusted_proxy_range_with_host_bits_exits_2(self):
        result = run(["--allow-anonymous", "--port", "0", "--trusted-proxy", "10.0.0.0/8",
                      "--trusted-proxy", "10.1.2.3/8"])
        stderr = result.stderr.decode(errors="replace")
        self.assertEqual(result.returncode, 2, stderr)
        self.assertIn("trusted_proxies: '10.1.2.3/8' has bits set past its prefix: did you "
                      "mean 10.0.0.0/8?", stderr)

    def test_bad_metrics_listen_exits_2(self):
        for args, message in (
                (["--port", "9100", "--metrics-listen", "127.0.0.1:9100"],
                 "metrics: listen: port 9100 is server.port; /metrics needs a port of its own"),
                (["--port", "0", "--metrics-listen", "localhost:9100"],
                 "metrics: listen: 'localhost:9100' is not HOST:PORT with a numeric host"),
                (["--port", "0", "--metrics-listen", "127.0.0.1:0"],
                 "metrics: listen: '127.0.0.1:0': the port must be 1 to 65535")):
            result = run(["--allow-anonymous"] + args)
            stderr = result.stderr.decode(errors="replace")
            self.assertEqual(result.returncode, 2, stderr)
            self.assertIn(message, stderr)

    def test_unresolvable_host_exits_2(self):
        result = run(["--allow-anonymous", "--port", "0", "--host", "no-such-host.invalid"])
        stderr = result.stderr.decode(errors="replace")
        self.assertEqual(result.returncode, 2, stderr)
        self.assertIn("host 'no-such-host.invalid' is not a numeric address", stderr)

    def test_localhost_listens_on_127_0_0_1(self):
        argv = [harness.BINARY_PATH, "serve", "--allow-anonymous", "--no-demo", "--port", "0",
                "--host", "localhost"]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        try:
            line = harness._read_line(proc.stdout.fileno(), 10 * harness.SLOW)
            self.assertRegex(line.decode(), r"\Alistening on http://127\.0\.0\.1:[1-9]\d*\n\Z")
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=15 * harness.SLOW), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()

    def test_demo_config_listens(self):
        with tempfile.TemporaryDirectory() as tmp:
            # The demo's snapshot path is relative to the working directory: run
            # in a scratch directory and point it there so the repo is untouched.
            argv = [harness.BINARY_PATH, "serve", "--config", DEMO_CONFIG, "--port", "0",
                    "--snapshot-file", os.path.join(tmp, "state.json")]
            stderr = tempfile.TemporaryFile()
            proc = subprocess.Popen(argv, cwd=tmp, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=stderr)
            try:
                try:
                    line = harness._read_line(proc.stdout.fileno(), 10 * harness.SLOW)
                except harness.ServerError as e:
                    stderr.seek(0)
                    self.fail("%s\n--- stderr ---\n%s" % (e, stderr.read().decode(errors="replace")))
                self.assertRegex(line.decode(), r"\Alistening on http://127\.0\.0\.1:[1-9]\d*\n\Z")
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(timeout=15 * harness.SLOW)
                stderr.seek(0)
                log = stderr.read().decode(errors="replace")
                self.assertEqual(code, 0, log)
                self.assertEqual(proc.stdout.read(), b"", "exactly one stdout line")
                self.assertTrue(re.search(r"\[info\] switchboard .* serving on http://", log), log)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
                stderr.close()


if __name__ == "__main__":
    harness.main()
