// switchboard/client/url.hpp — WebSocket URLs (RFC 6455 §3) and turning their
// host into addresses to connect to.
//
// parse_url() accepts ws://host[:port][/path][?query] and
// wss://… (recognised, so the client can refuse it with a clear error), where
// host is a name ("localhost", "example.com"), an IPv4 literal or a bracketed
// IPv6 literal ("[::1]"). A fragment ("#…") is not allowed (RFC 6455 §3).
//
// resolve() turns the host into endpoints: numeric addresses and "localhost"
// without any lookup, other names with getaddrinfo(), which BLOCKS the calling
// thread (it may query DNS). Call it before handing work to an event loop, or
// accept the stall; the client's connect() does exactly that.
//
// Thread-safety: stateless functions on plain values; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "switchboard/client/export.hpp"
#include "switchboard/net/tcp_socket.hpp"

namespace switchboard::client {

struct url {
  bool secure = false;        // wss://
  std::string host;           // without brackets: "::1", "127.0.0.1", "example.com"
  std::uint16_t port = 0;     // explicit, or 80 (ws) / 443 (wss)
  std::string target = "/";   // path and query as sent in the request line: "/chat?room=1"
  std::string host_header;    // the Host value: "example.com", "[::1]:9000" (port only if not default)
};

// Parses `text` into `out`. Scheme and host are case-insensitive (the host is
// kept as written); an empty path becomes "/". Returns client_error::bad_url
// for anything malformed (missing host, bad port, spaces or control characters,
// a fragment, an unbracketed IPv6 address), unsupported_scheme for a scheme
// other than ws/wss. `out` is unspecified on error. wss:// parses fine: the
// caller decides whether it can speak TLS.
SWITCHBOARD_CLIENT_EXPORT std::error_code parse_url(std::string_view text, url& out);

// The addresses to try for `host` (as in url::host) and `port`, in order.
// Numeric IPv4/IPv6 literals: that address. "localhost" (any case): 127.0.0.1
// then ::1, without a lookup. Anything else: getaddrinfo(AF_UNSPEC,
// SOCK_STREAM), which blocks. Errors: client_error::resolve_failed (the
// message of the lookup is lost; the name did not resolve).
SWITCHBOARD_CLIENT_EXPORT std::error_code resolve(std::string_view host, std::uint16_t port,
                                                  std::vector<net::endpoint>& out);

}  // namespace switchboard::client
