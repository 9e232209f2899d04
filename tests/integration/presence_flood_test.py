"""The presence flood of issue 14, at 1,000 clients: `switchboard serve` with
every limit at its default, 1,000 anonymous clients that subscribe to one
presence channel and never read, and one observer that reads.

Checked: the server's RSS stays bounded while they hold on (before the fix,
every join was pushed to every member: N x N messages queued for readers
that never read, 3.2 GB at 10,000 clients); presence pushes are coalesced
(a handful per tick, not one per join) and the channel switches to counts
only past presence_max_members (1,000 by default); RSS goes back down after
the clients close. bench/presence_flood.py runs the same flood (flood()) at
10,000 clients; docs/benchmarks.md has its numbers.

    /usr/bin/python3 tests/integration/presence_flood_test.py BUILD/apps/switchboard/switchboard
"""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "bench"))

import harness  # noqa: E402
import presence_flood  # noqa: E402


class PresenceFlood(unittest.TestCase):

    def test_1000_silent_members_stay_bounded_and_are_pushed_in_batches(self):
        clients = 1000
        r = presence_flood.flood(harness.BINARY_PATH, clients, hold=3.0 * harness.SLOW,
                                 settle=8.0, log=lambda *a: None)
        msg = repr(r)
        self.assertTrue(r["server_alive"], msg)
        # Bounded: the clients' own state and a few batched pushes, far from
        # the N x N of one push per join (1,000 x 1,000 x ~60 bytes = 60 MB
        # queued before the fix, at this size; 3.2 GB at 10,000).
        self.assertLess(r["rss_peak_kib"] - r["rss_start_kib"], 48 * 1024, msg)
        # Coalesced: the observer heard every join it was told of in a few
        # pushes (one per 200 ms tick at most while the joins lasted, plus the
        # counts-only ones), not one push per join.
        ticks = r["flood_seconds"] / 0.2 + 2
        self.assertGreater(r["observer_presence_pushes"], 0, msg)
        self.assertLessEqual(r["observer_presence_pushes"], ticks, msg)
        self.assertLess(r["observer_presence_pushes"], clients / 10, msg)
        # 1,001 members (the observer too) is over presence_max_members: the
        # last pushes are counts only, with the count.
        self.assertGreaterEqual(r["observer_counts_only_pushes"], 1, msg)
        self.assertEqual(r["observer_last_count"], clients + 1, msg)
        self.assertLessEqual(r["observer_joins_listed"], 1000, msg)
        # The server sent far fewer messages than one per join per member.
        self.assertLess(r["messages_sent"], clients * clients / 20, msg)
        # After they close (and the housekeeping trim), memory goes back down:
        # within twice the start plus a little of what pools keep.
        self.assertLess(r["rss_after_kib"], 2 * r["rss_start_kib"] + 8 * 1024, msg)


if __name__ == "__main__":
    harness.main()
