// The opening handshake: RFC 6455 §4 checks over parsed heads, the accept
// hash, and the writers for both sides. The validators make one pass over the
// header fields and report the first failure in the documented order.
#include <switchboard/protocol/handshake.hpp>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include <switchboard/protocol/extensions.hpp>

namespace switchboard::protocol {
namespace {

// SHA-1 is fetched once per process; each thread keeps one digest context, so
// a handshake costs one init/update/final and no allocation or provider lookup.
struct sha1_algorithm {
  EVP_MD* md = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  ~sha1_algorithm() { EVP_MD_free(md); }
};

struct digest_context {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~digest_context() { EVP_MD_CTX_free(ctx); }
};

const EVP_MD* sha1() {
  static const sha1_algorithm algorithm;
  return algorithm.md;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// 1#token (RFC 6455 §11.3.4): at least one element, every element a token.
bool is_token_list(std::string_view value) {
  list_cursor list(value);
  std::size_t n = 0;
  for (std::string_view element; list.next(element); ++n)
    if (!is_token(element)) return false;
  return n > 0;
}

// True if the comma list `value` holds `token`, ASCII case-insensitively.
bool list_contains(std::string_view value, std::string_view token) {
  list_cursor list(value);
  for (std::string_view element; list.next(element);)
    if (ascii_iequals(element, token)) return true;
  return false;
}

bool headers_ok(std::span<const http_header> headers) {
  return std::all_of(headers.begin(), headers.end(), [](const http_header& h) {
    return is_token(h.name) && is_field_value(h.value);
  });
}

void put_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

void put_headers(std::string& out, std::span<const http_header> headers) {
  for (const auto& h : headers) put_header(out, h.name, h.value);
}

}  // namespace

std::array<char, 28> compute_accept(std::string_view key) noexcept {
  std::array<char, 28> accept{};
  thread_local digest_context digest;
  const EVP_MD* md = sha1();
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int hash_len = 0;
  if (digest.ctx == nullptr || md == nullptr || EVP_DigestInit_ex2(digest.ctx, md, nullptr) != 1 ||
      EVP_DigestUpdate(digest.ctx, key.data(), key.size()) != 1 ||
      EVP_DigestUpdate(digest.ctx, k_websocket_guid.data(), k_websocket_guid.size()) != 1 ||
      EVP_DigestFinal_ex(digest.ctx, hash, &hash_len) != 1 || hash_len != 20)
    return accept;
  unsigned char text[29];  // 28 characters and the NUL EVP_EncodeBlock adds
  EVP_EncodeBlock(text, hash, 20);
  std::memcpy(accept.data(), text, accept.size());
  return accept;
}

bool is_valid_key(std::string_view key) noexcept {
  // 16 bytes encode to 22 characters plus "==" (RFC 4648 §4).
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  for (std::size_t i = 0; i < 22; ++i)
    if (base64_value(key[i]) < 0) return false;
  // The last character carries 2 data bits; its 4 low bits must be zero (RFC 4648 §3.5).
  return (base64_value(key[21]) & 0x0f) == 0;
}

error validate_upgrade(const request_head& head, upgrade_request& out) noexcept {
  // RFC 6455 §4.2.1 item 1 (and §4.1 item 2): the request is a GET.
  if (head.method() != "GET") return error::method_not_get;
  // RFC 6455 §4.2.1 item 1: HTTP/1.1 or higher.
  if (head.version_major() < 1 || (head.version_major() == 1 && head.version_minor() < 1))
    return error::http_version_too_old;

  std::size_t hosts = 0, versions = 0, keys = 0;
  bool upgrade = false, connection = false, protocols_ok = true, extensions_ok = true;
  std::string_view host, origin, version, key;
  bool have_origin = false;
  for (const auto& f : head.headers()) {
    const auto& n = f.name;
    if (ascii_iequals(n, "Host")) {
      ++hosts;
      host = f.value;
    } else if (ascii_iequals(n, "Upgrade")) {
      upgrade = upgrade || list_contains(f.value, "websocket");
    } else if (ascii_iequals(n, "Connection")) {
      connection = connection || list_contains(f.value, "upgrade");
    } else if (ascii_iequals(n, "Sec-WebSocket-Version")) {
      ++versions;
      version = f.value;
    } else if (ascii_iequals(n, "Sec-WebSocket-Key")) {
      ++keys;
      key = f.value;
    } else if (ascii_iequals(n, "Origin")) {
      if (!have_origin) origin = f.value;
      have_origin = true;
    } else if (ascii_iequals(n, "Sec-WebSocket-Protocol")) {
      protocols_ok = protocols_ok && is_token_list(f.value);
    } else if (ascii_iequals(n, k_extensions_field)) {
      extensions_ok = extensions_ok && check_extensions(f.value) == error::none;
    }
  }
  // RFC 6455 §4.2.1 item 2 and RFC 9112 §3.2: exactly one Host.
  if (hosts == 0) return error::missing_host;
  if (hosts > 1) return error::duplicate_host;
  // RFC 6455 §4.2.1 item 3: Upgrade includes "websocket", case-insensitive.
  if (!upgrade) return error::missing_upgrade;
  // RFC 6455 §4.2.1 item 4: Connection includes "Upgrade", case-insensitive.
  if (!connection) return error::missing_connection_upgrade;
  // RFC 6455 §4.2.1 item 6: Sec-WebSocket-Version is present and 13.
  if (versions == 0) return error::missing_version;
  if (versions > 1 || version != k_websocket_version) return error::unsupported_version;
  // RFC 6455 §4.2.1 item 5 and §11.3.1: one key, base64 of 16 bytes.
  if (keys == 0) return error::missing_key;
  if (keys > 1) return error::duplicate_key;
  if (!is_valid_key(key)) return error::bad_key;
  // RFC 6455 §11.3.4: Sec-WebSocket-Protocol = 1#token.
  if (!protocols_ok) return error::bad_protocol_header;
  // RFC 6455 §9.1: malformed extension offers fail the handshake.
  if (!extensions_ok) return error::bad_extension_header;

  out = {head.path(), head.query(), host, origin, key, &head};
  return error::none;
}

std::optional<std::string_view> select_subprotocol(
    const request_head& head, std::span<const std::string_view> supported) noexcept {
  for (const auto& f : head.headers()) {
    if (!ascii_iequals(f.name, "Sec-WebSocket-Protocol")) continue;
    list_cursor list(f.value);
    for (std::string_view offered; list.next(offered);) {
      const auto it = std::find(supported.begin(), supported.end(), offered);
      if (it != supported.end()) return *it;
    }
  }
  return std::nullopt;
}

bool write_accept_response(std::string& out, std::string_view key, const accept_options& opts) {
  // A subprotocol is a token; header values carry no CR/LF (no header injection).
  if (!opts.subprotocol.empty() && !is_token(opts.subprotocol)) return false;
  if (!is_field_value(opts.extensions) || !headers_ok(opts.extra_headers)) return false;
  const auto accept = compute_accept(key);
  out.append(
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n");
  put_header(out, "Sec-WebSocket-Accept", {accept.data(), accept.size()});
  if (!opts.subprotocol.empty()) put_header(out, "Sec-WebSocket-Protocol", opts.subprotocol);
  if (!opts.extensions.empty()) put_header(out, k_extensions_field, opts.extensions);
  put_headers(out, opts.extra_headers);
  out.append("\r\n");
  return true;
}

std::string_view reason_phrase(int status) noexcept {
  struct phrase {
    int status;
    std::string_view text;
  };
  // RFC 9110 §15 (and RFC 6585 for 429 and 431).
  static constexpr phrase k_phrases[] = {
      {100, "Continue"},
      {101, "Switching Protocols"},
      {200, "OK"},
      {204, "No Content"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {408, "Request Timeout"},
      {409, "Conflict"},
      {411, "Length Required"},
      {413, "Content Too Large"},
      {414, "URI Too Long"},
      {415, "Unsupported Media Type"},
      {422, "Unprocessable Content"},
      {426, "Upgrade Required"},
      {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {501, "Not Implemented"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
      {505, "HTTP Version Not Supported"},
  };
  for (const auto& p : k_phrases)
    if (p.status == status) return p.text;
  // The class names, for codes without a phrase above.
  static constexpr std::string_view k_classes[] = {"Informational", "Successful", "Redirection",
                                                   "Client Error", "Server Error"};
  return status >= 100 && status <= 599 ? k_classes[status / 100 - 1] : "Unknown";
}

bool write_error_response(std::string& out, int status, std::string_view body,
                          std::span<const http_header> extra) {
  // A status code is three digits; only 1xx-5xx classes exist (RFC 9110 §15).
  if (status < 100 || status > 599) return false;
  // Header values carry no CR/LF (no header injection).
  if (!headers_ok(extra)) return false;
  char digits[24];
  out.append("HTTP/1.1 ");
  out.append(digits, std::to_chars(digits, digits + sizeof digits, status).ptr);
  out.append(" ").append(reason_phrase(status)).append("\r\n");
  out.append("Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
  out.append(digits, std::to_chars(digits, digits + sizeof digits, body.size()).ptr);
  out.append("\r\n");
  if (status == 426) {
    // RFC 9110 §7.8: a 426 names the protocol in Upgrade, with the connection option.
    out.append(
        "Connection: Upgrade, close\r\n"
        "Upgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\n");
  } else {
    out.append("Connection: close\r\n");
  }
  if (status == 405 && std::none_of(extra.begin(), extra.end(), [](const http_header& h) {
        return ascii_iequals(h.name, "Allow");
      })) {
    out.append("Allow: GET\r\n");
  }
  put_headers(out, extra);
  out.append("\r\n").append(body);
  return true;
}

void write_rejection(std::string& out, error e) {
  const int status = e == error::none ? 500 : http_status_for(e);
  const auto body = e == error::none ? reason_phrase(500) : describe(e);
  [[maybe_unused]] const bool written = write_error_response(out, status, body);
  assert(written && "fixed statuses and no extra headers cannot fail");
}

std::array<char, 24> generate_key() noexcept {
  unsigned char raw[16];
  // RFC 6455 §4.1 item 7: the nonce is randomly selected; never send a guessable one.
  if (RAND_bytes(raw, sizeof raw) != 1) std::abort();
  unsigned char text[25];  // 24 characters and the NUL EVP_EncodeBlock adds
  EVP_EncodeBlock(text, raw, sizeof raw);
  std::array<char, 24> key;
  std::memcpy(key.data(), text, key.size());
  return key;
}

bool write_upgrade_request(std::string& out, const client_request_options& opts,
                           std::string_view key) {
  // request-target has no whitespace or controls (RFC 9112 §3.2); Host is not empty.
  if (opts.target.empty() || !is_field_value(opts.target) ||
      opts.target.find_first_of(" \t") != std::string_view::npos)
    return false;
  if (opts.host.empty() || !is_field_value(opts.host) || !is_field_value(opts.origin)) return false;
  if (!is_field_value(key) || !is_field_value(opts.extensions)) return false;
  // Offered subprotocols are tokens (RFC 6455 §4.1 item 10).
  if (!std::all_of(opts.protocols.begin(), opts.protocols.end(), is_token)) return false;
  if (!headers_ok(opts.extra_headers)) return false;

  out.append("GET ").append(opts.target).append(" HTTP/1.1\r\n");
  put_header(out, "Host", opts.host);
  out.append("Upgrade: websocket\r\nConnection: Upgrade\r\n");
  put_header(out, "Sec-WebSocket-Key", key);
  out.append("Sec-WebSocket-Version: 13\r\n");
  if (!opts.origin.empty()) put_header(out, "Origin", opts.origin);
  if (!opts.protocols.empty()) {
    out.append("Sec-WebSocket-Protocol: ");
    for (std::size_t i = 0; i < opts.protocols.size(); ++i)
      out.append(i == 0 ? "" : ", ").append(opts.protocols[i]);
    out.append("\r\n");
  }
  if (!opts.extensions.empty()) put_header(out, k_extensions_field, opts.extensions);
  put_headers(out, opts.extra_headers);
  out.append("\r\n");
  return true;
}

error validate_response(const response_head& head, std::string_view key,
                        std::span<const std::string_view> offered_protocols,
                        std::span<const std::string_view> offered_extensions,
                        handshake_response& out) noexcept {
  out = {};
  out.status = head.status();
  // RFC 6455 §4.1: any status other than 101 means the handshake did not complete.
  if (head.status() != 101) return error::response_not_101;
  // RFC 6455 §4.1 (validation 2): Upgrade is "websocket", case-insensitive.
  if (!head.has_token("Upgrade", "websocket")) return error::response_missing_upgrade;
  // RFC 6455 §4.1 (validation 3): Connection is "Upgrade", case-insensitive.
  if (!head.has_token("Connection", "upgrade")) return error::response_missing_connection;

  std::size_t accepts = 0, protocols = 0;
  std::string_view accept, protocol, extensions;
  bool have_extensions = false;
  for (const auto& f : head.headers()) {
    if (ascii_iequals(f.name, "Sec-WebSocket-Accept")) {
      ++accepts;
      accept = f.value;
    } else if (ascii_iequals(f.name, "Sec-WebSocket-Protocol")) {
      ++protocols;
      protocol = f.value;
    } else if (!have_extensions && ascii_iequals(f.name, k_extensions_field)) {
      have_extensions = true;
      extensions = f.value;
    }
  }
  // RFC 6455 §4.1 (validation 4): the accept value is base64(SHA-1(key + GUID)).
  if (accepts == 0) return error::response_missing_accept;
  const auto expected = compute_accept(key);
  if (accepts > 1 || accept != std::string_view(expected.data(), expected.size()))
    return error::response_bad_accept;
  // RFC 6455 §4.1 (validation 6): only one of the subprotocols we offered.
  if (protocols > 1) return error::response_unexpected_protocol;
  if (protocols == 1 && std::find(offered_protocols.begin(), offered_protocols.end(), protocol) ==
                            offered_protocols.end())
    return error::response_unexpected_protocol;
  // RFC 6455 §4.1 (validation 5): every extension in use was offered, and parses.
  for (const auto& f : head.headers()) {
    if (!ascii_iequals(f.name, k_extensions_field)) continue;
    if (const auto e = check_extension_names(f.value, offered_extensions); e != error::none)
      return e;
  }
  out.subprotocol = protocol;
  out.extensions = extensions;
  return error::none;
}

}  // namespace switchboard::protocol
