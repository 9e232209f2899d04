// backoff_test.cpp — exponential backoff with full jitter: windows, bounds,
// spread, and repeatability with a fixed seed.
#include "switchboard/client/backoff.hpp"

#include <gtest/gtest.h>

#include <set>

namespace switchboard::client {
namespace {

using namespace std::chrono_literals;

reconnect_policy policy(std::chrono::milliseconds base, std::chrono::milliseconds cap) {
  reconnect_policy p;
  p.enabled = true;
  p.base = base;
  p.cap = cap;
  return p;
}

TEST(backoff, WindowDoublesUpToTheCap) {
  const backoff b(policy(100ms, 1000ms), 1);
  EXPECT_EQ(b.window(0), 100ms);
  EXPECT_EQ(b.window(1), 200ms);
  EXPECT_EQ(b.window(2), 400ms);
  EXPECT_EQ(b.window(3), 800ms);
  EXPECT_EQ(b.window(4), 1000ms);
  EXPECT_EQ(b.window(1000000), 1000ms);  // no overflow however many attempts
}

TEST(backoff, CapBelowBaseWins) {
  const backoff b(policy(500ms, 100ms), 1);
  EXPECT_EQ(b.window(0), 100ms);
}

TEST(backoff, DelaysStayInTheWindowAndSpreadOverIt) {
  backoff b(policy(100ms, 1000ms), 42);
  for (std::uint32_t n = 0; n < 8; ++n) {
    std::set<long> seen;
    for (int i = 0; i < 200; ++i) {
      const auto d = b.delay(n);
      ASSERT_GE(d.count(), 0);
      ASSERT_LE(d, b.window(n));
      seen.insert(static_cast<long>(d.count()));
    }
    // Full jitter: the draws cover the window, not just its top.
    EXPECT_GT(seen.size(), 20u);
    EXPECT_LT(*seen.begin(), b.window(n).count() / 4);
  }
}

TEST(backoff, FixedSeedRepeats) {
  backoff a(policy(100ms, 5000ms), 7);
  backoff b(policy(100ms, 5000ms), 7);
  for (std::uint32_t n = 0; n < 10; ++n) EXPECT_EQ(a.delay(n), b.delay(n));
}

TEST(backoff, ZeroBaseMeansNoWait) {
  backoff b(policy(0ms, 5000ms), 3);
  EXPECT_EQ(b.delay(5), 0ms);
}

}  // namespace
}  // namespace switchboard::client
