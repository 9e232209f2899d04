"""redis_report.py RESULTS LOAD — the tables of bench/run_redis_bench.sh.

RESULTS: the JSON lines the script collected (switchboard_fanout --json rows
tagged with broker and section, redis-server CPU seconds per section, Redis's
INFO commandstats line for EVALSHA). LOAD: `uptime`'s text. Prints Markdown.
"""
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("load:", sys.argv[2].split("load average:")[-1].strip())
fan = {}
for r in rows:
    if r.get("section") == "fanout":
        fan[(r["broker"], r["rate"])] = r
cpu = {r["broker"]: r["seconds"] for r in rows if r.get("section") == "redis_cpu_fanout"}
print("\n| publications/s × subscribers | broker | delivered / expected | p50 ms | p99 ms | "
      "deliveries per node CPU-s | redis ÷ memory |")
print("|---|---|---|---|---|---|---|")
for (broker, rate), r in sorted(fan.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    mem = fan.get(("memory", rate))
    ratio = ""
    if broker != "memory" and mem and mem["deliveries_per_server_cpu_s"]:
        ratio = "%.0f%%" % (100 * r["deliveries_per_server_cpu_s"] / mem["deliveries_per_server_cpu_s"])
    lat = r["latency_ms"]
    print("| %g × %d | %s | %d / %d | %.2f | %.2f | %.0f | %s |" % (
        rate, r["subscribers"], broker, r["delivered"], r["expected"], lat["p50"], lat["p99"],
        r["deliveries_per_server_cpu_s"], ratio))
pubs = sum(r["acked"] for (b, _), r in fan.items() if b == "redis")
if pubs and "redis" in cpu:
    print("\nredis-server CPU over the redis fan-out steps: %.2f s for %d publications "
          "(%.1f µs each, pub/sub to one node included)" % (cpu["redis"], pubs, 1e6 * cpu["redis"] / pubs))
pcpu = {r["broker"]: r["seconds"] for r in rows if r.get("section") == "redis_cpu_publish"}
ppubs = sum(r["acked"] for r in rows if r.get("section") == "publish" and r["broker"] == "redis"
            and "acked" in r)
if ppubs and "redis" in pcpu:
    print("redis-server CPU over the publish sweep: %.2f s for %d publications (%.1f µs each)"
          % (pcpu["redis"], ppubs, 1e6 * pcpu["redis"] / ppubs))
for r in rows:
    if r.get("section") == "evalsha":
        print("redis INFO commandstats, EVALSHA:", r["stats"])
print("\n| broker | highest sustained publications/s (1 subscriber) | p99 ms at it |")
print("|---|---|---|")
for broker in ("memory", "redis"):
    best = [r for r in rows if r.get("section") == "publish" and r["broker"] == broker
            and "max_sustained_rate" in r]
    steps = [r for r in rows if r.get("section") == "publish" and r["broker"] == broker
             and r.get("sustained")]
    top = max(steps, key=lambda r: r["rate"]) if steps else None
    print("| %s | %s | %s |" % (broker, "%.0f" % best[0]["max_sustained_rate"] if best else "?",
                                "%.2f" % top["latency_ms"]["p99"] if top else "?"))


def latency_and_two_nodes(rows):
    lat = {r["broker"]: r for r in rows if r.get("section") == "latency"}
    if lat:
        print("\n| 1,000 publications/s × 100 subscribers | delivered / expected | p50 ms | p99 ms |")
        print("|---|---|---|---|")
        names = {"memory": "memory broker, one node",
                 "redis": "Redis, publisher and subscribers on two nodes"}
        for broker in ("memory", "redis"):
            if broker in lat:
                r = lat[broker]
                print("| %s | %d / %d | %.2f | %.2f |" % (names[broker], r["delivered"], r["expected"],
                                                        r["latency_ms"]["p50"], r["latency_ms"]["p99"]))
        if "memory" in lat and "redis" in lat:
            print("\np99 added by Redis and the second node: %.2f ms"
                  % (lat["redis"]["latency_ms"]["p99"] - lat["memory"]["latency_ms"]["p99"]))


latency_and_two_nodes([json.loads(l) for l in open(sys.argv[1])])
