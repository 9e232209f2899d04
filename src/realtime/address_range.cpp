// address_range.cpp — see address_range.hpp.
#include "address_range.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace switchboard::realtime::detail {
namespace {

// The longest text inet_pton can take (an IPv6 address with an embedded IPv4
// tail), and room for its NUL.
constexpr std::size_t k_max_address_text = 45;

bool is_v4_mapped(const ip_bytes& b) noexcept {
  for (int i = 0; i < 10; ++i) {
    if (b[i] != 0) return false;
  }
  return b[10] == 0xff && b[11] == 0xff;
}

// Writes `b` as text (IPv4 for a mapped address), for error messages.
std::string to_text(const ip_bytes& b) {
  char text[INET6_ADDRSTRLEN] = {};
  if (is_v4_mapped(b)) {
    ::inet_ntop(AF_INET, b.data() + 12, text, sizeof text);
  } else {
    ::inet_ntop(AF_INET6, b.data(), text, sizeof text);
  }
  return text;
}

// error = "'TEXT'" + rest, built with append (GCC 12's -Wrestrict misfires on
// "lit" + std::string when inlined).
void say(std::string& error, std::string_view text, std::string_view rest) {
  error.clear();
  error.push_back('\'');
  error.append(text);
  error.push_back('\'');
  error.append(rest);
}

}  // namespace

std::optional<ip_bytes> parse_ip(std::string_view text) noexcept {
  // inet_pton needs a NUL-terminated string; anything longer is no address.
  if (text.empty() || text.size() > k_max_address_text) return std::nullopt;
  // inet_pton would stop at an embedded NUL and take "::1\0junk" for ::1.
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  char buf[k_max_address_text + 1];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  ip_bytes out{};
  in_addr v4{};
  if (::inet_pton(AF_INET, buf, &v4) == 1) {
    out[10] = 0xff;
    out[11] = 0xff;
    std::memcpy(out.data() + 12, &v4, 4);
    return out;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, buf, &v6) == 1) {
    std::memcpy(out.data(), &v6, 16);
    return out;
  }
  return std::nullopt;
}

std::optional<address_range> parse_address_range(std::string_view text, std::string& error) {
  const std::size_t slash = text.find('/');
  const std::string_view address = text.substr(0, slash);
  const auto base = parse_ip(address);
  if (!base) {
    // Why: a name would be resolved once and then trusted blindly.
    say(error, text,
        " is not an IPv4 or IPv6 address or CIDR range (\"10.0.0.5\", \"10.0.0.0/8\", "
        "\"fd00::/8\"; no names)");
    return std::nullopt;
  }
  const bool v4 = address.find(':') == std::string_view::npos;
  const unsigned width = v4 ? 32 : 128;
  address_range range;
  range.base = *base;
  range.prefix = 128;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    unsigned n = 0;
    bool ok = !digits.empty() && digits.size() <= 3 && !(digits.size() > 1 && digits[0] == '0');
    for (char c : digits) {
      if (c < '0' || c > '9') {
        ok = false;
        break;
      }
      n = n * 10 + static_cast<unsigned>(c - '0');
    }
    if (!ok || n > width) {
      say(error, text,
          v4 ? ": the prefix length after '/' must be 0 to 32 for IPv4"
             : ": the prefix length after '/' must be 0 to 128 for IPv6");
      return std::nullopt;
    }
    range.prefix = v4 ? 96 + n : n;
  }
  // Bits past the prefix set: "10.0.0.1/8" says two things; refuse rather
  // than guess which was meant.
  address_range masked = range;
  for (unsigned bit = range.prefix; bit < 128; ++bit) {
    masked.base[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  }
  if (masked.base != range.base) {
    std::string rest(" has bits set past its prefix: did you mean ");
    rest.append(to_text(masked.base));
    rest.push_back('/');
    rest.append(std::to_string(v4 ? range.prefix - 96 : range.prefix));
    rest.push_back('?');
    say(error, text, rest);
    return std::nullopt;
  }
  return range;
}

bool range_contains(const address_range& range, const ip_bytes& address) noexcept {
  const unsigned whole = range.prefix / 8;
  if (std::memcmp(range.base.data(), address.data(), whole) != 0) return false;
  const unsigned rest = range.prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xffu << (8 - rest));
  return (address[whole] & mask) == range.base[whole];
}

std::optional<host_port> parse_host_port(std::string_view text, std::string& error) {
  const std::size_t colon = text.rfind(':');
  std::string_view host = colon == std::string_view::npos ? text : text.substr(0, colon);
  const std::string_view digits =
      colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
  bool bracketed = false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    bracketed = true;
  }
  const bool v6 = host.find(':') != std::string_view::npos;
  // An IPv6 address needs its brackets, else its last group reads as the port;
  // an IPv4 address must not have them. Names are refused: a metrics port is
  // bound once, on one address the operator chose.
  if (colon == std::string_view::npos || !parse_ip(host) || bracketed != v6) {
    say(error, text, " is not HOST:PORT with a numeric host (\"127.0.0.1:9100\", \"[::1]:9100\")");
    return std::nullopt;
  }
  unsigned port = 0;
  bool ok = !digits.empty() && digits.size() <= 5 && digits[0] != '0';
  for (char c : digits) {
    if (c < '0' || c > '9') {
      ok = false;
      break;
    }
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (!ok || port > 65535) {
    say(error, text, ": the port must be 1 to 65535");
    return std::nullopt;
  }
  return host_port{std::string(host), static_cast<std::uint16_t>(port)};
}

address_set::address_set(const std::vector<std::string>& entries) {
  std::string error;
  for (const std::string& e : entries) {
    if (auto r = parse_address_range(e, error)) ranges_.push_back(*r);
  }
}

bool address_set::contains(std::string_view address) const noexcept {
  if (ranges_.empty()) return false;
  const auto ip = parse_ip(address);
  if (!ip) return false;
  for (const address_range& r : ranges_) {
    if (range_contains(r, *ip)) return true;
  }
  return false;
}

}  // namespace switchboard::realtime::detail
