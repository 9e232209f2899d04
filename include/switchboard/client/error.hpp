// switchboard/client/error.hpp — errors the WebSocket client reports that are
// neither system errors (connect, read and write failures arrive as
// std::errc values in the system category) nor protocol errors
// (switchboard::protocol::error: a bad 101, a bad frame).
//
// Each value has one sentence saying what went wrong, so an application can
// print `message()` as is.
//
// Thread-safety: stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <system_error>

#include "switchboard/client/export.hpp"

namespace switchboard::client {

enum class client_error : std::uint8_t {
  none = 0,
  bad_url,                 // the URL does not parse as ws://host[:port][/path][?query]
  unsupported_scheme,      // a scheme other than ws:// or wss://
  tls_not_supported,       // a wss:// URL, but client_options::tls is null
  resolve_failed,          // the host name did not resolve to any IPv4/IPv6 address
  bad_request,             // a subprotocol, header or origin cannot be sent (not a token, CR/LF)
  handshake_timeout,       // no complete response head within the handshake timeout
  handshake_eof,           // the server closed the connection before answering the upgrade
  closed_without_frame,    // the TCP connection ended without a close frame (1006)
  close_timeout,           // the server did not finish the close handshake in time
  already_connecting,      // connect() while a connection is in progress or open
  reconnect_exhausted,     // automatic reconnection gave up after max_attempts
};

// The category of client_error; its name is "switchboard.client".
SWITCHBOARD_CLIENT_EXPORT const std::error_category& client_category() noexcept;

inline std::error_code make_error_code(client_error e) noexcept {
  return {static_cast<int>(e), client_category()};
}

}  // namespace switchboard::client

template <>
struct std::is_error_code_enum<switchboard::client::client_error> : std::true_type {};
