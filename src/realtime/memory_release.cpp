// memory_release.cpp — see memory_release.hpp.
#include "memory_release.hpp"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace switchboard::realtime::detail {

memory_release::memory_release() {
  const char* v = std::getenv("SWITCHBOARD_MALLOC_TRIM");
  enabled_ = !(v && std::strcmp(v, "0") == 0);
}

void memory_release::tick(std::uint64_t now_ms) {
  if (!enabled_ || now_ms - last_ms_ < k_interval_ms) return;
  last_ms_ = now_ms;
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
}

}  // namespace switchboard::realtime::detail
