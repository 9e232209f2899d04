#!/usr/bin/env python3
"""client_conformance_test.py — the client side of RFC 6455 and RFC 7692, from raw bytes.

A test server written byte by byte (client_peer.py) on 127.0.0.1, a fresh
port per case, drives our client two ways: through the library
(tests/client/conformance_driver.cpp, switchboard::client as an echo peer)
and through `switchboard connect URL --echo`. Every case checks the request
the client sent (GET, HTTP/1.1, Host, Upgrade, Connection, version 13, a
fresh 16-byte key, only what it was asked to offer), that every frame it
sends is masked, and how it ends: the exact close code it sent, that it
closes TCP after the server (or, when the handshake fails, at once and
without a byte), and its verdict (exit status, the rule named).

With SWITCHBOARD_CONFORMANCE_TLS=1 every case runs over wss:// (test
certificates made with the `openssl` command; the client trusts the test CA).

Usage: /usr/bin/python3 client_conformance_test.py PATH/TO/switchboard PATH/TO/client_conformance_driver
"""

import os
import sys
import tempfile
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from client_peer import (  # noqa: E402
    BINARY, CLOSE, CONT, PING, PONG, TEXT, EchoDriver, LibraryDriver, Listener, Options, Run,
    accept_for, close_body, deflate_message, is_base64_key, response_head, server_frame)

TLS = os.environ.get("SWITCHBOARD_CONFORMANCE_TLS") == "1"
TLS_CTX = None  # set by main() when TLS
DRIVERS = {}    # name -> Driver, set by main()
SEEN_KEYS = set()  # every Sec-WebSocket-Key of the run: each must be fresh

# The rule each error names (protocol::describe), as the client reports it.
MASKED = "server frame is masked"
BAD_UTF8 = "text message is not valid UTF-8"
BAD_REASON = "close reason is not valid UTF-8"
CONTROL_TOO_BIG = "control frame payload exceeds 125 bytes"
CONTROL_FRAGMENTED = "control frame is fragmented"
BAD_CODE = "close code not allowed on the wire"
ONE_BYTE = "close payload of one byte"
RSV = "RSV bit set without a negotiated extension"
OPCODE = "reserved opcode"
NO_MESSAGE_OPEN = "continuation frame with no message open"
MESSAGE_OPEN = "new data frame inside a fragmented message"
TOO_BIG = "message exceeds the size limit"
NON_MINIMAL = "payload length not minimally encoded"
LENGTH_MSB = "64-bit payload length has its top bit set"
RSV1_CONTINUATION = "RSV1 set on a continuation frame"
RSV1_CONTROL = "RSV1 set on a control frame"
NOT_DEFLATE = "compressed payload does not inflate"

BAD_ACCEPT = "Sec-WebSocket-Accept does not match the key"
NO_ACCEPT = "response lacks Sec-WebSocket-Accept"
NO_UPGRADE = "response lacks Upgrade: websocket"
NO_CONNECTION = "response lacks Connection: upgrade"
UNOFFERED_PROTOCOL = "server chose a subprotocol the client did not offer"
UNOFFERED_EXTENSION = "server chose an extension the client did not offer"
DEFLATE_PARAM = "unknown, repeated, unoffered or out-of-range parameter"
DEFLATE_MISSING = "omits server_no_context_takeover or server_max_window_bits"
DEFLATE_REPEATED = "permessage-deflate more than once"
DEFLATE_WINDOW_8 = "8-bit deflate window"

SMALL = 65536  # max_message_size for the size-limit cases
COMPRESSIBLE = ("switchboard speaks permessage-deflate; " * 60).encode()


def library_only(test):
    """A case needing an option `connect --echo` does not have (a custom deflate offer)."""
    test.library_only = True
    return test


class Cases:
    """Every case; a subclass names the driver (and unittest.TestCase)."""

    driver_name = None

    @property
    def driver(self):
        return DRIVERS[self.driver_name]

    def setUp(self):
        self.cleanup = []

    def tearDown(self):
        for thing in reversed(self.cleanup):
            try:
                (thing.kill if isinstance(thing, Run) else thing.close)()
            except OSError:
                pass

    # --- starting a case -----------------------------------------------------------

    def start(self, o=None):
        """Starts the client, accepts it and reads its request: (peer, run, request)."""
        o = o or Options()
        listener = Listener(TLS_CTX)
        self.cleanup.append(listener)
        run = Run(self.driver.argv(listener.url(o.path), o))
        self.cleanup.append(run)
        peer = listener.accept()
        self.cleanup.append(peer)
        request = peer.read_request()
        self.check_request(request, listener, o)
        return peer, run, request

    def check_request(self, req, listener, o):
        """RFC 6455 4.1: what a client's opening handshake must carry."""
        self.assertEqual(req.request_line, "GET %s HTTP/1.1" % o.path)
        self.assertEqual(req.values("Host"), ["127.0.0.1:%d" % listener.port])
        self.assertIn("websocket", req.tokens("Upgrade"))
        self.assertIn("upgrade", req.tokens("Connection"))
        self.assertEqual(req.values("Sec-WebSocket-Version"), ["13"])
        self.assertEqual(len(req.values("Sec-WebSocket-Key")), 1)
        self.assertTrue(is_base64_key(req.key), req.key)
        self.assertNotIn(req.key, SEEN_KEYS, "a Sec-WebSocket-Key was used twice")
        SEEN_KEYS.add(req.key)
        self.assertEqual(req.tokens("Sec-WebSocket-Protocol"), [p.lower() for p in o.protocols])
        extensions = req.get("Sec-WebSocket-Extensions")
        if o.deflate:
            self.assertRegex(extensions or "", r"^permessage-deflate\b")
        else:
            self.assertIsNone(extensions)

    def open(self, o=None, protocol=None, extensions=None, early=b""):
        """A client past a valid 101 (with `early` bytes in the same write)."""
        peer, run, req = self.start(o)
        peer.send(response_head(req, protocol=protocol, extensions=extensions) + early)
        return peer, run

    def open_deflate(self, answer="permessage-deflate", o=None, server_bits=15, client_bits=15):
        """A compressed connection: (peer, run, our compressor, inflater for the client's)."""
        peer, run = self.open(o or Options(deflate=True), extensions=answer)
        return (peer, run, zlib.compressobj(9, zlib.DEFLATED, -server_bits),
                zlib.decompressobj(-client_bits))

    # --- endings -----------------------------------------------------------------------

    def fails_with(self, code, rule, data, o=None, **open_kw):
        """After the 101 the server sends `data`; the client must fail the
        connection: a masked close with `code`, then close TCP once the server has."""
        peer, run = self.open(o, **open_kw)
        peer.send(data)
        self.expect_failure(peer, run, code, rule)

    def expect_failure(self, peer, run, code, rule):
        peer.expect_close(code)
        peer.close_first()
        self.driver.check_protocol_error(self, run.wait(), code, rule)

    def rejects_handshake(self, rule, response, o=None):
        """The server answers `response(request)`; the client must close TCP
        at once, send nothing, and name the rule."""
        peer, run, req = self.start(o)
        peer.send(response(req))
        peer.expect_eof()
        self.driver.check_handshake_error(self, run.wait(), rule)

    def close_normally(self, peer, run):
        peer.send_frame(CLOSE, close_body(1000))
        peer.expect_close(1000)
        peer.close_first()
        self.driver.check_normal(self, run.wait())

    def echo(self, peer, op, payload):
        peer.send_frame(op, payload)
        self.assertEqual(peer.recv_message()[:2], (op, payload))

    # --- the opening handshake --------------------------------------------------------

    def test_request_and_open(self):
        o = Options(protocols=["chat.v2", "chat.v1"], path="/conformance/open?x=1")
        peer, run = self.open(o, protocol="chat.v1")
        self.echo(peer, TEXT, b"hello")
        self.close_normally(peer, run)

    def test_wrong_accept(self):
        self.rejects_handshake(BAD_ACCEPT, lambda r: response_head(
            r, accept="s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))

    def test_accept_of_another_guid(self):
        import base64
        import hashlib
        wrong = lambda r: base64.b64encode(hashlib.sha1(r.key.encode()).digest()).decode()  # noqa
        self.rejects_handshake(BAD_ACCEPT, lambda r: response_head(r, accept=wrong(r)))

    def test_missing_accept(self):
        self.rejects_handshake(NO_ACCEPT, lambda r: response_head(r, accept=False))

    def test_missing_upgrade(self):
        self.rejects_handshake(NO_UPGRADE, lambda r: response_head(r, upgrade=None))

    def test_wrong_upgrade(self):
        self.rejects_handshake(NO_UPGRADE, lambda r: response_head(r, upgrade="h2c"))

    def test_missing_connection(self):
        self.rejects_handshake(NO_CONNECTION, lambda r: response_head(r, connection=None))

    def test_wrong_connection(self):
        self.rejects_handshake(NO_CONNECTION, lambda r: response_head(r, connection="keep-alive"))

    def test_token_case_and_lists_are_accepted(self):
        peer, run, req = self.start()
        peer.send(response_head(req, upgrade="WebSocket", connection="keep-alive, UPGRADE"))
        self.echo(peer, TEXT, b"tokens")
        self.close_normally(peer, run)

    def test_not_101(self):
        for status in ("403 Forbidden", "200 OK", "302 Found", "426 Upgrade Required"):
            with self.subTest(status=status):
                self.rejects_handshake("server answered " + status, lambda r: response_head(
                    r, status=status, extra=[("Content-Length", "0")]))

    def test_malformed_status_line(self):
        self.rejects_handshake("malformed status line", lambda r: b"HTTP/1.1 10x Nope\r\n\r\n")

    def test_eof_before_response(self):
        peer, run, _ = self.start()
        peer.close_first()
        r = run.wait()
        self.driver.check_handshake_error(self, r, "closed the connection without answering")

    @library_only
    def test_no_response_times_out(self):
        peer, run, _ = self.start(Options(handshake_timeout_ms=300))
        peer.expect_eof()  # the client gives up and closes TCP, sending nothing
        self.driver.check_handshake_error(self, run.wait(), "no response within 300 ms")

    @library_only
    def test_response_dribbled_past_the_timeout(self):
        # The timeout bounds the whole head, not the gap between bytes.
        peer, run, req = self.start(Options(handshake_timeout_ms=300))
        head = response_head(req)
        start = time.monotonic()
        for i in range(len(head) - 4):
            try:
                peer.send(head[i:i + 1])
            except OSError:
                break
            if peer.closed_by_client(0.05):
                break
        self.assertLess(time.monotonic() - start, 5 * harness.SLOW)
        peer.expect_eof()
        self.driver.check_handshake_error(self, run.wait(), "no response within 300 ms")

    def test_unoffered_subprotocol(self):
        self.rejects_handshake(UNOFFERED_PROTOCOL, lambda r: response_head(r, protocol="chat"))

    def test_other_subprotocol(self):
        self.rejects_handshake(UNOFFERED_PROTOCOL, lambda r: response_head(r, protocol="b.v1"),
                               Options(protocols=["a.v1"]))

    def test_two_accept_fields(self):
        self.rejects_handshake(BAD_ACCEPT, lambda r: response_head(
            r, extra=[("Sec-WebSocket-Accept", accept_for(r.key))]))

    def test_more_than_one_subprotocol_chosen(self):
        o = Options(protocols=["a.v1", "b.v1"])
        self.rejects_handshake(UNOFFERED_PROTOCOL, lambda r: response_head(
            r, protocol="a.v1, b.v1"), o)
        self.rejects_handshake(UNOFFERED_PROTOCOL, lambda r: response_head(
            r, protocol="a.v1", extra=[("Sec-WebSocket-Protocol", "b.v1")]), o)

    def test_subprotocol_is_case_sensitive(self):
        self.rejects_handshake(UNOFFERED_PROTOCOL, lambda r: response_head(r, protocol="Chat"),
                               Options(protocols=["chat"]))

    def test_response_head_over_the_limit(self):
        filler = [("X-Filler-%d" % i, "f" * 1000) for i in range(40)]
        self.rejects_handshake("exceeds the size limit", lambda r: response_head(r, extra=filler))

    def test_unoffered_extension(self):
        self.rejects_handshake(UNOFFERED_EXTENSION, lambda r: response_head(
            r, extensions="permessage-deflate"))

    def test_unknown_extension_with_deflate_offered(self):
        self.rejects_handshake(UNOFFERED_EXTENSION, lambda r: response_head(
            r, extensions="x-webkit-deflate-frame"), Options(deflate=True))

    def test_response_in_single_bytes_and_frames_right_behind_it(self):
        peer, run, req = self.start()
        data = response_head(req) + server_frame(TEXT, b"early")
        for i in range(len(data)):
            peer.send(data[i:i + 1])
            time.sleep(0.001)
        self.assertEqual(peer.recv_message()[:2], (TEXT, b"early"))
        self.close_normally(peer, run)

    def test_frames_in_the_same_write_as_the_101(self):
        early = server_frame(TEXT, b"one") + server_frame(PING, b"p") + server_frame(BINARY, b"\x02")
        peer, run = self.open(early=early)
        self.assertEqual(peer.recv_message()[:2], (TEXT, b"one"))
        pong = peer.recv_frame()
        self.assertEqual((pong.opcode, pong.payload), (PONG, b"p"))
        self.assertEqual(peer.recv_message()[:2], (BINARY, b"\x02"))
        self.close_normally(peer, run)

    # --- permessage-deflate negotiation ------------------------------------------------

    @library_only
    def test_deflate_client_window_not_offered(self):
        self.rejects_handshake(DEFLATE_PARAM, lambda r: response_head(
            r, extensions="permessage-deflate; client_max_window_bits=10"),
            Options(deflate=True, deflate_no_client_window=True))

    def test_deflate_bad_params(self):
        for answer in ("permessage-deflate; server_max_window_bits=7",
                       "permessage-deflate; server_max_window_bits=16",
                       "permessage-deflate; server_max_window_bits",
                       "permessage-deflate; client_max_window_bits=16",
                       "permessage-deflate; foo=1",
                       "permessage-deflate; server_no_context_takeover=1",
                       "permessage-deflate; server_no_context_takeover; server_no_context_takeover"):
            with self.subTest(answer=answer):
                self.rejects_handshake(DEFLATE_PARAM, lambda r: response_head(
                    r, extensions=answer), Options(deflate=True))

    def test_deflate_answered_twice(self):
        self.rejects_handshake(DEFLATE_REPEATED, lambda r: response_head(
            r, extensions=["permessage-deflate", "permessage-deflate"]), Options(deflate=True))

    def test_deflate_client_window_8(self):
        self.rejects_handshake(DEFLATE_WINDOW_8, lambda r: response_head(
            r, extensions="permessage-deflate; client_max_window_bits=8"), Options(deflate=True))

    @library_only
    def test_deflate_unconfirmed_server_no_context_takeover(self):
        self.rejects_handshake(DEFLATE_MISSING, lambda r: response_head(
            r, extensions="permessage-deflate"),
            Options(deflate=True, deflate_server_no_context_takeover=True))

    def test_deflate_declined_means_no_rsv1(self):
        peer, run = self.open(Options(deflate=True))
        peer.send_frame(TEXT, COMPRESSIBLE)
        op, payload, compressed = peer.recv_message()
        self.assertEqual((op, payload, compressed), (TEXT, COMPRESSIBLE, False))
        self.fails_with_after(peer, run, 1002, RSV, server_frame(TEXT, b"x", rsv=4))

    def fails_with_after(self, peer, run, code, rule, data):
        peer.send(data)
        self.expect_failure(peer, run, code, rule)

    def test_deflate_limits_the_server_may_add(self):
        # RFC 7692 7.1.1.1, 7.1.2.1: unasked server_no_context_takeover and
        # server_max_window_bits are the server's to add; a client window of 9 binds us.
        peer, run, _, inflater = self.open_deflate(
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; "
            "client_max_window_bits=9", client_bits=9)
        for _ in range(3):
            # A fresh compressor each time: server_no_context_takeover.
            c = zlib.compressobj(9, zlib.DEFLATED, -10)
            peer.send_frame(TEXT, deflate_message(COMPRESSIBLE, c), rsv=4)
            op, payload, compressed = peer.recv_message(inflater=inflater)
            self.assertEqual((op, payload, compressed), (TEXT, COMPRESSIBLE, True))
        self.close_normally(peer, run)

    def test_deflate_server_window_8(self):
        # zlib cannot deflate with 8 bits and servers built on it use 9: the
        # client inflates with 9, which decodes every 8-bit stream as well.
        peer, run, compressor, inflater = self.open_deflate(
            "permessage-deflate; server_max_window_bits=8", server_bits=9)
        message = os.urandom(300) * 4  # repeats 300 bytes back: beyond an 8-bit window
        peer.send_frame(BINARY, deflate_message(message, compressor), rsv=4)
        self.assertEqual(peer.recv_message(inflater=inflater), (BINARY, message, True))
        self.close_normally(peer, run)

    # --- masking and data --------------------------------------------------------------

    def test_every_frame_masked_with_a_fresh_key(self):
        peer, run = self.open()
        for i in range(12):
            self.echo(peer, TEXT if i % 2 else BINARY, (b"m%d" % i) * i)
        peer.send_frame(PING, b"key?")
        self.assertEqual(peer.recv_frame().payload, b"key?")
        peer.send_frame(CLOSE, close_body(1000))
        peer.expect_close(1000)
        peer.close_first()
        self.driver.check_normal(self, run.wait())
        keys = peer.keys
        self.assertEqual(len(keys), 14)
        self.assertEqual(len(set(keys)), len(keys), "a masking key was reused: %r" % keys)
        self.assertNotIn(b"\0\0\0\0", keys)

    def test_echo_sizes(self):
        peer, run = self.open()
        for size in (0, 1, 125, 126, 127, 65535, 65536, 200000):
            with self.subTest(size=size):
                self.echo(peer, BINARY, os.urandom(size))
                self.echo(peer, TEXT, ("é" * (size // 2) + "x" * (size % 2)).encode())
        self.close_normally(peer, run)

    def test_binary_is_not_checked_as_utf8(self):
        peer, run = self.open()
        self.echo(peer, BINARY, b"\xff\xfe\xc0\xaf")
        self.close_normally(peer, run)

    def test_fragmented_message_and_code_point_split_between_fragments(self):
        peer, run = self.open()
        text = "a€😀b".encode()  # split inside the euro sign and inside the emoji
        peer.send(server_frame(TEXT, text[:2], fin=False) + server_frame(CONT, b"", fin=False) +
                  server_frame(CONT, text[2:6], fin=False) + server_frame(CONT, text[6:]))
        self.assertEqual(peer.recv_message()[:2], (TEXT, text))
        peer.send(server_frame(BINARY, b"", fin=False) + server_frame(CONT, b"\x01"))
        self.assertEqual(peer.recv_message()[:2], (BINARY, b"\x01"))
        self.close_normally(peer, run)

    def test_masked_server_frame(self):
        self.fails_with(1002, MASKED, server_frame(TEXT, b"hi", mask_key=b"\x01\x02\x03\x04"))

    def test_masked_server_ping(self):
        self.fails_with(1002, MASKED, server_frame(PING, b"", mask_key=b"\0\0\0\0"))

    def test_invalid_utf8(self):
        for payload in (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                        b"ok\xe2\x82", b"\x80", "é".encode()[:1] + b"a"):
            with self.subTest(payload=payload):
                self.fails_with(1007, BAD_UTF8, server_frame(TEXT, payload))

    def test_invalid_utf8_across_fragments(self):
        self.fails_with(1007, BAD_UTF8, server_frame(TEXT, b"ok\xe2\x82", fin=False) +
                        server_frame(CONT, b"(", fin=True))

    def test_invalid_utf8_fails_fast(self):
        # The rest of the message never comes: the client must not wait for it.
        self.fails_with(1007, BAD_UTF8, server_frame(TEXT, b"ok\xff", fin=False))

    def test_utf8_truncated_at_the_last_fragment(self):
        self.fails_with(1007, BAD_UTF8, server_frame(TEXT, b"ok", fin=False) +
                        server_frame(CONT, b"\xf0\x9f\x98", fin=True))

    def test_reserved_bits(self):
        for rsv in (1, 2, 4, 7):
            with self.subTest(rsv=rsv):
                self.fails_with(1002, RSV, server_frame(TEXT, b"x", rsv=rsv))
        self.fails_with(1002, RSV, server_frame(PING, b"x", rsv=2))

    def test_reserved_opcodes(self):
        for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
            with self.subTest(opcode=op):
                self.fails_with(1002, OPCODE, server_frame(op, b"x"))

    def test_continuation_without_a_start(self):
        self.fails_with(1002, NO_MESSAGE_OPEN, server_frame(CONT, b"x"))

    def test_continuation_after_a_finished_message(self):
        peer, run = self.open()
        self.echo(peer, TEXT, b"done")
        self.fails_with_after(peer, run, 1002, NO_MESSAGE_OPEN, server_frame(CONT, b"x"))

    def test_new_data_frame_inside_a_fragmented_message(self):
        for op in (TEXT, BINARY):
            with self.subTest(opcode=op):
                self.fails_with(1002, MESSAGE_OPEN, server_frame(TEXT, b"a", fin=False) +
                                server_frame(op, b"b"))

    def test_non_minimal_lengths(self):
        self.fails_with(1002, NON_MINIMAL, server_frame(BINARY, b"12345", length_form=16))
        self.fails_with(1002, NON_MINIMAL, server_frame(BINARY, b"x" * 200, length_form=64))

    def test_length_with_the_top_bit_set(self):
        self.fails_with(1002, LENGTH_MSB, server_frame(BINARY, b"", length=1 << 63))

    def test_oversize_frame_fails_at_its_header(self):
        # Only the header is sent: the client must not wait for the payload.
        self.fails_with(1009, TOO_BIG, server_frame(BINARY, b"", length=SMALL + 1),
                        Options(max_message_size=SMALL))
        self.fails_with(1009, TOO_BIG, server_frame(TEXT, b"", length=1 << 40),
                        Options(max_message_size=SMALL))

    def test_oversize_message_in_fragments(self):
        part = b"x" * (SMALL // 2)
        self.fails_with(1009, TOO_BIG, server_frame(TEXT, part, fin=False) +
                        server_frame(CONT, part, fin=False) + server_frame(CONT, b"x", fin=False),
                        Options(max_message_size=SMALL))

    def test_message_of_exactly_the_limit(self):
        peer, run = self.open(Options(max_message_size=SMALL))
        self.echo(peer, BINARY, os.urandom(SMALL))
        self.close_normally(peer, run)

    # --- control frames --------------------------------------------------------------

    def test_ping_answered_with_the_same_payload(self):
        peer, run = self.open()
        for payload in (b"", b"hello", bytes(range(125)), b"\xff\x00\xfe"):
            with self.subTest(payload=payload):
                peer.send_frame(PING, payload)
                pong = peer.recv_frame()
                self.assertEqual((pong.fin, pong.rsv, pong.opcode, pong.payload),
                                 (True, 0, PONG, payload))
        self.close_normally(peer, run)

    def test_ping_between_fragments(self):
        peer, run = self.open()
        peer.send(server_frame(TEXT, b"frag", fin=False) + server_frame(PING, b"in between") +
                  server_frame(CONT, b"mented", fin=False))
        pong = peer.recv_frame()
        self.assertEqual((pong.opcode, pong.payload), (PONG, b"in between"))
        peer.send(server_frame(PONG, b"unsolicited") + server_frame(CONT, b"!"))
        self.assertEqual(peer.recv_message()[:2], (TEXT, b"fragmented!"))
        self.close_normally(peer, run)

    def test_unsolicited_pong_gets_no_answer(self):
        peer, run = self.open()
        peer.send(server_frame(PONG, b"beat") + server_frame(TEXT, b"after"))
        self.assertEqual(peer.recv_message()[:2], (TEXT, b"after"))
        self.close_normally(peer, run)

    def test_control_frames_over_125_bytes(self):
        for op in (PING, PONG, CLOSE):
            with self.subTest(opcode=op):
                payload = close_body(1000, b"r" * 124) if op == CLOSE else b"p" * 126
                self.fails_with(1002, CONTROL_TOO_BIG, server_frame(op, payload))

    def test_fragmented_control_frames(self):
        for op, payload in ((PING, b"p"), (PONG, b"p"), (CLOSE, close_body(1000))):
            with self.subTest(opcode=op):
                self.fails_with(1002, CONTROL_FRAGMENTED, server_frame(op, payload, fin=False))

    def test_fragmented_ping_inside_a_message(self):
        self.fails_with(1002, CONTROL_FRAGMENTED, server_frame(TEXT, b"a", fin=False) +
                        server_frame(PING, b"p", fin=False))

    # --- the close handshake -----------------------------------------------------------

    def test_close_handshake_server_closes_tcp_first(self):
        peer, run = self.open()
        peer.send_frame(CLOSE, close_body(1000, "bye"))
        frame = peer.expect_close(1000)
        self.assertTrue(frame.fin)
        # RFC 6455 7.1.1: the client waits for the server to close TCP.
        peer.assert_quiet(0.3)
        self.assertIsNone(run.proc.poll(), "the client exited before the server closed TCP")
        peer.close_first()
        self.driver.check_closed(self, run.wait(), 1000, "bye")

    def test_close_frame_and_tcp_close_together(self):
        # Servers often close TCP right behind their close frame: still a normal close.
        peer, run = self.open()
        peer.send_frame(CLOSE, close_body(1000, "bye"))
        peer.wire.shutdown_write()
        peer.expect_close(1000)
        peer.expect_eof()
        self.driver.check_closed(self, run.wait(), 1000, "bye")

    def test_close_codes_are_echoed(self):
        for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                     3000, 3999, 4000, 4999):
            with self.subTest(code=code):
                peer, run = self.open()
                peer.send_frame(CLOSE, close_body(code, "why"))
                peer.expect_close(code)
                peer.close_first()
                self.driver.check_closed(self, run.wait(), code, "why")

    def test_close_without_a_code(self):
        peer, run = self.open()
        peer.send_frame(CLOSE)
        peer.expect_close(None)
        peer.close_first()
        self.driver.check_closed(self, run.wait(), 1005)

    def test_close_reason_of_123_bytes(self):
        peer, run = self.open()
        reason = "é" * 61 + "x"  # 123 bytes
        peer.send_frame(CLOSE, close_body(4001, reason))
        peer.expect_close(4001)
        peer.close_first()
        self.driver.check_closed(self, run.wait(), 4001, reason)

    def test_bad_close_codes(self):
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535):
            with self.subTest(code=code):
                self.fails_with(1002, BAD_CODE, server_frame(CLOSE, close_body(code)))

    def test_one_byte_close_payload(self):
        self.fails_with(1002, ONE_BYTE, server_frame(CLOSE, b"\x03"))

    def test_close_reason_invalid_utf8(self):
        for reason in (b"\xff", b"ok\xe2\x82", b"\xed\xa0\x80"):
            with self.subTest(reason=reason):
                self.fails_with(1007, BAD_REASON, server_frame(CLOSE, close_body(1000, reason)))

    def test_frames_after_the_servers_close_are_ignored(self):
        peer, run = self.open()
        peer.send(server_frame(CLOSE, close_body(1000)) + server_frame(TEXT, b"late") +
                  server_frame(PING, b"late"))
        peer.expect_close(1000)
        peer.close_first()  # also fails if the client echoed "late" or answered the ping
        self.driver.check_normal(self, run.wait())

    def test_server_that_never_closes_tcp(self):
        peer, run = self.open(Options(close_timeout_ms=400))
        start = time.monotonic()  # the client's wait starts after this, so load only adds
        peer.send_frame(CLOSE, close_body(1000))
        peer.expect_close(1000)
        peer.expect_eof()  # the client gives up waiting after its close timeout
        self.assertGreaterEqual(time.monotonic() - start, 0.35)
        self.driver.check_normal(self, run.wait())

    def test_close_inside_a_fragmented_message(self):
        peer, run = self.open()
        peer.send(server_frame(TEXT, b"never", fin=False) + server_frame(CLOSE, close_body(1001)))
        peer.expect_close(1001)
        peer.close_first()
        self.driver.check_closed(self, run.wait(), 1001)

    def test_connection_dropped_in_the_middle_of_a_frame(self):
        peer, run = self.open()
        peer.send(server_frame(BINARY, b"x" * 1000)[:100])
        peer.close_first()
        self.driver.check_dropped(self, run.wait())

    def test_connection_dropped_without_a_close_frame(self):
        peer, run = self.open()
        self.echo(peer, TEXT, b"then silence")
        peer.close_first()
        self.driver.check_dropped(self, run.wait())

    # --- permessage-deflate data ----------------------------------------------------------

    def test_deflate_echo_with_context_takeover(self):
        peer, run, compressor, inflater = self.open_deflate("permessage-deflate")
        for i in range(3):
            message = COMPRESSIBLE + b"%d" % i
            peer.send_frame(TEXT, deflate_message(message, compressor), rsv=4)
            self.assertEqual(peer.recv_message(inflater=inflater), (TEXT, message, True))
        # Uncompressed messages stay allowed, and small replies go out uncompressed.
        peer.send_frame(BINARY, b"plain")
        self.assertEqual(peer.recv_message(inflater=inflater), (BINARY, b"plain", False))
        self.close_normally(peer, run)

    def test_deflate_fragmented_with_ping_between(self):
        peer, run, compressor, inflater = self.open_deflate()
        data = deflate_message(COMPRESSIBLE, compressor)
        peer.send(server_frame(TEXT, data[:5], fin=False, rsv=4) + server_frame(PING, b"p") +
                  server_frame(CONT, data[5:]))
        pong = peer.recv_frame()
        self.assertEqual((pong.opcode, pong.rsv, pong.payload), (PONG, 0, b"p"))
        self.assertEqual(peer.recv_message(inflater=inflater), (TEXT, COMPRESSIBLE, True))
        self.close_normally(peer, run)

    def test_deflate_rsv1_on_a_continuation(self):
        peer, run, compressor, _ = self.open_deflate()
        data = deflate_message(COMPRESSIBLE, compressor)
        self.fails_with_after(peer, run, 1002, RSV1_CONTINUATION,
                              server_frame(TEXT, data[:5], fin=False, rsv=4) +
                              server_frame(CONT, data[5:], rsv=4))

    def test_deflate_rsv1_on_a_control_frame(self):
        peer, run, _, _ = self.open_deflate()
        self.fails_with_after(peer, run, 1002, RSV1_CONTROL, server_frame(PING, b"p", rsv=4))

    def test_deflate_rsv2_still_reserved(self):
        peer, run, _, _ = self.open_deflate()
        self.fails_with_after(peer, run, 1002, RSV, server_frame(TEXT, b"x", rsv=2))

    def test_deflate_corrupt_data(self):
        peer, run, _, _ = self.open_deflate()
        self.fails_with_after(peer, run, 1007, NOT_DEFLATE,
                              server_frame(BINARY, b"\xff\xff\xff\xff\xff", rsv=4))

    def test_deflate_invalid_utf8_inside(self):
        peer, run, compressor, _ = self.open_deflate()
        self.fails_with_after(peer, run, 1007, BAD_UTF8,
                              server_frame(TEXT, deflate_message(b"ok\xff" * 50, compressor), rsv=4))

    def test_deflate_empty_and_split_code_points(self):
        peer, run, compressor, inflater = self.open_deflate()
        peer.send_frame(TEXT, deflate_message(b"", compressor), rsv=4)
        self.assertEqual(peer.recv_message(inflater=inflater)[:2], (TEXT, b""))
        text = ("€😀" * 100).encode()
        data = deflate_message(text, compressor)
        cut = [0, 1, 3, len(data) // 2, len(data)]
        frames = b"".join(server_frame(TEXT if i == 0 else CONT, data[a:b], fin=b == len(data),
                                       rsv=4 if i == 0 else 0)
                          for i, (a, b) in enumerate(zip(cut, cut[1:])))
        peer.send(frames)
        self.assertEqual(peer.recv_message(inflater=inflater)[:2], (TEXT, text))
        self.close_normally(peer, run)

    def test_decompression_bomb(self):
        o = Options(deflate=True, max_message_size=SMALL)
        peer, run, compressor, _ = self.open_deflate(o=o)
        bomb = deflate_message(b"\0" * (16 * SMALL), compressor)
        self.assertLess(len(bomb), SMALL // 16)  # small on the wire, 1 MiB inflated
        self.fails_with_after(peer, run, 1009, TOO_BIG, server_frame(BINARY, bomb, rsv=4))

    def test_deflate_inflated_size_at_the_limit(self):
        o = Options(deflate=True, max_message_size=SMALL)
        peer, run, compressor, inflater = self.open_deflate(o=o)
        peer.send_frame(BINARY, deflate_message(b"\0" * SMALL, compressor), rsv=4)
        self.assertEqual(peer.recv_message(inflater=inflater)[:2], (BINARY, b"\0" * SMALL))
        peer.send_frame(BINARY, deflate_message(b"\0" * (SMALL + 1), compressor), rsv=4)
        self.expect_failure(peer, run, 1009, TOO_BIG)


class LibraryClient(Cases, unittest.TestCase):
    driver_name = "library"


class ConnectEchoClient(Cases, unittest.TestCase):
    driver_name = "connect_echo"


class ConnectEchoCommandLine(unittest.TestCase):
    """`switchboard connect --help` documents --echo and its exit status."""

    def test_help_documents_echo(self):
        r = Run([DRIVERS["connect_echo"].path, "connect", "--help"]).wait()
        self.assertEqual(r.code, 0, r)
        self.assertRegex(r.stdout, r"--echo\s+Do not read stdin: send every message received back")
        self.assertIn("--max-message-size", r.stdout)
        self.assertIn("With --echo: 0 only when the server closes with 1000", r.stdout)


# `connect --echo` has no flag for a custom deflate offer: those cases are library-only.
for _name in dir(Cases):
    if getattr(getattr(Cases, _name), "library_only", False):
        setattr(ConnectEchoClient, _name, None)


def main():
    global TLS_CTX
    if len(sys.argv) < 3:
        sys.stderr.write("usage: %s SWITCHBOARD CLIENT_CONFORMANCE_DRIVER [unittest args]\n"
                         % sys.argv[0])
        sys.exit(2)
    switchboard, driver = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    del sys.argv[1:3]
    harness.BINARY_PATH = switchboard
    with tempfile.TemporaryDirectory(prefix="client-conformance-") as tmp:
        ca = None
        if TLS:
            import tls_harness
            certs = tls_harness.make_certs(tmp)
            TLS_CTX = tls_harness.server_context(certs.server)
            ca = certs.ca
        DRIVERS["library"] = LibraryDriver(driver, ca)
        DRIVERS["connect_echo"] = EchoDriver(switchboard, ca)
        start = time.monotonic()
        prog = unittest.main(module="__main__", exit=False, verbosity=2)
    result = prog.result
    print("%s%s: %d tests, %d failures, %d errors, %d skipped in %.1fs" % (
        os.path.basename(sys.argv[0]), " (wss)" if TLS else "", result.testsRun,
        len(result.failures), len(result.errors), len(result.skipped), time.monotonic() - start))
    ok = result.wasSuccessful() and result.testsRun > 0 and not result.skipped
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
