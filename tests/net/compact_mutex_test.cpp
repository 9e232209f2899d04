// compact_mutex_test.cpp — the 4- and 16-byte locks: sizes, exclusion under
// contention (a non-atomic counter stays exact), try_lock, recursion.
#include "switchboard/net/compact_mutex.hpp"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>
#include <vector>

namespace switchboard::net {
namespace {

TEST(compact_mutex, SizesAreFourAndSixteenBytes) {
  EXPECT_EQ(sizeof(compact_mutex), 4u);
  EXPECT_EQ(sizeof(compact_recursive_mutex), 16u);
}

// Four threads add to a plain integer under the lock; a lost update (two
// holders at once) would leave the sum short.
template <class Mutex>
void check_exclusion() {
  Mutex m;
  std::uint64_t sum = 0;
  constexpr int k_threads = 4;
  constexpr int k_adds = 50'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < k_adds; ++i) {
        std::lock_guard lock(m);
        sum = sum + 1;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(sum, static_cast<std::uint64_t>(k_threads) * k_adds);
}

TEST(compact_mutex, ExcludesOtherThreads) { check_exclusion<compact_mutex>(); }

TEST(compact_mutex, RecursiveExcludesOtherThreads) { check_exclusion<compact_recursive_mutex>(); }

TEST(compact_mutex, TryLockFailsWhileHeldAndSucceedsAfter) {
  compact_mutex m;
  ASSERT_TRUE(m.try_lock());
  bool other = true;
  std::thread([&] { other = m.try_lock(); }).join();
  EXPECT_FALSE(other);
  EXPECT_FALSE(m.try_lock());  // not recursive: the holder itself is refused
  m.unlock();
  std::thread([&] {
    other = m.try_lock();
    if (other) m.unlock();
  }).join();
  EXPECT_TRUE(other);
}

TEST(compact_mutex, RecursiveIsHeldUntilTheLastUnlock) {
  compact_recursive_mutex m;
  m.lock();
  m.lock();
  ASSERT_TRUE(m.try_lock());  // the owner again: depth 3
  auto other_can_take = [&m] {
    bool took = false;
    std::thread([&] {
      took = m.try_lock();
      if (took) m.unlock();
    }).join();
    return took;
  };
  m.unlock();
  EXPECT_FALSE(other_can_take());
  m.unlock();
  EXPECT_FALSE(other_can_take());
  m.unlock();
  EXPECT_TRUE(other_can_take());
  // And the lock is usable again by its first owner.
  ASSERT_TRUE(m.try_lock());
  m.unlock();
}

// A waiter that sleeps in the kernel is woken by the unlock.
TEST(compact_mutex, BlockedLockIsWokenByUnlock) {
  compact_mutex m;
  m.lock();
  std::atomic<bool> entered{false};
  std::thread waiter([&] {
    m.lock();
    entered.store(true);
    m.unlock();
  });
  // Whether the waiter is asleep yet or not, it must not get in before this.
  std::this_thread::yield();
  EXPECT_FALSE(entered.load());
  m.unlock();
  waiter.join();
  EXPECT_TRUE(entered.load());
}

}  // namespace
}  // namespace switchboard::net
