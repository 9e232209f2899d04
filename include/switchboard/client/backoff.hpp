// switchboard/client/backoff.hpp — the delay before each automatic reconnect:
// exponential backoff with full jitter.
//
// Attempt n (0-based: the first retry after a failure is n = 0) waits a delay
// drawn uniformly from [0, min(cap, base · 2^n)]. Full jitter spreads a crowd
// of clients that lost the same server over the whole window, so they do not
// come back in synchronized waves; the cap bounds the wait of a long outage.
//
// Thread-safety: a backoff is a plain value with its own random generator; use
// one object from one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

#include "switchboard/client/export.hpp"

namespace switchboard::client {

struct reconnect_policy {
  // Off by default: a connection that ends stays closed.
  bool enabled = false;
  // The first window. 500 ms gives a restarting server time to listen again.
  std::chrono::milliseconds base{500};
  // The widest window. 30 s bounds how stale a client gets during an outage.
  std::chrono::milliseconds cap{30000};
  // Consecutive failed attempts before giving up; 0 means never give up.
  std::uint32_t max_attempts = 10;
};

class SWITCHBOARD_CLIENT_EXPORT backoff {
 public:
  // `seed` makes the sequence repeatable (tests); 0 draws one from
  // std::random_device.
  explicit backoff(const reconnect_policy& policy, std::uint64_t seed = 0);

  // The upper bound of attempt n's window: min(cap, base · 2^n), without
  // overflow for any n.
  [[nodiscard]] std::chrono::milliseconds window(std::uint32_t attempt) const noexcept;

  // A delay for attempt n, uniform in [0, window(n)] (whole milliseconds).
  [[nodiscard]] std::chrono::milliseconds delay(std::uint32_t attempt);

  [[nodiscard]] const reconnect_policy& policy() const noexcept { return policy_; }

 private:
  reconnect_policy policy_;
  std::mt19937_64 random_;
};

}  // namespace switchboard::client
