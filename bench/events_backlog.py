#!/usr/bin/python3
"""Lifecycle events piling up while the webhook is down: the node's RSS with
the memory window (events.memory_window = 1000) against a window larger than
the backlog (1,000,000: every event held in memory, as before the window),
in the same run. Four python3-websockets clients subscribe and unsubscribe
in a presence namespace (4 events per pair) until EVENTS events are
recorded; the receiver (tests/integration/events_test.py's, in this
process) answers 503 meanwhile. Then it comes back: the time until every
event is acknowledged, and a check that each arrived once, in seq order.

Usage: /usr/bin/python3 bench/events_backlog.py build/release/apps/switchboard/switchboard
"""
import asyncio
import os
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.join(HERE, "..", "tests", "integration"))
from events_test import SECRET, Receiver  # noqa: E402
from serve_process import ServeProcess  # noqa: E402
from serve_test import (Session, base_config, connect_ws, metric_samples, run,  # noqa: E402
                        toml_text, token)

EVENTS = 40000
CLIENTS = 4


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def one_run(binary, window):
    d = tempfile.mkdtemp(prefix="switchboard-events-bench-")
    receiver = Receiver()
    sections = base_config(events={"url": receiver.url, "outbox": os.path.join(d, "outbox"),
                                   "batch": 500, "retry_max": 0.2, "memory_window": window},
                           hooks={"secret": SECRET, "timeout": 2}, server={"threads": 1},
                           limits={"command_rate": 100000, "command_burst": 100000})
    sections["namespaces.room"] = {"presence": True, "publish": "any"}
    server = ServeProcess(binary, toml_text(sections), d, stop_timeout=10)
    try:
        base_rss = rss_kib(server.pid)
        pairs = EVENTS // 4 // CLIENTS

        async def client(i):
            ws = await connect_ws(server.port, token_value=token("bench%d" % i))
            s = Session(ws)
            for _ in range(pairs):
                for cmd in ("subscribe", "unsubscribe"):
                    r = await s.request(cmd, channel="room:b%d" % i)
                    if "result" not in r:
                        raise AssertionError(r)
            return ws

        async def go():
            conns = await asyncio.gather(*(client(i) for i in range(CLIENTS)))
            m = metric_samples(server.port)
            stats = (m["switchboard_events_pending"], m["switchboard_events_in_memory"],
                     rss_kib(server.pid))
            for ws in conns:
                await ws.close()
            return stats
        pending, in_memory, rss = run(go())
        receiver.up = True
        start = time.monotonic()
        total = pending + CLIENTS  # and each client's disconnect after its close
        while len(receiver.events()) < total and time.monotonic() - start < 120:
            time.sleep(0.05)
        drained = time.monotonic() - start
        events = receiver.events()
        seqs = [e["seq"] for e in events]
        ok = seqs == sorted(seqs) and len(events) == total and \
            sum(len(b) for b in receiver.batches) == total
        return {"window": window, "pending": int(pending), "in_memory": int(in_memory),
                "rss_growth_kib": rss - base_rss, "drain_s": drained, "ok": ok}
    finally:
        server.stop()
        receiver.close()
        shutil.rmtree(d, ignore_errors=True)


def main():
    binary = os.path.abspath(sys.argv[1])
    print("| events.memory_window | events pending | held in memory | RSS growth | "
          "drain after the webhook is back | all once, in order |")
    print("|---|---|---|---|---|---|")
    for window in (1000, 1000000):
        r = one_run(binary, window)
        print("| %d | %d | %d | %.1f MiB | %.2f s | %s |" % (
            r["window"], r["pending"], r["in_memory"], r["rss_growth_kib"] / 1024.0,
            r["drain_s"], "yes" if r["ok"] else "NO"))


if __name__ == "__main__":
    main()
