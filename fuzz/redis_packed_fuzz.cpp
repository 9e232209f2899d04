// Fuzzes the reader of the Redis broker's packed pub/sub form
// (src/realtime/redis_packed.hpp: parse_packed; pure, no I/O). Invariants,
// checked with __builtin_trap():
//  - a success has a non-empty epoch without a space, a first offset >= 1,
//    at least one tail, and offsets that do not wrap;
//  - every tail is a view inside the input, in order, not overlapping;
//  - writing the result again in the canonical form and reading it back
//    gives the same epoch, offset and tails.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "redis_packed.hpp"

namespace {

using switchboard::realtime::detail::packed_publications;
using switchboard::realtime::detail::parse_packed;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  packed_publications p;
  if (!parse_packed(input, p)) return 0;
  check(!p.epoch.empty() && p.epoch.find(' ') == std::string_view::npos);
  check(p.first >= 1 && !p.tails.empty());
  check(p.first - 1 <= UINT64_MAX - p.tails.size());
  const char* at = input.data();
  for (std::string_view t : p.tails) {
    check(t.data() >= at && t.data() + t.size() <= input.data() + input.size());
    at = t.data() + t.size();
  }
  check(at == input.data() + input.size());
  std::string again(p.epoch);
  again.push_back(' ');
  again.append(std::to_string(p.first));
  again.push_back(' ');
  for (std::string_view t : p.tails) {
    again.append(std::to_string(t.size()));
    again.push_back(':');
    again.append(t);
  }
  packed_publications q;
  check(parse_packed(again, q));
  check(q.epoch == p.epoch && q.first == p.first && q.tails.size() == p.tails.size());
  for (std::size_t i = 0; i < p.tails.size(); ++i) check(q.tails[i] == p.tails[i]);
  return 0;
}
