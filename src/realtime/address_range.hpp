// address_range.hpp — private: IP addresses and CIDR ranges, for
// server.trusted_proxies (whose X-Forwarded-For names the client).
//
// An entry is one address ("10.0.0.5", "::1") or a range in CIDR notation
// ("10.0.0.0/8", "fd00::/8", "::1/128"): the address, '/', a prefix length
// of 0..32 (IPv4) or 0..128 (IPv6) in decimal without leading zeros. The
// address must have no bits set past the prefix ("10.0.0.1/8" is refused,
// naming 10.0.0.0/8): such an entry is nearly always a typo for a narrower
// range. Names, zone ids ("fe80::1%eth0") and anything else are refused.
//
// Matching is done on 16 bytes: an IPv4 address is held as its IPv4-mapped
// IPv6 form (::ffff:a.b.c.d, RFC 4291 §2.5.5.2) and an IPv4 range /n as the
// mapped range /(96+n), so a peer an IPv6 socket reports as
// "::ffff:10.1.2.3" matches 10.0.0.0/8 as "10.1.2.3" would. An IPv6 range
// that covers the mapped block (::/0, ::ffff:0:0/96) therefore covers IPv4
// too.
//
// Thread-safety: pure functions; an address_set is immutable once built and
// may be read from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchboard::realtime::detail {

// An address in its 16-byte form (IPv4 mapped).
using ip_bytes = std::array<std::uint8_t, 16>;

struct address_range {
  ip_bytes base{};        // no bits set past `prefix`
  unsigned prefix = 128;  // bits of `base` that must match, 0..128
  bool operator==(const address_range&) const = default;
};

// Parses a numeric IPv4 or IPv6 address (no brackets, no port, no zone).
std::optional<ip_bytes> parse_ip(std::string_view text) noexcept;

// Parses an address or CIDR range (see the top of this file). On failure
// returns nullopt and sets `error` to one line saying what is wrong.
std::optional<address_range> parse_address_range(std::string_view text, std::string& error);

// True if `address` is in `range`.
bool range_contains(const address_range& range, const ip_bytes& address) noexcept;

// A listen address "HOST:PORT": HOST a numeric IPv4 address or a bracketed
// IPv6 one ("[::1]:9100"), PORT 1..65535 in decimal without leading zeros.
struct host_port {
  std::string host;  // without brackets
  std::uint16_t port = 0;
};
// On failure returns nullopt and sets `error` to one line saying what is wrong.
std::optional<host_port> parse_host_port(std::string_view text, std::string& error);

// A list of ranges (server.trusted_proxies, already checked by
// check_config()); entries that do not parse are left out.
class address_set {
 public:
  address_set() = default;
  explicit address_set(const std::vector<std::string>& entries);
  bool empty() const noexcept { return ranges_.empty(); }
  // True if `address` (numeric, as the socket or X-Forwarded-For gives it)
  // is in one of the ranges; false for anything that does not parse.
  bool contains(std::string_view address) const noexcept;

 private:
  std::vector<address_range> ranges_;
};

}  // namespace switchboard::realtime::detail
