#!/usr/bin/python3
"""Runs the protocol microbenchmarks and prints a Markdown table of medians.

Rates are wall-clock (the benchmarks use UseRealTime); run it on a quiet
machine, pinned to one core, or the spread column will say it was not.

usage: bench/protocol_report.py BENCH_BINARY [extra google-benchmark flags]

Each benchmark runs 5 times; the median is reported, with the spread
(max/min - 1) so a noisy run on a shared machine is visible.
"""
import json
import subprocess
import sys

TARGETS = {  # benchmark name -> (metric, target, unit)
    "bm_unmask/65536": ("bytes_per_second", 8e9, "GB/s"),
    "bm_utf8_ascii/65536": ("bytes_per_second", 8e9, "GB/s"),
    "bm_utf8_mixed/65536": ("bytes_per_second", 2e9, "GB/s"),
    "bm_reader_16b_frames": ("items_per_second", 40e6, "M frames/s"),
    "bm_handshake": ("items_per_second", 1e6, "M handshakes/s"),
}


def fmt(metric, value):
    if metric == "bytes_per_second":
        return f"{value / 1e9:.2f} GB/s"
    return f"{value / 1e6:.2f} M/s"


def main():
    cmd = [sys.argv[1], "--benchmark_repetitions=5", "--benchmark_format=json",
           "--benchmark_min_time=0.3", *sys.argv[2:]]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    runs = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        runs.setdefault(b["run_name"].removesuffix("/real_time"), []).append(b)
    print("| benchmark | median | spread | target |")
    print("|---|---|---|---|")
    for name, reps in runs.items():
        metric = "items_per_second" if "items_per_second" in reps[0] else "bytes_per_second"
        if name.startswith("bm_reader_64k"):
            metric = "bytes_per_second"
        values = sorted(r[metric] for r in reps)
        median = values[len(values) // 2]
        spread = values[-1] / values[0] - 1 if values[0] else 0
        target = ""
        if name in TARGETS:
            m, t, unit = TARGETS[name]
            verdict = "met" if median >= t else f"MISSED ({median / t:.0%} of target)"
            target = f"≥ {t / 1e9:g} GB/s {verdict}" if unit == "GB/s" else f"≥ {t / 1e6:g} {unit} {verdict}"
        print(f"| {name} | {fmt(metric, median)} | {spread:.0%} | {target} |")


if __name__ == "__main__":
    main()
