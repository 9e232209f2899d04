// Tests for message_reader (RFC 6455 §5, §7.4, §8.1): every rule with its
// error and close code, chunking independence (one byte at a time gives the
// same events as one chunk), zero-copy delivery, size limits at the header,
// streaming mode, close handling and buffer reuse.
#include "switchboard/protocol/message_reader.hpp"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "frame_builder.hpp"

namespace switchboard::protocol {
namespace {

using test::frame;

std::string masked(opcode op, std::string_view payload, bool fin = true) {
  return frame(op, payload, fin, true);
}

std::string close_payload(std::uint16_t code, std::string_view reason = {}) {
  std::string p{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  return p + std::string(reason);
}

struct seen {
  event_kind kind = event_kind::need_more;
  opcode op = opcode::continuation;
  bool compressed = false;
  bool first = false;
  bool last = false;
  std::uint16_t code = 0;
  error err = error::none;
  std::string payload;
  friend bool operator==(const seen&, const seen&) = default;
};

std::ostream& operator<<(std::ostream& os, const seen& s) {
  return os << "{kind " << int(s.kind) << " op " << int(s.op) << " z " << s.compressed << " f "
            << s.first << " l " << s.last << " code " << s.code << " err " << describe(s.err)
            << " payload " << testing::PrintToString(s.payload) << "}";
}

seen record(const reader_event& ev) {
  return {ev.kind, ev.op,   ev.compressed, ev.first,
          ev.last, ev.code, ev.err,        std::string(ev.payload)};
}

// Feeds `wire` in chunks of `chunk` bytes (0 = all at once), each chunk in a
// fresh buffer, and records every event but need_more. Stops at an error.
std::vector<seen> run(const reader_options& options, const std::string& wire,
                      std::size_t chunk = 0) {
  message_reader reader(options);
  std::vector<seen> out;
  if (chunk == 0) chunk = wire.size() + 1;
  for (std::size_t pos = 0; pos < wire.size(); pos += chunk) {
    std::vector<char> buf(wire.begin() + pos, wire.begin() + std::min(wire.size(), pos + chunk));
    std::span<char> input(buf);
    for (;;) {
      const reader_event ev = reader.next(input);
      if (ev.kind == event_kind::need_more) {
        EXPECT_TRUE(input.empty());
        break;
      }
      out.push_back(record(ev));
      if (ev.kind == event_kind::error) return out;
    }
  }
  return out;
}

reader_options server() {
  return {};
}
reader_options client() {
  reader_options o;
  o.role = role::client;
  return o;
}

seen message(opcode op, std::string payload) {
  seen s;
  s.kind = event_kind::message;
  s.op = op;
  s.payload = std::move(payload);
  return s;
}

seen control(event_kind kind, std::string payload, std::uint16_t code = 0) {
  seen s;
  s.kind = kind;
  s.payload = std::move(payload);
  s.code = code;
  return s;
}

seen failure(error e) {
  seen s;
  s.kind = event_kind::error;
  s.err = e;
  return s;
}

// Asserts the same events for chunk sizes 0 (whole), 1, 2, 3, 7 and 13.
std::vector<seen> run_all_chunkings(const reader_options& options, const std::string& wire) {
  const std::vector<seen> whole = run(options, wire);
  for (std::size_t chunk : {1, 2, 3, 7, 13}) {
    EXPECT_EQ(run(options, wire, chunk), whole) << "chunk " << chunk;
  }
  return whole;
}

TEST(message_reader, valid_streams_give_the_same_events_for_every_chunking) {
  const std::string big(70000, 'b');
  const std::string wire =
      masked(opcode::text, "Hello") + masked(opcode::binary, std::string("\0\1\2", 3)) +
      masked(opcode::text, "") + masked(opcode::text, "frag", false) + masked(opcode::ping, "p1") +
      masked(opcode::continuation, "-men", false) + masked(opcode::pong, "") +
      masked(opcode::continuation, "ted \xE2\x82\xAC") + masked(opcode::binary, big) +
      masked(opcode::binary, std::string(126, 'x')) +
      masked(opcode::close, close_payload(1000, "bye"));
  const std::vector<seen> want = {
      message(opcode::text, "Hello"),
      message(opcode::binary, std::string("\0\1\2", 3)),
      message(opcode::text, ""),
      control(event_kind::ping, "p1"),
      control(event_kind::pong, ""),
      message(opcode::text, "frag-mented \xE2\x82\xAC"),
      message(opcode::binary, big),
      message(opcode::binary, std::string(126, 'x')),
      control(event_kind::close, "bye", 1000),
  };
  EXPECT_EQ(run_all_chunkings(server(), wire), want);
}

TEST(message_reader, client_reads_unmasked_frames) {
  const std::string wire = frame(opcode::text, "hi", true, false) +
                           frame(opcode::ping, "x", true, false) +
                           frame(opcode::close, "", true, false);
  const std::vector<seen> want = {message(opcode::text, "hi"), control(event_kind::ping, "x"),
                                  control(event_kind::close, "", 1005)};
  EXPECT_EQ(run_all_chunkings(client(), wire), want);
}

struct error_case {
  const char* name;
  reader_options options;
  std::string wire;
  error err;
  close_code code;
};

reader_options with_rsv1() {
  reader_options o;
  o.allow_rsv1 = true;
  return o;
}

reader_options max_size(std::uint64_t n) {
  reader_options o;
  o.max_message_size = n;
  return o;
}

std::string hex_frame(std::initializer_list<unsigned> bytes) {
  std::string s;
  for (unsigned b : bytes) s += static_cast<char>(b);
  return s;
}

std::vector<error_case> error_cases() {
  using cc = close_code;
  const std::string ok = masked(opcode::text, "ok");
  std::vector<error_case> v = {
      {"server gets unmasked", server(), frame(opcode::text, "x", true, false),
       error::unmasked_frame, cc::protocol_error},
      {"client gets masked", client(), masked(opcode::text, "x"), error::masked_frame,
       cc::protocol_error},
      {"rsv1 not negotiated", server(), frame(opcode::text, "x", true, true, 4),
       error::reserved_bits, cc::protocol_error},
      {"rsv2", with_rsv1(), frame(opcode::text, "x", true, true, 2), error::reserved_bits,
       cc::protocol_error},
      {"rsv3", with_rsv1(), frame(opcode::binary, "x", true, true, 1), error::reserved_bits,
       cc::protocol_error},
      {"rsv1 on ping", with_rsv1(), frame(opcode::ping, "x", true, true, 4), error::rsv1_on_control,
       cc::protocol_error},
      {"rsv1 on continuation", with_rsv1(),
       masked(opcode::text, "a", false) + frame(opcode::continuation, "b", true, true, 4),
       error::rsv1_on_continuation, cc::protocol_error},
      {"ping without fin", server(),
       masked(opcode::text, "a") + hex_frame({0x09, 0x80, 0, 0, 0, 0}),
       error::fragmented_control_frame, cc::protocol_error},
      {"ping 126 bytes", server(), hex_frame({0x89, 0xFE, 0x00, 0x7E}),
       error::control_frame_too_large, cc::protocol_error},
      {"non-minimal 16-bit", server(), hex_frame({0x82, 0xFE, 0x00, 0x05, 1, 2, 3, 4}),
       error::non_minimal_length, cc::protocol_error},
      {"64-bit msb", server(), hex_frame({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}),
       error::length_msb_set, cc::protocol_error},
      {"continuation first", server(), masked(opcode::continuation, "x"),
       error::unexpected_continuation, cc::protocol_error},
      {"continuation after complete", server(), ok + masked(opcode::continuation, "x"),
       error::unexpected_continuation, cc::protocol_error},
      {"text inside text", server(), masked(opcode::text, "a", false) + masked(opcode::text, "b"),
       error::expected_continuation, cc::protocol_error},
      {"binary inside text", server(),
       masked(opcode::text, "a", false) + masked(opcode::ping, "") + masked(opcode::binary, "b"),
       error::expected_continuation, cc::protocol_error},
      {"too big", max_size(4), masked(opcode::binary, "12345"), error::message_too_big,
       cc::message_too_big},
      {"too big fragmented", max_size(4),
       masked(opcode::binary, "12", false) + masked(opcode::continuation, "345"),
       error::message_too_big, cc::message_too_big},
      {"bad utf8", server(), masked(opcode::text, "a\xFF"), error::invalid_utf8,
       cc::invalid_payload},
      {"surrogate split over fragments", server(),
       masked(opcode::text, "a\xED", false) + masked(opcode::continuation, "\xA0\x80"),
       error::invalid_utf8, cc::invalid_payload},
      {"text ends mid code point", server(),
       masked(opcode::text, "a\xE2", false) + masked(opcode::continuation, "\x82"),
       error::invalid_utf8, cc::invalid_payload},
      {"single frame ends mid code point", server(), masked(opcode::text, "\xF0\x9F\x98"),
       error::invalid_utf8, cc::invalid_payload},
      {"close one byte", server(), masked(opcode::close, "\x03"), error::close_payload_one_byte,
       cc::protocol_error},
      {"close reason not utf8", server(), masked(opcode::close, close_payload(1000, "\xC0\xAF")),
       error::close_reason_invalid_utf8, cc::invalid_payload},
      {"data after close", server(), masked(opcode::close, "") + ok, error::data_after_close,
       cc::protocol_error},
      {"ping after close", server(),
       masked(opcode::close, close_payload(1001)) + masked(opcode::ping, ""),
       error::data_after_close, cc::protocol_error},
      {"one byte after close", server(), masked(opcode::close, "") + "\x81",
       error::data_after_close, cc::protocol_error},
  };
  for (unsigned op : {3u, 4u, 5u, 6u, 7u, 11u, 12u, 13u, 14u, 15u}) {
    v.push_back({"reserved opcode", server(), hex_frame({0x80 | op, 0x80, 1, 2, 3, 4}),
                 error::reserved_opcode, cc::protocol_error});
  }
  for (unsigned code : {0u, 999u, 1004u, 1005u, 1006u, 1015u, 1016u, 2999u, 5000u, 65535u}) {
    v.push_back({"close code not for the wire", server(),
                 masked(opcode::close, close_payload(static_cast<std::uint16_t>(code))),
                 error::bad_close_code, cc::protocol_error});
  }
  return v;
}

TEST(message_reader, every_rule_fails_with_its_error_and_close_code) {
  for (const error_case& c : error_cases()) {
    SCOPED_TRACE(c.name);
    const std::vector<seen> events = run_all_chunkings(c.options, c.wire);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back(), failure(c.err));
    EXPECT_EQ(close_code_for(c.err), c.code);
  }
}

TEST(message_reader, valid_close_codes_and_empty_close) {
  for (unsigned code : {1000u, 1001u, 1002u, 1003u, 1007u, 1011u, 1012u, 1014u, 3000u, 4999u}) {
    const auto c = static_cast<std::uint16_t>(code);
    EXPECT_EQ(run(server(), masked(opcode::close, close_payload(c, "why \xC3\xA9"))),
              std::vector<seen>{control(event_kind::close, "why \xC3\xA9", c)});
  }
  EXPECT_EQ(run(server(), masked(opcode::close, "")),
            std::vector<seen>{control(event_kind::close, "", 1005)});
}

TEST(message_reader, errors_are_sticky_and_consume_nothing) {
  message_reader reader(server());
  std::string wire = frame(opcode::text, "x", true, false) + masked(opcode::text, "y");
  std::span<char> input(wire.data(), wire.size());
  EXPECT_EQ(record(reader.next(input)), failure(error::unmasked_frame));
  std::string more = masked(opcode::text, "z");
  std::span<char> next_input(more.data(), more.size());
  EXPECT_EQ(record(reader.next(next_input)), failure(error::unmasked_frame));
  EXPECT_EQ(next_input.size(), more.size());
  EXPECT_EQ(reader.last_error(), error::unmasked_frame);
}

TEST(message_reader, single_frame_message_is_a_view_into_the_input) {
  message_reader reader(server());
  std::string wire = masked(opcode::text, "zero copy please") + masked(opcode::ping, "p");
  std::span<char> input(wire.data(), wire.size());
  const reader_event ev = reader.next(input);
  ASSERT_EQ(ev.kind, event_kind::message);
  EXPECT_EQ(ev.payload, "zero copy please");
  EXPECT_GE(ev.payload.data(), wire.data());
  EXPECT_LE(ev.payload.data() + ev.payload.size(), wire.data() + wire.size());
  const reader_event ping = reader.next(input);
  ASSERT_EQ(ping.kind, event_kind::ping);
  EXPECT_GE(ping.payload.data(), wire.data());
  EXPECT_LT(ping.payload.data(), wire.data() + wire.size());
  EXPECT_EQ(reader.buffer_capacity(), 0u);
}

TEST(message_reader, small_frames_in_one_chunk_never_allocate) {
  std::string wire;
  for (int i = 0; i < 1000; ++i)
    wire += masked(i % 2 ? opcode::text : opcode::binary, "0123456789abcdef");
  message_reader reader(server());
  std::span<char> input(wire.data(), wire.size());
  int messages = 0;
  while (reader.next(input).kind == event_kind::message) ++messages;
  EXPECT_EQ(messages, 1000);
  EXPECT_EQ(reader.buffer_capacity(), 0u);
}

TEST(message_reader, fragmented_message_is_assembled_and_buffer_reused) {
  message_reader reader(server());
  std::string wire = masked(opcode::binary, "abc", false) + masked(opcode::continuation, "def");
  wire += wire;
  std::span<char> input(wire.data(), wire.size());
  const reader_event a = reader.next(input);
  ASSERT_EQ(a.kind, event_kind::message);
  EXPECT_EQ(a.payload, "abcdef");
  EXPECT_TRUE(a.payload.data() < wire.data() || a.payload.data() >= wire.data() + wire.size());
  const std::size_t capacity = reader.buffer_capacity();
  const reader_event b = reader.next(input);
  EXPECT_EQ(b.payload, "abcdef");
  EXPECT_EQ(reader.buffer_capacity(), capacity);
  EXPECT_EQ(reader.next(input).kind, event_kind::need_more);
  reader.shrink_buffer();
  EXPECT_EQ(reader.buffer_capacity(), 0u);
}

TEST(message_reader, size_limit_at_the_exact_boundary) {
  const std::string ten(10, 'x');
  EXPECT_EQ(run(max_size(10), masked(opcode::binary, ten)),
            std::vector<seen>{message(opcode::binary, ten)});
  EXPECT_EQ(run(max_size(10), masked(opcode::binary, ten + "x")),
            std::vector<seen>{failure(error::message_too_big)});
  EXPECT_EQ(run(max_size(10),
                masked(opcode::binary, "12345", false) + masked(opcode::continuation, "67890")),
            std::vector<seen>{message(opcode::binary, "1234567890")});
  EXPECT_EQ(run(max_size(10),
                masked(opcode::binary, "12345", false) + masked(opcode::continuation, "678901")),
            std::vector<seen>{failure(error::message_too_big)});
  EXPECT_EQ(run(max_size(0), masked(opcode::text, "")),
            std::vector<seen>{message(opcode::text, "")});
  // Control frames are not data messages: the limit does not apply.
  EXPECT_EQ(run(max_size(0), masked(opcode::ping, "ping")),
            std::vector<seen>{control(event_kind::ping, "ping")});
}

TEST(message_reader, oversize_frame_fails_at_its_header) {
  // Only the 14-byte header of a 2^40-byte frame: fail before any payload.
  message_reader reader(max_size(1 << 20));
  std::string header = hex_frame({0x82, 0xFF, 0, 0, 0x01, 0, 0, 0, 0, 0, 1, 2, 3, 4});
  std::span<char> input(header.data(), header.size());
  EXPECT_EQ(record(reader.next(input)), failure(error::message_too_big));
  EXPECT_EQ(reader.buffer_capacity(), 0u);
  // Same with a 16-bit length, fed one byte at a time.
  message_reader small(max_size(100));
  std::string h16 = hex_frame({0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4});
  for (std::size_t i = 0; i < h16.size(); ++i) {
    std::span<char> one(h16.data() + i, 1);
    const reader_event ev = small.next(one);
    EXPECT_EQ(ev.kind, i + 1 < h16.size() ? event_kind::need_more : event_kind::error) << i;
  }
  EXPECT_EQ(small.last_error(), error::message_too_big);
}

TEST(message_reader, compressed_messages_skip_utf8_and_carry_the_flag) {
  const std::string wire = frame(opcode::text, std::string("\xFF\x00\x01", 3), true, true, 4) +
                           frame(opcode::text, "\xC0", false, true, 4) +
                           masked(opcode::continuation, "\xFF");
  seen a = message(opcode::text, "\xFF\x00\x01");
  a.payload = std::string("\xFF\x00\x01", 3);
  a.compressed = true;
  seen b = message(opcode::text, "\xC0\xFF");
  b.compressed = true;
  EXPECT_EQ(run_all_chunkings(with_rsv1(), wire), (std::vector<seen>{a, b}));
}

reader_options streaming() {
  reader_options o;
  o.stream = true;
  return o;
}

seen part(opcode op, std::string payload, bool first, bool last) {
  seen s = message(op, std::move(payload));
  s.kind = event_kind::message_part;
  s.first = first;
  s.last = last;
  return s;
}

TEST(message_reader, stream_mode_single_frame_is_one_part_in_place) {
  message_reader reader(streaming());
  std::string wire = masked(opcode::text, "whole");
  std::span<char> input(wire.data(), wire.size());
  const reader_event ev = reader.next(input);
  EXPECT_EQ(record(ev), part(opcode::text, "whole", true, true));
  EXPECT_GE(ev.payload.data(), wire.data());
  EXPECT_LT(ev.payload.data(), wire.data() + wire.size());
  EXPECT_EQ(reader.buffer_capacity(), 0u);
}

TEST(message_reader, stream_mode_delivers_pieces_as_they_arrive) {
  const std::string wire = masked(opcode::binary, "abcdef", false) + masked(opcode::ping, "p") +
                           masked(opcode::continuation, "", false) +
                           masked(opcode::continuation, "ghi") + masked(opcode::text, "j", false) +
                           masked(opcode::continuation, "");
  // Whole input: one part per non-empty frame, an empty last part for the
  // empty final frame, nothing for the empty middle frame.
  EXPECT_EQ(run(streaming(), wire),
            (std::vector<seen>{
                part(opcode::binary, "abcdef", true, false), control(event_kind::ping, "p"),
                part(opcode::binary, "ghi", false, true), part(opcode::text, "j", true, false),
                part(opcode::text, "", false, true)}));
  // Byte at a time: one part per payload byte, flags on the right ones.
  const std::vector<seen> bytes = run(streaming(), wire, 1);
  std::string binary;
  int firsts = 0;
  int lasts = 0;
  for (const seen& s : bytes) {
    if (s.kind != event_kind::message_part) continue;
    if (s.op == opcode::binary) binary += s.payload;
    firsts += s.first;
    lasts += s.last;
  }
  EXPECT_EQ(binary, "abcdefghi");
  EXPECT_EQ(firsts, 2);
  EXPECT_EQ(lasts, 2);
  EXPECT_EQ(bytes.front(), part(opcode::binary, "a", true, false));
  EXPECT_EQ(bytes.back(), part(opcode::text, "", false, true));
}

TEST(message_reader, stream_mode_checks_utf8_per_piece_and_at_the_end) {
  // The bad byte fails at the piece carrying it, after earlier pieces went out.
  const std::vector<seen> bad =
      run(streaming(), masked(opcode::text, "ok", false) + masked(opcode::continuation, "\xC0"));
  EXPECT_EQ(bad, (std::vector<seen>{part(opcode::text, "ok", true, false),
                                    failure(error::invalid_utf8)}));
  // A code point split across parts is fine; one left open at the end is not.
  EXPECT_EQ(run(streaming(), masked(opcode::text, "\xE2\x82\xAC"), 1).size(), 3u);
  EXPECT_EQ(run(streaming(), masked(opcode::text, "a\xE2\x82")).back(),
            failure(error::invalid_utf8));
}

TEST(message_reader, stream_mode_still_enforces_the_size_limit) {
  reader_options o = streaming();
  o.max_message_size = 5;
  EXPECT_EQ(run(o, masked(opcode::binary, "123", false) + masked(opcode::continuation, "456")),
            (std::vector<seen>{part(opcode::binary, "123", true, false),
                               failure(error::message_too_big)}));
}

TEST(message_reader, reset_starts_over) {
  message_reader reader(server());
  std::string bad = frame(opcode::text, "x", true, false);
  std::span<char> input(bad.data(), bad.size());
  EXPECT_EQ(reader.next(input).kind, event_kind::error);
  reader.reset();
  std::string good = masked(opcode::text, "fine");
  std::span<char> again(good.data(), good.size());
  EXPECT_EQ(record(reader.next(again)), message(opcode::text, "fine"));
  EXPECT_FALSE(reader.close_received());
}

// --- The fast path (whole small frames) and its boundary with the general path.

// Feeds `wire` in the given chunks, in order, each in a fresh buffer, and
// records every event but need_more. Stops at an error.
std::vector<seen> run_chunks(const reader_options& options,
                             const std::vector<std::string>& chunks) {
  message_reader reader(options);
  std::vector<seen> out;
  for (const std::string& chunk : chunks) {
    std::vector<char> buf(chunk.begin(), chunk.end());
    std::span<char> input(buf);
    for (;;) {
      const reader_event ev = reader.next(input);
      if (ev.kind == event_kind::need_more) {
        EXPECT_TRUE(input.empty());
        break;
      }
      out.push_back(record(ev));
      if (ev.kind == event_kind::error) return out;
    }
  }
  return out;
}

// Text of `n` bytes: ASCII, with a 2-byte code point at `at` when it fits.
std::string text_with_code_point_at(std::size_t n, std::size_t at) {
  std::string s(n, 'a');
  if (at + 1 < n) {
    s[at] = '\xC3';
    s[at + 1] = '\xA9';
  }
  return s;
}

TEST(message_reader, every_short_length_either_side_of_the_7_bit_limit) {
  // 0-125 take the fast path, 126-130 the 16-bit length of the general path;
  // both roles, text and binary, whole and chunked.
  for (std::size_t n = 0; n <= 130; ++n) {
    SCOPED_TRACE(n);
    const std::string ascii(n, 'x');
    const std::string mixed = text_with_code_point_at(n, n / 2);
    const std::string wire =
        masked(opcode::text, ascii) + masked(opcode::binary, ascii) + masked(opcode::text, mixed);
    const std::vector<seen> want = {message(opcode::text, ascii), message(opcode::binary, ascii),
                                    message(opcode::text, mixed)};
    EXPECT_EQ(run_all_chunkings(server(), wire), want);
    const std::string client_wire = frame(opcode::text, ascii, true, false) +
                                    frame(opcode::binary, ascii, true, false) +
                                    frame(opcode::text, mixed, true, false);
    EXPECT_EQ(run_all_chunkings(client(), client_wire), want);
  }
}

TEST(message_reader, every_byte_of_a_short_text_is_checked) {
  // A bad byte anywhere in a short text fails; a code point anywhere is fine.
  for (std::size_t n = 1; n <= 130; ++n) {
    for (std::size_t at = 0; at < n; ++at) {
      SCOPED_TRACE(testing::Message() << "length " << n << " bad byte at " << at);
      std::string bad(n, 'a');
      bad[at] = '\xFF';
      ASSERT_EQ(run(server(), masked(opcode::text, bad)),
                std::vector<seen>{failure(error::invalid_utf8)});
      const std::string good = text_with_code_point_at(n, at);
      ASSERT_EQ(run(server(), masked(opcode::text, good)),
                std::vector<seen>{message(opcode::text, good)});
    }
  }
}

TEST(message_reader, frame_ending_exactly_at_the_input_end_or_one_byte_short) {
  const std::string wire = masked(opcode::text, "exact fit");
  EXPECT_EQ(run_chunks(server(), {wire}), std::vector<seen>{message(opcode::text, "exact fit")});
  // One byte short: nothing yet; the last byte completes the message.
  message_reader reader(server());
  std::string first = wire.substr(0, wire.size() - 1);
  std::string last = wire.substr(wire.size() - 1);
  std::span<char> a(first.data(), first.size());
  EXPECT_EQ(reader.next(a).kind, event_kind::need_more);
  EXPECT_TRUE(a.empty());
  std::span<char> b(last.data(), last.size());
  EXPECT_EQ(record(reader.next(b)), message(opcode::text, "exact fit"));
  // Header only, or less than the header (the key cut off): same outcome.
  for (std::size_t cut = 1; cut <= 6; ++cut) {
    SCOPED_TRACE(cut);
    EXPECT_EQ(run_chunks(server(), {wire.substr(0, cut), wire.substr(cut)}),
              std::vector<seen>{message(opcode::text, "exact fit")});
  }
}

TEST(message_reader, frame_after_a_stashed_partial_header) {
  // The first chunk ends inside a header; the next holds its rest and a whole
  // frame, which follows the stashed one in order.
  const std::string one = masked(opcode::binary, "one");
  const std::string two = masked(opcode::text, "two");
  for (std::size_t cut = 1; cut < 6; ++cut) {
    SCOPED_TRACE(cut);
    EXPECT_EQ(run_chunks(server(), {one.substr(0, cut), one.substr(cut) + two}),
              (std::vector<seen>{message(opcode::binary, "one"), message(opcode::text, "two")}));
  }
}

TEST(message_reader, fast_path_leaves_other_frames_to_the_general_path) {
  const std::string big(126, 'y');
  seen compressed = message(opcode::binary, "z");
  compressed.compressed = true;
  // RSV1 (negotiated), a fragmented message with a control frame inside, a
  // 16-bit length, controls between whole frames, then ordinary frames.
  const std::string wire = frame(opcode::binary, "z", true, true, 4) + masked(opcode::text, "a") +
                           masked(opcode::text, "frag", false) + masked(opcode::ping, "p") +
                           masked(opcode::continuation, "ment") + masked(opcode::binary, big) +
                           masked(opcode::pong, "q") + masked(opcode::text, "after") +
                           masked(opcode::close, close_payload(1000));
  EXPECT_EQ(
      run_all_chunkings(with_rsv1(), wire),
      (std::vector<seen>{compressed, message(opcode::text, "a"), control(event_kind::ping, "p"),
                         message(opcode::text, "fragment"), message(opcode::binary, big),
                         control(event_kind::pong, "q"), message(opcode::text, "after"),
                         control(event_kind::close, "", 1000)}));
}

TEST(message_reader, fast_path_shaped_frames_still_break_the_rules) {
  // Each is a whole small frame that differs from the fast path's shape in
  // one way, and must fail as the general path says.
  EXPECT_EQ(run(server(), masked(opcode::text, "x") + frame(opcode::text, "y", true, false)),
            (std::vector<seen>{message(opcode::text, "x"), failure(error::unmasked_frame)}));
  EXPECT_EQ(run(client(), frame(opcode::text, "x", true, false) + masked(opcode::text, "y")),
            (std::vector<seen>{message(opcode::text, "x"), failure(error::masked_frame)}));
  EXPECT_EQ(run(server(), masked(opcode::text, "x") + frame(opcode::text, "y", true, true, 4)),
            (std::vector<seen>{message(opcode::text, "x"), failure(error::reserved_bits)}));
  EXPECT_EQ(run(server(), masked(opcode::text, "x") + frame(opcode::binary, "y", true, true, 1)),
            (std::vector<seen>{message(opcode::text, "x"), failure(error::reserved_bits)}));
  EXPECT_EQ(run(server(), masked(opcode::text, "x", false) + masked(opcode::text, "y")),
            std::vector<seen>{failure(error::expected_continuation)});
  EXPECT_EQ(
      run(server(), masked(opcode::text, "x") + masked(opcode::continuation, "y")),
      (std::vector<seen>{message(opcode::text, "x"), failure(error::unexpected_continuation)}));
  EXPECT_EQ(
      run(server(), masked(opcode::close, "") + masked(opcode::binary, "y")),
      (std::vector<seen>{control(event_kind::close, "", 1005), failure(error::data_after_close)}));
}

TEST(message_reader, size_limit_below_the_7_bit_maximum) {
  for (std::uint64_t limit : {0u, 1u, 10u, 124u, 125u, 126u}) {
    SCOPED_TRACE(limit);
    const std::string fits(limit, 'f');
    const std::string over(limit + 1, 'o');
    EXPECT_EQ(run_all_chunkings(max_size(limit), masked(opcode::binary, fits)),
              std::vector<seen>{message(opcode::binary, fits)});
    EXPECT_EQ(run_all_chunkings(max_size(limit), masked(opcode::binary, over)),
              std::vector<seen>{failure(error::message_too_big)});
  }
}

TEST(message_reader, fast_path_utf8_failure_is_sticky_and_consumes_only_the_header) {
  message_reader reader(server());
  std::string wire = masked(opcode::text, "ok") + masked(opcode::text, "bad \xC0\xAF") +
                     masked(opcode::text, "never");
  std::span<char> input(wire.data(), wire.size());
  EXPECT_EQ(record(reader.next(input)), message(opcode::text, "ok"));
  EXPECT_EQ(record(reader.next(input)), failure(error::invalid_utf8));
  // The bad frame's payload and the frame after it are left unread.
  EXPECT_EQ(input.size(), 6u + masked(opcode::text, "never").size());
  const std::size_t left = input.size();
  EXPECT_EQ(record(reader.next(input)), failure(error::invalid_utf8));
  EXPECT_EQ(input.size(), left);
}

TEST(message_reader, stream_mode_fast_path_frames_are_single_parts) {
  const std::string wire = masked(opcode::text, "one") + masked(opcode::binary, "") +
                           masked(opcode::text, "t", false) + masked(opcode::continuation, "wo") +
                           masked(opcode::binary, "three");
  EXPECT_EQ(run(streaming(), wire),
            (std::vector<seen>{
                part(opcode::text, "one", true, true), part(opcode::binary, "", true, true),
                part(opcode::text, "t", true, false), part(opcode::text, "wo", false, true),
                part(opcode::binary, "three", true, true)}));
}

}  // namespace
}  // namespace switchboard::protocol
