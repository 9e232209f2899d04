#!/usr/bin/python3
"""permessage-deflate (RFC 7692) against `switchboard echo --deflate`, in raw
bytes: every negotiation parameter, context takeover, fragmented compressed
messages, RSV1 misuse, decompression bombs and corrupt data. Compressed frames
are written with Python's zlib (raw deflate, the 00 00 FF FF tail stripped).

Usage: /usr/bin/python3 deflate_conformance_test.py <path to switchboard>
"""

import os
import subprocess
import sys
import unittest
import zlib

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BINARY, CLOSE, CONT, PING, TEXT, EchoServer, RawClient, build_frame  # noqa: E402

TAIL = b"\x00\x00\xff\xff"


class Deflater:
    """A client-side compressor: raw deflate, sync-flushed, tail stripped (§7.2.1)."""

    def __init__(self, wbits=15, takeover=True):
        self.wbits, self.takeover = wbits, takeover
        self.z = zlib.compressobj(6, zlib.DEFLATED, -wbits)

    def compress(self, data):
        if not self.takeover:
            self.z = zlib.compressobj(6, zlib.DEFLATED, -self.wbits)
        out = self.z.compress(data) + self.z.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(TAIL)
        return out[:-4]


class Inflater:
    """wbits below 15 checks that the server kept to that window: zlib fails
    on a distance further back than it."""

    def __init__(self, takeover=True, wbits=15):
        self.takeover, self.wbits = takeover, wbits
        self.z = zlib.decompressobj(-wbits)

    def inflate(self, data):
        if not self.takeover:
            self.z = zlib.decompressobj(-self.wbits)
        return self.z.decompress(data + TAIL)


def words(n, seed=1):
    vocab = [b"switch ", b"board ", b"deflate ", b"frame ", b"window ", b"topic "]
    out, x = bytearray(), seed
    while len(out) < n:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out += vocab[(x >> 16) % len(vocab)]
    return bytes(out[:n])


def answer(client, offer):
    resp = client.handshake(headers={"Sec-WebSocket-Extensions": offer})
    return resp.get("sec-websocket-extensions")


def params(ext):
    return [p.strip() for p in ext.split(";")]


def message(client):
    """(opcode, payload, rsv1 of the first frame)."""
    op, payload, _, frames = client.recv_message()
    return op, payload, bool(frames[0].rsv & 4)


class SharedNegotiation(unittest.TestCase):
    """--deflate shared: no context takeover both ways, always."""

    @classmethod
    def setUpClass(cls):
        cls.server = EchoServer("--deflate", "shared")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def ext(self, offer):
        with RawClient(self.server.port) as c:
            return answer(c, offer)

    def test_plain_offer_gets_both_no_context_takeover(self):
        # client_no_context_takeover although not offered (RFC 7692 §7.1.1.2).
        self.assertEqual(params(self.ext("permessage-deflate")),
                         ["permessage-deflate", "server_no_context_takeover",
                          "client_no_context_takeover"])

    def test_no_context_takeover_offers_echoed(self):
        for offer in ("permessage-deflate; server_no_context_takeover",
                      "permessage-deflate; client_no_context_takeover",
                      "permessage-deflate; server_no_context_takeover; client_no_context_takeover"):
            p = params(self.ext(offer))
            self.assertIn("server_no_context_takeover", p, offer)
            self.assertIn("client_no_context_takeover", p, offer)

    def test_server_max_window_bits_9_to_15(self):
        for bits in range(9, 16):
            p = params(self.ext("permessage-deflate; server_max_window_bits=%d" % bits))
            self.assertIn("server_max_window_bits=%d" % bits, p)

    def test_server_max_window_bits_8_is_declined(self):
        # zlib cannot deflate with 8 and the answer may not exceed it (§7.1.2.1).
        self.assertIsNone(self.ext("permessage-deflate; server_max_window_bits=8"))

    def test_server_uses_the_window_it_was_given(self):
        with RawClient(self.server.port) as c:
            answer(c, "permessage-deflate; server_max_window_bits=9")
            data = words(100000, 5)
            c.send_frame(BINARY, Deflater(15, False).compress(data), rsv=4)
            op, payload, rsv1 = message(c)
            self.assertTrue(rsv1)
            z = zlib.decompressobj(-9)  # a 9-bit inflater fails on larger distances
            self.assertEqual(z.decompress(payload + TAIL), data)

    def test_client_max_window_bits_with_and_without_value(self):
        for offer in ("permessage-deflate; client_max_window_bits",
                      "permessage-deflate; client_max_window_bits=10",
                      "permessage-deflate; client_max_window_bits=8"):
            ext = self.ext(offer)
            self.assertIsNotNone(ext, offer)
            self.assertTrue(ext.startswith("permessage-deflate"), offer)

    def test_unknown_duplicate_and_bad_values_declined(self):
        for offer in ("permessage-deflate; foo",
                      "permessage-deflate; foo=1",
                      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                      "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
                      "permessage-deflate; server_max_window_bits",
                      "permessage-deflate; server_max_window_bits=16",
                      "permessage-deflate; server_max_window_bits=010",
                      "permessage-deflate; server_no_context_takeover=1",
                      "permessage-deflate; client_max_window_bits=7"):
            self.assertIsNone(self.ext(offer), offer)

    def test_first_acceptable_of_several_offers(self):
        ext = self.ext("permessage-deflate; foo, permessage-deflate; server_max_window_bits=11, "
                       "permessage-deflate")
        self.assertIn("server_max_window_bits=11", params(ext))
        ext = self.ext("x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=8, "
                       "permessage-deflate; server_max_window_bits=12")
        self.assertIn("server_max_window_bits=12", params(ext))

    def test_no_offer_no_extension(self):
        with RawClient(self.server.port) as c:
            resp = c.handshake()
            self.assertIsNone(resp.get("sec-websocket-extensions"))


class DedicatedNegotiation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = EchoServer("--deflate", "dedicated", "--deflate-window-bits", "12")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_windows_answered(self):
        with RawClient(self.server.port) as c:
            p = params(answer(c, "permessage-deflate; client_max_window_bits"))
        self.assertIn("server_max_window_bits=12", p)
        self.assertIn("client_max_window_bits=12", p)
        self.assertNotIn("server_no_context_takeover", p)
        self.assertNotIn("client_no_context_takeover", p)

    def test_client_max_window_bits_not_sent_unless_offered(self):
        with RawClient(self.server.port) as c:
            p = params(answer(c, "permessage-deflate"))
        self.assertFalse(any(x.startswith("client_max_window_bits") for x in p), p)

    def test_requested_no_context_takeover_is_honoured(self):
        with RawClient(self.server.port) as c:
            p = params(answer(c, "permessage-deflate; server_no_context_takeover"))
            self.assertIn("server_no_context_takeover", p)
            msg = words(3000, 2)
            d = Deflater(12)
            sizes = []
            for _ in range(5):
                c.send_frame(TEXT, d.compress(msg), rsv=4)
                op, payload, rsv1 = message(c)
                sizes.append(len(payload))
                self.assertEqual(Inflater(False).inflate(payload), msg)
            self.assertEqual(len(set(sizes)), 1, sizes)  # each from scratch


class DedicatedDefaults(unittest.TestCase):
    """--deflate dedicated with no window flags: window 11 both ways, memLevel
    4 (at most ~61 KiB of zlib state per connection)."""

    @classmethod
    def setUpClass(cls):
        cls.server = EchoServer("--deflate", "dedicated")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def ext(self, offer):
        with RawClient(self.server.port) as c:
            return answer(c, offer)

    def test_exact_answers(self):
        cases = {
            # Not offered: the client keeps 15 (RFC 7692 §7.1.2.2); ours is named.
            "permessage-deflate": "permessage-deflate; server_max_window_bits=11",
            "permessage-deflate; client_max_window_bits":
                "permessage-deflate; server_max_window_bits=11; client_max_window_bits=11",
            "permessage-deflate; client_max_window_bits=10":
                "permessage-deflate; server_max_window_bits=11; client_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15":
                "permessage-deflate; server_max_window_bits=11; client_max_window_bits=11",
            "permessage-deflate; server_max_window_bits=9":
                "permessage-deflate; server_max_window_bits=9",
            "permessage-deflate; client_no_context_takeover":
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=11",
        }
        for offer, want in cases.items():
            self.assertEqual(self.ext(offer), want, offer)

    def test_help_lists_the_defaults(self):
        out = subprocess.run([harness.BINARY_PATH, "echo", "--help"], capture_output=True,
                             timeout=10 * harness.SLOW).stdout.decode()
        self.assertRegex(out, r"--deflate-window-bits [^\n]*=11\n")
        self.assertRegex(out, r"--deflate-mem-level [^\n]*=4\n")

    def test_windows_kept_both_ways(self):
        # Each direction within 11 bits over messages far larger than the
        # window, with context takeover: a 15-bit deflater on our side would
        # fail the server's 11-bit inflater (1007), and the server's output
        # must inflate with an 11-bit window.
        with RawClient(self.server.port) as c:
            answer(c, "permessage-deflate; client_max_window_bits")
            d, i = Deflater(11), Inflater(wbits=11)
            for n in range(30):
                msg = words(100000, n % 3) if n % 10 == 9 else \
                    b'{"seq":%d,"text":"%s"}' % (n, words(1000, n % 4))
                c.send_frame(TEXT, d.compress(msg), rsv=4)
                op, payload, rsv1 = message(c)
                self.assertTrue(rsv1, n)
                self.assertEqual(i.inflate(payload), msg, n)

    def test_client_without_window_offer_may_use_15(self):
        with RawClient(self.server.port) as c:
            answer(c, "permessage-deflate")
            d, i = Deflater(15), Inflater(wbits=11)
            for n in range(5):
                msg = words(100000, n)
                c.send_frame(BINARY, d.compress(msg), rsv=4)
                op, payload, rsv1 = message(c)
                self.assertEqual(i.inflate(payload), msg, n)


class Data(unittest.TestCase):
    """Messages through both modes."""

    MODES = (("shared", False), ("dedicated", True))

    @classmethod
    def setUpClass(cls):
        cls.servers = {m: EchoServer("--deflate", m) for m, _ in cls.MODES}

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers.values():
            s.stop()

    def open(self, mode):
        c = RawClient(self.servers[mode].port)
        answer(c, "permessage-deflate")
        return c

    def test_context_takeover_across_many_messages(self):
        for mode, takeover in self.MODES:
            with self.open(mode) as c:
                d, i = Deflater(15, takeover), Inflater(takeover)
                sizes = []
                for n in range(100):
                    msg = b'{"seq":%d,"body":"%s"}' % (n, words(500, 3))
                    c.send_frame(TEXT, d.compress(msg), rsv=4)
                    op, payload, rsv1 = message(c)
                    self.assertTrue(rsv1)
                    self.assertEqual(i.inflate(payload), msg, (mode, n))
                    sizes.append(len(payload))
                if takeover:
                    self.assertLess(sizes[-1] * 4, sizes[0], (mode, sizes[:3], sizes[-3:]))
                else:
                    self.assertGreater(sizes[-1] * 2, sizes[0], (mode, sizes[:3], sizes[-3:]))

    def test_fragmented_compressed_messages(self):
        for mode, takeover in self.MODES:
            with self.open(mode) as c:
                d, i = Deflater(15, takeover), Inflater(takeover)
                for round_ in range(3):
                    msg = words(40000, round_)
                    body = d.compress(msg)
                    cut = [0, 1, len(body) // 2, len(body)]
                    for k in range(3):
                        c.send(build_frame(TEXT if k == 0 else CONT, body[cut[k]:cut[k + 1]],
                                           fin=k == 2, rsv=4 if k == 0 else 0))
                        if k == 1:
                            c.send_frame(PING, b"between")
                    op, payload, rsv1 = message(c)
                    self.assertEqual(op, TEXT)
                    self.assertEqual(i.inflate(payload), msg, mode)

    def test_sizes_and_threshold(self):
        for mode, takeover in self.MODES:
            with self.open(mode) as c:
                d, i = Deflater(15, takeover), Inflater(takeover)
                for size in (0, 1, 127, 128, 5000, 1 << 20):
                    msg = words(size, size)
                    c.send_frame(BINARY, d.compress(msg), rsv=4)
                    op, payload, rsv1 = message(c)
                    self.assertEqual(rsv1, size >= 128, (mode, size))
                    self.assertEqual(i.inflate(payload) if rsv1 else payload, msg, (mode, size))

    def test_uncompressed_messages_still_accepted(self):
        with self.open("dedicated") as c:
            c.send_frame(TEXT, b"plain text, no RSV1")
            op, payload, rsv1 = message(c)
            self.assertEqual(payload, b"plain text, no RSV1")


class Failures(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.shared = EchoServer("--deflate", "shared", "--max-message-size", str(1 << 20))
        cls.plain = EchoServer()

    @classmethod
    def tearDownClass(cls):
        cls.shared.stop()
        cls.plain.stop()

    def fails(self, code, frames, server=None, offer="permessage-deflate"):
        with RawClient((server or self.shared).port) as c:
            if offer:
                answer(c, offer)
            else:
                c.handshake()
            for f in frames:
                c.send(f)
            c.close_handshake_after_failure(code)

    def test_rsv1_on_continuation(self):
        body = Deflater().compress(words(1000))
        self.fails(1002, [build_frame(TEXT, body[:5], fin=False, rsv=4),
                          build_frame(CONT, body[5:], rsv=4)])

    def test_rsv1_on_control_frame(self):
        self.fails(1002, [build_frame(PING, b"x", rsv=4)])
        self.fails(1002, [build_frame(CLOSE, b"\x03\xe8", rsv=4)])

    def test_rsv1_not_negotiated(self):
        self.fails(1002, [build_frame(TEXT, Deflater().compress(b"hello"), rsv=4)],
                   server=self.plain)
        self.fails(1002, [build_frame(TEXT, Deflater().compress(b"hello"), rsv=4)], offer=None)

    def test_rsv2_rsv3_still_rejected(self):
        self.fails(1002, [build_frame(TEXT, b"x", rsv=2)])
        self.fails(1002, [build_frame(TEXT, b"x", rsv=1)])

    def test_bomb(self):
        # 64 MiB of zeros: ~64 KiB on the wire, 64x the limit inflated.
        body = Deflater().compress(bytes(64 << 20))
        self.assertLess(len(body), 1 << 20)
        before = self.shared.rss_kib()
        self.fails(1009, [build_frame(BINARY, body, rsv=4)])
        # Fragmented bomb: each piece small, the sum inflates past the limit.
        parts = [body[k:k + 8192] for k in range(0, len(body), 8192)]
        frames = [build_frame(BINARY if k == 0 else CONT, p, fin=k == len(parts) - 1,
                              rsv=4 if k == 0 else 0) for k, p in enumerate(parts)]
        self.fails(1009, frames)
        # No big allocation: the inflater stops at the limit (+ a little).
        self.assertLess(self.shared.rss_kib() - before, 16 * 1024)

    def test_corrupt_data(self):
        self.fails(1007, [build_frame(BINARY, b"\x07\x00\x00\x00", rsv=4)])  # reserved block type
        self.fails(1007, [build_frame(TEXT, b"\xff" * 40, rsv=4)])

    def test_invalid_utf8_after_inflate(self):
        self.fails(1007, [build_frame(TEXT, Deflater().compress(words(300) + b"\xc3\x28"), rsv=4)])

    def test_server_still_serves_after_failures(self):
        with RawClient(self.shared.port) as c:
            answer(c, "permessage-deflate")
            c.send_frame(TEXT, Deflater().compress(words(2000)), rsv=4)
            op, payload, rsv1 = message(c)
            self.assertEqual(Inflater().inflate(payload), words(2000))


if __name__ == "__main__":
    harness.main()
