// command.hpp — private: the switchboard.v1 command parser. One text message
// from /ws becomes a `command`; what the service does with it is service.cpp's.
// Pure: no I/O, no state beyond the caller's simdjson parser.
//
// Two kinds of failure, as docs/protocol.md ("Commands and replies", "Errors")
// describes them on the wire:
//  - the message as a whole is unusable (not one JSON object, a bad `id`, no
//    `cmd`): parse_command() returns the failure; the reply carries the `id`
//    when it was read (`out.id` is set before `cmd` is checked);
//  - one optional field is malformed (`since`, `limit`, `info`): that is an
//    error only for a command that reads the field, and only after the checks
//    that come first for it (authentication, rate limit, channel), so the
//    parser records it in the field's `*_error` and the command reports it at
//    that point.
//
// Lifetime: the string_views of a command (`cmd`, `channel`, `token`) point
// into the document of the parser passed to parse_command() (simdjson keeps
// unescaped strings there, so they are not always substrings of the payload).
// They are valid until that parser parses again or is destroyed. `id`, `data`,
// `info` and `since` are owned copies.
//
// Thread-safety: parse_command() uses only its arguments; one parser per
// thread.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace switchboard::realtime::detail {

// A command's failure: the protocol's numeric code and a message.
struct failure {
  int code;
  std::string message;

  friend bool operator==(const failure&, const failure&) = default;
};

// The `since` of subscribe and history.
struct stream_position {
  std::string epoch;
  std::uint64_t offset = 0;

  friend bool operator==(const stream_position&, const stream_position&) = default;
};

// One command, its fields as the wire carried them. A key may appear once:
// parse_command() refuses duplicates (simdjson's DOM keeps them and its
// lookup would take the first, so `"cmd":"ping","cmd":"publish"` would run
// ping while a proxy that keeps the last one saw a publish).
struct command {
  std::string id;                        // minified JSON number or string; empty if absent
  std::string_view cmd;                  // any string, "" included; set when parse_command succeeds
  std::string_view channel;              // set when has_channel
  bool has_channel = false;              // "channel" is present and a string
  std::optional<stream_position> since;  // a well-formed "since"
  std::optional<failure> since_error;    // "since" present but malformed (400)
  std::string data;                      // minified; set when has_data
  bool has_data = false;                 // "data" is present (any JSON value, null included)
  std::optional<std::uint64_t> limit;    // "limit" present, an unsigned integer > 0
  std::optional<failure> limit_error;    // "limit" present but not that (400)
  std::string_view token;                // set when has_token
  bool has_token = false;                // "token" is present and a string (else: anonymous)
  std::string info;                      // minified object; set when has_info
  bool has_info = false;                 // "info" is present and an object
  std::optional<failure> info_error;     // "info" present but not an object (400)
  std::string cursor;                    // "cursor" of presence: where the next page starts
  std::optional<failure> cursor_error;   // "cursor" present but not a string of <= 128 bytes
  std::string_view method;               // rpc: set when has_method
  bool has_method = false;               // "method" is present and a string
};

// Parses one text message into `out` (reset first). Returns nullopt, or the
// 400 failure for a message that is not one JSON object, an `id` that is not
// a number or a string, a key that appears twice (duplicate_key, naming it),
// or a missing (or non-string) `cmd`. On failure, `out`
// holds what was read before it (the `id`, for the reply).
std::optional<failure> parse_command(simdjson::dom::parser& parser, std::string_view payload,
                                     command& out);

// The first key of `obj` that appears again in it, or nullopt. O(n log n).
std::optional<std::string_view> find_duplicate_key(simdjson::dom::object obj);

// Reads the fields other than `id` and `cmd` from `obj` into `out` (the part
// of parse_command() that the HTTP API's body shares). Never fails: malformed
// fields are recorded as above.
void read_command_fields(simdjson::dom::object obj, command& out);

}  // namespace switchboard::realtime::detail
