// sse_wire.hpp — private: the bytes of a text/event-stream (the HTML
// standard's Server-Sent Events format) that the HTTP transports write.
// Our data is JSON on one line (every message is built by wire.hpp or
// minified by simdjson), so one `data:` line carries it; a stray line break
// would still be split into `data:` lines, which a client joins back with
// '\n'.
//
// Thread-safety: pure functions.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "json.hpp"

namespace switchboard::realtime::detail {

// Appends "event: EVENT\n" (if any), "id: ID\n" (if any), "data: …\n" and the
// blank line that dispatches the event.
inline void append_sse_event(std::string& out, std::string_view event, std::string_view id,
                             std::string_view data) {
  out.reserve(out.size() + event.size() + id.size() + data.size() + 24);
  if (!event.empty()) {
    out.append("event: ");
    out.append(event);
    out.push_back('\n');
  }
  if (!id.empty()) {
    out.append("id: ");
    out.append(id);
    out.push_back('\n');
  }
  out.append("data: ");
  // Whole runs between line breaks (memchr: the data is one line, in practice).
  for (;;) {
    const void* lf = std::memchr(data.data(), '\n', data.size());
    const void* cr = std::memchr(data.data(), '\r', data.size());
    const char* at = static_cast<const char*>(lf == nullptr ? cr
                                              : cr == nullptr ? lf
                                                              : std::min(lf, cr));
    if (at == nullptr) {
      out.append(data);
      break;
    }
    const std::size_t n = static_cast<std::size_t>(at - data.data());
    out.append(data.substr(0, n));
    out.append("\ndata: ");
    data.remove_prefix(n + 1);
  }
  out.append("\n\n");
}

// The `publication` event of a one-channel stream: id EPOCH:OFFSET (the /sse
// id of one position, event_id.hpp), `push` the full publication push. The
// same bytes for every such stream of the channel (sse_peer.hpp).
inline void append_sse_publication(std::string& out, std::string_view epoch, std::uint64_t offset,
                                   std::string_view push) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, offset).ptr;
  std::string id;
  id.reserve(epoch.size() + 1 + static_cast<std::size_t>(end - digits));
  id.append(epoch);
  id.push_back(':');
  id.append(digits, end);
  append_sse_event(out, "publication", id, push);
}

// Calls f(offset, tail) for each kept publication of a read's list:
// comma-separated {"offset":N,TAIL} objects (wire.hpp append_publication()),
// which the broker built from validated JSON. What both /sse paths replay
// after a recovering subscribe (sse_stream.cpp, sse_peer.cpp).
template <class F>
inline void for_each_publication(std::string_view list, F f) {
  std::size_t i = 0;
  while (i < list.size()) {
    if (list[i] != '{') {
      ++i;  // the ',' between objects
      continue;
    }
    const std::size_t start = i;
    int depth = 0;
    bool in_string = false;
    for (; i < list.size(); ++i) {
      const char c = list[i];
      if (in_string) {
        if (c == '\\') {
          ++i;
        } else if (c == '"') {
          in_string = false;
        }
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) break;
      }
    }
    if (i >= list.size()) return;  // unterminated: not ours
    const std::string_view object = list.substr(start, i - start + 1);
    ++i;
    constexpr std::string_view k_head = "{\"offset\":";
    if (object.substr(0, k_head.size()) != k_head) continue;
    std::size_t p = k_head.size();
    std::uint64_t offset = 0;
    while (p < object.size() && object[p] >= '0' && object[p] <= '9') {
      offset = offset * 10 + static_cast<std::uint64_t>(object[p] - '0');
      ++p;
    }
    if (p >= object.size() || object[p] != ',') continue;
    f(offset, object.substr(p + 1, object.size() - p - 2));
  }
}

// The rest of the subscribe command a /sse stream starts each channel with,
// after its id: `,"cmd":"subscribe","channel":…` and, when the stream
// resumes (Last-Event-ID), `"since"` with that channel's position; then the
// closing brace. Both /sse paths build their commands with it
// (sse_stream.cpp, sse_peer.cpp).
template <class Position>
inline void append_sse_subscribe_tail(std::string& c, std::string_view channel,
                                      const Position& since) {
  c.append(",\"cmd\":\"subscribe\",\"channel\":");
  append_json_string(c, channel);
  if (since) {
    c.append(",\"since\":{\"epoch\":");
    append_json_string(c, since->epoch);
    c.append(",\"offset\":");
    append_uint(c, since->offset);
    c.push_back('}');
  }
  c.push_back('}');
}

// The heartbeat: a comment line, which EventSource ignores.
inline constexpr std::string_view k_sse_heartbeat = ": hb\n\n";

}  // namespace switchboard::realtime::detail
