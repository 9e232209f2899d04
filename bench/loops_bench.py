#!/usr/bin/python3
"""loops_bench.py — publications across event loops in `switchboard serve` (issue 12 §4).

One channel, N subscribers (10,000 by default) spread by the kernel over the server's
loops (SO_REUSEPORT), one publisher, history and presence off, driven by
switchboard_fanout (bench/fanout.cpp). For each server loop count (--threads, 1 and 2
by default) on a fresh server, three things:

  sweep     publications/s in steps up to the first rate that does not keep up
            (fanout's --until-saturated: ≥ 95% delivered, p99 ≤ 500 ms), bisected
            --refine times: the saturation rate; then half of it for --half-duration
            seconds: p50 / p99 publish→delivery latency there. Also the server's
            cross-loop wake-ups (eventfd writes, switchboard_loop_wakeups_total) per
            publication over the sweep.
  instr     (--instr) user-space instructions per publication and per delivery, the
            server under callgrind: a run at R and one at 2R publications/s for the
            same time, the difference over the difference (set-up, closes and timers
            cancel out); with the eventfd writes per publication of each run.
  wakeups   (--wakeups) eventfd writes per publication counted by strace (write(2)
            is only used on the eventfd), for binaries without the metric (--peer).

    bench/loops_bench.py [--build DIR] [--threads 1,2] [--subscribers 10000]
                         [--instr] [--wakeups] [--peer NAME=PATH ...] [--smoke]

prints Markdown tables (saturation rate, half rate, p50 / p99 there, for each loop
count). Pinning: with more cores than loops, the server gets cores 0..T-1 and the load
generator the rest; otherwise nothing is pinned (the report says so). Loopback only,
bounded in time; every server is stopped at the end.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import serve_process  # bench/serve_process.py, beside this script

CONFIG = serve_process.fanout_config(history_size=0)  # threads: --threads per run

SOURCES = "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4"


def log(*args):
    print("#", *args, file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def cpu_list(cpus):
    return ",".join(str(c) for c in cpus)


def start_server(binary, work, name, threads, cpus=None, prefix=(), startup=60):
    """`switchboard serve --threads T` with CONFIG (serve_process.ServeProcess):
    pinned to `cpus` if given, under a tool (`prefix`: valgrind, strace) if given."""
    pin = ("taskset", "-c", cpu_list(cpus)) if cpus else ()
    return serve_process.ServeProcess(binary, CONFIG, work, name, prefix=(*pin, *prefix),
                                      extra=("--threads", str(threads)), stop_timeout=60,
                                      startup=startup)


def fanout(args, port, pid, extra, cpus):
    cmd = [args.fanout, "--url", "ws://127.0.0.1:%d/ws" % port, "--json", "--scenario", "fanout",
           "--namespace", "bench", "--source-ips", SOURCES, "--threads", str(args.loader_threads),
           "--pad", str(args.pad)] + (["--server-pid", str(pid)] if pid else []) + extra
    if cpus:
        cmd = ["taskset", "-c", cpu_list(cpus)] + cmd
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        log("switchboard_fanout failed (%d): %s" % (p.returncode, p.stderr[-2000:]))
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def pinning(threads):
    n = os.cpu_count() or 1
    if n > threads:
        return list(range(threads)), list(range(threads, n))
    return None, None


def delta(after, before, name):
    a, b = after.get(name), before.get(name)
    return None if a is None or b is None else a - b


def run_sweep(args, label, binary, threads, work):
    server_cpus, loader_cpus = pinning(threads)
    server = start_server(binary, work, "sweep", threads, server_cpus)
    try:
        time.sleep(0.5)
        before = server.metrics()
        load = loadavg()
        if args.smoke:
            extra = ["--subscribers", str(args.subscribers), "--rates", "10,100",
                     "--duration", "0.5", "--warmup", "0.2", "--drain", "3", "--half",
                     "--half-duration", "0.5"]
        else:
            extra = ["--subscribers", str(args.subscribers), "--rates", args.rates,
                     "--duration", str(args.duration), "--warmup", str(args.warmup),
                     "--drain", "30", "--until-saturated", "--refine", str(args.refine),
                     "--half", "--half-duration", str(args.half_duration)]
        rows = fanout(args, server.port, server.pid, extra, loader_cpus)
        after = server.metrics()
        alive = server.proc.poll() is None
    finally:
        server.stop()
    return {"kind": "sweep", "binary": label, "threads": threads, "subscribers": args.subscribers,
            "pinned": server_cpus is not None, "load": load, "alive": alive,
            "steps": [r for r in rows if "step" in r],
            "summary": next((r for r in rows if "max_sustained_rate" in r), None),
            "wakeups": delta(after, before, "switchboard_loop_wakeups_total"),
            "publications": delta(after, before, "switchboard_publications_total")}


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError("no totals in %s" % path)


def run_instr(args, label, binary, threads, work):
    if not shutil.which("valgrind"):
        log("valgrind missing: instr skipped")
        return None
    subs, rate, seconds = args.instr_subscribers, args.instr_rate, args.instr_seconds
    if args.smoke:
        subs, seconds = 20, 0.5
    out = {"kind": "instr", "binary": label, "threads": threads, "subscribers": subs,
           "rates": [rate, 2 * rate], "seconds": seconds, "ir": [], "delivered": [],
           "publications": [], "wakeups": [], "load": loadavg()}
    for factor in (1, 2):
        cg = os.path.join(work, "callgrind.%s.%d.%d.out" % (label, threads, factor))
        server = start_server(binary, work, "instr", threads,
                              prefix=("valgrind", "--tool=callgrind", "--callgrind-out-file=" + cg),
                              startup=120)
        try:
            before = server.metrics()
            rows = fanout(args, server.port, 0,
                          ["--subscribers", str(subs), "--rates", str(rate * factor),
                           "--duration", str(seconds), "--warmup", "0", "--drain", "30",
                           "--connect-timeout", "60"], None)
            after = server.metrics()
        finally:
            server.stop()  # callgrind writes its totals on exit
        step = next((r for r in rows if "step" in r), None)
        if step is None:
            log("instr %s threads %d: no step result" % (label, threads))
            return None
        out["ir"].append(callgrind_total(cg))
        out["delivered"].append(step["delivered"])
        out["publications"].append(step["acked"])
        out["wakeups"].append(delta(after, before, "switchboard_loop_wakeups_total"))
    return out


def run_wakeups(args, label, binary, threads, work):
    """eventfd writes per publication, counted by strace (write(2) on the server is
    the eventfd only: sockets use sendmsg, logs are off at level warn)."""
    if not shutil.which("strace"):
        log("strace missing: wakeups skipped")
        return None
    counts = os.path.join(work, "strace.%s.%d.txt" % (label, threads))
    server = start_server(binary, work, "wakeups", threads,
                          prefix=("strace", "-f", "--seccomp-bpf", "-c", "-e", "trace=write",
                                  "-o", counts))
    try:
        rows = fanout(args, server.port, 0,
                      ["--subscribers", str(args.instr_subscribers),
                       "--rates", str(args.instr_rate),
                       "--duration", "1" if args.smoke else "4", "--warmup", "0",
                       "--drain", "30"], None)
    finally:
        server.stop()
    writes = 0
    with open(counts) as f:
        for line in f:
            parts = line.split()
            if parts and parts[-1] == "write":  # % time, seconds, usecs/call, calls, [errors,] name
                writes = int(parts[3])
    step = next((r for r in rows if "step" in r), None)
    return {"kind": "wakeups", "binary": label, "threads": threads,
            "subscribers": args.instr_subscribers, "rate": args.instr_rate,
            "writes": writes, "publications": step["acked"] if step else 0, "load": loadavg()}


def n(v, digits=0):
    return "—" if v is None else f"{v:,.{digits}f}"


def report(rows):
    sweeps = [r for r in rows if r["kind"] == "sweep"]
    if sweeps:
        print("| server | loops | subscribers | saturation publications/s (first failed) | "
              "half rate | p50 / p99 ms at half | deliveries/s at half | server cores busy / "
              "waiting at half | eventfd writes per publication (sweep) | pinned | load |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
        for r in sweeps:
            s = r["summary"] or {}
            good, bad = s.get("max_sustained_rate"), s.get("first_failed_rate")
            half = [x for x in r["steps"] if x["half"]]
            h = half[-1] if half else None
            lat = f"{h['latency_ms']['p50']:.1f} / **{h['latency_ms']['p99']:.1f}**" if h else "—"
            cores = (f"{h['server_cpu_s'] / h['seconds']:.2f} / {h['server_wait_s'] / h['seconds']:.2f}"
                     if h and h["server_cpu_s"] >= 0 and h["server_wait_s"] >= 0 else "—")
            per_pub = (r["wakeups"] / r["publications"]
                       if r["wakeups"] is not None and r["publications"] else None)
            print(f"| {r['binary']} | {r['threads']} | {n(r['subscribers'])} | "
                  f"{n(good, 1 if good and good % 1 else 0)} ({n(bad) if bad else '—'}) | "
                  f"{n(h['rate'], 1) if h else '—'} | {lat} | "
                  f"{n(h['deliveries_per_s']) if h else '—'} | {cores} | {n(per_pub, 2)} | "
                  f"{'yes' if r['pinned'] else 'no'} | {r['load']} |")
        print()
        print("Every step:")
        print()
        print("| server | loops | publications/s | sent / planned | deliveries/s | p50 / p99 / max ms "
              "| lost | server cores busy / waiting | kept up |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in sweeps:
            for x in r["steps"]:
                lat = x["latency_ms"]
                secs = x["seconds"]
                cores = (f"{x['server_cpu_s'] / secs:.2f} / {x['server_wait_s'] / secs:.2f}"
                         if x["server_cpu_s"] >= 0 and x["server_wait_s"] >= 0 else "—")
                print(f"| {r['binary']} | {r['threads']} | "
                      f"{n(x['rate'], 1 if x['rate'] % 1 else 0)}{' (½ max)' if x['half'] else ''} | "
                      f"{n(x['sent'])} / {n(x['planned'])} | {n(x['deliveries_per_s'])} | "
                      f"{lat['p50']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f} | {n(x['lost'])} | "
                      f"{cores} | {'yes' if x['sustained'] else '**no**'} |")
    instr = [r for r in rows if r["kind"] == "instr"]
    if instr:
        print()
        print("| server | loops | subscribers | publications/s R, 2R | instructions per "
              "publication (marginal) | per delivery | eventfd writes per publication at R, 2R |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in instr:
            dir_ = r["ir"][1] - r["ir"][0]
            dp = r["publications"][1] - r["publications"][0]
            dd = r["delivered"][1] - r["delivered"][0]
            w = ", ".join(n(w / p, 2) if w is not None and p else "—"
                          for w, p in zip(r["wakeups"], r["publications"]))
            print(f"| {r['binary']} | {r['threads']} | {n(r['subscribers'])} | "
                  f"{r['rates'][0]}, {r['rates'][1]} | {n(dir_ / dp) if dp else '—'} | "
                  f"{n(dir_ / dd, 1) if dd else '—'} | {w} |")
    wake = [r for r in rows if r["kind"] == "wakeups"]
    if wake:
        print()
        print("| server | loops | subscribers | publications/s | publications | eventfd writes "
              "(strace) | per publication |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in wake:
            per = r["writes"] / r["publications"] if r["publications"] else None
            print(f"| {r['binary']} | {r['threads']} | {n(r['subscribers'])} | {r['rate']} | "
                  f"{n(r['publications'])} | {n(r['writes'])} | {n(per, 2)} |")


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(repo, "build", "release"))
    ap.add_argument("--switchboard", help="default BUILD/apps/switchboard/switchboard")
    ap.add_argument("--fanout", help="default BUILD/bench/switchboard_fanout")
    ap.add_argument("--peer", action="append", default=[],
                    help="NAME=PATH: another switchboard binary measured the same way")
    ap.add_argument("--threads", default="1,2", help="server loop counts, one fresh server each")
    ap.add_argument("--subscribers", type=int, default=10000)
    ap.add_argument("--rates", default="10,30,100,300,1000,3000,10000")
    ap.add_argument("--refine", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--half-duration", type=float, default=10)
    ap.add_argument("--loader-threads", type=int, default=2,
                    help="switchboard_fanout's subscriber loops")
    ap.add_argument("--pad", type=int, default=0)
    ap.add_argument("--no-sweep", action="store_true", help="only --instr / --wakeups")
    ap.add_argument("--instr", action="store_true", help="callgrind: instructions per publication")
    ap.add_argument("--wakeups", action="store_true", help="strace: eventfd writes per publication")
    ap.add_argument("--instr-subscribers", type=int, default=1000)
    ap.add_argument("--instr-rate", type=int, default=20)
    ap.add_argument("--instr-seconds", type=float, default=4)
    ap.add_argument("--results", help="append JSON lines here (default: a temporary file)")
    ap.add_argument("--report-only", action="store_true", help="print the tables of --results")
    ap.add_argument("--smoke", action="store_true", help="tiny and quick: does it all run?")
    args = ap.parse_args()
    args.switchboard = args.switchboard or os.path.join(args.build, "apps", "switchboard",
                                                        "switchboard")
    args.fanout = args.fanout or os.path.join(args.build, "bench", "switchboard_fanout")
    if args.smoke:
        args.subscribers = min(args.subscribers, 40)
    results = args.results or tempfile.mkstemp(prefix="switchboard-loops-", suffix=".jsonl")[1]

    if not args.report_only:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        binaries = [("this", args.switchboard)]
        for p in args.peer:
            name, _, path = p.partition("=")
            binaries.append((name, path))
        work = tempfile.mkdtemp(prefix="switchboard-loops-")
        try:
            with open(results, "a") as out:
                for threads in [int(t) for t in args.threads.split(",")]:
                    for label, binary in binaries:
                        runs = []
                        if not args.no_sweep:
                            runs.append(lambda: run_sweep(args, label, binary, threads, work))
                        if args.instr:
                            runs.append(lambda: run_instr(args, label, binary, threads, work))
                        if args.wakeups:
                            runs.append(lambda: run_wakeups(args, label, binary, threads, work))
                        for run in runs:
                            row = run()
                            if row is None:
                                continue
                            out.write(json.dumps(row) + "\n")
                            out.flush()
                            log("%s, %d loop(s): %s" % (label, threads, row["kind"]))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    rows = [json.loads(line) for line in open(results) if line.strip()]
    print("Command: `bench/loops_bench.py %s`" % " ".join(sys.argv[1:]))
    print()
    print("%d cores, %s, %s; load average at start %s. Results: %s"
          % (os.cpu_count(), os.uname().release, time.strftime("%Y-%m-%d", time.gmtime()),
             loadavg(), results))
    print()
    report(rows)


if __name__ == "__main__":
    main()
