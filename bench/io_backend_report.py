#!/usr/bin/env python3
"""Markdown table of bench/run_io_backend_bench.sh results (JSON lines).

Per point: the median over rounds of messages/s and of server CPU per round
trip for each backend, and io_uring/epoll ratios of those medians (CPU per
round trip below 1.00: io_uring is cheaper)."""
import json
import statistics
import sys


def main(path):
    runs = {}
    order = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            res = r["result"]
            cpu = res["window_cpu_s"]["server"]
            if cpu is None or res["messages"] == 0:
                continue
            key = (r["point"], r["backend"])
            if r["point"] not in order:
                order.append(r["point"])
            runs.setdefault(key, []).append(
                (res["messages_per_s"], cpu / res["messages"] * 1e6))
    print("| point | epoll msg/s | io_uring msg/s | epoll CPU µs/rt | io_uring CPU µs/rt "
          "| io_uring/epoll CPU per rt | rounds |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for point in order:
        e = runs.get((point, "epoll"), [])
        u = runs.get((point, "io_uring"), [])
        if not e or not u:
            continue
        e_rate = statistics.median(x[0] for x in e)
        u_rate = statistics.median(x[0] for x in u)
        e_cpu = statistics.median(x[1] for x in e)
        u_cpu = statistics.median(x[1] for x in u)
        print("| %s | %.0f | %.0f | %.2f | %.2f | %.2f | %d |" % (
            point, e_rate, u_rate, e_cpu, u_cpu, u_cpu / e_cpu, min(len(e), len(u))))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: io_backend_report.py RESULTS.jsonl\n")
        sys.exit(2)
    main(sys.argv[1])
