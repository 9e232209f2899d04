#!/usr/bin/env python3
"""http_api_report.py — the Markdown table of bench/run_http_api_bench.sh.

    bench/http_api_report.py RESULTS.jsonl COMMAND-LINE LOADAVG

RESULTS.jsonl has one JSON object per run (mode, pipeline, connections, rate,
errors, unanswered); the table gives the median rate per mode against one
connection per request.
"""
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def key(r): return (r["mode"], r["pipeline"])
groups = {}
for r in rows:
    groups.setdefault(key(r), []).append(r)
base = statistics.median(r["rate"] for r in groups[("close", 1)])
print("| mode | connections | in flight per connection | publications/s (median of %d) | errors | unanswered, sent again | vs one connection per request |" % len(groups[("close", 1)]))
print("|---|---|---|---|---|---|---|")
names = {("close", 1): "one connection per request", ("keepalive", 1): "keep-alive",
         ("keepalive", 8): "keep-alive, pipelined"}
for k in [("close", 1), ("keepalive", 1), ("keepalive", 8)]:
    g = groups[k]
    rate = statistics.median(r["rate"] for r in g)
    errors = sum(r["errors"] for r in g)
    unanswered = sum(r["unanswered"] for r in g)
    print("| %s | %d | %d | %.0f | %d | %d | %.2fx |" % (names[k], g[0]["connections"], k[1], rate, errors, unanswered, rate / base))
print()
print("Command: `%s` (load average at the end: %s)" % (sys.argv[2].strip(), sys.argv[3]))
