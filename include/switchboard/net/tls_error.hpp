// tls_error.hpp — TLS failures as std::error_code.
//
// Codes. An OpenSSL failure becomes an error_code in tls_category() whose
// value is OpenSSL's packed error code (what ERR_get_error returns, reason and
// library included) and whose message() is OpenSSL's own text for it, e.g.
// "error:0A000086:SSL routines::certificate verify failed". The stream and the
// context keep a longer text next to it (last_error_text(), tls_error::text)
// with every queued error and, for certificate failures, the X.509 reason
// ("certificate has expired").
//
// Conditions. The fine-grained OpenSSL reasons are grouped into a few
// tls_failure conditions that callers test against, in the way std::errc is
// used for errno values:
//
//   if (error == net::tls_failure::not_tls) ++plain_http_on_tls_port;
//
// Thread-safety: the categories are immutable singletons.
#pragma once

#include <string>
#include <system_error>

#include "switchboard/net/export.hpp"

namespace switchboard::net {

// The category of OpenSSL errors; name "switchboard.tls".
[[nodiscard]] SWITCHBOARD_NET_EXPORT const std::error_category& tls_category() noexcept;

// `openssl_error` (a packed OpenSSL code from ERR_get_error) as an error_code.
[[nodiscard]] SWITCHBOARD_NET_EXPORT std::error_code make_tls_error(
    unsigned long openssl_error) noexcept;

// The packed OpenSSL code of `error`, or 0 if it is not in tls_category().
[[nodiscard]] SWITCHBOARD_NET_EXPORT unsigned long openssl_error_of(std::error_code error) noexcept;

// Groups of TLS failures, usable as `error == tls_failure::...`.
enum class tls_failure {
  // The peer did not speak TLS: plain HTTP, a proxy CONNECT, or garbage.
  not_tls = 1,
  // A certificate was refused: ours by the peer (its alert says why), or the
  // peer's by us (verification failed, or a required certificate is missing).
  certificate_rejected,
  // The peers share no protocol version or cipher suite.
  no_common_parameters,
  // The connection ended without a TLS close_notify (truncation, or a peer
  // that simply closes TCP; WebSocket's close handshake makes that harmless).
  unexpected_eof,
};

[[nodiscard]] SWITCHBOARD_NET_EXPORT const std::error_category& tls_failure_category() noexcept;
[[nodiscard]] SWITCHBOARD_NET_EXPORT std::error_condition make_error_condition(
    tls_failure failure) noexcept;

// An error from creating or reloading a context: the code and a readable text
// naming what failed ("certificate chain file /etc/x.pem: No such file ...").
struct tls_error {
  std::error_code code;
  std::string text;
  [[nodiscard]] explicit operator bool() const noexcept { return static_cast<bool>(code); }
};

}  // namespace switchboard::net

template <>
struct std::is_error_condition_enum<switchboard::net::tls_failure> : std::true_type {};
