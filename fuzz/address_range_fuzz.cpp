// Fuzzes server.trusted_proxies entries (src/realtime/address_range.hpp). The
// input is split at its first newline into an entry and an address.
// Invariants, checked with __builtin_trap():
//  - a parsed range has a prefix of 0..128 and no bits set past it; it holds
//    its own base, holds the base with the first bit past the prefix flipped,
//    and does not hold the base with its last prefix bit flipped;
//  - matching agrees with a bit-by-bit reference;
//  - an address that parses is a range of itself (its /128 holds it), and an
//    address_set of the entry agrees with range_contains();
//  - a refusal always says why (a non-empty error);
//  - a parsed HOST:PORT has a port of 1..65535 and a host that parses as an
//    address and appears in the input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "address_range.hpp"

namespace {

using namespace switchboard::realtime::detail;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool bit(const ip_bytes& b, unsigned i) {
  return (b[i / 8] >> (7 - i % 8)) & 1u;
}

ip_bytes flip(ip_bytes b, unsigned i) {
  b[i / 8] ^= static_cast<std::uint8_t>(0x80u >> (i % 8));
  return b;
}

bool reference_contains(const address_range& r, const ip_bytes& a) {
  for (unsigned i = 0; i < r.prefix; ++i) {
    if (bit(r.base, i) != bit(a, i)) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nl = input.find('\n');
  const std::string_view entry = input.substr(0, nl);
  const std::string_view address = nl == std::string_view::npos ? "" : input.substr(nl + 1);

  std::string error;
  const auto range = parse_address_range(entry, error);
  if (!range) {
    check(!error.empty());
  } else {
    check(range->prefix <= 128);
    for (unsigned i = range->prefix; i < 128; ++i) check(!bit(range->base, i));
    check(range_contains(*range, range->base));
    if (range->prefix < 128) check(range_contains(*range, flip(range->base, range->prefix)));
    if (range->prefix > 0) check(!range_contains(*range, flip(range->base, range->prefix - 1)));
  }
  const auto ip = parse_ip(address);
  if (ip) {
    std::string e2;
    const auto self = parse_address_range(address, e2);
    check(self && self->prefix == 128 && range_contains(*self, *ip));
    if (range) {
      const bool in = range_contains(*range, *ip);
      check(in == reference_contains(*range, *ip));
      const address_set set(std::vector<std::string>{std::string(entry)});
      check(set.contains(address) == in);
    }
  }
  (void)parse_ip(input);
  const auto hp = parse_host_port(entry, error);
  if (hp) {
    check(hp->port != 0);
    check(parse_ip(hp->host).has_value());
    check(entry.find(hp->host) != std::string_view::npos);
  } else {
    check(!error.empty());
  }
  return 0;
}
