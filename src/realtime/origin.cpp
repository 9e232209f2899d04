// origin.cpp — the Origin check of /ws (see origin.hpp).
#include "origin.hpp"

#include <charconv>

#include <switchboard/protocol/http_head.hpp>

namespace switchboard::realtime::detail {

namespace {

std::uint16_t default_port(std::string_view scheme) noexcept {
  return scheme == "https" ? 443 : 80;
}

bool is_host_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.';
}

// A port of 1 to 65535 written in 1 to 5 digits.
std::optional<std::uint16_t> parse_port(std::string_view text) noexcept {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

// "host[:port]" or "[v6]:port" — an origin's authority or a Host field.
// The host is returned with its brackets; port 0 when absent.
bool split_authority(std::string_view text, std::string_view& host, std::uint16_t& port,
                     bool& has_port) noexcept {
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close < 2) return false;
    for (char c : text.substr(1, close - 1)) {
      const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
      if (!hex && c != ':' && c != '.') return false;
    }
    host = text.substr(0, close + 1);
    rest = text.substr(close + 1);
  } else {
    const std::size_t colon = text.find(':');
    host = text.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon);
    if (host.empty()) return false;
    for (char c : host) {
      if (!is_host_char(c)) return false;
    }
  }
  has_port = false;
  port = 0;
  if (rest.empty()) return true;
  if (rest.front() != ':') return false;
  const auto p = parse_port(rest.substr(1));
  if (!p) return false;
  port = *p;
  has_port = true;
  return true;
}

bool matches(const origin_parts& entry, const origin_parts& o, bool wildcard) noexcept {
  if (entry.scheme != o.scheme || entry.port != o.port) return false;
  if (!wildcard) return protocol::ascii_iequals(entry.host, o.host);
  // "*.example.com" (entry.host is "example.com"): one or more labels before it.
  if (o.host.size() < entry.host.size() + 2) return false;
  const std::string_view tail = o.host.substr(o.host.size() - entry.host.size() - 1);
  return tail.front() == '.' && protocol::ascii_iequals(tail.substr(1), entry.host);
}

}  // namespace

std::optional<origin_parts> parse_origin(std::string_view origin) noexcept {
  const std::size_t sep = origin.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  origin_parts out;
  out.scheme = origin.substr(0, sep);
  // Only the web's schemes can open a WebSocket from a page we would trust.
  if (out.scheme != "http" && out.scheme != "https") return std::nullopt;
  std::uint16_t port = 0;
  if (!split_authority(origin.substr(sep + 3), out.host, port, out.explicit_port)) {
    return std::nullopt;
  }
  out.port = out.explicit_port ? port : default_port(out.scheme);
  return out;
}

std::string check_allowed_origin(std::string_view entry) {
  std::string quoted(1, '\'');
  quoted.append(entry);
  quoted.push_back('\'');
  if (entry == "*") return {};
  std::string lower(entry);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  // Browsers send origins in lower case; an upper-case entry could never match.
  if (lower != entry) return quoted + " must be lower case: write '" + lower + "'";
  const std::size_t sep = entry.find("://");
  if (sep == std::string_view::npos) {
    return quoted + " is not an origin: write scheme://host[:port], e.g. 'https://app.example.com'";
  }
  const std::string_view scheme = entry.substr(0, sep);
  if (scheme != "http" && scheme != "https") {
    return quoted + ": the scheme must be http or https";
  }
  std::string_view authority = entry.substr(sep + 3);
  // An Origin is scheme, host and port only; a path or a slash never matches.
  if (const std::size_t slash = authority.find_first_of("/?#"); slash != std::string_view::npos) {
    return quoted + " has a path or a trailing slash; an origin has none: write '" +
           std::string(entry.substr(0, sep + 3 + slash)) + "'";
  }
  if (authority.find('@') != std::string_view::npos) {
    return quoted + ": an origin has no user name";
  }
  bool wildcard = false;
  if (authority.starts_with("*.")) {
    wildcard = true;
    authority.remove_prefix(2);
  }
  if (authority.find('*') != std::string_view::npos) {
    return quoted + ": '*' is allowed only as the whole list entry \"*\" or as the first label "
                    "('https://*.example.com')";
  }
  std::string_view host;
  std::uint16_t port = 0;
  bool has_port = false;
  if (!split_authority(authority, host, port, has_port)) {
    return quoted + " is not an origin: write scheme://host[:port] (a port from 1 to 65535)";
  }
  // "*.com" would let every site of a top-level domain in.
  if (wildcard && (host.find('.') == std::string_view::npos || host.front() == '[')) {
    return quoted + ": a wildcard needs a domain of at least two labels ('https://*.example.com')";
  }
  return {};
}

bool origin_allowed(const std::vector<std::string>& allowed, std::string_view origin,
                    std::string_view host, bool secure) {
  if (origin.empty()) return true;  // not a browser
  if (allowed.size() == 1 && allowed.front() == "*") return true;
  const auto o = parse_origin(origin);
  if (!o) return false;  // "null", or nothing a page of ours would send
  if (allowed.empty()) {
    // Same-origin: the page was served by the host the browser is now asking.
    std::string_view h;
    std::uint16_t port = 0;
    bool has_port = false;
    if (!split_authority(host, h, port, has_port)) return false;
    // Over TLS the page must be https too; without TLS a proxy may have ended it.
    if (secure && o->scheme != "https") return false;
    if (!protocol::ascii_iequals(h, o->host)) return false;
    return o->port == (has_port ? port : default_port(o->scheme));
  }
  for (const std::string& entry : allowed) {
    std::string_view e = entry;
    bool wildcard = false;
    const std::size_t sep = e.find("://");
    if (sep != std::string_view::npos && e.substr(sep + 3).starts_with("*.")) {
      wildcard = true;
      // Parse "scheme://example.com[:port]" from "scheme://*.example.com[:port]".
      std::string plain(e.substr(0, sep + 3));
      plain.append(e.substr(sep + 5));
      const auto p = parse_origin(plain);
      if (p && matches(*p, *o, true)) return true;
      continue;
    }
    const auto p = parse_origin(e);
    if (p && matches(*p, *o, wildcard)) return true;
  }
  return false;
}

}  // namespace switchboard::realtime::detail
