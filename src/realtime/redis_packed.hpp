// redis_packed.hpp — private: the packed pub/sub form of the Redis broker, in
// which one PUBLISH carries several consecutive publications of one channel
// (what one publish script call appended to it), and its parser.
//
//   "M<epoch> <first offset> <length>:<tail><length>:<tail>…"
//
// The publications have offsets first, first + 1, … in the order of their
// tails; each tail is preceded by its length in bytes (decimal), so a tail
// may hold any byte. A call with one publication for a channel still sends
// the single form "m<epoch> <offset> <tail>" (redis_scripts.hpp).
//
// Thread-safety: pure functions.
#pragma once

#include <charconv>
#include <cstdint>
#include <string_view>
#include <vector>

namespace switchboard::realtime::detail {

struct packed_publications {
  std::string_view epoch;
  std::uint64_t first = 0;
  std::vector<std::string_view> tails;  // views into the parsed payload
};

// Parses a packed payload without its leading 'M'. Returns false on anything
// malformed (out is then unspecified): the caller drops the whole message,
// and the next publication's offset gap makes the node read the stream.
inline bool parse_packed(std::string_view p, packed_publications& out) {
  out.tails.clear();
  const auto sp1 = p.find(' ');
  // An epoch is never empty: a message without one is not ours.
  if (sp1 == 0 || sp1 == std::string_view::npos) return false;
  out.epoch = p.substr(0, sp1);
  p.remove_prefix(sp1 + 1);
  const auto sp2 = p.find(' ');
  if (sp2 == 0 || sp2 == std::string_view::npos) return false;
  const char* end = p.data() + sp2;
  auto [at, ec] = std::from_chars(p.data(), end, out.first);
  // Offsets start at 1; a zero or a partial number is corruption.
  if (ec != std::errc() || at != end || out.first == 0) return false;
  p.remove_prefix(sp2 + 1);
  while (!p.empty()) {
    const auto colon = p.find(':');
    if (colon == 0 || colon == std::string_view::npos) return false;
    std::size_t length = 0;
    const char* lend = p.data() + colon;
    auto [lat, lec] = std::from_chars(p.data(), lend, length);
    if (lec != std::errc() || lat != lend) return false;
    p.remove_prefix(colon + 1);
    // A length past the end: a truncated message.
    if (length > p.size()) return false;
    out.tails.push_back(p.substr(0, length));
    p.remove_prefix(length);
  }
  // The offsets must not wrap: first + n - 1 fits.
  if (out.tails.empty() || out.first - 1 > UINT64_MAX - out.tails.size()) return false;
  return true;
}

}  // namespace switchboard::realtime::detail
