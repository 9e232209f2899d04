#!/usr/bin/env python3
"""Publications per second through the server API: one POST /api/publish per
publication (today a new TCP connection each: the API answers with
Connection: close) against POST /api/batch with BATCH publish commands per
request, in the same run, against the same `switchboard serve` (memory
broker, 127.0.0.1, a free port). The figure that matters is the same-run
ratio; the absolute numbers depend on the machine.

Usage: /usr/bin/python3 bench/api_batch.py path/to/switchboard [--count N] [--batch B]
Bounded: N publications per mode (default 3000), then the server is stopped.
"""

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time

KEY = "bench-key"


def start(binary, directory):
    config = os.path.join(directory, "serve.toml")
    with open(config, "w") as f:
        f.write('[server]\ndemo = false\nthreads = 1\n[auth]\nallow_anonymous = true\n'
                '[api]\nkey = "%s"\n[namespaces.chat]\nhistory_size = 100\n[log]\nlevel = "warn"\n'
                % KEY)
    proc = subprocess.Popen([binary, "serve", "--config", config, "--host", "127.0.0.1",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = proc.stdout.readline().decode()
    m = re.search(r":(\d+)$", line.strip())
    if not m:
        proc.kill()
        raise SystemExit("no listening line: %r" % line)
    return proc, int(m.group(1))


def post(port, path, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body,
                     headers={"X-API-Key": KEY, "Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise SystemExit("%s answered %d: %r" % (path, resp.status, data))
        return data
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=100)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        proc, port = start(a.binary, d)
        try:
            t0 = time.perf_counter()
            for i in range(a.count):
                post(port, "/api/publish", json.dumps({"channel": "chat:single", "data": i}))
            single = a.count / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            for start_at in range(0, a.count, a.batch):
                cmds = [{"method": "publish", "params": {"channel": "chat:batch", "data": i}}
                        for i in range(start_at, min(a.count, start_at + a.batch))]
                answer = json.loads(post(port, "/api/batch", json.dumps({"commands": cmds})))
                if any("error" in r for r in answer["replies"]):
                    raise SystemExit("a batch command failed: %r" % answer)
            batched = a.count / (time.perf_counter() - t0)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print("publications: %d per mode, batch of %d" % (a.count, a.batch))
    print("one request each : %8.0f publications/s" % single)
    print("batch            : %8.0f publications/s" % batched)
    print("ratio batch/single: %.1fx" % (batched / single))


if __name__ == "__main__":
    sys.exit(main())
