// Wire vectors: data files in tests/vectors/*.vec (the RFC 6455 §5.7
// examples and a few rejections), each read by message_reader whole, one
// byte at a time, and in fixed odd-sized chunks.
//
// File format, one directive per line ('#' starts a comment line):
//   name <text>                  what the vector shows
//   role server|client           the READER's role (server reads masked frames)
//   max_message_size <n>         optional reader limit
//   hex <bytes>                  wire bytes in hex, spaces ignored; repeatable
//   pattern <n>                  append n bytes 00 01 02 .. ff 00 ..
//   expect message text|binary <payload>
//   expect ping|pong <payload>
//   expect close <code> <payload>
//   expect error <error name> <close code>
// <payload> is "ascii text" (no escapes), hex:<bytes>, pattern:<n> or empty.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "switchboard/protocol/message_reader.hpp"

namespace switchboard::protocol {
namespace {

struct expected {
  event_kind kind;
  opcode op = opcode::continuation;
  std::uint16_t code = 0;
  error err = error::none;
  std::string payload;
  friend bool operator==(const expected&, const expected&) = default;
};

std::ostream& operator<<(std::ostream& os, const expected& e) {
  return os << "{kind " << int(e.kind) << " op " << int(e.op) << " code " << e.code << " err "
            << describe(e.err) << " payload " << testing::PrintToString(e.payload) << "}";
}

struct vector_file {
  std::string path;
  std::string name;
  reader_options options;
  std::string wire;
  std::vector<expected> events;
};

std::string hex_bytes(std::string_view hex) {
  std::string out;
  int high = -1;
  for (char c : hex) {
    if (c == ' ') continue;
    const int v = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
    if (v < 0 || v > 15) ADD_FAILURE() << "bad hex digit " << c;
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<char>(high * 16 + v));
      high = -1;
    }
  }
  if (high >= 0) ADD_FAILURE() << "odd number of hex digits";
  return out;
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i & 0xFF);
  return s;
}

std::string payload_of(std::string spec) {
  if (spec == "empty") return {};
  if (spec.size() >= 2 && spec.front() == '"' && spec.back() == '"') {
    return spec.substr(1, spec.size() - 2);
  }
  if (spec.rfind("hex:", 0) == 0) return hex_bytes(spec.substr(4));
  if (spec.rfind("pattern:", 0) == 0) return pattern(std::stoul(spec.substr(8)));
  ADD_FAILURE() << "bad payload spec " << spec;
  return {};
}

error error_named(const std::string& name) {
  static const std::map<std::string, error> k_names = {
      {"reserved_opcode", error::reserved_opcode},
      {"reserved_bits", error::reserved_bits},
      {"control_frame_too_large", error::control_frame_too_large},
      {"fragmented_control_frame", error::fragmented_control_frame},
      {"length_msb_set", error::length_msb_set},
      {"non_minimal_length", error::non_minimal_length},
      {"unmasked_frame", error::unmasked_frame},
      {"masked_frame", error::masked_frame},
      {"unexpected_continuation", error::unexpected_continuation},
      {"expected_continuation", error::expected_continuation},
      {"message_too_big", error::message_too_big},
      {"invalid_utf8", error::invalid_utf8},
      {"close_payload_one_byte", error::close_payload_one_byte},
      {"bad_close_code", error::bad_close_code},
      {"close_reason_invalid_utf8", error::close_reason_invalid_utf8},
      {"data_after_close", error::data_after_close},
      {"rsv1_on_continuation", error::rsv1_on_continuation},
      {"rsv1_on_control", error::rsv1_on_control},
  };
  const auto it = k_names.find(name);
  if (it == k_names.end()) ADD_FAILURE() << "unknown error name " << name;
  return it == k_names.end() ? error::none : it->second;
}

expected parse_expect(std::istringstream& line) {
  std::string kind;
  line >> kind;
  std::string rest;
  expected e{event_kind::need_more, opcode::continuation, 0, error::none, {}};
  if (kind == "message") {
    std::string op;
    line >> op;
    e.kind = event_kind::message;
    e.op = op == "text" ? opcode::text : opcode::binary;
  } else if (kind == "ping" || kind == "pong") {
    e.kind = kind == "ping" ? event_kind::ping : event_kind::pong;
  } else if (kind == "close") {
    e.kind = event_kind::close;
    line >> e.code;
  } else if (kind == "error") {
    std::string name;
    line >> name >> e.code;
    e.kind = event_kind::error;
    e.err = error_named(name);
    EXPECT_EQ(to_underlying(close_code_for(e.err)), e.code) << name;
    e.code = 0;
    return e;
  } else {
    ADD_FAILURE() << "unknown expectation " << kind;
  }
  std::getline(line >> std::ws, rest);
  e.payload = payload_of(rest);
  return e;
}

vector_file load(const std::filesystem::path& path) {
  vector_file v;
  v.path = path.string();
  std::ifstream in(path);
  std::string text;
  while (std::getline(in, text)) {
    if (text.empty() || text[0] == '#') continue;
    std::istringstream line(text);
    std::string directive;
    line >> directive;
    if (directive == "name") {
      std::getline(line >> std::ws, v.name);
    } else if (directive == "role") {
      std::string r;
      line >> r;
      v.options.role = r == "client" ? role::client : role::server;
    } else if (directive == "max_message_size") {
      line >> v.options.max_message_size;
    } else if (directive == "hex") {
      std::string rest;
      std::getline(line, rest);
      v.wire += hex_bytes(rest);
    } else if (directive == "pattern") {
      std::size_t n = 0;
      line >> n;
      v.wire += pattern(n);
    } else if (directive == "expect") {
      v.events.push_back(parse_expect(line));
    } else {
      ADD_FAILURE() << v.path << ": unknown directive " << directive;
    }
  }
  return v;
}

std::vector<expected> read(const vector_file& v, std::size_t chunk) {
  message_reader reader(v.options);
  std::vector<expected> got;
  for (std::size_t pos = 0; pos < v.wire.size(); pos += chunk) {
    std::vector<char> buf(v.wire.begin() + pos,
                          v.wire.begin() + std::min(v.wire.size(), pos + chunk));
    std::span<char> input(buf);
    for (;;) {
      const reader_event ev = reader.next(input);
      if (ev.kind == event_kind::need_more) break;
      got.push_back({ev.kind, ev.op, ev.code, ev.err, std::string(ev.payload)});
      if (ev.kind == event_kind::error) return got;
    }
  }
  return got;
}

std::vector<vector_file> all_vectors() {
  std::vector<vector_file> out;
  for (const auto& entry : std::filesystem::directory_iterator(SWITCHBOARD_VECTORS_DIR)) {
    if (entry.path().extension() == ".vec") out.push_back(load(entry.path()));
  }
  return out;
}

TEST(vectors, files_are_present) {
  const std::vector<vector_file> files = all_vectors();
  EXPECT_GE(files.size(), 7u);
  int rfc = 0;
  for (const vector_file& v : files) rfc += v.name.rfind("rfc6455 5.7", 0) == 0;
  EXPECT_EQ(rfc, 7) << "one file per RFC 6455 section 5.7 example";
}

TEST(vectors, every_file_gives_its_events_for_every_chunking) {
  for (const vector_file& v : all_vectors()) {
    SCOPED_TRACE(v.path);
    EXPECT_FALSE(v.name.empty());
    EXPECT_FALSE(v.events.empty());
    for (std::size_t chunk :
         {v.wire.size() + 1, std::size_t{1}, std::size_t{2}, std::size_t{5}, std::size_t{131}}) {
      EXPECT_EQ(read(v, chunk), v.events) << v.name << ", chunk " << chunk;
    }
  }
}

}  // namespace
}  // namespace switchboard::protocol
