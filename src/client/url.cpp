// url.cpp — ws:// and wss:// URLs (RFC 6455 §3, syntax from RFC 3986) and the
// host lookup that precedes a connect.
#include "switchboard/client/url.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "switchboard/client/error.hpp"
#include "switchboard/protocol/http_head.hpp"

namespace switchboard::client {
namespace {

constexpr std::uint16_t k_ws_port = 80;
constexpr std::uint16_t k_wss_port = 443;

// RFC 3986 reg-name, restricted to what DNS and /etc/hosts names use.
bool is_host_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_';
}

// Path and query go into the request line as they are: no spaces, no control
// characters, ASCII only (anything else must arrive percent-encoded).
bool is_target_char(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f;
}

std::optional<std::uint16_t> parse_port(std::string_view text) noexcept {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  // Port 0 cannot be connected to.
  if (ec != std::errc{} || end != text.data() + text.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

}  // namespace

std::error_code parse_url(std::string_view text, url& out) {
  const std::size_t scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) return client_error::bad_url;
  const std::string_view scheme = text.substr(0, scheme_end);
  if (protocol::ascii_iequals(scheme, "ws")) {
    out.secure = false;
  } else if (protocol::ascii_iequals(scheme, "wss")) {
    out.secure = true;
  } else {
    return client_error::unsupported_scheme;
  }
  std::string_view rest = text.substr(scheme_end + 3);
  const std::size_t authority_end = std::min(rest.find_first_of("/?#"), rest.size());
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view target = rest.substr(authority_end);

  // userinfo is deprecated in ws URLs and would leak credentials into logs.
  if (authority.find('@') != std::string_view::npos) return client_error::bad_url;

  std::string_view host;
  std::string_view port_text;
  bool has_port = false;
  bool bracketed = false;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return client_error::bad_url;
    host = authority.substr(1, close - 1);
    // Only IPv6 literals go in brackets (IPvFuture is not supported).
    if (!net::endpoint::parse(host, 0) || host.find(':') == std::string_view::npos) {
      return client_error::bad_url;
    }
    bracketed = true;
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return client_error::bad_url;
      has_port = true;
      port_text = after.substr(1);
    }
  } else {
    const std::size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
    }
    if (!std::all_of(host.begin(), host.end(), is_host_char)) return client_error::bad_url;
  }
  if (host.empty()) return client_error::bad_url;

  const std::uint16_t default_port = out.secure ? k_wss_port : k_ws_port;
  out.port = default_port;
  if (has_port) {  // "host:" with no digits is a typo, not the default port
    const auto port = parse_port(port_text);
    if (!port) return client_error::bad_url;
    out.port = *port;
  }

  // A fragment has no meaning in a WebSocket URL (RFC 6455 §3).
  if (target.find('#') != std::string_view::npos) return client_error::bad_url;
  if (!std::all_of(target.begin(), target.end(), is_target_char)) return client_error::bad_url;

  out.host.assign(host);
  out.target.clear();
  if (target.empty() || target.front() == '?') out.target.push_back('/');
  out.target.append(target);
  out.host_header.clear();
  if (bracketed) out.host_header.append("[");
  out.host_header.append(host);
  if (bracketed) out.host_header.append("]");
  if (out.port != default_port) {
    out.host_header.append(":");
    out.host_header.append(std::to_string(out.port));
  }
  return {};
}

std::error_code resolve(std::string_view host, std::uint16_t port,
                        std::vector<net::endpoint>& out) {
  out.clear();
  if (auto numeric = net::endpoint::parse(host, port)) {
    out.push_back(*numeric);
    return {};
  }
  // Answered without a lookup: localhost is loopback by definition (RFC 6761 §6.3).
  if (protocol::ascii_iequals(host, "localhost")) {
    out.push_back(net::endpoint::loopback_v4(port));
    out.push_back(net::endpoint::loopback_v6(port));
    return {};
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* results = nullptr;
  const std::string name(host);
  if (::getaddrinfo(name.c_str(), nullptr, &hints, &results) != 0 || results == nullptr) {
    return client_error::resolve_failed;
  }
  for (const addrinfo* ai = results; ai != nullptr; ai = ai->ai_next) {
    auto address = net::endpoint::from_sockaddr(ai->ai_addr, ai->ai_addrlen);
    if (!address) continue;
    const net::endpoint candidate = address->with_port(port);
    if (std::find(out.begin(), out.end(), candidate) == out.end()) out.push_back(candidate);
  }
  ::freeaddrinfo(results);
  return out.empty() ? std::error_code{client_error::resolve_failed} : std::error_code{};
}

}  // namespace switchboard::client
