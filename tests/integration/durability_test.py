#!/usr/bin/python3
"""`switchboard serve` killed and restarted (issue 14, findings 1, 2 and 6):

  * the issue's reproduction: a snapshot from a clean shutdown, publications after the
    restart, kill -9, restart: a client resubscribing with its `since` is told
    "epoch changed", never recovered:true with ten publications missing;
  * kill -9 under publish load with `journal_fsync = "always"`: after a restart every
    acknowledged publication is in the history exactly once, same epoch, offsets
    1..N without a gap, and the next publication continues at N+1;
  * a torn journal (cut mid-record): the server starts, logs the cut, keeps the rest;
  * state paths that can't be written: exit 2 with the key and the reason; a snapshot
    that can't be saved at shutdown: exit 1, not 0;
  * the global bounds: limits.max_channels (error 503 and its counter), and a 20 MB
    flood of 60 KB publications into new channels with a 4 MiB history_memory:
    switchboard_history_bytes stays under the limit, evictions are counted, RSS stays
    bounded and comes back down once the channels are gone (RSS checked outside ASan).

Every server runs on 127.0.0.1, port 0, with its state in a temporary directory.
Usage: /usr/bin/python3 durability_test.py <path to switchboard>
"""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

# Set by tests/integration/CMakeLists.txt for the asan preset: RSS figures are
# the sanitizer's there, so the RSS bounds are checked in release builds only.
ASAN = os.environ.get("SWITCHBOARD_IT_ASAN") == "1"
from serve_test import (API_KEY, SECRET, ServeServer, Session, api_publish,  # noqa: E402
                        base_config, connect_ws, metric_samples, run, slow, toml_text)


def config(state, **history):
    sections = base_config(auth={"jwt_secret": SECRET, "allow_anonymous": True},
                           api={"key": API_KEY},
                           history=dict({"snapshot_file": os.path.join(state, "state.json")},
                                        **history))
    sections["namespaces.chat"].update({"history_size": 100000, "history_ttl": 0})
    return sections


async def history_of(port, channel):
    async with connect_ws(port) as ws:
        r = await Session(ws).request("history", channel=channel, timeout=15)
    if "result" not in r:
        raise AssertionError("history failed: %r" % r)
    return r["result"]


async def subscribe_since(port, channel, since):
    async with connect_ws(port) as ws:
        return (await Session(ws).request("subscribe", channel=channel, since=since))["result"]


class StateDir(unittest.TestCase):
    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="switchboard-durability-")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.cleanup()
        shutil.rmtree(self.state, ignore_errors=True)

    def start(self, sections):
        s = ServeServer(sections)
        self.servers.append(s)
        return s


class Epochs(StateDir):
    def test_kill_9_after_a_clean_snapshot_never_recovers_with_wrong_data(self):
        sections = config(self.state)
        first = self.start(sections)
        answers = [api_publish(first.port, {"channel": "chat:r", "data": i})[1] for i in range(1, 6)]
        first.stop_checked(self)  # clean: the snapshot holds 1..5
        epoch = answers[0]["epoch"]

        second = self.start(sections)
        seen = [api_publish(second.port, {"channel": "chat:r", "data": i})[1] for i in range(6, 16)]
        self.assertEqual({a["epoch"] for a in seen}, {epoch}, "a clean restart keeps the epoch")
        self.assertEqual(seen[-1]["offset"], 15)
        second.kill()  # kill -9: offsets 6..15 were seen by clients and are now lost

        third = self.start(sections)
        r = run(subscribe_since(third.port, "chat:r", {"epoch": epoch, "offset": 15}))
        self.assertIs(r["recovered"], False, r)
        self.assertEqual(r["reason"], "epoch changed")
        self.assertNotEqual(r["epoch"], epoch)
        self.assertIn("did not shut down cleanly", third.stderr_text())
        # Publications after the restart can't be mistaken for the lost ones.
        after = api_publish(third.port, {"channel": "chat:r", "data": "new"})[1]
        self.assertEqual(after["epoch"], r["epoch"])
        third.stop_checked(self)


class Journal(StateDir):
    PUBLISHERS = 4

    def publish_until_killed(self, server, target, seconds):
        """PUBLISHERS threads publish as fast as acknowledgements come; the server is
        killed with SIGKILL after `target` acknowledgements (or `seconds`). Returns {channel: {offset: (epoch, data)}}
        of the acknowledged publications."""
        acked = {}
        lock = threading.Lock()
        stop = threading.Event()

        def publisher(n):
            channel = "chat:load%d" % (n % 2)
            i = 0
            while not stop.is_set():
                i += 1
                data = {"p": n, "i": i}
                try:
                    status, answer = api_publish(server.port, {"channel": channel, "data": data},
                                                 timeout=2)
                except OSError:
                    return  # the server is gone
                if status != 200:
                    continue
                with lock:
                    slot = acked.setdefault(channel, {})
                    assert answer["offset"] not in slot, "offset given twice"
                    slot[answer["offset"]] = (answer["epoch"], data)

        threads = [threading.Thread(target=publisher, args=(n,)) for n in range(self.PUBLISHERS)]
        for t in threads:
            t.start()
        # Kill in the middle of the load: after `target` acknowledgements, or when
        # the time is up on a machine busy enough that fsyncs crawl.
        deadline = time.monotonic() + slow(seconds)
        while time.monotonic() < deadline:
            with lock:
                if sum(len(v) for v in acked.values()) >= target:
                    break
            time.sleep(0.01)
        server.proc.send_signal(signal.SIGKILL)
        stop.set()
        for t in threads:
            t.join(timeout=slow(10))
        server.kill()
        return acked

    def test_kill_9_under_load_loses_no_acknowledged_publication(self):
        sections = config(self.state, journal=os.path.join(self.state, "state.journal"),
                          journal_fsync="always")
        first = self.start(sections)
        acked = self.publish_until_killed(first, 300, 8)
        total = sum(len(v) for v in acked.values())
        self.assertGreater(total, 20, "the load produced too little to judge")

        second = self.start(sections)
        for channel, published in acked.items():
            h = run(history_of(second.port, channel))
            epochs = {e for e, _ in published.values()}
            self.assertEqual(epochs, {h["epoch"]}, "the journal proves the state: same epoch")
            offsets = [p["offset"] for p in h["publications"]]
            # Offsets 1..N with no gap or repeat; N may exceed the last acknowledgement
            # (written, then killed before the reply went out).
            self.assertEqual(offsets, list(range(1, len(offsets) + 1)))
            by_offset = {p["offset"]: p["data"] for p in h["publications"]}
            for offset, (_, data) in published.items():
                self.assertEqual(by_offset.get(offset), data, "offset %d" % offset)
            datas = [json.dumps(p["data"], sort_keys=True) for p in h["publications"]]
            self.assertEqual(len(datas), len(set(datas)), "each publication once")
            nxt = api_publish(second.port, {"channel": channel, "data": "next"})[1]
            self.assertEqual(nxt, {"epoch": h["epoch"], "offset": h["offset"] + 1})
        second.stop_checked(self)
        mode = os.stat(os.path.join(self.state, "state.journal")).st_mode & 0o777
        self.assertEqual(mode, 0o600)
        self.assertEqual(os.stat(os.path.join(self.state, "state.json")).st_mode & 0o777, 0o600)

    def test_a_torn_journal_is_cut_back_and_logged(self):
        journal = os.path.join(self.state, "state.journal")
        sections = config(self.state, journal=journal, journal_fsync="everysec")
        first = self.start(sections)
        for i in range(1, 6):
            api_publish(first.port, {"channel": "chat:t", "data": i})
        first.kill()
        os.truncate(journal, os.path.getsize(journal) - 5)  # the last record, cut short

        second = self.start(sections)
        h = run(history_of(second.port, "chat:t"))
        self.assertEqual([p["data"] for p in h["publications"]], [1, 2, 3, 4])
        self.assertIn("incomplete", second.stderr_text())
        second.stop_checked(self)


class Paths(unittest.TestCase):
    def serve_with(self, history):
        state = tempfile.mkdtemp(prefix="switchboard-durability-")
        try:
            path = os.path.join(state, "serve.toml")
            sections = base_config(history=history)
            with open(path, "w") as f:
                f.write(toml_text(sections))
            return subprocess.run([harness.BINARY_PATH, "serve", "--port", "0", "--config", path],
                                  capture_output=True, timeout=slow(10))
        finally:
            shutil.rmtree(state, ignore_errors=True)

    def test_an_unwritable_snapshot_path_exits_2_at_start(self):
        r = self.serve_with({"snapshot_file": "/proc/version/state.json"})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stdout, b"")
        self.assertIn(b"history.snapshot_file \"/proc/version/state.json\"", r.stderr)

    def test_an_unwritable_journal_path_exits_2_at_start(self):
        with tempfile.TemporaryDirectory() as d:
            r = self.serve_with({"snapshot_file": os.path.join(d, "s.json"),
                                 "journal": os.path.join(d, "missing-dir", "j")})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"history.journal", r.stderr)
        self.assertIn(b"No such file or directory", r.stderr)

    def test_a_directory_where_the_snapshot_goes_exits_2(self):
        with tempfile.TemporaryDirectory() as d:
            r = self.serve_with({"snapshot_file": d})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"not a regular file", r.stderr)


class SaveAtShutdown(StateDir):
    def test_a_snapshot_that_cannot_be_saved_at_shutdown_exits_1(self):
        sub = os.path.join(self.state, "sub")
        os.mkdir(sub)
        sections = config(self.state)
        sections["history"]["snapshot_file"] = os.path.join(sub, "state.json")
        server = self.start(sections)
        api_publish(server.port, {"channel": "chat:s", "data": 1})
        shutil.rmtree(sub)  # the directory is gone: PATH.tmp can't be created
        code, _ = server.stop(timeout=10)
        self.assertEqual(code, 1, server.stderr_text())
        self.assertIn("snapshot not saved at shutdown", server.stderr_text())


class Bounds(StateDir):
    def test_max_channels_refuses_new_channels_with_503(self):
        sections = config(self.state)
        sections["limits"] = {"max_channels": 3}
        server = self.start(sections)
        for i in range(3):
            self.assertEqual(api_publish(server.port, {"channel": "chat:c%d" % i, "data": i})[0], 200)
        status, answer = api_publish(server.port, {"channel": "chat:c9", "data": 9})
        self.assertEqual(status, 503, answer)
        self.assertIn("limits.max_channels", answer["error"]["message"])

        async def go():
            async with connect_ws(server.port) as ws:
                return await Session(ws).request("subscribe", channel="chat:c10")
        r = run(go())
        self.assertEqual(r["error"]["code"], 503, r)
        samples = metric_samples(server.port)
        self.assertGreaterEqual(samples["switchboard_channels_refused_total"], 2)
        self.assertEqual(samples["switchboard_channels"], 3)
        server.stop_checked(self)

    def test_a_history_flood_stays_under_history_memory_and_rss_comes_back(self):
        limit = 4 << 20
        sections = config(self.state)
        sections["limits"] = {"history_memory": limit, "max_message_size": 65536,
                              "max_publication_size": 65536}
        sections["namespaces.chat"].update({"history_size": 100, "history_ttl": 3})
        server = self.start(sections)
        time.sleep(0.3)
        baseline = server.rss_kib()
        blob = "x" * 60000
        peak = 0

        async def flood():
            nonlocal peak
            async def one(n):
                async with connect_ws(server.port) as ws:
                    s = Session(ws)
                    for i in range(28):  # 12 x 28 x 60 KB = 20 MB into 336 new channels
                        r = await s.request("publish", channel="chat:f%d_%d" % (n, i),
                                            data=blob, timeout=10)
                        assert "result" in r, r
            await asyncio.gather(*(one(n) for n in range(12)))
            peak = max(peak, server.rss_kib())
        run(flood(), timeout=60)
        samples = metric_samples(server.port)
        self.assertLessEqual(samples["switchboard_history_bytes"], limit)
        self.assertGreater(samples["switchboard_history_bytes"], limit / 2)
        self.assertGreater(samples["switchboard_history_evictions_total"], 200)
        # Kept history is bounded by the limit; what the process holds on top of its
        # baseline stays within a few times that (buffers, allocator slack). Not
        # under ASan: its allocator keeps freed memory in quarantine on purpose.
        if not ASAN:
            self.assertLess(peak - baseline, 8 * limit // 1024, "peak %d KiB, baseline %d KiB"
                            % (peak, baseline))
        # After the TTL, the channels are forgotten; malloc_trim hands the pages back.
        deadline = time.monotonic() + slow(10)
        while time.monotonic() < deadline:
            samples = metric_samples(server.port)
            if samples["switchboard_channels"] == 0 and (
                    ASAN or server.rss_kib() < 2 * baseline + 2048):
                break
            time.sleep(0.5)
        self.assertEqual(samples["switchboard_history_bytes"], 0)
        self.assertEqual(samples["switchboard_channels"], 0)
        if not ASAN:
            self.assertLess(server.rss_kib(), 2 * baseline + 2048,
                            "RSS back within 2x baseline (baseline %d KiB, peak %d KiB)"
                            % (baseline, peak))
        server.stop_checked(self)


if __name__ == "__main__":
    harness.main()
