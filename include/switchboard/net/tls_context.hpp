// tls_context.hpp — the configuration TLS streams are created from: an OpenSSL
// SSL_CTX for a server (certificates by host name, client-certificate policy)
// or a client (trust store, optional client certificate).
//
// Settings, and why:
//   * TLS 1.2 and 1.3 only (older versions are broken or deprecated).
//   * ALPN "http/1.1" — what a WebSocket upgrade runs over. A server that
//     shares no protocol with a client's list answers without ALPN instead of
//     failing (a client offering only "h2" still gets a clear HTTP answer).
//   * Record buffers (17 KiB read + 17 KiB write per connection): a quiet
//     connection gives them back after each use (SSL_MODE_RELEASE_BUFFERS plus
//     tls_stream's SSL_free_buffers), so an idle connection keeps none
//     (tls_test: IdleConnectionsHoldNoBuffers). A busy one — two read passes,
//     or two flushes, less than release_buffers_after apart — keeps them until
//     it has had no TLS I/O for release_buffers_after: freeing and
//     re-allocating both for every small message cost ~6% of a wss echo
//     server's CPU (malloc/free plus SSL_free_buffers). See tls_stream.hpp.
//   * Cipher suites, fastest first among the strong ones, with the server's
//     order deciding: TLS 1.3 TLS_AES_128_GCM_SHA256, then AES-256-GCM, then
//     ChaCha20-Poly1305; TLS 1.2 ECDHE with AES-128-GCM, AES-256-GCM,
//     ChaCha20-Poly1305 (forward secrecy and AEAD only: no RSA key exchange,
//     no CBC). OpenSSL's own order puts AES-256 first and lets the client
//     choose; AES-128-GCM is ~25% less work per byte (10 AES rounds, not 14)
//     and still far beyond brute force, which is why TLS 1.3 makes it the one
//     suite every implementation must have. SSL_OP_PRIORITIZE_CHACHA: a client
//     that lists ChaCha20 first (no AES instructions, e.g. older phones) gets
//     it. A client context lists the same order.
//   * Session tickets on (server), one per handshake instead of OpenSSL's two,
//     and the server-side session cache off: resumption is stateless, so the
//     server keeps no per-session memory. Ticket keys are per SSL_CTX, so a
//     reload() makes old tickets fall back to a full handshake.
//   * SSL_OP_NO_RENEGOTIATION: renegotiation is a DoS lever and would let
//     SSL_write need to read; TLS 1.3 has none anyway.
//   * Records stay at the default 16 KiB maximum.
//   * SSL_MODE_ENABLE_PARTIAL_WRITE / ACCEPT_MOVING_WRITE_BUFFER are not set:
//     tls_stream's BIO never refuses a write (see tls_stream.hpp), so SSL_write
//     always consumes its whole input and never needs to be retried.
//
// SNI. add_server_name() adds a certificate for one host name ("a.example"
// or "*.example" for one level of subdomains); the servername callback picks
// it when a client asks for that name, otherwise the default certificate
// serves.
//
// Reload. reload() re-reads every certificate, key and CA file and builds new
// SSL_CTXs. On success new connections use them at once; connections already
// open (or in their handshake) keep the SSL_CTX they started with — OpenSSL
// reference-counts it — so nothing is dropped. On failure the old
// configuration stays in force. Meant for SIGHUP.
//
// Thread-safety: a context is shared by the streams of every loop. reload(),
// add_server_name(), statistics() and the streams' use of the context may run
// concurrently on any threads. Create it before the loops start and destroy it
// after every stream made from it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "switchboard/net/export.hpp"
#include "switchboard/net/tls_error.hpp"

namespace switchboard::net {

namespace detail {
struct tls_snapshot;
}

enum class tls_version { tls1_2, tls1_3 };

enum class client_certificates {
  none,     // do not ask
  request,  // ask; a client without one is accepted, one that fails verification is not
  require,  // ask; the handshake fails without a valid one
};

struct tls_server_options {
  std::string certificate_chain_file;  // PEM: the leaf first, then intermediates
  std::string private_key_file;        // PEM, unencrypted
  client_certificates client_auth = client_certificates::none;
  std::string client_ca_file;  // PEM: CAs that client certificates must chain to
  tls_version min_version = tls_version::tls1_2;
  tls_version max_version = tls_version::tls1_3;
  std::vector<std::string> alpn = {"http/1.1"};  // preference order; empty: no ALPN
  bool session_tickets = true;
  // A busy connection keeps its two ~17 KiB record buffers until it has had
  // no TLS I/O for this long (checked on the loop's timer wheel: up to one
  // tick later); a connection with less than one read pass or flush per
  // interval frees them after each use. 0: always free them after each use
  // (the least memory, ~6% more CPU per small message). Applies to every
  // connection of the context; add_server_name() entries' values are ignored.
  std::chrono::milliseconds release_buffers_after{1000};
};

struct tls_client_options {
  std::string ca_file;  // PEM trust anchors; empty: the system store (/etc/ssl/certs)
  // Accepts any certificate for any name. Tests and debugging only: it makes
  // the connection open to a man in the middle.
  bool insecure_skip_verification = false;
  std::string certificate_chain_file;  // optional client certificate (PEM)
  std::string private_key_file;
  tls_version min_version = tls_version::tls1_2;
  tls_version max_version = tls_version::tls1_3;
  std::vector<std::string> alpn = {"http/1.1"};
  // As tls_server_options::release_buffers_after.
  std::chrono::milliseconds release_buffers_after{1000};
};

class SWITCHBOARD_NET_EXPORT tls_context {
 public:
  enum class role { server, client };

  struct stats {
    std::uint64_t handshakes = 0;         // completed
    std::uint64_t failed_handshakes = 0;  // all failures, not_tls included
    std::uint64_t not_tls = 0;            // peers that sent plain HTTP or garbage
    std::uint64_t reloads = 0;            // successful reload() calls
  };

  // Builds a server context from `options`. On failure returns nullptr and
  // sets `error` (its text names the file and OpenSSL's reason).
  [[nodiscard]] static std::unique_ptr<tls_context> server(const tls_server_options& options,
                                                           tls_error& error);
  // Builds a client context. Same error reporting.
  [[nodiscard]] static std::unique_ptr<tls_context> client(const tls_client_options& options,
                                                           tls_error& error);

  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;
  ~tls_context();

  // Server only: serves the certificate of `options` (its other settings too)
  // to clients that ask for `host_name` via SNI. Takes effect for new
  // connections; replaces an earlier entry for the same name. Errors as server().
  tls_error add_server_name(std::string_view host_name, const tls_server_options& options);

  // Re-reads every file and swaps the configuration for new connections (see
  // above). Returns the first error; the old configuration then stays.
  tls_error reload();

  [[nodiscard]] role side() const noexcept { return role_; }
  // The options' release_buffers_after (never negative).
  [[nodiscard]] std::chrono::milliseconds release_buffers_after() const noexcept {
    return release_buffers_after_;
  }
  [[nodiscard]] bool verifies_peer() const noexcept;
  [[nodiscard]] stats statistics() const noexcept;

  // The configuration new connections use now. Held by each stream until it
  // closes so that the SNI callback's data outlives the handshakes using it.
  [[nodiscard]] std::shared_ptr<const detail::tls_snapshot> snapshot() const;

  // Called by tls_stream when a handshake ends.
  void count_handshake(std::error_code error) noexcept;

 private:
  struct named_options {
    std::string host;  // lower case
    tls_server_options options;
  };

  explicit tls_context(role r) noexcept : role_(r) {}
  [[nodiscard]] tls_error build(std::shared_ptr<const detail::tls_snapshot>& out) const;
  // The part of server() and client() after the role's options are stored:
  // the buffer-release delay, the first build, and the active snapshot.
  [[nodiscard]] static std::unique_ptr<tls_context> finish_create(
      std::unique_ptr<tls_context> context, std::chrono::milliseconds release_after,
      tls_error& error);

  role role_;
  std::chrono::milliseconds release_buffers_after_{0};
  tls_server_options server_options_;
  tls_client_options client_options_;

  mutable std::mutex mutex_;  // guards names_ and active_
  std::vector<named_options> names_;
  std::shared_ptr<const detail::tls_snapshot> active_;

  std::atomic<std::uint64_t> handshakes_{0};
  std::atomic<std::uint64_t> failed_handshakes_{0};
  std::atomic<std::uint64_t> not_tls_{0};
  std::atomic<std::uint64_t> reloads_{0};
};

}  // namespace switchboard::net
