// unique_function_test.cpp — inline and heap storage, moves, destruction.
#include "switchboard/net/unique_function.hpp"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <string>

namespace switchboard::net {
namespace {

// Counts live instances, to check that every stored callable is destroyed once.
struct counted {
  static inline int live = 0;
  counted() { ++live; }
  counted(const counted&) { ++live; }
  counted(counted&&) noexcept { ++live; }
  ~counted() { --live; }
};

TEST(unique_function, IsSixtyFourBytes) {
  EXPECT_EQ(sizeof(task), 64u);
}

TEST(unique_function, EmptyByDefault) {
  task t;
  EXPECT_FALSE(t);
  task n = nullptr;
  EXPECT_FALSE(n);
}

TEST(unique_function, CallsSmallCallablesWithArgumentsAndResults) {
  int base = 40;
  unique_function<int(int)> add = [&base](int x) { return base + x; };
  ASSERT_TRUE(add);
  EXPECT_EQ(add(2), 42);
}

TEST(unique_function, AcceptsMoveOnlyCallables) {
  auto owned = std::make_unique<int>(7);
  unique_function<int()> f = [p = std::move(owned)] { return *p; };
  unique_function<int()> g = std::move(f);
  EXPECT_FALSE(f);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_EQ(g(), 7);
}

TEST(unique_function, StoresLargeCallablesOnTheHeapAndStillMovesThem) {
  std::array<char, 200> big{};
  big[199] = 'z';
  unique_function<char()> f = [big] { return big[199]; };
  unique_function<char()> g;
  g = std::move(f);
  EXPECT_EQ(g(), 'z');
}

TEST(unique_function, DestroysWhatItHoldsExactlyOnce) {
  ASSERT_EQ(counted::live, 0);
  {
    task small = [c = counted{}] {};
    task large = [c = counted{}, pad = std::array<char, 128>{}] { (void)pad; };
    EXPECT_EQ(counted::live, 2);
    task moved = std::move(small);
    large = std::move(moved);  // destroys the old large one
    EXPECT_EQ(counted::live, 1);
    large = nullptr;
    EXPECT_EQ(counted::live, 0);
  }
  EXPECT_EQ(counted::live, 0);
}

TEST(unique_function, ForwardsArgumentsWithoutCopying) {
  unique_function<std::size_t(std::string &&)> take = [](std::string&& s) {
    std::string mine = std::move(s);
    return mine.size();
  };
  std::string text(100, 'x');
  EXPECT_EQ(take(std::move(text)), 100u);
}

}  // namespace
}  // namespace switchboard::net
