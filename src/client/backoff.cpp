// backoff.cpp — exponential backoff with full jitter.
#include "switchboard/client/backoff.hpp"

#include <algorithm>

namespace switchboard::client {

namespace {
std::uint64_t pick_seed(std::uint64_t seed) {
  if (seed != 0) return seed;
  std::random_device device;
  return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}
}  // namespace

backoff::backoff(const reconnect_policy& policy, std::uint64_t seed)
    : policy_(policy), random_(pick_seed(seed)) {}

std::chrono::milliseconds backoff::window(std::uint32_t attempt) const noexcept {
  const auto base = std::max<std::int64_t>(policy_.base.count(), 0);
  const auto cap = std::max<std::int64_t>(policy_.cap.count(), 0);
  if (base == 0) return std::chrono::milliseconds{0};
  // Double until the cap is reached; stopping there keeps base · 2^n from
  // overflowing however large n grows.
  std::int64_t value = base;
  for (std::uint32_t i = 0; i < attempt && value < cap; ++i) value *= 2;
  return std::chrono::milliseconds{std::min(value, cap)};
}

std::chrono::milliseconds backoff::delay(std::uint32_t attempt) {
  const std::int64_t upper = window(attempt).count();
  std::uniform_int_distribution<std::int64_t> pick(0, upper);
  return std::chrono::milliseconds{pick(random_)};
}

}  // namespace switchboard::client
