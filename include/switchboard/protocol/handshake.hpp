// switchboard/protocol/handshake.hpp — the WebSocket opening handshake.
//
// Server side: validate_upgrade() checks a parsed request head against RFC 6455
// §4.2.1, select_subprotocol() picks the subprotocol, and write_accept_response()
// or write_rejection() produce the answer. Client side: generate_key(),
// write_upgrade_request(), then validate_response() on the parsed 101 (§4.1).
// Nothing here does I/O; the writers append to a caller's std::string and
// allocate nothing else. SHA-1, base64 and random bytes come from OpenSSL 3.
//
// Thread-safety: every function is safe to call from any thread.
// compute_accept() keeps a per-thread digest context, fetched on first use.
#pragma once

#include <array>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <switchboard/protocol/error.hpp>
#include <switchboard/protocol/export.hpp>
#include <switchboard/protocol/http_head.hpp>

namespace switchboard::protocol {

// Appended to the key before hashing (RFC 6455 §1.3, §4.2.2).
inline constexpr std::string_view k_websocket_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
// The only version this library speaks (RFC 6455 §4.1, §4.4).
inline constexpr std::string_view k_websocket_version = "13";

// Sec-WebSocket-Accept for `key`: base64(SHA-1(key + k_websocket_guid))
// (RFC 6455 §1.3, §4.2.2 step 5.4). The key is hashed as given, so validate it
// first on the server. Returns 28 NULs only if OpenSSL fails (out of memory),
// which no peer's accept value can equal.
SWITCHBOARD_PROTOCOL_EXPORT std::array<char, 28> compute_accept(std::string_view key) noexcept;

// True if `key` is a canonical base64 encoding of 16 bytes: 22 characters of
// the RFC 4648 §4 alphabet, then "==", and the last of the 22 carrying zero in
// its 4 unused low bits. Non-canonical keys (RFC 4648 §3.5 allows rejecting
// them) are refused: a key from any standard encoder over 16 random bytes is
// canonical, and anything else is not a "base64-encoded 16-byte value"
// (RFC 6455 §4.1 item 7).
SWITCHBOARD_PROTOCOL_EXPORT bool is_valid_key(std::string_view key) noexcept;

// The parts of a valid upgrade request a server usually routes on. Views point
// into the request head's buffer; `head` gives access to everything else.
struct upgrade_request {
  std::string_view path = {};
  std::string_view query = {};
  std::string_view host = {};
  std::string_view origin = {};  // empty if the client sent no Origin (non-browser)
  std::string_view key = {};     // Sec-WebSocket-Key, already validated
  const request_head* head = nullptr;
};

// Checks that `head` is a valid opening handshake (RFC 6455 §4.2.1) and fills
// `out` when it is. Checks, in this order, each with its own error:
// method GET (method_not_get), HTTP/1.1 or later (http_version_too_old),
// exactly one Host (missing_host, duplicate_host), Upgrade lists "websocket"
// (missing_upgrade), Connection lists "upgrade" (missing_connection_upgrade),
// exactly one Sec-WebSocket-Version equal to "13" (missing_version,
// unsupported_version), exactly one valid Sec-WebSocket-Key (missing_key,
// duplicate_key, bad_key), every Sec-WebSocket-Protocol a non-empty comma list
// of tokens (bad_protocol_header, §11.3.4), every Sec-WebSocket-Extensions
// parses (bad_extension_header, §9.1). Answer a failure with write_rejection().
// Returns error::none on success. Does not allocate.
SWITCHBOARD_PROTOCOL_EXPORT error validate_upgrade(const request_head& head,
                                                   upgrade_request& out) noexcept;

// The subprotocol to answer with: the first protocol in the client's
// Sec-WebSocket-Protocol list (across all such fields, in order; the client
// orders them by preference, RFC 6455 §4.1 item 10) that appears in
// `supported`. Compared case-sensitively (RFC 6455 §11.3.4). Returns the
// element of `supported`, or nullopt to send no subprotocol.
SWITCHBOARD_PROTOCOL_EXPORT std::optional<std::string_view> select_subprotocol(
    const request_head& head, std::span<const std::string_view> supported) noexcept;

struct accept_options {
  // Every member has a default, so designated initializers may name any subset.
  std::string_view subprotocol = {};  // a token, or empty for none
  std::string_view extensions = {};   // Sec-WebSocket-Extensions value, or empty for none
  std::span<const http_header> extra_headers = {};  // e.g. Set-Cookie
};

// Writers. Each returns false, leaving `out` as it was, if anything the
// application passed would break the head: a header name that is not a token,
// a value (subprotocol, extensions, extra header value, host, target, origin)
// holding CR, LF, NUL or another control byte. That refuses header injection
// instead of silently dropping a header the application relied on; answer
// with a 500 or fix the configuration. They append to `out` and allocate
// nothing else.

// Appends the 101 response (RFC 6455 §4.2.2 step 5): Upgrade, Connection,
// Sec-WebSocket-Accept for `key`, the optional Sec-WebSocket-Protocol and
// Sec-WebSocket-Extensions, then the extra headers. `key` is the validated
// upgrade_request::key.
[[nodiscard]] SWITCHBOARD_PROTOCOL_EXPORT bool write_accept_response(
    std::string& out, std::string_view key, const accept_options& opts = {});

// Appends a complete error response with `body` as text/plain, its
// Content-Length and "Connection: close". 426 adds "Upgrade: websocket",
// the "Upgrade" connection option (RFC 9110 §7.8) and
// "Sec-WebSocket-Version: 13" (RFC 6455 §4.2.2, §4.4); 405 adds "Allow: GET"
// (RFC 9110 §15.5.6) unless `extra` has its own Allow. `status` must be 100-599 (else false); the body is sent
// as is.
[[nodiscard]] SWITCHBOARD_PROTOCOL_EXPORT bool write_error_response(
    std::string& out, int status, std::string_view body, std::span<const http_header> extra = {});

// Appends the error response for a handshake error: http_status_for(e) with
// describe(e) as the body. error::none is answered as a 500.
SWITCHBOARD_PROTOCOL_EXPORT void write_rejection(std::string& out, error e);

// The reason phrase for `status` (RFC 9110 §15), or the class name
// ("Client Error") for codes without a registered phrase here.
SWITCHBOARD_PROTOCOL_EXPORT std::string_view reason_phrase(int status) noexcept;

// A fresh Sec-WebSocket-Key: base64 of 16 bytes from OpenSSL's CSPRNG
// (RFC 6455 §4.1 item 7). Aborts the process if the CSPRNG cannot produce
// bytes: a predictable key must never go on the wire.
SWITCHBOARD_PROTOCOL_EXPORT std::array<char, 24> generate_key() noexcept;

struct client_request_options {
  std::string_view host = {};     // Host value, "example.com" or "example.com:8080"
  std::string_view target = "/";  // request-target: path and query
  std::string_view origin = {};   // Origin, or empty for none
  std::span<const std::string_view> protocols = {};  // offered subprotocols, preferred first
  std::string_view extensions = {};                  // Sec-WebSocket-Extensions offer, or empty
  std::span<const http_header> extra_headers = {};   // e.g. Authorization, Cookie
};

// Appends the client's upgrade request (RFC 6455 §4.1): GET target HTTP/1.1,
// Host, Upgrade, Connection, Sec-WebSocket-Key, Sec-WebSocket-Version: 13,
// then Origin, Sec-WebSocket-Protocol and Sec-WebSocket-Extensions when
// given, then the extra headers. Returns false, leaving `out` as it was, for
// header injection as above, an empty or malformed target, an empty host,
// or a protocol that is not a token.
[[nodiscard]] SWITCHBOARD_PROTOCOL_EXPORT bool write_upgrade_request(
    std::string& out, const client_request_options& opts, std::string_view key);

struct handshake_response {
  int status = 0;                     // the response's status code, also on failure
  std::string_view subprotocol = {};  // the server's choice, or empty
  std::string_view extensions = {};   // the first Sec-WebSocket-Extensions value, or empty
};

// Checks the server's response to our upgrade request (RFC 6455 §4.1, "the
// client MUST validate"): status 101 (response_not_101), Upgrade lists
// "websocket" (response_missing_upgrade), Connection lists "upgrade"
// (response_missing_connection), exactly one Sec-WebSocket-Accept
// (response_missing_accept; two or more, or a wrong value:
// response_bad_accept) equal to compute_accept(key), at most one
// Sec-WebSocket-Protocol naming one protocol we offered, compared
// case-sensitively (response_unexpected_protocol, also when we offered none),
// every Sec-WebSocket-Extensions parsing (bad_extension_header) and naming
// only extensions we offered (response_unexpected_extension, names compared
// case-sensitively). Parameters of the extensions are checked by the
// extension's own negotiation (permessage-deflate), not here.
// `out.status` is always set; the rest only on success. Does not allocate.
SWITCHBOARD_PROTOCOL_EXPORT error validate_response(
    const response_head& head, std::string_view key,
    std::span<const std::string_view> offered_protocols,
    std::span<const std::string_view> offered_extensions, handshake_response& out) noexcept;

}  // namespace switchboard::protocol
