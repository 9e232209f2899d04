// tls_error.cpp — the OpenSSL error category, the tls_failure conditions and
// error-queue draining (see tls_error.hpp).
#include "switchboard/net/tls_error.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <array>

#include "tls_detail.hpp"

namespace switchboard::net {
namespace {

unsigned long to_openssl(int value) noexcept {
  // Packed codes use 32 bits (the top one marks system errors), so they
  // round-trip through int as their unsigned 32-bit pattern.
  return static_cast<unsigned long>(static_cast<unsigned int>(value));
}

// Which tls_failure group an OpenSSL error belongs to; 0 for none.
int failure_of(unsigned long code) noexcept {
  if (ERR_SYSTEM_ERROR(code) || ERR_GET_LIB(code) != ERR_LIB_SSL) return 0;
  switch (ERR_GET_REASON(code)) {
    case SSL_R_HTTP_REQUEST:          // "GET / HTTP/1.1" on the TLS port
    case SSL_R_HTTPS_PROXY_REQUEST:   // "CONNECT host:443"
    case SSL_R_WRONG_VERSION_NUMBER:  // a record header that is not TLS
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
      return static_cast<int>(tls_failure::not_tls);
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      return static_cast<int>(tls_failure::certificate_rejected);
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
      return static_cast<int>(tls_failure::no_common_parameters);
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
      return static_cast<int>(tls_failure::unexpected_eof);
    default:
      return 0;
  }
}

class openssl_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "switchboard.tls"; }
  std::string message(int value) const override {
    std::array<char, 256> text{};
    ERR_error_string_n(to_openssl(value), text.data(), text.size());
    return text.data();
  }
  bool equivalent(int value, const std::error_condition& condition) const noexcept override {
    if (condition.category() != tls_failure_category()) return false;
    return failure_of(to_openssl(value)) == condition.value();
  }
};

class failure_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "switchboard.tls_failure"; }
  std::string message(int value) const override {
    switch (static_cast<tls_failure>(value)) {
      case tls_failure::not_tls:
        return "the peer does not speak TLS";
      case tls_failure::certificate_rejected:
        return "certificate rejected";
      case tls_failure::no_common_parameters:
        return "no common TLS version or cipher";
      case tls_failure::unexpected_eof:
        return "connection closed without close_notify";
    }
    return "unknown TLS failure";
  }
};

}  // namespace

const std::error_category& tls_category() noexcept {
  static const openssl_category_impl category;
  return category;
}

const std::error_category& tls_failure_category() noexcept {
  static const failure_category_impl category;
  return category;
}

std::error_code make_tls_error(unsigned long openssl_error) noexcept {
  return {static_cast<int>(static_cast<unsigned int>(openssl_error)), tls_category()};
}

unsigned long openssl_error_of(std::error_code error) noexcept {
  return error.category() == tls_category() ? to_openssl(error.value()) : 0;
}

std::error_condition make_error_condition(tls_failure failure) noexcept {
  return {static_cast<int>(failure), tls_failure_category()};
}

namespace detail {

drained_errors drain_openssl_errors() {
  drained_errors out;
  const char* data = nullptr;
  int flags = 0;
  while (const unsigned long code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    std::array<char, 256> text{};
    ERR_error_string_n(code, text.data(), text.size());
    if (!out.text.empty()) out.text += "; ";
    out.text += text.data();
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      out.text += " (";
      out.text += data;
      out.text += ')';
    }
    out.code = code;
  }
  return out;
}

tls_error openssl_failure(std::string_view what, unsigned long fallback) {
  drained_errors drained = drain_openssl_errors();
  if (drained.code == 0)
    drained.code = fallback != 0 ? fallback : ERR_PACK(ERR_LIB_SSL, 0, ERR_R_INTERNAL_ERROR);
  tls_error error{make_tls_error(drained.code), std::string(what)};
  if (!drained.text.empty()) error.text += ": " + drained.text;
  return error;
}

}  // namespace detail
}  // namespace switchboard::net
