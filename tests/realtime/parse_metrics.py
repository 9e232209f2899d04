#!/usr/bin/python3
"""Checks a Prometheus text exposition (format 0.0.4) with prometheus_client.

usage: parse_metrics.py SOURCE [FAMILY[:TYPE] ...] [--sample 'NAME{LABELS} VALUE' ...]

SOURCE is a file path or an http(s):// URL (a live /metrics). The exposition
must parse with Debian's python3-prometheus-client
(prometheus_client.parser.text_string_to_metric_families), and then:
  - every family has # HELP text and a # TYPE (nothing parses as "untyped",
    which is what the parser makes of a sample outside its family);
  - no family appears twice;
  - counters are >= 0; every histogram series has _sum, _count and buckets that
    are cumulative, end with le="+Inf" and whose +Inf bucket equals _count;
  - each FAMILY named on the command line is present (counter names may be
    given with or without "_total"), with TYPE when one is given;
  - each --sample line (itself in exposition syntax, e.g.
    'switchboard_closes_total{code="1000"} 5') is present with that value.
Prints a summary and exits 0, or lists every problem and exits 1.

Needs Debian's python3, hence /usr/bin/python3.
"""
import argparse
import math
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def read_source(source):
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=10) as response:
            content_type = response.headers.get("Content-Type", "")
            body = response.read().decode("utf-8")
        return body, content_type
    with open(source, encoding="utf-8") as f:
        return f.read(), None


def family_key(name):
    # prometheus_client reports a counter "x_total" as family "x".
    return name[:-6] if name.endswith("_total") else name


def parse_expected_sample(text):
    families = list(text_string_to_metric_families(text + "\n"))
    if len(families) != 1 or len(families[0].samples) != 1:
        raise ValueError("not one sample: %r" % text)
    return families[0].samples[0]


def check_histogram(family, problems):
    series = {}
    for s in family.samples:
        labels = {k: v for k, v in s.labels.items() if k != "le"}
        key = tuple(sorted(labels.items()))
        entry = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if s.name == family.name + "_bucket":
            if "le" not in s.labels:
                problems.append("%s: bucket without le: %s" % (family.name, s))
            else:
                entry["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name == family.name + "_sum":
            entry["sum"] = s.value
        elif s.name == family.name + "_count":
            entry["count"] = s.value
    for key, entry in series.items():
        where = "%s%s" % (family.name, dict(key))
        buckets = entry["buckets"]
        if entry["sum"] is None or entry["count"] is None:
            problems.append("%s: missing _sum or _count" % where)
        if not buckets or not math.isinf(buckets[-1][0]):
            problems.append("%s: no le=\"+Inf\" bucket last" % where)
            continue
        bounds = [b for b, _ in buckets]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            problems.append("%s: bucket bounds not increasing: %s" % (where, bounds))
        counts = [c for _, c in buckets]
        if any(b < a for a, b in zip(counts, counts[1:])):
            problems.append("%s: buckets not cumulative: %s" % (where, counts))
        if entry["count"] is not None and buckets[-1][1] != entry["count"]:
            problems.append("%s: +Inf bucket %s != _count %s" % (where, buckets[-1][1], entry["count"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", help="file path or http(s) URL")
    parser.add_argument("families", nargs="*", help="expected family names, NAME or NAME:TYPE")
    parser.add_argument("--sample", action="append", default=[],
                        help="an expected sample in exposition syntax: 'name{a=\"b\"} 3'")
    args = parser.parse_args()

    text, content_type = read_source(args.source)
    problems = []
    if content_type is not None and not content_type.startswith("text/plain"):
        problems.append("Content-Type is %r, not text/plain" % content_type)

    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser raises ValueError and friends
        print("parse error: %s" % e)
        return 1

    by_name = {}
    for f in families:
        if f.name in by_name:
            problems.append("family %s appears twice" % f.name)
        by_name[f.name] = f
        if f.type in ("untyped", "unknown"):
            problems.append("family %s has no TYPE (or a sample outside its family)" % f.name)
        if not f.documentation:
            problems.append("family %s has no HELP" % f.name)
        if f.type == "counter":
            for s in f.samples:
                if not s.value >= 0:
                    problems.append("counter sample %s is %s" % (s.name, s.value))
        if f.type == "histogram":
            check_histogram(f, problems)

    for expected in args.families:
        name, _, typ = expected.partition(":")
        f = by_name.get(name) or by_name.get(family_key(name))
        if f is None:
            problems.append("family %s missing" % name)
        elif typ and f.type != typ:
            problems.append("family %s is a %s, not a %s" % (name, f.type, typ))

    samples = [s for f in families for s in f.samples]
    for line in args.sample:
        want = parse_expected_sample(line)
        found = [s for s in samples if s.name == want.name and s.labels == want.labels]
        if not found:
            problems.append("sample missing: %s" % line)
        elif not (found[0].value == want.value
                  or (math.isnan(found[0].value) and math.isnan(want.value))):
            problems.append("sample %s is %s, expected %s" % (line, found[0].value, want.value))

    if problems:
        for p in problems:
            print("FAIL: " + p)
        return 1
    print("ok: %d families, %d samples from %s" % (len(families), len(samples), args.source))
    return 0


if __name__ == "__main__":
    sys.exit(main())
