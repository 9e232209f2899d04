// command_batch.hpp — private: the body of POST /rt/session/<id>/send, one
// switchboard.v1 command per line (newline-delimited JSON), split into the
// lines that are run as /ws messages (docs/protocol.md, "HTTP sessions").
//
// Rules: lines end at '\n'; one '\r' before it is dropped (CRLF senders); a
// line of only spaces, tabs and '\r' is skipped, so a final newline or a
// blank line between commands costs nothing; a line longer than `max_line`
// bytes is kept but marked `too_large` (its command gets the 400 reply a
// /ws message over limits.max_message_size would get, not a silent drop).
// The lines are not parsed here: each goes to parse_command() as it is.
//
// Pure (no I/O, no state); fuzzed by fuzz/command_batch_fuzz.cpp.
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace switchboard::realtime::detail {

struct batch_line {
  std::string_view text;   // a view into the body; without its line end
  bool too_large = false;  // longer than max_line
};

// Splits `body` into `out` (cleared first). Returns the number of lines.
std::size_t split_command_batch(std::string_view body, std::size_t max_line,
                                std::vector<batch_line>& out);

}  // namespace switchboard::realtime::detail
