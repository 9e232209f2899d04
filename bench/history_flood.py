#!/usr/bin/python3
"""history_flood.py — issue 14's history flood against `switchboard serve`, bounded:
CONNECTIONS anonymous clients each subscribe to a new channel, publish one SIZE-byte
message there, unsubscribe, and go on to the next new channel, for SECONDS (or until
--megabytes are sent). It samples the server's RSS (/proc) every 0.25 s and reports, as
one JSON line: baseline RSS, peak RSS, RSS at the end of the flood, RSS after --settle
seconds of quiet, and /metrics' switchboard_history_bytes / _evictions_total /
switchboard_channels at the end.

Not a test (bench/history_flood.sh runs it under several allocators); 127.0.0.1 only.

usage: history_flood.py --switchboard BIN --config TOML [--seconds 26] [--megabytes 0]
       [--connections 12] [--size 65000] [--settle 15] [--env K=V ...] [--label L]
"""

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import websockets  # Debian python3-websockets


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def metrics(port):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(switchboard_(?:history_bytes|history_evictions_total|channels)) (\S+)$",
                     line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


async def client(port, n, size, stop_at, budget, sent):
    blob = "x" * size
    async with websockets.connect("ws://127.0.0.1:%d/ws" % port, max_size=None,
                                  ping_interval=None, subprotocols=["switchboard.v1"]) as ws:
        i = 0
        while time.monotonic() < stop_at and (budget == 0 or sent[0] < budget):
            i += 1
            channel = "chat:flood%d_%d" % (n, i)
            # One command at a time, each reply awaited: a client that pipelines
            # would be measuring the rate limit, not history.
            for cmd in ({"id": 1, "cmd": "subscribe", "channel": channel},
                        {"id": 2, "cmd": "publish", "channel": channel, "data": blob},
                        {"id": 3, "cmd": "unsubscribe", "channel": channel}):
                await ws.send(json.dumps(cmd))
                while True:
                    msg = json.loads(await ws.recv())
                    if msg.get("id") == cmd["id"]:
                        break
                if "error" in msg:
                    await asyncio.sleep(0.05)  # refused (rate limit, max_channels): go on
            sent[0] += size


async def flood(port, args, samples, pid):
    stop_at = time.monotonic() + args.seconds
    sent = [0]
    budget = args.megabytes * 1_000_000

    async def sampler():
        while time.monotonic() < stop_at and (budget == 0 or sent[0] < budget):
            samples.append(rss_kib(pid))
            await asyncio.sleep(0.25)
    tasks = [client(port, n, args.size, stop_at, budget, sent) for n in range(args.connections)]
    await asyncio.gather(sampler(), *tasks)
    return sent[0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--switchboard", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--seconds", type=float, default=26)
    p.add_argument("--megabytes", type=int, default=0)
    p.add_argument("--connections", type=int, default=12)
    p.add_argument("--size", type=int, default=65000)
    p.add_argument("--settle", type=float, default=15)
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--label", default="")
    args = p.parse_args()

    env = dict(os.environ)
    for kv in args.env:
        k, _, v = kv.partition("=")
        env[k] = v
    proc = subprocess.Popen([args.switchboard, "serve", "--config", args.config, "--port", "0",
                             "--log-level", "warn"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        line = proc.stdout.readline().decode()
        port = int(line.rsplit(":", 1)[1])
        time.sleep(1.0)
        baseline = rss_kib(proc.pid)
        samples = []
        t0 = time.monotonic()
        sent = asyncio.run(flood(port, args, samples, proc.pid))
        elapsed = time.monotonic() - t0
        at_end = rss_kib(proc.pid)
        m_end = metrics(port)
        time.sleep(args.settle)
        settled = rss_kib(proc.pid)
        m_settled = metrics(port)
        print(json.dumps({
            "label": args.label, "env": args.env, "seconds": round(elapsed, 1),
            "sent_mb": round(sent / 1e6, 1), "baseline_kib": baseline,
            "peak_kib": max(samples + [at_end]), "end_kib": at_end, "settled_kib": settled,
            "history_bytes_end": m_end.get("switchboard_history_bytes"),
            "evictions": m_end.get("switchboard_history_evictions_total"),
            "channels_end": m_end.get("switchboard_channels"),
            "history_bytes_settled": m_settled.get("switchboard_history_bytes"),
            "channels_settled": m_settled.get("switchboard_channels"),
        }))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
