"""One `switchboard serve` process for the bench scripts: its configuration
written to DIRECTORY/NAME.toml, started on 127.0.0.1 and a port the kernel
picks (read from its listening line), stopped with SIGTERM.

    server = ServeProcess(binary, config_text, tmp, "ws")
    ... server.port, server.pid ...
    server.stop()

Under a tool (prefix), stderr — valgrind's or strace's summary — is kept in
DIRECTORY/NAME.log (output()); metrics() reads /metrics. CallgrindServe runs
it under valgrind's callgrind; its stop() returns the process's total
instruction count (the measure docs/benchmarks.md uses on this noisy
machine).

fanout_config() is the configuration the fan-out benches give `serve` (the
one bench/run_serve_bench.sh writes).
"""
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request


def fanout_config(threads=None, history_size=None):
    """serve's configuration for fan-out benches, as bench/run_serve_bench.sh
    writes it: anonymous clients, API key "k", rate limits out of the way,
    backpressure "drop" with a 256 KiB cap (an overloaded step shows as lost
    deliveries, not closed connections), namespace `bench` without presence
    (and `pres` with it). `threads` None: none in the file (the command line
    says); `history_size` None: the default."""
    server = "[server]\n" + ("threads = %d\n" % threads if threads is not None else "")
    history = "history_size = %d\n" % history_size if history_size is not None else ""
    return (server + "max_connections = 30000\ndemo = false\n\n"
            "[auth]\nallow_anonymous = true\n\n"
            "[api]\nkey = \"k\"\n\n"
            "[limits]\ncommand_rate = 10000000\ncommand_burst = 10000000\n"
            "max_subscriptions = 16\nmax_backpressure = 262144\nbackpressure_policy = \"drop\"\n\n"
            "[log]\nlevel = \"warn\"\n\n"
            "[namespaces.bench]\npresence = false\n" + history + "publish = \"any\"\n\n"
            "[namespaces.pres]\npresence = true\npublish = \"any\"\n")


class ServeProcess:
    """`prefix` runs the binary under a tool (taskset, valgrind, strace); `extra`
    adds command-line options before --config. The server's stderr (and a
    tool's summary: valgrind and strace write theirs there) goes to
    DIRECTORY/NAME.log, which output() returns. `startup`: seconds to wait for
    the listening line (a server under valgrind starts slowly)."""

    def __init__(self, binary, config_text, directory, name="serve", prefix=(), extra=(),
                 stop_timeout=15, startup=60):
        self.config_path = os.path.join(directory, name + ".toml")
        with open(self.config_path, "w") as f:
            f.write(config_text)
        self.log_path = os.path.join(directory, name + ".log")
        self.stop_timeout = stop_timeout
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [*prefix, binary, "serve", "--host", "127.0.0.1", "--port", "0", *extra,
                 "--config", self.config_path],
                stdout=subprocess.PIPE, stderr=log)
        # The first stdout line that says "... listening on http://127.0.0.1:PORT".
        deadline = time.monotonic() + startup
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line or "listening on" in line:
                break
        m = re.search(r"127\.0\.0\.1:(\d+)\s*$", line)
        if not m:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("%s: no listening line: %r; stderr: %s"
                               % (name, line, self.output()[-2000:]))
        self.port = int(m.group(1))
        # Under a tool that forks (strace) the server is the tool's child: the
        # pid /proc readings and the stop signal are for. taskset and valgrind
        # exec the server in their own process.
        self.pid = self._child_pid() or self.proc.pid

    def _child_pid(self):
        """The process's child, from /proc/*/stat; 0 if it has none."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                return int(entry)
        return 0

    def metrics(self):
        """{name: value} of the unlabelled samples of /metrics ({} if it fails)."""
        out = {}
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.port,
                                        timeout=60) as r:
                for line in r.read().decode().splitlines():
                    parts = line.split()
                    if len(parts) == 2 and not line.startswith("#") and "{" not in parts[0]:
                        out[parts[0]] = float(parts[1])
        except OSError as e:
            print("# metrics: %s" % e, file=sys.stderr)
        return out

    def output(self):
        """What the server (and its tool) wrote to stderr so far."""
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        """SIGTERM to the server (a forking tool then writes its summary as its
        child exits), then SIGKILL after stop_timeout seconds. The exit code
        (None if it had to be killed)."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        try:
            os.kill(self.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            return self.proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


class CallgrindServe(ServeProcess):
    """Under valgrind --tool=callgrind (a slow start and stop: two minutes to
    stop). stop() returns the total instructions."""

    def __init__(self, binary, config_text, directory, name, extra=(), prefix=()):
        self.out = os.path.join(directory, name + ".callgrind")
        super().__init__(binary, config_text, directory, name,
                         prefix=(*prefix, "valgrind", "--tool=callgrind",
                                 "--callgrind-out-file=" + self.out),
                         extra=extra, stop_timeout=120, startup=120)

    def stop(self):
        if super().stop() is None:
            raise RuntimeError("callgrind run did not stop within %d s" % self.stop_timeout)
        with open(self.out) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    return int(line.split()[1])
        raise RuntimeError("no totals in " + self.out)
