// switchboard/protocol/close_code.hpp — WebSocket close status codes.
//
// RFC 6455 §7.4 defines the codes; IANA's "WebSocket Close Code Number
// Registry" adds 1012-1014. Which codes may travel in a close frame is decided
// by is_valid_on_wire().
//
// Thread-safety: stateless.
#pragma once

#include <cstdint>

namespace switchboard::protocol {

enum class close_code : std::uint16_t {
  normal = 1000,            // purpose fulfilled
  going_away = 1001,        // endpoint leaving (server shutdown, page navigation)
  protocol_error = 1002,    // the peer broke the protocol
  unsupported_data = 1003,  // a data type the endpoint cannot accept
  no_status = 1005,         // local only: close frame carried no code
  abnormal = 1006,          // local only: the connection dropped without a close frame
  invalid_payload = 1007,   // data inconsistent with the message type (bad UTF-8)
  policy_violation = 1008,  // generic policy breach (rate limit, backpressure)
  message_too_big = 1009,   // message larger than the endpoint accepts
  mandatory_extension = 1010,  // client: the server did not negotiate an extension
  internal_error = 1011,    // server hit an unexpected condition
  service_restart = 1012,   // server restarting; reconnect (IANA)
  try_again_later = 1013,   // temporary overload (IANA)
  bad_gateway = 1014,       // gateway got an invalid upstream response (IANA)
  tls_handshake = 1015,     // local only: TLS handshake failed
};

// True if `code` may be sent in a close frame: 1000-1003, 1007-1014 and
// 3000-4999. 1004, 1005, 1006, 1015, everything below 1000, the unassigned
// 1016-2999 and 5000+ are protocol errors when received (RFC 6455 §7.4.1-2).
constexpr bool is_valid_on_wire(std::uint16_t code) noexcept {
  if (code >= 1000 && code <= 1003) return true;
  if (code >= 1007 && code <= 1014) return true;
  return code >= 3000 && code <= 4999;
}

constexpr std::uint16_t to_underlying(close_code c) noexcept {
  return static_cast<std::uint16_t>(c);
}

}  // namespace switchboard::protocol
