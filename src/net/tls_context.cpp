// tls_context.cpp — building SSL_CTXs from options, SNI selection, ALPN,
// reload (see tls_context.hpp for the settings and why).
#include "switchboard/net/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>

#include "tls_detail.hpp"

namespace switchboard::net {
namespace detail {

SSL_CTX* tls_snapshot::find(std::string_view host) const noexcept {
  auto equal_nocase = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) == static_cast<unsigned char>(y);
           });
  };
  for (const auto& [name, entry] : by_name) {
    if (equal_nocase(host, name)) return entry->ctx.get();
  }
  // "*.example" covers exactly one more label: "a.example", not "a.b.example".
  const auto dot = host.find('.');
  if (dot == std::string_view::npos || dot == 0) return nullptr;
  const std::string_view parent = host.substr(dot);
  for (const auto& [name, entry] : by_name) {
    if (name.size() > 1 && name[0] == '*' &&
        equal_nocase(parent, std::string_view(name).substr(1))) {
      return entry->ctx.get();
    }
  }
  return nullptr;
}

}  // namespace detail

namespace {

using detail::openssl_failure;
using detail::ssl_ctx_ptr;
using detail::tls_ctx_entry;
using detail::tls_snapshot;

// Identifies our sessions; needed for resumption once peers are verified.
constexpr unsigned char k_session_id_context[] = "switchboard";

// Cipher preferences (see the header for why this order).
constexpr const char* k_tls13_suites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr const char* k_tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

int version_number(tls_version v) noexcept {
  return v == tls_version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

// ALPN names as the wire wants them: each prefixed by its length.
bool alpn_wire(const std::vector<std::string>& names, std::vector<unsigned char>& out) {
  out.clear();
  for (const std::string& name : names) {
    if (name.empty() || name.size() > 255) return false;  // RFC 7301 §3.1
    out.push_back(static_cast<unsigned char>(name.size()));
    out.insert(out.end(), name.begin(), name.end());
  }
  return true;
}

// Server ALPN: the first of our protocols the client offers. No overlap means
// no ALPN rather than a fatal alert, so a client offering only "h2" still
// reaches the HTTP layer and gets a readable answer.
int select_alpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* out_length,
                const unsigned char* offered, unsigned int offered_length, void* arg) {
  const auto* entry = static_cast<const tls_ctx_entry*>(arg);
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_length, entry->alpn_wire.data(),
                            static_cast<unsigned int>(entry->alpn_wire.size()), offered,
                            offered_length) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

// SNI: switch to the certificate configured for the name the client asked for.
int select_server_name(SSL* ssl, int* /*alert*/, void* arg) {
  const auto* snapshot = static_cast<const tls_snapshot*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_NOACK;  // no SNI: the default certificate
  SSL_CTX* ctx = snapshot->find(name);
  if (ctx != nullptr && SSL_set_SSL_CTX(ssl, ctx) == nullptr) return SSL_TLSEXT_ERR_ALERT_FATAL;
  return SSL_TLSEXT_ERR_OK;
}

// Settings both sides share.
tls_error common_settings(SSL_CTX* ctx, tls_version min, tls_version max) {
  if (version_number(min) > version_number(max)) {
    return {std::make_error_code(std::errc::invalid_argument), "min_version is above max_version"};
  }
  if (SSL_CTX_set_min_proto_version(ctx, version_number(min)) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, version_number(max)) != 1) {
    return openssl_failure("setting the protocol versions");
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // Quiet connections give their record buffers back after each use; a stream
  // clears this on its SSL while the connection is busy (see tls_stream.hpp).
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // The cheapest strong suites first (see the header).
  if (SSL_CTX_set_ciphersuites(ctx, k_tls13_suites) != 1) {
    return openssl_failure("setting the TLS 1.3 cipher suites");
  }
  if (SSL_CTX_set_cipher_list(ctx, k_tls12_ciphers) != 1) {
    return openssl_failure("setting the TLS 1.2 ciphers");
  }
  return {};
}

tls_error load_certificate(SSL_CTX* ctx, const std::string& chain, const std::string& key) {
  if (SSL_CTX_use_certificate_chain_file(ctx, chain.c_str()) != 1) {
    return openssl_failure("certificate chain file " + chain);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    return openssl_failure("private key file " + key);
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return openssl_failure("private key " + key + " does not match " + chain);
  }
  return {};
}

tls_error build_server_entry(const tls_server_options& options,
                             std::unique_ptr<tls_ctx_entry>& out) {
  auto entry = std::make_unique<tls_ctx_entry>();
  entry->ctx.reset(SSL_CTX_new(TLS_server_method()));
  SSL_CTX* ctx = entry->ctx.get();
  if (ctx == nullptr) return openssl_failure("creating a server SSL_CTX");
  if (auto error = common_settings(ctx, options.min_version, options.max_version)) return error;
  // Our order decides; a client that prefers ChaCha20 (no AES hardware) gets it.
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA);
  if (auto error =
          load_certificate(ctx, options.certificate_chain_file, options.private_key_file)) {
    return error;
  }
  if (SSL_CTX_set_session_id_context(ctx, k_session_id_context, sizeof k_session_id_context - 1) !=
      1) {
    return openssl_failure("setting the session id context");
  }
  // Stateless resumption only: tickets carry the session, the server keeps none.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (options.session_tickets) {
    SSL_CTX_set_num_tickets(ctx, 1);
  } else {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
  }
  if (options.client_auth != client_certificates::none) {
    if (options.client_ca_file.empty()) {
      return {std::make_error_code(std::errc::invalid_argument),
              "client certificates need client_ca_file"};
    }
    if (SSL_CTX_load_verify_file(ctx, options.client_ca_file.c_str()) != 1) {
      return openssl_failure("client CA file " + options.client_ca_file);
    }
    // The CA names sent in the CertificateRequest, so clients pick the right certificate.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.client_ca_file.c_str());
    if (names == nullptr) return openssl_failure("client CA names from " + options.client_ca_file);
    SSL_CTX_set_client_CA_list(ctx, names);
    int mode = SSL_VERIFY_PEER;
    if (options.client_auth == client_certificates::require)
      mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, nullptr);
  }
  if (!options.alpn.empty()) {
    if (!alpn_wire(options.alpn, entry->alpn_wire)) {
      return {std::make_error_code(std::errc::invalid_argument),
              "an ALPN name is empty or too long"};
    }
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, entry.get());
  }
  out = std::move(entry);
  return {};
}

tls_error build_client_entry(const tls_client_options& options,
                             std::unique_ptr<tls_ctx_entry>& out) {
  auto entry = std::make_unique<tls_ctx_entry>();
  entry->ctx.reset(SSL_CTX_new(TLS_client_method()));
  SSL_CTX* ctx = entry->ctx.get();
  if (ctx == nullptr) return openssl_failure("creating a client SSL_CTX");
  if (auto error = common_settings(ctx, options.min_version, options.max_version)) return error;
  if (options.ca_file.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1)
      return openssl_failure("the system trust store");
  } else if (SSL_CTX_load_verify_file(ctx, options.ca_file.c_str()) != 1) {
    return openssl_failure("CA file " + options.ca_file);
  }
  SSL_CTX_set_verify(ctx, options.insecure_skip_verification ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                     nullptr);
  if (!options.certificate_chain_file.empty()) {
    if (auto error =
            load_certificate(ctx, options.certificate_chain_file, options.private_key_file)) {
      return error;
    }
  }
  if (!options.alpn.empty()) {
    if (!alpn_wire(options.alpn, entry->alpn_wire)) {
      return {std::make_error_code(std::errc::invalid_argument),
              "an ALPN name is empty or too long"};
    }
    // Unlike most of OpenSSL, this returns 0 on success.
    if (SSL_CTX_set_alpn_protos(ctx, entry->alpn_wire.data(),
                                static_cast<unsigned int>(entry->alpn_wire.size())) != 0) {
      return openssl_failure("setting ALPN");
    }
  }
  out = std::move(entry);
  return {};
}

std::string lower_case(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::unique_ptr<tls_context> tls_context::server(const tls_server_options& options,
                                                 tls_error& error) {
  std::unique_ptr<tls_context> context(new tls_context(role::server));
  context->server_options_ = options;
  return finish_create(std::move(context), options.release_buffers_after, error);
}

std::unique_ptr<tls_context> tls_context::client(const tls_client_options& options,
                                                 tls_error& error) {
  std::unique_ptr<tls_context> context(new tls_context(role::client));
  context->client_options_ = options;
  return finish_create(std::move(context), options.release_buffers_after, error);
}

std::unique_ptr<tls_context> tls_context::finish_create(std::unique_ptr<tls_context> context,
                                                        std::chrono::milliseconds release_after,
                                                        tls_error& error) {
  context->release_buffers_after_ = std::max(release_after, std::chrono::milliseconds{0});
  std::shared_ptr<const tls_snapshot> snapshot;
  error = context->build(snapshot);
  if (error) return nullptr;
  context->active_ = std::move(snapshot);
  return context;
}

tls_context::~tls_context() = default;

// REQUIRES: mutex_ held, or the context not yet shared.
tls_error tls_context::build(std::shared_ptr<const tls_snapshot>& out) const {
  auto snapshot = std::make_shared<tls_snapshot>();
  if (role_ == role::client) {
    if (auto error = build_client_entry(client_options_, snapshot->main)) return error;
    snapshot->verify_peer = !client_options_.insecure_skip_verification;
    out = std::move(snapshot);
    return {};
  }
  if (auto error = build_server_entry(server_options_, snapshot->main)) return error;
  for (const named_options& named : names_) {
    std::unique_ptr<tls_ctx_entry> entry;
    if (auto error = build_server_entry(named.options, entry)) {
      error.text = "server name " + named.host + ": " + error.text;
      return error;
    }
    snapshot->by_name.emplace_back(named.host, std::move(entry));
  }
  if (!snapshot->by_name.empty()) {
    SSL_CTX* main = snapshot->main->ctx.get();
    SSL_CTX_set_tlsext_servername_callback(main, select_server_name);
    SSL_CTX_set_tlsext_servername_arg(main, snapshot.get());
  }
  out = std::move(snapshot);
  return {};
}

tls_error tls_context::add_server_name(std::string_view host_name,
                                       const tls_server_options& options) {
  if (role_ != role::server || host_name.empty()) {
    return {std::make_error_code(std::errc::invalid_argument),
            "add_server_name needs a server context and a host name"};
  }
  std::lock_guard lock(mutex_);
  const std::vector<named_options> before = names_;
  const std::string host = lower_case(host_name);
  std::erase_if(names_, [&](const named_options& n) { return n.host == host; });
  names_.push_back(named_options{host, options});
  std::shared_ptr<const tls_snapshot> snapshot;
  if (auto error = build(snapshot)) {
    names_ = before;
    return error;
  }
  active_ = std::move(snapshot);
  return {};
}

tls_error tls_context::reload() {
  std::lock_guard lock(mutex_);
  std::shared_ptr<const tls_snapshot> snapshot;
  if (auto error = build(snapshot)) return error;
  active_ = std::move(snapshot);  // open connections keep their SSL_CTX references
  reloads_.fetch_add(1, std::memory_order_relaxed);
  return {};
}

std::shared_ptr<const tls_snapshot> tls_context::snapshot() const {
  std::lock_guard lock(mutex_);
  return active_;
}

bool tls_context::verifies_peer() const noexcept {
  return role_ == role::server ? server_options_.client_auth != client_certificates::none
                               : !client_options_.insecure_skip_verification;
}

void tls_context::count_handshake(std::error_code error) noexcept {
  if (!error) {
    handshakes_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  failed_handshakes_.fetch_add(1, std::memory_order_relaxed);
  if (error == tls_failure::not_tls) not_tls_.fetch_add(1, std::memory_order_relaxed);
}

tls_context::stats tls_context::statistics() const noexcept {
  stats s;
  s.handshakes = handshakes_.load(std::memory_order_relaxed);
  s.failed_handshakes = failed_handshakes_.load(std::memory_order_relaxed);
  s.not_tls = not_tls_.load(std::memory_order_relaxed);
  s.reloads = reloads_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace switchboard::net
