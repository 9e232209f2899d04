// event_id.hpp — private: the parsers and encoders of the HTTP transports'
// request parameters (docs/protocol.md, "HTTP transports"):
//
//  - the query string of GET /sse (channel=, last_event_id=, token=) and of
//    the session routes (after=, last_event_id=), form-decoded strictly;
//  - the /sse event id: the stream position of every channel of a stream,
//    "EPOCH:OFFSET" per channel ("-" for none) joined by ',', in the order of
//    the query's channels;
//  - a session event id / poll cursor: a decimal sequence number.
//
// Everything here is pure (no I/O, no state) and fuzzed by
// fuzz/event_id_fuzz.cpp. Every function is total: bad input gives nullopt or
// an error line, never a crash.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "command.hpp"

namespace switchboard::realtime::detail {

// Longest epoch an id may carry (ours are 16 hex digits; Redis' a few more).
inline constexpr std::size_t k_max_id_epoch = 64;
// Longest Last-Event-ID accepted (an id of 256 channels fits well within).
inline constexpr std::size_t k_max_event_id = 32 * 1024;

// The parameters of a transport request's query string.
struct transport_query {
  std::vector<std::string> channels;         // channel=, in order, duplicates dropped
  std::optional<std::string> last_event_id;  // last_event_id=
  std::optional<std::uint64_t> after;        // after= (poll)
};

// Parses `query` (the part after '?', without it). Known names: channel,
// last_event_id, after, token (read by find_token(), skipped here) and
// "_" (a cache-buster some clients add). Returns "" or one line saying what is
// wrong: an unknown parameter, a bad %-escape, a value that is not valid
// UTF-8-free ASCII for its kind, an invalid channel name, more than
// `max_channels` channels, a repeated last_event_id or after.
std::string parse_transport_query(std::string_view query, std::size_t max_channels,
                                  transport_query& out);

// Strict application/x-www-form-urlencoded decoding: "%XX" is a byte, '+' a
// space; a '%' not followed by two hex digits is an error (nullopt).
std::optional<std::string> form_decode_strict(std::string_view in);

// One channel's place in an /sse id: a position, or none yet.
using channel_position = std::optional<stream_position>;

// Appends the /sse id of `positions` to `out`.
void append_sse_id(std::string& out, const std::vector<channel_position>& positions);

// Parses an /sse id of exactly `channels` entries into `out`. Returns "" or
// why it was refused (wrong count, a malformed entry, an epoch that is empty,
// too long or not [A-Za-z0-9_-], an offset that is not a decimal number of
// at most 20 digits that fits 64 bits).
std::string parse_sse_id(std::string_view id, std::size_t channels,
                         std::vector<channel_position>& out);

// A decimal sequence number of 1 to 20 digits that fits 64 bits; nullopt
// otherwise (a sign, spaces, hex, empty).
std::optional<std::uint64_t> parse_seq(std::string_view text) noexcept;

}  // namespace switchboard::realtime::detail
