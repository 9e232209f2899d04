// memory_release.hpp — private: hands memory that the process freed back to
// the kernel. glibc's malloc keeps freed pages of its heaps (and of the
// arenas of other threads) mapped: after a spike — a history flood, a burst
// of connections — RSS would stay at the peak. malloc_trim(0) releases the
// free pages, inside the heaps too, with madvise. The housekeeping thread
// calls tick() every 200 ms; a trim runs at most every k_interval_ms
// (docs/benchmarks.md, "Memory after a spike", has the measurements and the
// comparison with jemalloc and mimalloc).
//
// SWITCHBOARD_MALLOC_TRIM=0 in the environment turns it off (for those
// measurements).
//
// Thread-safety: one object per thread; malloc_trim itself is thread-safe.
#pragma once

#include <cstdint>

namespace switchboard::realtime::detail {

class memory_release {
 public:
  static constexpr std::uint64_t k_interval_ms = 2000;

  memory_release();
  // `now_ms`: the monotonic clock. Trims when the interval has passed.
  void tick(std::uint64_t now_ms);

 private:
  bool enabled_;
  std::uint64_t last_ms_ = 0;
};

}  // namespace switchboard::realtime::detail
