#!/usr/bin/env python3
"""redis_script_instructions.py [--calls N] [--batches 1,16,64] — what one
publication costs Redis, in instructions (valgrind --tool=callgrind), for the
publish script of src/realtime/redis_scripts.hpp at several batch sizes.

For each batch size B a fresh redis-server runs under callgrind on a free
127.0.0.1 port (temporary directory, no persistence); the script is loaded
and redis-benchmark sends N EVALSHA calls of B publications each (100-byte
tails, history 100, one channel, no subscriber). Another run with no call
at all gives the fixed cost of starting and stopping Redis; the difference
divided by N × B is the cost of one publication, the script call's share
included. Instruction counts do not depend on the machine's load, so the
figures compare across runs and commits (docs/benchmarks.md).

Needs valgrind, redis-server and redis-benchmark (Debian: valgrind, redis-server).
"""

import argparse
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "src/realtime/redis_scripts.hpp"


def publish_script_text():
    """The k_publish Lua text, from the C++ string literals of its definition."""
    source = SCRIPTS.read_text()
    match = re.search(r"k_publish =\n(.*?);\n", source, re.S)
    if not match:
        sys.exit("k_publish not found in %s" % SCRIPTS)
    literals = re.findall(r'"((?:[^"\\]|\\.)*)"', match.group(1))
    return "".join(bytes(l, "utf-8").decode("unicode_escape") for l in literals)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                          text=True, timeout=60).stdout.strip()


def instructions(work, script, calls, batch):
    """Total instructions of a redis-server that served `calls` EVALSHAs of
    `batch` publications each."""
    port = free_port()
    out = work / ("callgrind.%d.%d" % (calls, batch))
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=%s" % out, "redis-server",
         "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if redis_cli(port, "PING") == "PONG":
                break
            time.sleep(0.1)
        else:
            sys.exit("redis-server under valgrind did not start")
        sha = redis_cli(port, "SCRIPT", "LOAD", script)
        if calls:
            keys, argv = [], ["epoch0"]
            for _ in range(batch):
                keys += ["m:x", "s:x", "c:x"]
                argv += ["x" * 100, "100", "300000", "86400000"]
            subprocess.run(["redis-benchmark", "-p", str(port), "-n", str(calls), "-c", "1",
                            "-P", "16", "-q", "EVALSHA", sha, str(len(keys)), *keys, *argv],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                           timeout=600)
        redis_cli(port, "SHUTDOWN", "NOSAVE")
        server.wait(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    summary = re.search(r"^summary: (\d+)", out.read_text(), re.M)
    return int(summary.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--batches", default="1,16,64")
    args = parser.parse_args()
    for tool in ("valgrind", "redis-server", "redis-benchmark", "redis-cli"):
        if not shutil.which(tool):
            sys.exit("%s is not installed" % tool)
    script = publish_script_text()
    work = pathlib.Path(tempfile.mkdtemp(prefix="switchboard-redis-instr-"))
    try:
        base = instructions(work, script, 0, 1)
        print("| publications per script call | instructions per publication (Redis) |")
        print("|---|---|")
        for batch in [int(b) for b in args.batches.split(",")]:
            total = instructions(work, script, args.calls, batch)
            print("| %d | %d |" % (batch, (total - base) // (args.calls * batch)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
