"""One `switchboard serve` process for the bench scripts: its configuration
written to DIRECTORY/NAME.toml, started on 127.0.0.1 and a port the kernel
picks (read from its listening line), stopped with SIGTERM.

    server = ServeProcess(binary, config_text, tmp, "ws")
    ... server.port, server.pid ...
    server.stop()

CallgrindServe runs it under valgrind's callgrind; its stop() returns the
process's total instruction count (the measure docs/benchmarks.md uses on
this noisy machine).

fanout_config() is the configuration the fan-out benches give `serve` (the
one bench/run_serve_bench.sh writes).
"""
import os
import re
import subprocess


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
    """`prefix` runs the binary under a tool (taskset, valgrind); `extra` adds
    command-line options before --config."""

    def __init__(self, binary, config_text, directory, name="serve", prefix=(), extra=(),
                 stop_timeout=15):
        self.config_path = os.path.join(directory, name + ".toml")
        with open(self.config_path, "w") as f:
            f.write(config_text)
        self.stop_timeout = stop_timeout
        self.proc = subprocess.Popen(
            [*prefix, binary, "serve", "--host", "127.0.0.1", "--port", "0", *extra,
             "--config", self.config_path],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        # The first line on stdout: "... listening on http://127.0.0.1:PORT".
        line = self.proc.stdout.readline().decode()
        m = re.search(r":(\d+)\s*$", line)
        if not m:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("%s: no listening line: %r" % (name, line))
        self.port = int(m.group(1))

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        """SIGTERM, then SIGKILL after stop_timeout seconds. The exit code
        (None if it had to be killed)."""
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


class CallgrindServe(ServeProcess):
    """Under valgrind --tool=callgrind (a slow start and stop: two minutes to
    stop). stop() returns the total instructions."""

    def __init__(self, binary, config_text, directory, name, extra=()):
        self.out = os.path.join(directory, name + ".callgrind")
        super().__init__(binary, config_text, directory, name,
                         prefix=("valgrind", "--tool=callgrind",
                                 "--callgrind-out-file=" + self.out),
                         extra=extra, stop_timeout=120)

    def stop(self):
        if super().stop() is None:
            raise RuntimeError("callgrind run did not stop within %d s" % self.stop_timeout)
        with open(self.out) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    return int(line.split()[1])
        raise RuntimeError("no totals in " + self.out)
