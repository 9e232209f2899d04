// Tests for token_bucket, the per-connection command rate limit.
#include "rate_limit.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace {

using switchboard::realtime::token_bucket;

// Takes as many tokens as the bucket gives at `now`, up to `limit`.
int drain(token_bucket& b, std::uint64_t now, int limit = 1000000) {
  int n = 0;
  while (n < limit && b.take(now)) ++n;
  return n;
}

constexpr std::uint64_t k_start = 1'000'000;  // an arbitrary monotonic clock reading

TEST(TokenBucket, IsSmall) {
  static_assert(sizeof(token_bucket) <= 24);
}

TEST(TokenBucket, BurstThenRefusal) {
  token_bucket b(10, 5);
  EXPECT_EQ(drain(b, k_start), 5);
  EXPECT_FALSE(b.take(k_start));
  EXPECT_FALSE(b.take(k_start));
}

TEST(TokenBucket, StartsFullWhateverTheClock) {
  token_bucket at_zero(1, 3);
  EXPECT_EQ(drain(at_zero, 0), 3);
  token_bucket late(1, 3);
  EXPECT_EQ(drain(late, std::numeric_limits<std::uint64_t>::max()), 3);
}

TEST(TokenBucket, RefillRate) {
  token_bucket b(10, 5);  // one token every 100 ms
  EXPECT_EQ(drain(b, k_start), 5);
  EXPECT_FALSE(b.take(k_start + 99));
  EXPECT_TRUE(b.take(k_start + 100));
  EXPECT_FALSE(b.take(k_start + 100));
  EXPECT_FALSE(b.take(k_start + 150));
  EXPECT_TRUE(b.take(k_start + 200));
  // 300 ms later: three tokens.
  EXPECT_EQ(drain(b, k_start + 500), 3);
}

TEST(TokenBucket, SustainedRateOverOneMinute) {
  token_bucket b(20, 10);
  int taken = drain(b, k_start);
  // Try every millisecond for 60 s: exactly rate · 60 more get through.
  for (std::uint64_t t = 1; t <= 60000; ++t) taken += b.take(k_start + t) ? 1 : 0;
  EXPECT_EQ(taken, 10 + 20 * 60);
}

TEST(TokenBucket, LongIdleCapsAtBurst) {
  token_bucket b(100, 4);
  EXPECT_EQ(drain(b, k_start), 4);
  EXPECT_EQ(drain(b, k_start + 3'600'000), 4);  // an hour idle: still only the burst
  EXPECT_EQ(drain(b, k_start + 3'600'000 + 10), 1);
}

TEST(TokenBucket, FractionalRate) {
  token_bucket b(0.5, 1);  // one token every 2 s
  EXPECT_TRUE(b.take(k_start));
  EXPECT_FALSE(b.take(k_start + 1999));
  EXPECT_TRUE(b.take(k_start + 2000));
  EXPECT_FALSE(b.take(k_start + 3000));
  EXPECT_TRUE(b.take(k_start + 4000));
}

TEST(TokenBucket, FractionalRefillsAddUp) {
  token_bucket b(3, 2);  // 333.3 ms per token
  EXPECT_EQ(drain(b, k_start), 2);
  // Refills of 0.999, 0.003, 0.996, 0.003, 0.996 and 0.003 tokens (never up
  // to the burst, where the excess would be lost): exactly one second gives
  // exactly three tokens.
  EXPECT_FALSE(b.take(k_start + 333));
  EXPECT_TRUE(b.take(k_start + 334));
  EXPECT_FALSE(b.take(k_start + 666));
  EXPECT_TRUE(b.take(k_start + 667));
  EXPECT_FALSE(b.take(k_start + 999));
  EXPECT_TRUE(b.take(k_start + 1000));
}

TEST(TokenBucket, FractionalBurst) {
  token_bucket b(1, 2.5);
  EXPECT_EQ(drain(b, k_start), 2);
  EXPECT_NEAR(b.tokens(), 0.5, 1e-9);
  EXPECT_TRUE(b.take(k_start + 500));  // 0.5 + 0.5
  token_bucket tiny(1000, 0.5);        // never holds a whole token
  EXPECT_EQ(drain(tiny, k_start), 0);
  EXPECT_EQ(drain(tiny, k_start + 60000), 0);
}

TEST(TokenBucket, ZeroRateNeverRefills) {
  token_bucket b(0, 3);
  EXPECT_EQ(drain(b, k_start), 3);
  EXPECT_EQ(drain(b, k_start + 86'400'000), 0);
}

TEST(TokenBucket, ZeroBurstRefusesEverything) {
  token_bucket b(100, 0);
  EXPECT_EQ(drain(b, k_start), 0);
  EXPECT_EQ(drain(b, k_start + 10000), 0);
}

TEST(TokenBucket, InvalidParametersCountAsZero) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  token_bucket negative_rate(-5, 2);
  EXPECT_EQ(drain(negative_rate, k_start), 2);
  EXPECT_EQ(drain(negative_rate, k_start + 10000), 0);
  token_bucket nan_rate(nan, 1);
  EXPECT_EQ(drain(nan_rate, k_start), 1);
  EXPECT_EQ(drain(nan_rate, k_start + 10000), 0);
  token_bucket nan_burst(10, nan);
  EXPECT_EQ(drain(nan_burst, k_start + 10000), 0);
  token_bucket negative_burst(10, -1);
  EXPECT_EQ(drain(negative_burst, k_start + 10000), 0);
}

TEST(TokenBucket, HugeValues) {
  token_bucket unlimited(1e300, std::numeric_limits<double>::infinity());
  EXPECT_EQ(drain(unlimited, k_start, 100000), 100000);
  token_bucket fast(1e300, 2);  // refills completely in any elapsed millisecond
  EXPECT_EQ(drain(fast, k_start), 2);
  EXPECT_EQ(drain(fast, k_start + 1), 2);
}

TEST(TokenBucket, ClockNotMoving) {
  token_bucket b(1000, 2);
  EXPECT_EQ(drain(b, k_start), 2);
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(b.take(k_start));
}

TEST(TokenBucket, ClockGoingBackAddsNothing) {
  token_bucket b(10, 2);
  EXPECT_EQ(drain(b, k_start), 2);
  EXPECT_FALSE(b.take(k_start - 500));
  // Time did not restart at k_start - 500: 100 ms after k_start is one token.
  EXPECT_FALSE(b.take(k_start + 99));
  EXPECT_TRUE(b.take(k_start + 100));
}

}  // namespace
