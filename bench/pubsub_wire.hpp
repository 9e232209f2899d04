// pubsub_wire.hpp — the few switchboard.v1 messages that switchboard_fanout
// sends, as the two fan-out bench servers (switchboard_topic_server on the
// server layer, switchboard_raw_echo --fanout on the bare loop) understand
// them: no JSON parser, only the fixed shapes the load generator writes.
//
//   {"id":N,"cmd":"subscribe","channel":"C"}   → subscribe; reply {"id":N,"result":{}}
//   {"cmd":"publish","channel":"C",REST        → push {"push":"message","channel":"C",REST
//                                                to every subscriber of C; reply {"result":{}}
//
// Anything else is answered {"error":{"code":400,"message":"unknown command"}}.
// A benchmark tool, not a protocol implementation: `switchboard serve` is that.
//
// Thread-safety: plain functions.
#pragma once

#include <string>
#include <string_view>

namespace switchboard::bench::pubsub {

inline constexpr std::string_view k_subprotocol = "switchboard.v1";

enum class command_kind { subscribe, publish, unknown };

struct command {
  command_kind kind = command_kind::unknown;
  std::string_view id;       // subscribe: the digits of "id"
  std::string_view channel;  // subscribe, publish
  std::string_view rest;     // publish: everything after the channel's closing quote
};

inline command parse_command(std::string_view text) {
  command c;
  constexpr std::string_view id_key = "{\"id\":";
  constexpr std::string_view cmd_key = "\"cmd\":\"";
  constexpr std::string_view channel_key = "\"channel\":\"";
  if (text.starts_with(id_key)) {
    const std::size_t end = text.find(',', id_key.size());
    if (end == std::string_view::npos) return c;
    c.id = text.substr(id_key.size(), end - id_key.size());
    if (c.id.empty() || c.id.find_first_not_of("0123456789") != std::string_view::npos) return c;
  }
  const std::size_t cmd = text.find(cmd_key);
  if (cmd == std::string_view::npos) return c;
  const std::string_view name = text.substr(cmd + cmd_key.size());
  const std::size_t at = text.find(channel_key, cmd);
  if (at == std::string_view::npos) return c;
  const std::size_t first = at + channel_key.size();
  const std::size_t last = text.find('"', first);
  if (last == std::string_view::npos || last == first) return c;
  c.channel = text.substr(first, last - first);
  c.rest = text.substr(last + 1);
  if (name.starts_with("subscribe\"") && !c.id.empty()) {
    c.kind = command_kind::subscribe;
  } else if (name.starts_with("publish\"")) {
    c.kind = command_kind::publish;
  }
  return c;
}

// What a publish pushes to the channel's subscribers.
inline void append_push(std::string& out, const command& c) {
  out.append("{\"push\":\"message\",\"channel\":\"");
  out.append(c.channel);
  out.push_back('"');
  out.append(c.rest);
}

// The reply to `c`.
inline void append_reply(std::string& out, const command& c) {
  switch (c.kind) {
    case command_kind::subscribe:
      out.append("{\"id\":");
      out.append(c.id);
      out.append(",\"result\":{}}");
      return;
    case command_kind::publish:
      out.append("{\"result\":{}}");
      return;
    case command_kind::unknown:
      out.append("{\"error\":{\"code\":400,\"message\":\"unknown command\"}}");
      return;
  }
}

}  // namespace switchboard::bench::pubsub
