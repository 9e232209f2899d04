// Tests for read_small_frame (small_frame.hpp): the frames it takes (whole,
// unfragmented, 7-bit length, masked as the role requires, text or binary),
// everything it leaves untouched for message_reader's general path, the size
// limit, UTF-8 of text, and several frames read one after the other.
#include "switchboard/protocol/small_frame.hpp"

#include <gtest/gtest.h>

#include <string>

#include "frame_builder.hpp"

namespace switchboard::protocol {
namespace {

using test::frame;

constexpr std::uint8_t k_server = 0x80;  // frames must be masked
constexpr std::uint8_t k_client = 0;     // frames must not be

struct result {
  small_frame found = small_frame::none;
  opcode op = opcode::continuation;
  std::string payload;
  std::size_t left = 0;  // input bytes not consumed
};

result read(std::string& wire, std::uint8_t mask_bit = k_server, std::size_t limit = 125) {
  std::span<char> input(wire.data(), wire.size());
  result r;
  std::string_view payload;
  r.found = read_small_frame(input, mask_bit, limit, r.op, payload);
  r.payload = std::string(payload);
  r.left = input.size();
  if (r.found != small_frame::none) {
    // The payload is a view into the input's buffer.
    EXPECT_TRUE(payload.empty() || (payload.data() >= wire.data() &&
                                    payload.data() + payload.size() <= wire.data() + wire.size()));
  }
  return r;
}

TEST(small_frame, reads_masked_text_and_binary_messages) {
  std::string text = frame(opcode::text, "hello");
  const result t = read(text);
  EXPECT_EQ(t.found, small_frame::message);
  EXPECT_EQ(t.op, opcode::text);
  EXPECT_EQ(t.payload, "hello");
  EXPECT_EQ(t.left, 0u);

  std::string binary = frame(opcode::binary, std::string("\x00\xff\x10", 3));
  const result b = read(binary);
  EXPECT_EQ(b.found, small_frame::message);
  EXPECT_EQ(b.op, opcode::binary);
  EXPECT_EQ(b.payload, std::string("\x00\xff\x10", 3));

  std::string empty = frame(opcode::binary, "");
  const result e = read(empty);
  EXPECT_EQ(e.found, small_frame::message);
  EXPECT_EQ(e.payload, "");
}

TEST(small_frame, a_client_reads_unmasked_frames) {
  std::string wire = frame(opcode::text, "plain", true, false);
  const result r = read(wire, k_client);
  EXPECT_EQ(r.found, small_frame::message);
  EXPECT_EQ(r.payload, "plain");
  std::string masked = frame(opcode::text, "plain");
  EXPECT_EQ(read(masked, k_client).found, small_frame::none);
}

TEST(small_frame, leaves_every_other_frame_untouched) {
  const std::string cases[] = {
      frame(opcode::text, "x", false),                // not final: a fragment
      frame(opcode::continuation, "x"),               // a continuation
      frame(opcode::ping, "x"),                       // control frames
      frame(opcode::pong, "x"),
      frame(opcode::close, ""),
      frame(opcode::text, "x", true, true, 4),        // RSV1 (compressed)
      frame(opcode::binary, "x", true, true, 2),      // RSV2
      frame(opcode::binary, "x", true, true, 1),      // RSV3
      frame(opcode::text, "x", true, false),          // unmasked, to a server
      frame(opcode::binary, std::string(126, 'a')),   // a 16-bit length
      frame(opcode::binary, std::string(70000, 'a')), // a 64-bit length
      frame(static_cast<opcode>(0x3), "x"),           // reserved opcodes
      frame(static_cast<opcode>(0xB), "x"),
  };
  for (const std::string& c : cases) {
    std::string wire = c;
    const result r = read(wire);
    EXPECT_EQ(r.found, small_frame::none) << "first byte " << int(static_cast<unsigned char>(c[0]));
    EXPECT_EQ(r.left, c.size());
    EXPECT_EQ(wire, c) << "the input was modified";
  }
}

TEST(small_frame, takes_only_a_frame_wholly_in_the_input) {
  const std::string whole = frame(opcode::binary, "0123456789");
  for (std::size_t n = 0; n < whole.size(); ++n) {
    std::string part = whole.substr(0, n);
    const result r = read(part);
    EXPECT_EQ(r.found, small_frame::none) << n << " bytes";
    EXPECT_EQ(r.left, n);
    EXPECT_EQ(part, whole.substr(0, n));
  }
}

TEST(small_frame, a_frame_over_the_limit_is_left_for_the_general_path) {
  std::string wire = frame(opcode::binary, std::string(11, 'a'));
  EXPECT_EQ(read(wire, k_server, 10).found, small_frame::none);
  EXPECT_EQ(read(wire, k_server, 11).found, small_frame::message);
  std::string largest = frame(opcode::binary, std::string(125, 'b'));
  EXPECT_EQ(read(largest).found, small_frame::message);
}

TEST(small_frame, text_that_is_not_utf8_consumes_only_the_header) {
  std::string wire = frame(opcode::text, "ab\xff");
  const result r = read(wire);
  EXPECT_EQ(r.found, small_frame::invalid_utf8);
  EXPECT_EQ(r.left, 3u);  // the payload stays, as the general path leaves it
  std::string binary = frame(opcode::binary, "ab\xff");
  EXPECT_EQ(read(binary).found, small_frame::message);  // binary is any bytes
}

TEST(small_frame, reads_frames_one_after_the_other) {
  std::string wire = frame(opcode::text, "one") + frame(opcode::binary, "two") +
                     frame(opcode::ping, "p") + frame(opcode::text, "three");
  std::span<char> input(wire.data(), wire.size());
  opcode op{};
  std::string_view payload;
  ASSERT_EQ(read_small_frame(input, k_server, 125, op, payload), small_frame::message);
  EXPECT_EQ(payload, "one");
  ASSERT_EQ(read_small_frame(input, k_server, 125, op, payload), small_frame::message);
  EXPECT_EQ(payload, "two");
  EXPECT_EQ(op, opcode::binary);
  // The ping is not for this function: it stops there, the rest untouched.
  const std::size_t left = input.size();
  EXPECT_EQ(read_small_frame(input, k_server, 125, op, payload), small_frame::none);
  EXPECT_EQ(input.size(), left);
  EXPECT_EQ(left, frame(opcode::ping, "p").size() + frame(opcode::text, "three").size());
}

}  // namespace
}  // namespace switchboard::protocol
