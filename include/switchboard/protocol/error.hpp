// switchboard/protocol/error.hpp — every error the protocol layer reports.
//
// One enum for the whole layer, so each rejection has one name, one sentence
// saying which rule it enforces, and one place that maps it to what goes on the
// wire: an HTTP status before the upgrade (handshake errors) or a close code
// after it (frame and message errors). See error.cpp for the tables.
//
// Thread-safety: everything here is stateless and safe from any thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <switchboard/protocol/close_code.hpp>
#include <switchboard/protocol/export.hpp>
#include <system_error>

namespace switchboard::protocol {

enum class error : std::uint8_t {
  none = 0,

  // --- HTTP head syntax (RFC 9112) ------------------------------------------
  head_too_large,          // head exceeds the configured size limit (431)
  too_many_headers,        // more header fields than the configured limit (431)
  header_line_too_long,    // one header line exceeds the limit (431)
  request_line_too_long,   // request line (mostly the target) too long (414)
  bad_request_line,        // request line is not "METHOD SP target SP HTTP/x.y"
  bad_status_line,         // status line is not "HTTP/x.y SP 3DIGIT SP reason"
  bad_http_version,        // version is not HTTP/<digit>.<digit>
  bad_header_name,         // empty name or a character that is not a token char
  missing_header_colon,    // header line without ':'
  bad_header_value,        // NUL or another control character in a value
  obs_fold,                // line folding (obsolete, RFC 9112 §5.2) is rejected
  bare_lf,                 // LF without CR as a line terminator
  whitespace_before_colon, // "Name : value" (RFC 9112 §5.1 says reject)

  // --- Server-side upgrade validation (RFC 6455 §4.2.1) ---------------------
  method_not_get,          // the opening handshake must be a GET (405)
  http_version_too_old,    // HTTP/1.1 or later is required (505)
  missing_host,            // Host is required (400)
  duplicate_host,          // more than one Host field (400)
  missing_upgrade,         // no Upgrade token "websocket" (426 for plain GETs)
  missing_connection_upgrade, // Connection lacks the "upgrade" token (400)
  missing_version,         // no Sec-WebSocket-Version (426)
  unsupported_version,     // Sec-WebSocket-Version is not 13 (426)
  missing_key,             // no Sec-WebSocket-Key (400)
  duplicate_key,           // more than one Sec-WebSocket-Key (400)
  bad_key,                 // key does not base64-decode to exactly 16 bytes (400)
  bad_extension_header,    // Sec-WebSocket-Extensions does not parse (400)
  bad_protocol_header,     // Sec-WebSocket-Protocol is not a token list (400)

  // --- Client-side response validation (RFC 6455 §4.1) ---------------------
  response_not_101,        // the server answered with another status
  response_missing_upgrade,    // no "Upgrade: websocket" in the 101
  response_missing_connection, // no "Connection: upgrade" in the 101
  response_missing_accept,     // no Sec-WebSocket-Accept
  response_bad_accept,         // Sec-WebSocket-Accept does not match our key
  response_unexpected_protocol,  // a subprotocol we did not offer (or none offered)
  response_unexpected_extension, // an extension we did not offer, or bad params
  response_deflate_bad_param,    // permessage-deflate answer: unknown, repeated or bad parameter
  response_deflate_missing_param, // permessage-deflate answer drops a parameter it must confirm
  response_deflate_repeated,     // permessage-deflate appears more than once in the answer
  response_deflate_window_8,     // server limits our window to 8 bits, which zlib cannot deflate with

  // --- Frames (RFC 6455 §5.2) ------------------------------------------------
  reserved_opcode,         // opcodes 3-7 and 11-15 are reserved (1002)
  reserved_bits,           // RSV1-3 set without an extension that defines them (1002)
  control_frame_too_large, // control frame payload over 125 bytes (1002)
  fragmented_control_frame,// control frame without FIN (1002)
  length_msb_set,          // 64-bit length with the most significant bit set (1002)
  non_minimal_length,      // length not encoded in the minimal number of bytes (1002)
  unmasked_frame,          // a client sent an unmasked frame (1002)
  masked_frame,            // a server sent a masked frame (1002)

  // --- Messages (RFC 6455 §5.4, §5.5.1, §8.1) -------------------------------
  unexpected_continuation, // continuation frame with no message open (1002)
  expected_continuation,   // new data frame while a message is open (1002)
  message_too_big,         // message exceeds the configured maximum (1009)
  invalid_utf8,            // text message is not valid UTF-8 (1007)
  close_payload_one_byte,  // close payload of exactly one byte (1002)
  bad_close_code,          // close code not allowed on the wire (1002)
  close_reason_invalid_utf8, // close reason is not valid UTF-8 (1007)
  data_after_close,        // a frame arrived after the peer's close frame (1002)

  // --- permessage-deflate (RFC 7692) -----------------------------------------
  rsv1_on_continuation,    // RSV1 on a continuation frame (1002)
  rsv1_on_control,         // RSV1 on a control frame (1002)
  inflate_failed,          // compressed payload is corrupt (1007)
  deflate_failed,          // compressing a message failed: out of memory (1011)
};

// A short sentence naming the rule the error enforces, for logs and
// close reasons ("control frame payload exceeds 125 bytes (RFC 6455 5.5)").
SWITCHBOARD_PROTOCOL_EXPORT std::string_view describe(error e) noexcept;

// The close code to send when `e` happens after the upgrade (RFC 6455 §7.4.1).
// Handshake errors have no close code and map to close_code::protocol_error.
SWITCHBOARD_PROTOCOL_EXPORT close_code close_code_for(error e) noexcept;

// The HTTP status to answer with when `e` happens before the upgrade.
// Frame and message errors map to 400.
SWITCHBOARD_PROTOCOL_EXPORT int http_status_for(error e) noexcept;

// True for errors detected while parsing or validating the opening handshake.
SWITCHBOARD_PROTOCOL_EXPORT bool is_handshake_error(error e) noexcept;

SWITCHBOARD_PROTOCOL_EXPORT const std::error_category& protocol_category() noexcept;

inline std::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), protocol_category()};
}

}  // namespace switchboard::protocol

template <>
struct std::is_error_code_enum<switchboard::protocol::error> : std::true_type {};
