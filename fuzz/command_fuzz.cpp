// Fuzzes the switchboard.v1 command parser (src/realtime/command.hpp) with
// arbitrary text messages. The input is the payload, as on_message gets it.
// Invariants, checked with __builtin_trap():
//  - a failure is one of the four message-level 400s, and `cmd` is unset;
//  - on success: `id`, if any, re-parses as one JSON number or string;
//    `data` as one JSON value; `info` as one JSON object; `channel` and `cmd`,
//    written as JSON strings, re-parse to themselves (and are substrings of
//    the payload when it has no escapes); at most one of a field and its error;
//  - round trip: the payload re-serialised by simdjson (minified) parses to
//    the same command, or to the same failure.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "command.hpp"
#include "json.hpp"

namespace {

using namespace switchboard::realtime::detail;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// One JSON text, re-parsed with a parser of its own.
bool reparses(std::string_view json, simdjson::dom::element_type& type) {
  static simdjson::dom::parser parser;
  simdjson::dom::element e;
  if (parser.parse(json.data(), json.size()).get(e)) return false;
  type = e.type();
  return true;
}

// `s` written as a JSON string and read back is `s`.
void check_string_round_trip(std::string_view s) {
  static simdjson::dom::parser parser;
  std::string json;
  append_json_string(json, s);
  std::string_view back;
  check(!parser.parse(json).get(back) && back == s);
}

bool same(const command& a, const command& b) {
  return a.id == b.id && a.cmd == b.cmd && a.has_channel == b.has_channel &&
         a.channel == b.channel && a.since == b.since && a.since_error == b.since_error &&
         a.has_data == b.has_data && a.data == b.data && a.limit == b.limit &&
         a.limit_error == b.limit_error && a.has_token == b.has_token && a.token == b.token &&
         a.has_info == b.has_info && a.info == b.info && a.info_error == b.info_error;
}

bool is_message_failure(const failure& f) {
  return f.code == 400 && (f.message == "bad request: a command is one JSON object" ||
                           f.message == "bad request: id must be a number or a string" ||
                           f.message == "bad request: no cmd" ||
                           f.message.starts_with("bad request: duplicate key: "));
}

void check_command(const command& c, std::string_view payload) {
  using simdjson::dom::element_type;
  element_type type{};
  if (!c.id.empty()) {
    check(reparses(c.id, type));
    check(type == element_type::STRING || type == element_type::INT64 ||
          type == element_type::UINT64 || type == element_type::DOUBLE);
  }
  check_string_round_trip(c.cmd);
  const bool escapes = payload.find('\\') != std::string_view::npos;
  if (!escapes) check(payload.find(c.cmd) != std::string_view::npos);
  if (c.has_channel) {
    check_string_round_trip(c.channel);
    if (!escapes) check(payload.find(c.channel) != std::string_view::npos);
  } else {
    check(c.channel.empty());
  }
  if (c.has_token) check_string_round_trip(c.token);
  if (c.has_data) {
    check(reparses(c.data, type));
  } else {
    check(c.data.empty());
  }
  check(!(c.has_info && c.info_error));
  if (c.has_info) {
    check(reparses(c.info, type) && type == element_type::OBJECT);
  } else {
    check(c.info.empty());
  }
  check(!(c.since && c.since_error));
  check(!(c.limit && c.limit_error));
  if (c.limit) check(*c.limit > 0);
  for (const auto* e : {&c.since_error, &c.limit_error, &c.info_error})
    if (*e) check(e->value().code == 400 && !e->value().message.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  static simdjson::dom::parser parser;
  command c;
  const auto fail = parse_command(parser, payload, c);
  if (fail) {
    check(is_message_failure(*fail) && c.cmd.empty());
    // The id is read before cmd and before the duplicate check.
    if (fail->message != "bad request: no cmd" &&
        !fail->message.starts_with("bad request: duplicate key: ")) {
      check(c.id.empty());
    }
  } else {
    check_command(c, payload);
  }

  // Round trip through simdjson's own re-serialisation of the document.
  static simdjson::dom::parser whole;
  simdjson::dom::element root;
  if (whole.parse(payload.data(), payload.size()).get(root)) {
    check(fail && fail->message == "bad request: a command is one JSON object");
    return 0;
  }
  const std::string minified = simdjson::minify(root);
  static simdjson::dom::parser again_parser;
  command again;
  const auto again_fail = parse_command(again_parser, minified, again);
  check(fail.has_value() == again_fail.has_value());
  if (fail) {
    check(*fail == *again_fail && c.id == again.id);
  } else {
    check(same(c, again));
  }
  return 0;
}
