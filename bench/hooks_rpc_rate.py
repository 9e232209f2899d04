#!/usr/bin/python3
"""Proxy-hook round trips per second: `rpc` commands answered by a backend
(the http.server of tests/integration/hooks_test.py, in this process)
through `switchboard serve --threads 1`, from 1 and from 16 WebSocket
clients (python3-websockets, each sending its next rpc after the previous
reply). Also prints how many backend connections the keep-alive pool used.
The Python client and backend bound the figure: it shows the hook path's
shape (one kept-alive connection per concurrent call), not the server's
ceiling.

Usage: /usr/bin/python3 bench/hooks_rpc_rate.py build/release/apps/switchboard/switchboard
"""
import asyncio
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness  # noqa: E402
from hooks_test import Backend, hooks_config  # noqa: E402
from serve_test import ServeServer, Session, connect_ws, run, token  # noqa: E402

CALLS = 200


def main():
    harness.BINARY_PATH = os.path.abspath(sys.argv[1])
    backend = Backend()
    server = ServeServer(hooks_config(backend, server={"threads": 1}))

    errors = []

    async def client():
        ws = await connect_ws(server.port, token_value=token("bench"))
        s = Session(ws)
        for i in range(CALLS):
            r = await s.request("rpc", method="echo", data=i)
            if "result" not in r:
                errors.append(r["error"])
        await ws.close()

    async def clients(n):
        t0 = time.monotonic()
        await asyncio.gather(*(client() for _ in range(n)))
        return time.monotonic() - t0

    try:
        for n in (1, 16):
            before = len(backend.calls)
            elapsed = run(clients(n), timeout=300)
            ports = {c["port"] for c in backend.calls[before:]}
            print("%2d clients x %d rpc: %.0f calls/s, %d backend connections, %d errors %s"
                  % (n, CALLS, n * CALLS / elapsed, len(ports), len(errors), errors[:1]))
            del errors[:]
        print("\n".join(l for l in server.stderr_text().splitlines() if "hook" in l)[:2000])
    finally:
        server.stop()
        server.cleanup()
        backend.close()


if __name__ == "__main__":
    main()
