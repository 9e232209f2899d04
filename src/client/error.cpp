// error.cpp — the client_error category: one sentence per error.
#include "switchboard/client/error.hpp"

#include <string>

namespace switchboard::client {
namespace {

class client_error_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "switchboard.client"; }

  std::string message(int value) const override {
    switch (static_cast<client_error>(value)) {
      case client_error::none:
        return "success";
      case client_error::bad_url:
        return "malformed URL (expected ws://host[:port][/path][?query])";
      case client_error::unsupported_scheme:
        return "unsupported URL scheme (expected ws:// or wss://)";
      case client_error::tls_not_supported:
        return "wss:// needs a TLS context (client_options::tls)";
      case client_error::resolve_failed:
        return "host name did not resolve to an address";
      case client_error::bad_request:
        return "a subprotocol, header or origin cannot be sent in the upgrade request";
      case client_error::handshake_timeout:
        return "the server did not answer the upgrade request in time";
      case client_error::handshake_eof:
        return "the server closed the connection before answering the upgrade request";
      case client_error::closed_without_frame:
        return "the connection ended without a close frame";
      case client_error::close_timeout:
        return "the server did not complete the close handshake in time";
      case client_error::already_connecting:
        return "a connection is already in progress or open";
      case client_error::reconnect_exhausted:
        return "gave up reconnecting after the maximum number of attempts";
    }
    return "unknown client error";
  }
};

}  // namespace

const std::error_category& client_category() noexcept {
  static const client_error_category category;
  return category;
}

}  // namespace switchboard::client
