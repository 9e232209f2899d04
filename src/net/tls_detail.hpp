// tls_detail.hpp — what tls_context.cpp and tls_stream.cpp share: the
// immutable snapshot of a context's SSL_CTXs, and draining OpenSSL's
// per-thread error queue into an error_code plus text.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "switchboard/net/tls_error.hpp"

namespace switchboard::net::detail {

struct ssl_ctx_free {
  void operator()(SSL_CTX* ctx) const noexcept { SSL_CTX_free(ctx); }
};
using ssl_ctx_ptr = std::unique_ptr<SSL_CTX, ssl_ctx_free>;

// One SSL_CTX and the data its callbacks point to.
struct tls_ctx_entry {
  ssl_ctx_ptr ctx;
  std::vector<unsigned char> alpn_wire;  // the server's ALPN list, wire format
};

// A context's configuration at one moment. Immutable once built; replaced as a
// whole by reload(). Streams hold it (shared_ptr) until they close, because
// the SSL_CTX callbacks' arguments point into it.
struct tls_snapshot {
  std::unique_ptr<tls_ctx_entry> main;
  std::vector<std::pair<std::string, std::unique_ptr<tls_ctx_entry>>> by_name;  // lower case
  bool verify_peer = true;  // client side: false with insecure_skip_verification

  // The SSL_CTX for SNI name `host` (any case), or null for the default.
  [[nodiscard]] SSL_CTX* find(std::string_view host) const noexcept;
};

// Drains this thread's OpenSSL error queue: the most recent code (0 if the
// queue was empty) and every entry's text joined by "; ".
struct drained_errors {
  unsigned long code = 0;
  std::string text;
};
[[nodiscard]] drained_errors drain_openssl_errors();

// A tls_error for a failed step `what`, from the queue (or `fallback` when
// OpenSSL queued nothing).
[[nodiscard]] tls_error openssl_failure(std::string_view what, unsigned long fallback = 0);

}  // namespace switchboard::net::detail
