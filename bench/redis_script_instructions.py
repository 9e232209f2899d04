#!/usr/bin/env python3
"""redis_script_instructions.py [--calls N] [--batches 1,16,64] [--channels 1,16]
[--source FILE] — what one publication costs Redis, in instructions (valgrind
--tool=callgrind), for the publish script of src/realtime/redis_scripts.hpp at
several batch sizes and numbers of channels per call.

For each batch size B and channel count C (at most B) a fresh redis-server
runs under callgrind on a free 127.0.0.1 port (temporary directory, no
persistence); the script is loaded and redis-benchmark sends N EVALSHA calls
of B publications each, spread evenly over C channels (100-byte tails,
history 100, no subscriber). Another run with no call at all gives the fixed
cost of starting and stopping Redis; the difference divided by N × B is the
cost of one publication, the script call's share included.

Two argument layouts exist: one key triple and four arguments per
publication (the script before publications were grouped by channel), and
one key triple per channel with its count, settings and tails (grouped); the
layout is recognised from the script's text, so `--source` can point at an
older redis_scripts.hpp (`git show REV:src/realtime/redis_scripts.hpp`) to
measure before and after with one command. Instruction counts do not depend on the machine's load, so the
figures compare across runs and commits (docs/benchmarks.md).

Needs valgrind, redis-server and redis-benchmark (Debian: valgrind, redis-server).
"""

import argparse
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


def publish_script_text(path):
    """The k_publish Lua text, from the C++ string literals of its definition."""
    source = path.read_text()
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


def grouped(script):
    """Whether the script takes one key triple per channel (grouped layout)."""
    return "HINCRBY', km, 'o', 1)" not in script


def call_arguments(script, batch, channels):
    """KEYS count, keys and ARGV of one call: `batch` publications over
    `channels` channels (the first ones get one more when it does not divide)."""
    keys, argv = [], ["epoch0"]
    per = [batch // channels + (1 if c < batch % channels else 0) for c in range(channels)]
    for c, n in enumerate(per):
        names = ["m:x%d" % c, "s:x%d" % c, "c:x%d" % c]
        if grouped(script):
            keys += names
            argv += [str(n), "100", "300000", "86400000"] + ["x" * 100] * n
        else:
            for _ in range(n):
                keys += names
                argv += ["x" * 100, "100", "300000", "86400000"]
    return [str(len(keys))] + keys + argv


def instructions(work, script, calls, batch, channels):
    """Total instructions of a redis-server that served `calls` EVALSHAs of
    `batch` publications each, over `channels` channels."""
    port = free_port()
    out = work / ("callgrind.%d.%d.%d" % (calls, batch, channels))
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
            subprocess.run(["redis-benchmark", "-p", str(port), "-n", str(calls), "-c", "1",
                            "-P", "16", "-q", "EVALSHA", sha,
                            *call_arguments(script, batch, channels)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True,
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
    parser.add_argument("--channels", default="1",
                        help="channels per call, comma-separated (capped at the batch size)")
    parser.add_argument("--source", type=pathlib.Path, default=SCRIPTS,
                        help="the redis_scripts.hpp to take k_publish from")
    args = parser.parse_args()
    for tool in ("valgrind", "redis-server", "redis-benchmark", "redis-cli"):
        if not shutil.which(tool):
            sys.exit("%s is not installed" % tool)
    script = publish_script_text(args.source)
    work = pathlib.Path(tempfile.mkdtemp(prefix="switchboard-redis-instr-"))
    try:
        base = instructions(work, script, 0, 1, 1)
        print("layout: %s" % ("grouped by channel" if grouped(script) else "one per publication"))
        print("| publications per script call | channels per call "
              "| instructions per publication (Redis) |")
        print("|---|---|---|", flush=True)
        done = set()
        for batch in [int(b) for b in args.batches.split(",")]:
            for channels in [min(int(c), batch) for c in args.channels.split(",")]:
                if (batch, channels) in done:
                    continue
                done.add((batch, channels))
                total = instructions(work, script, args.calls, batch, channels)
                print("| %d | %d | %d |" % (batch, channels,
                                            (total - base) // (args.calls * batch)), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
