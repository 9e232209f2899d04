#!/usr/bin/python3
"""The compact push envelope (issue 12 section 1, docs/protocol.md "Compact pushes"):
bytes per push, instructions and heap blocks per publication and per delivery, with
every subscriber on full pushes (switchboard.v1), on compact ones
(switchboard.v1.compact), and half of each on one channel.

    bench/compact_envelope.py [--build build/release] [--subscribers 1000] [--rate 10]
                              [--seconds 4] [--only bytes,callgrind,dhat]

- bytes: `switchboard serve` natively, 100 subscribers of one channel, 100 publications/s
  for 1 s, data of 26 and of 100 bytes: the push as its subscribers read it (the
  WebSocket payload; the frame adds 2 bytes under 126, 4 from there).
- callgrind: the server under callgrind, one run at R and one at 2R publications/s to
  N subscribers of one channel; the difference of the two runs over the difference of
  their deliveries (and publications) is the marginal cost, free of set-up and closes.
  Also the inclusive instructions of hub::on_publication per publication (building the
  push in each form the node's subscribers read, framing it and handing it to the loop),
  and of the loop's write path (net::write_cork::flush: each publication batch staged
  into its subscribers' corks, iovecs, sendmsg; set-up replies included, the same in
  every form) per delivery. These two do not depend on how the run was scheduled; the
  whole-process marginal does (timers, batching), and is only worth reading on a quiet
  machine.
- dhat: the same two runs under dhat: heap blocks per publication and per delivery.

User-space instructions only (the kernel's copies are not counted: fewer bytes save
there). Loopback only, bounded: a few minutes with the defaults.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import serve_process  # bench/serve_process.py, beside this script

CONFIG = serve_process.fanout_config(threads=1)

FORMS = (("full", []), ("compact", ["--compact"]), ("mixed", ["--compact-every", "2"]))


def start_server(binary, tmp, prefix=()):
    """`switchboard serve` with CONFIG (serve_process.ServeProcess), maybe under
    valgrind (slow to start and to stop)."""
    return serve_process.ServeProcess(binary, CONFIG, tmp, "serve", prefix=prefix,
                                      stop_timeout=180, startup=120)


def fanout(build, port, form_args, subscribers, rate, seconds, pad=0):
    """One measured step of switchboard_fanout: its JSON result."""
    cmd = [os.path.join(build, "bench", "switchboard_fanout"), "--url",
           "ws://127.0.0.1:%d/ws" % port, "--json", "--scenario", "fanout",
           "--subscribers", str(subscribers), "--rates", str(rate), "--duration", str(seconds),
           "--warmup", "0", "--drain", "60", "--connect-timeout", "120", "--pad", str(pad)]
    out = subprocess.run(cmd + form_args, capture_output=True, text=True, timeout=900)
    for line in out.stdout.splitlines():
        if '"step"' in line:
            return json.loads(line)
    raise RuntimeError("switchboard_fanout: no result\n" + out.stdout + out.stderr)


def measure_bytes(build, binary):
    print("| data bytes | form | push bytes (WebSocket payload) | frame on the wire |")
    print("|---:|---|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="switchboard-compact-") as tmp:
        server = start_server(binary, tmp)
        try:
            for pad, data in ((0, 26), (68, 100)):
                for name, args in FORMS[:2]:
                    r = fanout(build, server.port, args, 100, 100, 1, pad)
                    size = r["payload_bytes"]
                    header = 2 if size < 126 else 4
                    print("| %d | %s | %.1f | %.1f |" % (data, name, size, size + header))
        finally:
            server.stop()


def callgrind_run(build, binary, args, subscribers, rate, seconds):
    with tempfile.TemporaryDirectory(prefix="switchboard-compact-") as tmp:
        out = os.path.join(tmp, "callgrind.out")
        server = start_server(binary, tmp, ("valgrind", "--tool=callgrind",
                                            "--callgrind-out-file=" + out))
        try:
            r = fanout(build, server.port, args, subscribers, rate, seconds)
        finally:
            server.stop()
        totals = None
        with open(out) as f:
            for line in f:
                if line.startswith("totals:") or line.startswith("summary:"):
                    totals = int(line.split()[1])
        annotate = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100",
                                   out], capture_output=True, text=True, timeout=300).stdout
        def inclusive(symbol):
            for line in annotate.splitlines():
                if symbol in line:
                    return int(line.split()[0].replace(",", ""))
            return 0
        return (totals, inclusive("hub::on_publication("), r["delivered"], r["acked"],
                inclusive("net::write_cork::flush()"))


def measure_callgrind(build, binary, subscribers, rate, seconds):
    print("| form | subscribers | publications/s R, 2R | hub::on_publication per publication "
          "| write path per delivery at R, 2R | whole process per delivery (marginal) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, args in FORMS:
        a = callgrind_run(build, binary, args, subscribers, rate, seconds)
        b = callgrind_run(build, binary, args, subscribers, 2 * rate, seconds)
        deliveries = b[2] - a[2]
        print("| %s | %d | %d, %d | %.0f | %.0f, %.0f | %.0f |" % (
            name, subscribers, rate, 2 * rate, (a[1] + b[1]) / max(a[3] + b[3], 1),
            a[4] / max(a[2], 1), b[4] / max(b[2], 1), (b[0] - a[0]) / max(deliveries, 1)))
        sys.stdout.flush()


def dhat_run(build, binary, args, subscribers, rate, seconds):
    with tempfile.TemporaryDirectory(prefix="switchboard-compact-") as tmp:
        server = start_server(binary, tmp, ("valgrind", "--tool=dhat",
                                            "--dhat-out-file=" + os.path.join(tmp, "dhat.json")))
        try:
            r = fanout(build, server.port, args, subscribers, rate, seconds)
        finally:
            server.stop()
        log = server.output()  # dhat's summary
        m = re.search(r"Total:\s+([\d,]+) bytes in ([\d,]+) blocks", log)
        if not m:
            raise RuntimeError("no dhat totals in\n" + log)
        return (int(m.group(2).replace(",", "")), int(m.group(1).replace(",", "")),
                r["delivered"], r["acked"])


def measure_dhat(build, binary, subscribers, rate, seconds):
    print("| form | publications R, 2R | deliveries R, 2R | heap blocks R, 2R "
          "| more blocks per more publication | per more delivery |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, args in FORMS:
        a = dhat_run(build, binary, args, subscribers, rate, seconds)
        b = dhat_run(build, binary, args, subscribers, 2 * rate, seconds)
        print("| %s | %d, %d | %d, %d | %d, %d | %.2f | %.4f |" % (
            name, a[3], b[3], a[2], b[2], a[0], b[0], (b[0] - a[0]) / max(b[3] - a[3], 1),
            (b[0] - a[0]) / max(b[2] - a[2], 1)))
        sys.stdout.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default="build/release")
    p.add_argument("--switchboard", help="the server binary (default: BUILD's)")
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--rate", type=int, default=10)
    p.add_argument("--seconds", type=float, default=4)
    p.add_argument("--only", default="bytes,callgrind,dhat")
    a = p.parse_args()
    binary = a.switchboard or os.path.join(a.build, "apps", "switchboard", "switchboard")
    print("Command: `bench/compact_envelope.py %s`\n" % " ".join(sys.argv[1:]))
    only = a.only.split(",")
    if "bytes" in only:
        measure_bytes(a.build, binary)
        print()
    if "callgrind" in only:
        measure_callgrind(a.build, binary, a.subscribers, a.rate, a.seconds)
        print()
    if "dhat" in only:
        measure_dhat(a.build, binary, a.subscribers, a.rate, a.seconds)


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    main()
