// Tests for message_writer (RFC 6455 §5.2-5.7): exact bytes for the server
// role (RFC examples), masking with fresh keys for the client role,
// fragmentation, control frames, close payloads and reason truncation.
#include "switchboard/protocol/message_writer.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "switchboard/protocol/mask.hpp"

namespace switchboard::protocol {
namespace {

struct parsed_frame {
  frame_header header;
  std::string payload;  // unmasked
};

// Splits written bytes back into frames (decode_frame_header + unmask).
std::vector<parsed_frame> parse(const std::string& wire) {
  std::vector<parsed_frame> out;
  std::size_t pos = 0;
  while (pos < wire.size()) {
    parsed_frame f;
    const decode_result r = decode_frame_header(wire.data() + pos, wire.size() - pos, f.header);
    EXPECT_EQ(r.err, error::none);
    EXPECT_GT(r.consumed, 0u);
    if (r.consumed == 0) break;
    pos += r.consumed;
    f.payload = wire.substr(pos, f.header.length);
    pos += f.header.length;
    if (f.header.masked) apply_mask(f.payload.data(), f.payload.size(), f.header.key);
    out.push_back(f);
  }
  EXPECT_EQ(pos, wire.size());
  return out;
}

TEST(message_writer, server_frames_match_rfc_examples) {
  message_writer w(role::server);
  std::string out;
  w.append_message(out, opcode::text, "Hello");
  EXPECT_EQ(out, std::string("\x81\x05Hello"));

  out.clear();
  w.append_frame(out, opcode::text, "Hel", false);
  w.append_frame(out, opcode::continuation, "lo");
  EXPECT_EQ(out, std::string("\x01\x03Hel\x80\x02lo"));

  out.clear();
  w.append_ping(out, "Hello");
  EXPECT_EQ(out, std::string("\x89\x05Hello"));

  const std::string b256(256, 'z');
  out.clear();
  w.append_message(out, opcode::binary, b256);
  EXPECT_EQ(out, std::string("\x82\x7E\x01\x00", 4) + b256);

  const std::string b64k(65536, 'q');
  out.clear();
  w.append_message(out, opcode::binary, b64k);
  EXPECT_EQ(out, std::string("\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10) + b64k);
}

TEST(message_writer, write_and_append_forms_agree) {
  message_writer w(role::server);
  const std::string payload(300, 'p');
  std::string appended;
  w.append_message(appended, opcode::binary, payload, 100);
  std::string written(message_writer::max_message_wire_size(payload.size(), 100), '\0');
  written.resize(w.write_message(written.data(), opcode::binary, payload, 100));
  EXPECT_EQ(appended, written);
  // append_ keeps what the string already held.
  std::string prefixed = "head";
  w.append_close(prefixed, 1000, "x");
  EXPECT_EQ(prefixed, std::string("head\x88\x03\x03\xE8x", 9));
}

TEST(message_writer, client_masks_every_frame_with_fresh_keys) {
  message_writer w(role::client);
  std::string out;
  for (int i = 0; i < 1000; ++i) w.append_message(out, opcode::text, "same payload");
  w.append_ping(out, "p");
  w.append_close(out, 1001, "gone");
  const std::vector<parsed_frame> frames = parse(out);
  ASSERT_EQ(frames.size(), 1002u);
  std::set<mask_key> keys;
  for (const parsed_frame& f : frames) {
    EXPECT_TRUE(f.header.masked);
    keys.insert(f.header.key);
  }
  // 1002 random 32-bit keys: a repeat is possible but rare; many is a bug.
  EXPECT_GE(keys.size(), 995u);
  EXPECT_EQ(frames[0].payload, "same payload");
  EXPECT_EQ(frames[1000].header.op, opcode::ping);
  EXPECT_EQ(frames[1001].payload, std::string("\x03\xE9gone", 6));
  // The masked bytes on the wire differ from the payload.
  EXPECT_EQ(out.find("same payload"), std::string::npos);
}

TEST(message_writer, server_never_masks) {
  message_writer w(role::server);
  std::string out;
  w.append_message(out, opcode::binary, std::string(70000, 'b'), 30000);
  w.append_pong(out, "x");
  for (const parsed_frame& f : parse(out)) EXPECT_FALSE(f.header.masked);
}

TEST(message_writer, fragmentation) {
  for (role r : {role::server, role::client}) {
    message_writer w(r);
    std::string out;
    w.append_message(out, opcode::text, "0123456789", 3, true);
    const std::vector<parsed_frame> frames = parse(out);
    ASSERT_EQ(frames.size(), 4u);
    const char* pieces[] = {"012", "345", "678", "9"};
    for (std::size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(frames[i].payload, pieces[i]);
      EXPECT_EQ(frames[i].header.op, i == 0 ? opcode::text : opcode::continuation);
      EXPECT_EQ(frames[i].header.fin, i == 3);
      EXPECT_EQ(frames[i].header.rsv1, i == 0);  // RSV1 on the first frame only
    }
  }
  message_writer w(role::server);
  for (std::size_t fragment : {0, 9, 10, 11}) {
    std::string out;
    w.append_message(out, opcode::binary, "abcdefghij", fragment);
    EXPECT_EQ(parse(out).size(), fragment == 9 ? 2u : 1u) << fragment;
  }
  std::string empty;
  w.append_message(empty, opcode::text, "", 4);
  ASSERT_EQ(parse(empty).size(), 1u);
  EXPECT_TRUE(parse(empty)[0].header.fin);
}

TEST(message_writer, sizes_are_upper_bounds) {
  message_writer w(role::client);
  for (std::size_t n : {0, 1, 125, 126, 65535, 65536, 70000}) {
    const std::string payload(n, 'a');
    std::string out(message_writer::max_frame_size(n), '\0');
    const std::size_t written = w.write_frame(out.data(), opcode::binary, payload);
    EXPECT_EQ(written, frame_header_size(n, true) + n);
    EXPECT_LE(written, message_writer::max_frame_size(n));
    for (std::size_t fragment : {0, 1, 100, 65536}) {
      if (fragment == 1 && n > 1000) continue;
      std::string msg(message_writer::max_message_wire_size(n, fragment), '\0');
      EXPECT_LE(w.write_message(msg.data(), opcode::binary, payload, fragment), msg.size());
    }
  }
}

TEST(message_writer, close_payloads) {
  message_writer w(role::server);
  auto close = [&](std::uint16_t code, std::string_view reason) {
    std::string out;
    w.append_close(out, code, reason);
    return out;
  };
  EXPECT_EQ(close(1000, ""), std::string("\x88\x02\x03\xE8", 4));
  EXPECT_EQ(close(4000, "bye"), std::string("\x88\x05\x0F\xA0"
                                            "bye",
                                            7));
  // 1005 (and 0) mean "no status": an empty close payload (RFC 6455 §7.4.1).
  EXPECT_EQ(close(1005, "ignored"), std::string("\x88\x00", 2));
  EXPECT_EQ(close(0, ""), std::string("\x88\x00", 2));
  EXPECT_LE(close(1000, std::string(500, 'r')).size(), message_writer::k_max_close_frame_size);
}

TEST(message_writer, close_reason_is_cut_at_a_code_point_boundary) {
  message_writer w(role::server);
  struct cut_case {
    std::string unit;  // repeated to build a long reason
    std::size_t kept;  // reason bytes that fit in 123 without splitting
  };
  const cut_case cases[] = {{"r", 123},
                            {"\xC3\xA9", 122},
                            {"\xE2\x82\xAC", 123},
                            {"\xF0\x9F\x98\x80", 120},
                            {"ab\xF0\x9F\x98\x80", 122}};
  for (const cut_case& c : cases) {
    std::string reason;
    while (reason.size() < 300) reason += c.unit;
    std::string out;
    w.append_close(out, 1000, reason);
    const std::vector<parsed_frame> frames = parse(out);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].payload.size(), 2 + c.kept) << testing::PrintToString(c.unit);
    EXPECT_EQ(frames[0].payload.substr(2), reason.substr(0, c.kept));
  }
}

TEST(message_writer, ping_and_pong_payloads_are_capped_at_125) {
  message_writer w(role::client);
  std::string out;
  w.append_ping(out, std::string(200, 'x'));
  w.append_pong(out, std::string(125, 'y'));
  w.append_pong(out, "");
  const std::vector<parsed_frame> frames = parse(out);
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].payload, std::string(125, 'x'));
  EXPECT_EQ(frames[1].payload, std::string(125, 'y'));
  EXPECT_EQ(frames[2].payload, "");
  EXPECT_EQ(frames[2].header.op, opcode::pong);
}

TEST(message_writer, write_returns_exact_sizes) {
  message_writer server(role::server);
  message_writer client(role::client);
  char buf[message_writer::k_max_close_frame_size];
  EXPECT_EQ(server.write_ping(buf, "abc"), 5u);
  EXPECT_EQ(client.write_ping(buf, "abc"), 9u);
  EXPECT_EQ(server.write_close(buf, 1000, ""), 4u);
  EXPECT_EQ(client.write_close(buf, 1005, ""), 6u);
  EXPECT_EQ(client.write_close(buf, 1000, std::string(200, 'x')), 131u);
  EXPECT_EQ(server.writer_role(), role::server);
}

}  // namespace
}  // namespace switchboard::protocol
