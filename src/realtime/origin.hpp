// origin.hpp — private: the Origin check of /ws (cross-site WebSocket
// hijacking). A browser sends Origin on every WebSocket upgrade and attaches
// the site's cookies whatever page opened the socket, so a server that takes
// a cookie token must know which pages may use it.
//
// server.allowed_origins decides:
//   []        same-origin only: the Origin's host and port must be the
//             request's Host (a TLS-terminating proxy in front is fine: an
//             https Origin matches a Host without a port on port 443);
//   ["*"]     any origin (say so explicitly; nothing else may be listed);
//   entries   "scheme://host[:port]" in lower case, scheme http or https, no
//             path, no trailing slash, the port only when it is not the
//             scheme's default; "https://*.example.com" matches every
//             subdomain of example.com (one or more labels), not example.com.
// A request without Origin is not from a browser and is always allowed (the
// token still decides); "Origin: null" (sandboxed frames, file://) is
// allowed only by "*".
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchboard::realtime::detail {

// An origin split into its parts (RFC 6454 §6.1 serialization).
struct origin_parts {
  std::string_view scheme;  // "http" or "https"
  std::string_view host;    // as written ("[::1]" keeps its brackets)
  std::uint16_t port = 0;   // explicit or the scheme's default
  bool explicit_port = false;
};

// Parses "scheme://host[:port]" (scheme http or https, a non-empty host of
// letters, digits, '-', '.', or a bracketed IPv6 address, a port of 1 to
// 65535). nullopt for anything else (a path, a trailing slash, userinfo...).
std::optional<origin_parts> parse_origin(std::string_view origin) noexcept;

// "" if `entry` may be listed in server.allowed_origins, else one line saying
// why not and what to write instead.
std::string check_allowed_origin(std::string_view entry);

// True if a browser page of `origin` may open /ws. `host` is the request's
// Host field, `secure` whether the request came over TLS.
bool origin_allowed(const std::vector<std::string>& allowed, std::string_view origin,
                    std::string_view host, bool secure);

}  // namespace switchboard::realtime::detail
