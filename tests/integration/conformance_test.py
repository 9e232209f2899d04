#!/usr/bin/python3
"""RFC 6455 conformance of `switchboard echo`, as raw bytes on a TCP socket.

Usage: /usr/bin/python3 conformance_test.py <path to switchboard>

Every case writes the client's bytes by hand (harness.build_frame) and checks the
server's bytes: HTTP statuses of the opening handshake (section 4), framing and
masking (5.2, 5.3), fragmentation and control frames (5.4, 5.5), UTF-8 (8.1), size
limits, and the closing handshake and close codes (5.5.1, 7.1, 7.4).
"""

import os
import struct
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# SWITCHBOARD_CONFORMANCE_TLS=1 runs every case over wss:// instead: the server
# gets a test certificate (made with the openssl command) and each raw client
# wraps its socket in TLS before speaking WebSocket by hand.
OVER_TLS = os.environ.get("SWITCHBOARD_CONFORMANCE_TLS") == "1"
if OVER_TLS:
    import atexit  # noqa: E402
    import shutil  # noqa: E402
    import tempfile  # noqa: E402

    import tls_harness  # noqa: E402
    _CERT_DIR = tempfile.mkdtemp(prefix="switchboard-conformance-tls-")
    atexit.register(shutil.rmtree, _CERT_DIR, True)
    CERTS = tls_harness.make_certs(_CERT_DIR)
    CLIENT_TLS = tls_harness.client_context(ca=CERTS.ca)
from harness import (CLOSE, CONT, PING, PONG, TEXT, EchoServer,  # noqa: E402
                     PeerClosed, RawClient, build_frame, close_payload)


class ServerCase(unittest.TestCase):
    """One server per test class; subclasses set ARGS."""

    ARGS = ()

    @classmethod
    def setUpClass(cls):
        if OVER_TLS:
            cls.server = tls_harness.TlsEchoServer(CERTS.server, *cls.ARGS)
        else:
            cls.server = EchoServer(*cls.ARGS)

    @classmethod
    def tearDownClass(cls):
        server = cls.server
        code, _ = server.stop(timeout=10)
        if code != 0:
            raise AssertionError("server exit status %r after SIGTERM\n--- stderr ---\n%s"
                                 % (code, server.stderr_text()))

    def setUp(self):
        if not self.server.alive():
            self.fail("server is not running (exit %r)\n%s"
                      % (self.server.proc.returncode, self.server.stderr_text()))

    def client(self, **kw):
        if OVER_TLS:
            c = tls_harness.TlsRawClient(self.server.port, CLIENT_TLS, **kw)
        else:
            c = RawClient(self.server.port, **kw)
        self.addCleanup(c.close)
        return c

    def ws(self):
        c = self.client()
        c.handshake()
        return c

    def assertEcho(self, c, opcode, payload, timeout=10.0):
        op, got, controls, frames = c.recv_message(timeout)
        self.assertEqual(op, opcode, "echo came back with another opcode")
        self.assertEqual(len(got), len(payload), "echo has another length")
        self.assertTrue(got == payload, "echo payload differs")
        self.assertEqual(controls, [], "unexpected control frames before the echo")
        for f in frames:
            self.assertFalse(f.masked, "server frame is masked (RFC 6455 5.1)")
            self.assertEqual(f.rsv, 0, "server set RSV bits without an extension")
            self.assertTrue(f.minimal_length,
                            "server used a non-minimal length encoding (RFC 6455 5.2)")

    def assertFails(self, c, code, frames, timeout=5.0):
        """Send raw bytes, expect the server to fail the connection with `code`."""
        c.send(frames)
        c.close_handshake_after_failure(code, timeout)


# --- opening handshake (section 4) -----------------------------------------------


class Handshake(ServerCase):

    def test_valid_upgrade(self):
        c = self.client()
        key = "dGhlIHNhbXBsZSBub25jZQ=="  # the RFC's sample nonce
        resp = c.handshake(key=key)
        self.assertEqual(resp.status, 101)
        self.assertEqual(resp.get("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        self.assertEqual((resp.get("upgrade") or "").lower(), "websocket")
        self.assertIn("upgrade", [t.strip().lower() for t in (resp.get("connection") or "").split(",")])
        self.assertIsNone(resp.get("sec-websocket-protocol"),
                          "server selected a subprotocol nobody offered")
        self.assertIsNone(resp.get("sec-websocket-extensions"),
                          "server selected an extension nobody offered")
        # and the connection works
        c.send_frame(TEXT, b"hi")
        self.assertEcho(c, TEXT, b"hi")

    def test_accept_for_random_keys(self):
        for _ in range(5):
            c = self.client()
            c.handshake()  # checks Sec-WebSocket-Accept against the key
            c.close()

    def test_any_path_and_query(self):
        for path in ("/", "/chat", "/a/b/c?x=1&y=%20"):
            c = self.client()
            c.handshake(path=path)
            c.send_frame(TEXT, path)
            self.assertEcho(c, TEXT, path.encode())

    def test_header_token_lists_and_case(self):
        c = self.client()
        c.handshake(headers={"Upgrade": "WebSocket", "Connection": "keep-alive, Upgrade"})
        c = self.client()
        c.handshake(headers={"upgrade": None, "Upgrade": None, "UPGRADE": "websocket",
                             "Connection": None, "connection": "upgrade"})

    def test_subprotocol_offered_is_chosen_from_list_or_absent(self):
        c = self.client()
        resp = c.handshake(headers={"Sec-WebSocket-Protocol": "chat, superchat"})
        chosen = resp.get("sec-websocket-protocol")
        self.assertIn(chosen, (None, "chat", "superchat"))

    def test_pipelined_frame_in_handshake_packet(self):
        c = self.client()
        frames = build_frame(TEXT, b"early") + build_frame(PING, b"p")
        c.handshake(extra=frames)
        got = sorted((f.opcode, f.payload) for f in (c.recv_frame(), c.recv_frame()))
        self.assertEqual(got, [(TEXT, b"early"), (PONG, b"p")])

    def expect_status(self, status, request, check=None):
        c = self.client()
        c.send(request)
        resp = c.recv_http()
        self.assertEqual(resp.status, status, "request %r -> %r" % (request[:200], resp))
        if check:
            check(resp)
        return resp

    def test_missing_key_400(self):
        self.expect_status(400, harness.handshake_request(headers={"Sec-WebSocket-Key": None}))

    def test_key_not_16_bytes_400(self):
        import base64
        for key in (base64.b64encode(b"x" * 15).decode(), base64.b64encode(b"x" * 17).decode(),
                    "not base64 at all!!!!!!!", ""):
            self.expect_status(400, harness.handshake_request(key=key))

    def test_duplicate_key_400(self):
        req = harness.handshake_request().replace(
            b"\r\n\r\n", b"\r\nSec-WebSocket-Key: " + harness.make_key().encode() + b"\r\n\r\n")
        self.expect_status(400, req)

    def test_post_405(self):
        self.expect_status(405, harness.handshake_request(method="POST"))

    def version_426(self, resp):
        self.assertEqual(resp.get("sec-websocket-version"), "13",
                         "426 must carry Sec-WebSocket-Version: 13 (RFC 6455 4.4)")

    def test_missing_version_426(self):
        self.expect_status(426, harness.handshake_request(
            headers={"Sec-WebSocket-Version": None}), self.version_426)

    def test_wrong_version_426(self):
        for v in ("8", "12", "14", "abc"):
            self.expect_status(426, harness.handshake_request(
                headers={"Sec-WebSocket-Version": v}), self.version_426)

    def test_plain_get_426(self):
        self.expect_status(426, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")

    def test_missing_upgrade_or_connection_rejected(self):
        for headers in ({"Upgrade": None}, {"Connection": None},
                        {"Connection": "keep-alive"}, {"Upgrade": "h2c"}):
            c = self.client()
            c.send(harness.handshake_request(headers=headers))
            resp = c.recv_http()
            self.assertIn(resp.status, (400, 426), "%r -> %r" % (headers, resp))

    def test_http_1_0_rejected(self):
        c = self.client()
        c.send(harness.handshake_request(version="HTTP/1.0"))
        try:
            resp = c.recv_http()
        except PeerClosed:
            return  # dropping the connection without a 101 is acceptable
        self.assertTrue(400 <= resp.status < 600 and resp.status != 101, repr(resp))

    def test_malformed_request_line_400(self):
        self.expect_status(400, b"GARBAGE\r\n\r\n")

    def test_head_too_large_431(self):
        filler = "a" * 17000  # the default limit is 16 KiB
        self.expect_status(431, harness.handshake_request(headers={"X-Filler": filler}))

    def test_head_too_large_many_headers_431(self):
        headers = {"X-H%04d" % i: "v" * 30 for i in range(700)}
        self.expect_status(431, harness.handshake_request(headers=headers))

    def test_head_just_under_limit_ok(self):
        c = self.client()
        # ~15 KiB in all, in lines of 5000 bytes (the head limit is 16 KiB)
        c.handshake(headers={"X-Filler-%d" % i: "a" * 5000 for i in range(3)})
        c.send_frame(TEXT, b"ok")
        self.assertEcho(c, TEXT, b"ok")

    def test_single_listening_line(self):
        time.sleep(0.2)
        self.assertEqual(self.server.extra_stdout, b"",
                         "stdout must carry exactly one line, the listening line")


class MaxConnections(ServerCase):
    ARGS = ("--max-connections", "3")

    def test_503_when_full_then_admits_after_close(self):
        held = [self.ws() for _ in range(3)]
        for c in held:
            c.send_frame(TEXT, b"x")
            self.assertEcho(c, TEXT, b"x")
        c = self.client()
        c.send(harness.handshake_request())
        resp = c.recv_http()
        self.assertEqual(resp.status, 503, repr(resp))
        c.close()
        held[0].send_frame(CLOSE, close_payload(1000))
        held[0].expect_close(1000)
        held[0].wait_closed()
        held[0].close()  # our FIN completes the TCP close the server started
        deadline = time.monotonic() + 3 * harness.SLOW
        while True:
            c = self.client()
            c.send(harness.handshake_request())
            resp = c.recv_http()
            if resp.status == 101 or time.monotonic() > deadline:
                break
            c.close()  # a rejected attempt must not hold a slot itself
            time.sleep(0.05)
        self.assertEqual(resp.status, 101, "a slot freed by a close is not reused")


# --- data frames and echo (sections 5.2-5.4, 5.6) ---------------------------------


class Echo(ServerCase):
    ARGS = ("--max-message-size", str(4 << 20))
    SIZES = (0, 1, 125, 126, 127, 65535, 65536, 1 << 20)

    def test_text_sizes(self):
        c = self.ws()
        for n in self.SIZES:
            payload = (b"abcdefghijklmnopqrstuvwxyz" * (n // 26 + 1))[:n]
            c.send_frame(TEXT, payload)
            self.assertEcho(c, TEXT, payload)

    def test_binary_sizes(self):
        c = self.ws()
        for n in self.SIZES:
            payload = os.urandom(n)
            c.send_frame(harness.BINARY, payload)
            self.assertEcho(c, harness.BINARY, payload)

    def test_length_forms_by_boundary(self):
        # The server must use the shortest length form (RFC 6455 5.2).
        c = self.ws()
        for n, header_len in ((125, 2), (126, 4), (65535, 4), (65536, 10)):
            c.send_frame(harness.BINARY, b"\x00" * n)
            f = c.recv_frame()
            self.assertEqual((f.opcode, len(f.payload), f.header_len), (harness.BINARY, n, header_len))

    def test_non_minimal_length_from_client_accepted_or_rejected_cleanly(self):
        # 5 bytes announced with a 16-bit length: servers may accept it.
        c = self.ws()
        c.send_frame(TEXT, b"hello", length_form=16)
        try:
            f = c.recv_frame()
        except PeerClosed as e:
            self.fail("server dropped TCP without a close frame: %s" % e)
        if f.opcode == CLOSE:
            self.assertEqual(f.close_code, 1002)
        else:
            self.assertEqual((f.opcode, f.payload), (TEXT, b"hello"))

    def test_multibyte_utf8_text(self):
        c = self.ws()
        text = "héllo wörld — ☃ 𝄞 日本語".encode()
        c.send_frame(TEXT, text)
        self.assertEcho(c, TEXT, text)

    def test_mask_key_zero_and_byte_by_byte_delivery(self):
        c = self.ws()
        frame = build_frame(TEXT, b"slow and steady", key=b"\x00\x00\x00\x00")
        for i in range(len(frame)):
            c.send(frame[i:i + 1])
            time.sleep(0.002)
        self.assertEcho(c, TEXT, b"slow and steady")

    def test_many_frames_in_one_write(self):
        c = self.ws()
        msgs = [("m%d" % i).encode() * (i % 7) for i in range(200)]
        c.send(b"".join(build_frame(TEXT, m) for m in msgs))
        for m in msgs:
            self.assertEcho(c, TEXT, m)

    def test_fragmented_text(self):
        c = self.ws()
        c.send(build_frame(TEXT, b"Hel", fin=False) + build_frame(CONT, b"lo, ", fin=False)
               + build_frame(CONT, b"world"))
        self.assertEcho(c, TEXT, b"Hello, world")

    def test_fragmented_binary_large(self):
        c = self.ws()
        data = os.urandom(300000)
        parts = [data[i:i + 70000] for i in range(0, len(data), 70000)]
        out = b""
        for i, p in enumerate(parts):
            out += build_frame(harness.BINARY if i == 0 else CONT, p, fin=(i == len(parts) - 1))
        c.send(out)
        self.assertEcho(c, harness.BINARY, data)

    def test_one_byte_fragments(self):
        c = self.ws()
        text = "a€b".encode()  # a multi-byte code point split over 1-byte fragments
        out = b""
        for i in range(len(text)):
            out += build_frame(TEXT if i == 0 else CONT, text[i:i + 1], fin=(i == len(text) - 1))
        c.send(out)
        self.assertEcho(c, TEXT, text)

    def test_empty_fragments(self):
        c = self.ws()
        c.send(build_frame(TEXT, b"", fin=False) + build_frame(CONT, b"", fin=False)
               + build_frame(CONT, b"mid", fin=False) + build_frame(CONT, b"", fin=False)
               + build_frame(CONT, b""))
        self.assertEcho(c, TEXT, b"mid")
        c.send(build_frame(harness.BINARY, b"", fin=False) + build_frame(CONT, b""))
        self.assertEcho(c, harness.BINARY, b"")

    def test_ping_between_fragments(self):
        c = self.ws()
        c.send(build_frame(TEXT, b"frag-1 ", fin=False))
        c.send(build_frame(PING, b"between"))
        pong = c.recv_frame()  # must come before the message (which is not complete yet)
        self.assertEqual((pong.opcode, pong.payload), (PONG, b"between"))
        self.assertFalse(pong.masked)
        c.send(build_frame(CONT, b"frag-2", fin=False) + build_frame(PING, b"") +
               build_frame(PING, b"x" * 125) + build_frame(CONT, b" end"))
        op, payload, controls, _ = c.recv_message()
        self.assertEqual([(f.opcode, f.payload) for f in controls],
                         [(PONG, b""), (PONG, b"x" * 125)],
                         "pongs must come before the message and in order")
        self.assertEqual((op, payload), (TEXT, b"frag-1 frag-2 end"))

    def test_ping_pong_payloads(self):
        c = self.ws()
        for payload in (b"", b"a", os.urandom(125)):
            c.send_frame(PING, payload)
            f = c.recv_frame()
            self.assertEqual((f.opcode, f.payload, f.fin, f.masked), (PONG, payload, True, False))

    def test_unsolicited_pong_ignored(self):
        c = self.ws()
        c.send(build_frame(PONG, b"unasked") + build_frame(PONG, b"") + build_frame(TEXT, b"after"))
        self.assertEcho(c, TEXT, b"after")  # nothing came before the echo
        c.send(build_frame(TEXT, b"a", fin=False) + build_frame(PONG, b"mid") +
               build_frame(CONT, b"b"))
        self.assertEcho(c, TEXT, b"ab")


# --- invalid frames (5.1-5.5): fail the connection with 1002 -----------------------


class ProtocolErrors(ServerCase):

    def test_unmasked_frame(self):
        self.assertFails(self.ws(), 1002, build_frame(TEXT, b"hello", mask=False))

    def test_unmasked_control_frame(self):
        self.assertFails(self.ws(), 1002, build_frame(PING, b"hello", mask=False))

    def test_rsv_bits(self):
        for rsv in (1, 2, 4, 7):
            with self.subTest(rsv=rsv):
                self.assertFails(self.ws(), 1002, build_frame(TEXT, b"x", rsv=rsv))

    def test_rsv_on_control_frame(self):
        self.assertFails(self.ws(), 1002, build_frame(PING, b"x", rsv=4))

    def test_reserved_opcodes(self):
        for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
            with self.subTest(opcode=op):
                self.assertFails(self.ws(), 1002, build_frame(op, b"x"))

    def test_reserved_opcode_mid_message(self):
        c = self.ws()
        self.assertFails(c, 1002, build_frame(TEXT, b"a", fin=False) + build_frame(5, b""))

    def test_control_frame_too_long(self):
        for op in (PING, PONG, CLOSE):
            with self.subTest(opcode=op):
                payload = close_payload(1000, b"r" * 124) if op == CLOSE else b"p" * 126
                self.assertFails(self.ws(), 1002, build_frame(op, payload))

    def test_fragmented_control_frame(self):
        for op in (PING, PONG, CLOSE):
            with self.subTest(opcode=op):
                self.assertFails(self.ws(), 1002, build_frame(op, b"", fin=False))

    def test_continuation_without_start(self):
        self.assertFails(self.ws(), 1002, build_frame(CONT, b"orphan"))

    def test_continuation_after_finished_message(self):
        c = self.ws()
        c.send_frame(TEXT, b"done")
        self.assertEcho(c, TEXT, b"done")
        self.assertFails(c, 1002, build_frame(CONT, b"late"))

    def test_new_data_frame_inside_fragmented_message(self):
        for op in (TEXT, harness.BINARY):
            with self.subTest(opcode=op):
                c = self.ws()
                self.assertFails(c, 1002, build_frame(TEXT, b"a", fin=False) + build_frame(op, b"b"))

    def test_64bit_length_msb_set(self):
        c = self.ws()
        head = struct.pack("!BBQ", 0x82, 0x80 | 127, (1 << 63) | 5) + b"\x01\x02\x03\x04"
        self.assertFails(c, 1002, head)

    def test_no_echo_after_protocol_error(self):
        # Frames behind the bad one in the same write must not be echoed.
        c = self.ws()
        c.send(build_frame(TEXT, b"x", rsv=1) + build_frame(TEXT, b"must not echo"))
        f = c.recv_frame()
        self.assertEqual((f.opcode, f.close_code), (CLOSE, 1002), repr(f))


# --- UTF-8 (8.1): 1007 ------------------------------------------------------------------


class Utf8(ServerCase):

    BAD = (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80",  # 0xFF, overlong '/', surrogate
           b"\xf4\x90\x80\x80", b"ok\x80", b"\xe2\x82")  # > U+10FFFF, stray continuation, truncated

    def test_invalid_whole_message(self):
        for bad in self.BAD:
            with self.subTest(payload=bad):
                self.assertFails(self.ws(), 1007, build_frame(TEXT, bad))

    def test_invalid_split_across_fragments(self):
        # E2 82 | 28: a 3-byte sequence broken by the next fragment's first byte.
        c = self.ws()
        self.assertFails(c, 1007, build_frame(TEXT, b"ab\xe2\x82", fin=False) +
                         build_frame(CONT, b"(cd"))

    def test_truncated_at_end_of_fragmented_message(self):
        c = self.ws()
        self.assertFails(c, 1007, build_frame(TEXT, b"ab", fin=False) + build_frame(CONT, b"\xf0\x9f"))

    def test_valid_split_code_points(self):
        c = self.ws()
        text = "𝄞€é".encode()  # 4 + 3 + 2 bytes
        cuts = [1, 3, 5, 6, 8]
        pieces, last = [], 0
        for cut in cuts + [len(text)]:
            pieces.append(text[last:cut])
            last = cut
        out = b""
        for i, p in enumerate(pieces):
            out += build_frame(TEXT if i == 0 else CONT, p, fin=(i == len(pieces) - 1))
        c.send(out)
        self.assertEcho(c, TEXT, text)

    def test_fail_fast_before_final_fragment(self):
        # 1007 must arrive while the message is still open: no final fragment is sent.
        c = self.ws()
        c.send(build_frame(TEXT, b"valid start ", fin=False))
        c.send(build_frame(CONT, b"then \xff bad", fin=False))
        c.close_handshake_after_failure(1007, timeout=3)

    def test_fail_fast_inside_first_fragment(self):
        c = self.ws()
        c.send(build_frame(TEXT, b"\xc3\x28", fin=False))
        c.close_handshake_after_failure(1007, timeout=3)

    def test_binary_is_not_checked(self):
        c = self.ws()
        c.send_frame(harness.BINARY, b"\xff\xfe\xc0")
        self.assertEcho(c, harness.BINARY, b"\xff\xfe\xc0")

    def test_invalid_close_reason(self):
        self.assertFails(self.ws(), 1007, build_frame(CLOSE, close_payload(1000, b"\xff\xfe")))


# --- size limit: 1009 ------------------------------------------------------------------


class TooBig(ServerCase):
    ARGS = ("--max-message-size", "1024")

    def test_at_limit_echoed(self):
        c = self.ws()
        c.send_frame(harness.BINARY, b"z" * 1024)
        self.assertEcho(c, harness.BINARY, b"z" * 1024)

    def test_header_over_limit_fails_before_payload(self):
        c = self.ws()
        # Announce 1025 bytes but send only the header and mask key.
        c.send(build_frame(harness.BINARY, b"", length=1025)[:8])
        c.close_handshake_after_failure(1009, timeout=3)

    def test_huge_64bit_header_fails_at_once(self):
        c = self.ws()
        c.send(struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 40) + b"abcd")
        c.close_handshake_after_failure(1009, timeout=3)

    def test_fragments_over_limit(self):
        c = self.ws()
        c.send(build_frame(TEXT, b"a" * 1000, fin=False))
        time.sleep(0.05)
        c.send(build_frame(CONT, b"", length=100, fin=True)[:8])  # header only
        c.close_handshake_after_failure(1009, timeout=3)

    def test_fragments_at_limit_ok(self):
        c = self.ws()
        c.send(build_frame(TEXT, b"a" * 1000, fin=False) + build_frame(CONT, b"b" * 24))
        self.assertEcho(c, TEXT, b"a" * 1000 + b"b" * 24)


# --- closing handshake (5.5.1, 7) --------------------------------------------------


class Close(ServerCase):

    def test_empty_close_echoed_empty_then_tcp_closed(self):
        c = self.ws()
        c.send_frame(CLOSE, b"")
        f = c.expect_close(None)
        self.assertEqual(f.payload, b"")
        waited = c.wait_closed(timeout=3)
        self.assertLess(waited, 3)

    def test_close_code_echoed_then_server_closes_tcp(self):
        c = self.ws()
        c.send_frame(CLOSE, close_payload(1000, "bye"))
        c.expect_close(1000)
        # No more bytes from us: the server must close TCP by itself (RFC 6455 7.1.1).
        c.wait_closed(timeout=3)

    def test_valid_codes_echoed(self):
        for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                     3000, 3999, 4000, 4999):
            with self.subTest(code=code):
                c = self.ws()
                c.send_frame(CLOSE, close_payload(code, "reason ✓"))
                c.expect_close(code)
                c.wait_closed()

    def test_invalid_codes_1002(self):
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535):
            with self.subTest(code=code):
                self.assertFails(self.ws(), 1002, build_frame(CLOSE, close_payload(code)))

    def test_one_byte_close_payload_1002(self):
        self.assertFails(self.ws(), 1002, build_frame(CLOSE, b"\x03"))

    def test_close_reason_max_length(self):
        c = self.ws()
        c.send_frame(CLOSE, close_payload(1000, b"r" * 123))  # 125 bytes in all
        c.expect_close(1000)
        c.wait_closed()

    def test_close_mid_fragmented_message(self):
        c = self.ws()
        c.send(build_frame(TEXT, b"unfinished", fin=False) + build_frame(CLOSE, close_payload(1000)))
        f = c.expect_close(1000, skip_data=False)
        self.assertEqual(f.close_code, 1000)
        c.wait_closed()

    def test_data_after_close_ignored(self):
        c = self.ws()
        c.send(build_frame(CLOSE, close_payload(1000)) + build_frame(TEXT, b"after close"))
        c.expect_close(1000, skip_data=False)
        c.wait_closed()

    def test_close_after_pipelined_messages(self):
        c = self.ws()
        c.send(build_frame(TEXT, b"one") + build_frame(TEXT, b"two") +
               build_frame(CLOSE, close_payload(1000)))
        self.assertEcho(c, TEXT, b"one")
        self.assertEcho(c, TEXT, b"two")
        c.expect_close(1000, skip_data=False)
        c.wait_closed()

    def test_tcp_close_without_close_frame_server_survives(self):
        c = self.ws()
        c.send(build_frame(TEXT, b"partial", fin=False))
        c.close()
        c2 = self.ws()
        c2.send_frame(TEXT, b"still here")
        self.assertEcho(c2, TEXT, b"still here")


class CloseTimeout(ServerCase):
    ARGS = ("--close-timeout", "0.5")

    def test_silent_peer_after_server_close_dropped_at_close_timeout(self):
        # The server fails the connection; we never answer its close frame.
        c = self.ws()
        c.send_frame(TEXT, b"x", rsv=2)
        c.expect_close(1002)
        start = time.monotonic()
        waited = c.wait_closed(timeout=3)
        self.assertLess(time.monotonic() - start, 1.5 * harness.SLOW,
                        "TCP still open %.2fs after the server's close" % waited)

    def test_peer_that_never_sends_fin_is_released(self):
        # After the close exchange the server shuts down its side; a peer that keeps its
        # socket open must not pin the connection past the close timeout.
        c = self.ws()
        c.send_frame(TEXT, b"x")
        self.assertEcho(c, TEXT, b"x")
        fds_with_peer = self.server.fd_count()
        c.send_frame(CLOSE, close_payload(1000))
        c.expect_close(1000)
        c.wait_closed(timeout=2)
        # Judge by the first count below the peer's: a second read could see a
        # descriptor the server opened for something else in between.
        deadline = time.monotonic() + 2 * harness.SLOW
        lowest = self.server.fd_count()
        while lowest >= fds_with_peer and time.monotonic() < deadline:
            time.sleep(0.05)
            lowest = min(lowest, self.server.fd_count())
        self.assertLess(lowest, fds_with_peer,
                        "the server still holds the connection 2 s after the close exchange")


if __name__ == "__main__":
    harness.main()
