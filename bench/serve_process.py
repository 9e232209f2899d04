"""One `switchboard serve` process for the bench scripts: its configuration
written to DIRECTORY/NAME.toml, started on 127.0.0.1 and a port the kernel
picks (read from its listening line), stopped with SIGTERM.

    server = ServeProcess(binary, config_text, tmp, "ws")
    ... server.port, server.pid ...
    server.stop()

CallgrindServe runs it under valgrind's callgrind; its stop() returns the
process's total instruction count (the measure docs/benchmarks.md uses on
this noisy machine).
"""
import os
import re
import subprocess


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
