#!/usr/bin/env python3
"""System calls a connect storm costs the server, per backend (strace -c).

Starts `switchboard echo --threads 1 --io-backend B` on 127.0.0.1 (a port
chosen at run time), attaches `strace -c -f` to it, opens N plain TCP
connections to it (N at once in the kernel's view: the client connects them
back to back without waiting), waits until the server has accepted them all,
stops strace (then closes them) and prints the calls it counted: what
accepting and registering the connections cost. The figures are counts, not
times: they do not depend on the machine's load.

  bench/accept_storm.py build/release/apps/switchboard/switchboard \\
      --connections 10000 --backends epoll io_uring
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, limit=10.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def server_connections(pid):
    """Sockets the server holds (its descriptors that are sockets)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


def storm(binary, backend, connections):
    port = free_port()
    server = subprocess.Popen(
        [binary, "echo", "--threads", "1", "--host", "127.0.0.1", "--port", str(port),
         "--io-backend", backend, "--max-connections", str(connections + 100)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_listening(port):
            sys.exit(f"{backend}: the server did not listen")
        time.sleep(0.2)  # the probe connection is gone
        base = server_connections(server.pid)
        trace = subprocess.Popen(
            ["strace", "-c", "-f", "-p", str(server.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)  # strace attached
        clients = []
        for _ in range(connections):
            clients.append(socket.create_connection(("127.0.0.1", port)))
        deadline = time.monotonic() + 60
        while server_connections(server.pid) < base + connections:
            if time.monotonic() > deadline:
                sys.exit(f"{backend}: the server accepted "
                         f"{server_connections(server.pid) - base} of {connections}")
            time.sleep(0.05)
        time.sleep(0.2)  # what follows the last accept (registration) is counted too
        trace.send_signal(signal.SIGINT)
        _, report = trace.communicate(timeout=30)
        for c in clients:
            c.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    calls = {}
    for line in report.splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)$", line)
        if m and m.group(3) != "total":
            calls[m.group(3)] = int(m.group(1))
    return calls


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--backends", nargs="+", default=["epoll", "io_uring"])
    args = parser.parse_args()
    results = {b: storm(args.binary, b, args.connections) for b in args.backends}
    names = sorted({n for calls in results.values() for n in calls},
                   key=lambda n: -max(results[b].get(n, 0) for b in args.backends))
    print(f"| system call ({args.connections:,} connections) | "
          + " | ".join(args.backends) + " |")
    print("|---|" + "---:|" * len(args.backends))
    for n in names:
        print(f"| `{n}` | " + " | ".join(f"{results[b].get(n, 0):,}" for b in args.backends)
              + " |")
    print("| total | " + " | ".join(f"{sum(results[b].values()):,}" for b in args.backends)
          + " |")


if __name__ == "__main__":
    main()
