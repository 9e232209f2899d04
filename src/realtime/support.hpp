// support.hpp — private: clocks, random ids and duration conversion shared by
// the files of realtime/.
//
// Thread-safety: every function may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

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

}  // namespace switchboard::realtime::detail
