// sse_wire.hpp — private: the bytes of a text/event-stream (the HTML
// standard's Server-Sent Events format) that the HTTP transports write.
// Our data is JSON on one line (every message is built by wire.hpp or
// minified by simdjson), so one `data:` line carries it; a stray line break
// would still be split into `data:` lines, which a client joins back with
// '\n'.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace switchboard::realtime::detail {

// Appends "event: EVENT\n" (if any), "id: ID\n" (if any), "data: …\n" and the
// blank line that dispatches the event.
inline void append_sse_event(std::string& out, std::string_view event, std::string_view id,
                             std::string_view data) {
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
  for (char c : data) {
    if (c == '\n' || c == '\r') {
      out.append("\ndata: ");
    } else {
      out.push_back(c);
    }
  }
  out.append("\n\n");
}

// The heartbeat: a comment line, which EventSource ignores.
inline constexpr std::string_view k_sse_heartbeat = ": hb\n\n";

}  // namespace switchboard::realtime::detail
