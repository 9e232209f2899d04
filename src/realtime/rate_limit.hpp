// rate_limit.hpp — private: the token bucket behind the per-connection
// command rate limit (limits.command_rate, limits.command_burst in
// docs/protocol.md, "Errors").
//
// A bucket holds at most `burst` tokens and starts full; it gains
// `rate_per_second` tokens per second, continuously, up to `burst`; each
// command takes one. Time comes from the caller (a monotonic millisecond
// clock, such as the event loop's), so the bucket keeps no clock of its own
// and costs nothing between commands: it catches up lazily in take().
//
// sizeof(token_bucket) == 24: one lives in every connection. The rate and the
// burst are floats (7 significant digits is plenty for a limit); the token
// count is a double so that refills of a fraction of a token per millisecond
// add up without drift.
//
// Thread-safety: a plain value; use each bucket from one thread at a time.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

namespace switchboard::realtime {

class token_bucket {
 public:
  // A negative or NaN rate or burst counts as 0: rate 0 never refills, burst 0
  // (or any burst below 1) never lets a command through. An infinite burst
  // never refuses.
  token_bucket(double rate_per_second, double burst) noexcept
      : tokens_(sanitize(burst)),
        rate_per_second_(static_cast<float>(sanitize(rate_per_second))),
        burst_(static_cast<float>(sanitize(burst))) {}

  // Takes one token at time `now_ms` (a monotonic millisecond clock); false if
  // fewer than one is left, and then nothing is taken. A clock that goes back
  // adds nothing and does not move the bucket's notion of time back.
  bool take(std::uint64_t now_ms) noexcept {
    if (now_ms > last_ms_) {
      const double elapsed = static_cast<double>(now_ms - last_ms_);
      tokens_ = std::min<double>(burst_, tokens_ + elapsed * rate_per_second_ / 1000.0);
      last_ms_ = now_ms;
    }
    // The epsilon absorbs the rounding of sums of fractional refills
    // (0.333 + 0.333 + 0.334 tokens), a billionth of a token per take.
    if (tokens_ + k_epsilon < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

  // Tokens available as of the last take() (for tests and diagnostics).
  double tokens() const noexcept { return tokens_; }

 private:
  static constexpr double k_epsilon = 1e-9;

  static double sanitize(double v) noexcept {
    if (!(v > 0.0)) return 0.0;  // also NaN
    // Stored as a float: anything past the float range is "unlimited".
    if (v > std::numeric_limits<float>::max()) return std::numeric_limits<double>::infinity();
    return v;
  }

  double tokens_;
  std::uint64_t last_ms_ = 0;
  float rate_per_second_;
  float burst_;
};

static_assert(sizeof(token_bucket) <= 24, "one token_bucket per connection: keep it small");

}  // namespace switchboard::realtime
