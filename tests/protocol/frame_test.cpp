// Tests for frame header decoding and encoding (RFC 6455 §5.2).
#include "switchboard/protocol/frame.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace switchboard::protocol {
namespace {

// "81 05 48656c" -> bytes; spaces are ignored.
std::string from_hex(std::string_view hex) {
  std::string out;
  int high = -1;
  for (char c : hex) {
    if (c == ' ') continue;
    const int v = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<char>(high * 16 + v));
      high = -1;
    }
  }
  return out;
}

decode_result decode(const std::string& bytes, frame_header& h) {
  return decode_frame_header(bytes.data(), bytes.size(), h);
}

struct decode_case {
  const char* name;
  const char* hex;
  std::size_t consumed;  // 0 with err none = need more
  error err;
  opcode op;
  bool fin;
  bool masked;
  std::uint64_t length;
};

const decode_case k_decode_cases[] = {
    {"empty", "", 0, error::none, opcode::text, true, false, 0},
    {"one byte", "81", 0, error::none, opcode::text, true, false, 0},
    {"unmasked text 5", "81 05", 2, error::none, opcode::text, true, false, 5},
    {"masked text 5", "81 85 37fa213d", 6, error::none, opcode::text, true, true, 5},
    {"masked needs key", "81 85 37fa21", 0, error::none, opcode::text, true, true, 5},
    {"binary no fin", "02 00", 2, error::none, opcode::binary, false, false, 0},
    {"continuation fin", "80 7d", 2, error::none, opcode::continuation, true, false, 125},
    {"16-bit 126", "82 7e 007e", 4, error::none, opcode::binary, true, false, 126},
    {"16-bit 65535", "82 7e ffff", 4, error::none, opcode::binary, true, false, 65535},
    {"16-bit partial", "82 7e 00", 0, error::none, opcode::binary, true, false, 0},
    {"64-bit 65536", "82 7f 0000000000010000", 10, error::none, opcode::binary, true, false, 65536},
    {"64-bit masked", "82 ff 0000000100000000 01020304", 14, error::none, opcode::binary, true,
     true, 0x100000000ULL},
    {"64-bit max", "82 7f 7fffffffffffffff", 10, error::none, opcode::binary, true, false,
     0x7fffffffffffffffULL},
    {"64-bit partial", "82 7f 00000000000100", 0, error::none, opcode::binary, true, false, 0},
    {"ping 125", "89 7d", 2, error::none, opcode::ping, true, false, 125},
    {"pong empty", "8a 00", 2, error::none, opcode::pong, true, false, 0},
    {"close 2", "88 02", 2, error::none, opcode::close, true, false, 2},
    // Errors (RFC 6455 §5.2, §5.5), each reported from the first two bytes where possible.
    {"opcode 3", "83 00", 0, error::reserved_opcode, opcode::text, true, false, 0},
    {"opcode 7", "87 00", 0, error::reserved_opcode, opcode::text, true, false, 0},
    {"opcode 11", "8b 00", 0, error::reserved_opcode, opcode::text, true, false, 0},
    {"opcode 15", "8f 00", 0, error::reserved_opcode, opcode::text, true, false, 0},
    {"ping without fin", "09 00", 0, error::fragmented_control_frame, opcode::text, true, false, 0},
    {"close without fin", "08 02", 0, error::fragmented_control_frame, opcode::text, true, false,
     0},
    {"ping 126", "89 7e", 0, error::control_frame_too_large, opcode::text, true, false, 0},
    {"pong 64-bit", "8a 7f", 0, error::control_frame_too_large, opcode::text, true, false, 0},
    {"64-bit msb", "82 7f 8000000000000000", 0, error::length_msb_set, opcode::text, true, false,
     0},
    {"64-bit msb big", "82 7f ffffffffffffffff", 0, error::length_msb_set, opcode::text, true,
     false, 0},
    {"16-bit for 125", "82 7e 007d", 0, error::non_minimal_length, opcode::text, true, false, 0},
    {"16-bit for 0", "82 7e 0000", 0, error::non_minimal_length, opcode::text, true, false, 0},
    {"64-bit for 65535", "82 7f 000000000000ffff", 0, error::non_minimal_length, opcode::text, true,
     false, 0},
    {"64-bit for 1", "82 7f 0000000000000001", 0, error::non_minimal_length, opcode::text, true,
     false, 0},
};

TEST(frame, decode_table) {
  for (const auto& c : k_decode_cases) {
    SCOPED_TRACE(c.name);
    frame_header h;
    const decode_result r = decode(from_hex(c.hex), h);
    EXPECT_EQ(r.err, c.err);
    EXPECT_EQ(r.consumed, c.consumed);
    if (r.consumed == 0) continue;
    EXPECT_EQ(h.op, c.op);
    EXPECT_EQ(h.fin, c.fin);
    EXPECT_EQ(h.masked, c.masked);
    EXPECT_EQ(h.length, c.length);
    EXPECT_EQ(r.consumed, frame_header_size(h.length, h.masked));
  }
}

TEST(frame, rsv_bits_and_key_are_decoded) {
  frame_header h;
  const decode_result r = decode(from_hex("f1 84 a1b2c3d4"), h);
  ASSERT_EQ(r.consumed, 6u);
  EXPECT_TRUE(h.fin && h.rsv1 && h.rsv2 && h.rsv3);
  EXPECT_EQ(h.key, (mask_key{0xa1, 0xb2, 0xc3, 0xd4}));
  EXPECT_EQ(h.length, 4u);
}

TEST(frame, every_prefix_of_a_valid_header_needs_more) {
  for (const char* hex :
       {"81 85 37fa213d", "82 fe 1000 01020304", "82 ff 0000000000010000 05060708"}) {
    const std::string bytes = from_hex(hex);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      frame_header h;
      const decode_result r = decode_frame_header(bytes.data(), n, h);
      EXPECT_EQ(r.consumed, 0u) << hex << " prefix " << n;
      EXPECT_EQ(r.err, error::none) << hex << " prefix " << n;
    }
  }
}

TEST(frame, bytes_after_the_header_are_not_consumed) {
  frame_header h;
  const decode_result r = decode(from_hex("81 05 48656c6c6f"), h);
  EXPECT_EQ(r.consumed, 2u);
}

TEST(frame, opcode_classes) {
  for (unsigned v = 0; v < 16; ++v) {
    const bool defined = v == 0 || v == 1 || v == 2 || v == 8 || v == 9 || v == 10;
    EXPECT_EQ(is_defined_opcode(static_cast<std::uint8_t>(v)), defined) << v;
    if (!defined) continue;
    const auto op = static_cast<opcode>(v);
    EXPECT_EQ(is_control(op), v >= 8) << v;
    EXPECT_EQ(is_data(op), v < 8) << v;
  }
}

TEST(frame, header_size) {
  EXPECT_EQ(frame_header_size(0, false), 2u);
  EXPECT_EQ(frame_header_size(125, false), 2u);
  EXPECT_EQ(frame_header_size(126, false), 4u);
  EXPECT_EQ(frame_header_size(65535, true), 8u);
  EXPECT_EQ(frame_header_size(65536, false), 10u);
  EXPECT_EQ(frame_header_size(65536, true), k_max_frame_header_size);
}

TEST(frame, encode_known_bytes) {
  char out[k_max_frame_header_size];
  frame_header h;
  h.op = opcode::text;
  h.length = 5;
  ASSERT_EQ(encode_frame_header(h, out), 2u);
  EXPECT_EQ(std::string(out, 2), from_hex("81 05"));

  h.op = opcode::binary;
  h.length = 256;
  ASSERT_EQ(encode_frame_header(h, out), 4u);
  EXPECT_EQ(std::string(out, 4), from_hex("82 7e 0100"));

  h.length = 65536;
  ASSERT_EQ(encode_frame_header(h, out), 10u);
  EXPECT_EQ(std::string(out, 10), from_hex("82 7f 0000000000010000"));

  h = frame_header{};
  h.op = opcode::pong;
  h.masked = true;
  h.key = {0x37, 0xfa, 0x21, 0x3d};
  h.length = 5;
  ASSERT_EQ(encode_frame_header(h, out), 6u);
  EXPECT_EQ(std::string(out, 6), from_hex("8a 85 37fa213d"));

  h = frame_header{};
  h.fin = false;
  h.rsv1 = true;
  h.op = opcode::continuation;
  ASSERT_EQ(encode_frame_header(h, out), 2u);
  EXPECT_EQ(std::string(out, 2), from_hex("40 00"));
}

TEST(frame, encode_then_decode_round_trips) {
  const std::uint64_t lengths[] = {
      0, 1, 125, 126, 127, 65535, 65536, 0xFFFFFFFFULL, 0x7fffffffffffffffULL};
  const opcode ops[] = {opcode::continuation, opcode::text, opcode::binary};
  for (std::uint64_t length : lengths) {
    for (opcode op : ops) {
      for (int bits = 0; bits < 32; ++bits) {
        frame_header h;
        h.op = op;
        h.length = length;
        h.fin = bits & 1;
        h.rsv1 = bits & 2;
        h.rsv2 = bits & 4;
        h.rsv3 = bits & 8;
        h.masked = bits & 16;
        if (h.masked) h.key = {static_cast<std::uint8_t>(bits), 2, 0xff, 0x80};
        char out[k_max_frame_header_size];
        const std::size_t n = encode_frame_header(h, out);
        ASSERT_EQ(n, frame_header_size(length, h.masked));
        frame_header back;
        const decode_result r = decode_frame_header(out, n, back);
        ASSERT_EQ(r.err, error::none) << length;
        ASSERT_EQ(r.consumed, n);
        EXPECT_EQ(back.fin, h.fin);
        EXPECT_EQ(back.rsv1, h.rsv1);
        EXPECT_EQ(back.rsv2, h.rsv2);
        EXPECT_EQ(back.rsv3, h.rsv3);
        EXPECT_EQ(back.op, h.op);
        EXPECT_EQ(back.masked, h.masked);
        EXPECT_EQ(back.length, h.length);
        if (h.masked) {
          EXPECT_EQ(back.key, h.key);
        }
      }
    }
  }
}

TEST(frame, decode_errors_map_to_protocol_error) {
  for (error e :
       {error::reserved_opcode, error::fragmented_control_frame, error::control_frame_too_large,
        error::length_msb_set, error::non_minimal_length}) {
    EXPECT_EQ(close_code_for(e), close_code::protocol_error) << describe(e);
  }
}

}  // namespace
}  // namespace switchboard::protocol
