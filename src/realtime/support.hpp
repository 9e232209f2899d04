// support.hpp — private: clocks, random ids and duration conversion shared by
// the files of realtime/.
//
// Thread-safety: every function may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace switchboard::realtime::detail {

// Milliseconds of the monotonic clock (deadlines, rate limits).
inline std::uint64_t mono_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

// Milliseconds since the Unix epoch (publication times, which a snapshot
// keeps across restarts; token expiry).
inline std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000.0 + 0.5));
}

// `bytes` (at most 16) random bytes from the CSPRNG as lower-case hex: client
// ids and epochs.
std::string random_hex(std::size_t bytes);

// FNV-1a, 64 bits, with a final mix that spreads near-identical names: a
// hash every node computes the same way (std::hash may not), for placing
// channels on shards and choosing among URLs.
inline std::uint64_t stable_hash(std::string_view s) noexcept {
  std::uint64_t h = 14695981039346656037ull;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

}  // namespace switchboard::realtime::detail
