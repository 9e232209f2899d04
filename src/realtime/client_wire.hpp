// client_wire.hpp — private: the JSON the realtime client writes (commands)
// and reads (replies, pushes) of docs/protocol.md. Reading is done on
// simdjson DOM elements of a message already parsed; a field of the wrong
// type reads as absent, so a server that breaks the protocol produces empty
// values, never a crash.
//
// Thread-safety: plain functions on values; the caller owns the elements.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "json.hpp"
#include "switchboard/realtime/client.hpp"

namespace switchboard::realtime::detail {

// --- writing -------------------------------------------------------------------

// `"channel":"<name>"` (no braces): the start of most command bodies.
inline std::string channel_field(std::string_view channel) {
  std::string out = "\"channel\":";
  append_json_string(out, channel);
  return out;
}

// `,"since":{"epoch":"…","offset":N}`
inline void append_since(std::string& out, const stream_position& since) {
  out.append(",\"since\":{\"epoch\":");
  append_json_string(out, since.epoch);
  out.append(",\"offset\":");
  append_uint(out, since.offset);
  out.push_back('}');
}

// --- reading -------------------------------------------------------------------

inline std::string string_field(simdjson::dom::element object, std::string_view key) {
  std::string_view v;
  if (object[key].get(v)) return {};
  return std::string(v);
}

inline std::uint64_t uint_field(simdjson::dom::element object, std::string_view key) {
  std::uint64_t v = 0;
  if (object[key].get(v)) return 0;
  return v;
}

inline bool bool_field(simdjson::dom::element object, std::string_view key) {
  bool v = false;
  if (object[key].get(v)) return false;
  return v;
}

// The value of `key` as minified JSON, empty when absent.
inline std::string raw_field(simdjson::dom::element object, std::string_view key) {
  simdjson::dom::element v;
  if (object[key].get(v)) return {};
  return simdjson::minify(v);
}

// A publication of a push or of a `publications` array, full or compact
// (docs/protocol.md, "Compact pushes": "o", "d", "c", "u" for offset, data,
// client, user; each field is read under its short key, else its long one);
// `epoch` when the element carries none (array entries and compact pushes
// do not).
inline publication read_publication(simdjson::dom::element e, std::string_view channel,
                                    std::string_view epoch) {
  const auto has = [&](std::string_view key) { return e[key].error() == simdjson::SUCCESS; };
  publication p;
  p.channel = std::string(channel);
  p.epoch = string_field(e, "epoch");
  if (p.epoch.empty()) p.epoch = std::string(epoch);
  p.offset = uint_field(e, has("o") ? "o" : "offset");
  p.data = raw_field(e, has("d") ? "d" : "data");
  p.client = string_field(e, has("c") ? "c" : "client");
  p.user = string_field(e, has("u") ? "u" : "user");
  return p;
}

inline presence_entry read_presence_entry(simdjson::dom::element e) {
  presence_entry out;
  out.client = string_field(e, "client");
  out.user = string_field(e, "user");
  out.info = raw_field(e, "info");
  return out;
}

// {"code":N,"message":"…"} of an error reply; code 500 when it has none.
inline request_error read_error(simdjson::dom::element e) {
  request_error out;
  std::int64_t code = 0;
  out.code = e["code"].get(code) ? 500 : static_cast<int>(code);
  out.message = string_field(e, "message");
  if (out.message.empty()) out.message = "error " + std::to_string(out.code);
  return out;
}

}  // namespace switchboard::realtime::detail
