// timer_wheel_test.cpp — the wheel driven by hand: no clock, no loop.
#include "switchboard/net/timer_wheel.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace switchboard::net {
namespace {

using namespace std::chrono_literals;

steady_time at(std::chrono::milliseconds offset) {
  return steady_time{} + offset;
}

// A timer that logs its id when it fires.
struct logged_timer {
  logged_timer(std::vector<int>& log, int id) : log(&log), id(id) {
    node.bind<&logged_timer::fire>(this);
  }
  void fire() { log->push_back(id); }

  std::vector<int>* log;
  int id;
  timer_node node;
};

// 10 ms ticks, 8 slots: one rotation is 80 ms.
class timer_wheel_test : public ::testing::Test {
 protected:
  timer_wheel wheel{10ms, 8, at(0ms)};
  std::vector<int> fired;
};

TEST_F(timer_wheel_test, FiresAtTheFirstTickBoundaryAtOrAfterTheDeadline) {
  logged_timer a(fired, 1);
  wheel.schedule(a.node, 25ms);
  EXPECT_TRUE(a.node.active());
  EXPECT_EQ(wheel.size(), 1u);
  wheel.advance(at(29ms));
  EXPECT_TRUE(fired.empty());
  wheel.advance(at(30ms));
  EXPECT_EQ(fired, std::vector<int>{1});
  EXPECT_FALSE(a.node.active());
  EXPECT_EQ(wheel.size(), 0u);
}

TEST_F(timer_wheel_test, NeverFiresEarlyWhenScheduledBetweenTicks) {
  logged_timer a(fired, 1);
  wheel.advance(at(15ms));
  wheel.schedule(a.node, 10ms);  // deadline 25 ms → tick 30 ms
  wheel.advance(at(25ms));
  EXPECT_TRUE(fired.empty());
  wheel.advance(at(30ms));
  EXPECT_EQ(fired, std::vector<int>{1});
}

TEST_F(timer_wheel_test, ZeroDelayFiresOnTheNextAdvanceEvenWithinTheSameTick) {
  logged_timer a(fired, 1);
  wheel.advance(at(12ms));
  wheel.schedule(a.node, 0ms);
  ASSERT_TRUE(wheel.next_expiry().has_value());
  EXPECT_EQ(*wheel.next_expiry(), at(12ms));  // due now: the loop must not block
  wheel.advance(at(12ms));
  EXPECT_EQ(fired, std::vector<int>{1});
}

TEST_F(timer_wheel_test, CancelledTimersDoNotFire) {
  logged_timer a(fired, 1);
  logged_timer b(fired, 2);
  wheel.schedule(a.node, 20ms);
  wheel.schedule(b.node, 20ms);
  a.node.cancel();
  a.node.cancel();  // idempotent
  EXPECT_FALSE(a.node.active());
  EXPECT_EQ(wheel.size(), 1u);
  wheel.advance(at(1000ms));
  EXPECT_EQ(fired, std::vector<int>{2});
}

TEST_F(timer_wheel_test, RescheduleMovesTheTimerEarlierOrLater) {
  logged_timer a(fired, 1);
  logged_timer b(fired, 2);
  wheel.schedule(a.node, 50ms);
  wheel.schedule(a.node, 20ms);  // earlier
  wheel.schedule(b.node, 20ms);
  wheel.schedule(b.node, 60ms);  // later
  EXPECT_EQ(wheel.size(), 2u);
  wheel.advance(at(20ms));
  EXPECT_EQ(fired, std::vector<int>{1});
  wheel.advance(at(59ms));
  EXPECT_EQ(fired, std::vector<int>{1});
  wheel.advance(at(60ms));
  EXPECT_EQ(fired, (std::vector<int>{1, 2}));
}

TEST_F(timer_wheel_test, ManyTimersInOneSlotFireInSchedulingOrder) {
  std::vector<std::unique_ptr<logged_timer>> timers;
  for (int i = 0; i < 1000; ++i) {
    timers.push_back(std::make_unique<logged_timer>(fired, i));
    wheel.schedule(timers.back()->node, 30ms);
  }
  for (int i = 1; i < 1000; i += 2) timers[static_cast<std::size_t>(i)]->node.cancel();
  wheel.advance(at(29ms));
  EXPECT_TRUE(fired.empty());
  wheel.advance(at(30ms));
  ASSERT_EQ(fired.size(), 500u);
  for (std::size_t i = 0; i < fired.size(); ++i) EXPECT_EQ(fired[i], static_cast<int>(2 * i));
  EXPECT_EQ(wheel.size(), 0u);
}

TEST_F(timer_wheel_test, LongDelaysWrapTheWheelAndFireOnTime) {
  // 250 ms is tick 25, in slot 1 with ticks 1, 9 and 17: those pass it by.
  logged_timer far(fired, 1);
  logged_timer near(fired, 2);
  wheel.schedule(far.node, 250ms);
  wheel.schedule(near.node, 90ms);  // tick 9, same slot
  for (int t = 10; t <= 400; t += 10) {
    wheel.advance(at(std::chrono::milliseconds{t}));
    if (t < 90) {
      EXPECT_TRUE(fired.empty()) << t;
    } else if (t < 250) {
      EXPECT_EQ(fired, std::vector<int>{2}) << t;
    } else {
      EXPECT_EQ(fired, (std::vector<int>{2, 1})) << t;
    }
  }
}

TEST_F(timer_wheel_test, FiresInTickOrderEvenAcrossOneLargeAdvance) {
  std::vector<std::unique_ptr<logged_timer>> timers;
  for (int i = 9; i >= 0; --i) {
    timers.push_back(std::make_unique<logged_timer>(fired, i));
    wheel.schedule(timers.back()->node,
                   std::chrono::milliseconds{10 + 35 * i});  // spans 4 rotations
  }
  wheel.advance(at(1000ms));
  EXPECT_EQ(fired, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST_F(timer_wheel_test, TimersOfOneTickFireInSchedulingOrderNotDeadlineOrder) {
  logged_timer a(fired, 1);
  logged_timer b(fired, 2);
  logged_timer c(fired, 3);
  wheel.schedule(a.node, 29ms);  // all three round up to tick 3
  wheel.schedule(b.node, 21ms);
  wheel.schedule(c.node, 25ms);
  wheel.advance(at(30ms));
  EXPECT_EQ(fired, (std::vector<int>{1, 2, 3}));
}

TEST_F(timer_wheel_test, ACallbackMayCancelOrDestroyTimersOfTheSameSlot) {
  auto victim = std::make_unique<logged_timer>(fired, 2);
  logged_timer canceller(fired, 3);
  logged_timer killer(fired, 1);
  killer.node.set_callback(
      [](void* context) { static_cast<std::unique_ptr<logged_timer>*>(context)->reset(); },
      &victim);
  canceller.node.set_callback([](void* context) { static_cast<timer_node*>(context)->cancel(); },
                              &killer.node);  // runs after killer: a no-op cancel
  wheel.schedule(killer.node, 10ms);
  wheel.schedule(victim->node, 10ms);
  wheel.schedule(canceller.node, 10ms);
  wheel.advance(at(10ms));
  EXPECT_EQ(victim, nullptr);
  EXPECT_TRUE(fired.empty());  // the victim was destroyed before its turn
  EXPECT_EQ(wheel.size(), 0u);
}

TEST_F(timer_wheel_test, ACallbackMayRescheduleItself) {
  struct periodic {
    explicit periodic(timer_wheel& w) : wheel(&w) {}
    timer_wheel* wheel;
    int count = 0;
    timer_node node;
    void fire() {
      ++count;
      if (count < 5) wheel->schedule(node, 10ms);
    }
  } p{wheel};
  p.node.bind<&periodic::fire>(&p);
  wheel.schedule(p.node, 10ms);
  for (int t = 10; t <= 100; t += 10) wheel.advance(at(std::chrono::milliseconds{t}));
  EXPECT_EQ(p.count, 5);
  EXPECT_FALSE(p.node.active());
}

TEST_F(timer_wheel_test, AZeroDelayRescheduleFromACallbackWaitsForTheNextAdvance) {
  struct again {
    explicit again(timer_wheel& w) : wheel(&w) {}
    timer_wheel* wheel;
    int count = 0;
    timer_node node;
    void fire() {
      ++count;
      wheel->schedule(node, 0ms);
    }
  } a{wheel};
  a.node.bind<&again::fire>(&a);
  wheel.schedule(a.node, 0ms);
  wheel.advance(at(0ms));
  EXPECT_EQ(a.count, 1);
  wheel.advance(at(0ms));
  EXPECT_EQ(a.count, 2);
  a.node.cancel();
}

TEST_F(timer_wheel_test, DestroyingAScheduledNodeCancelsIt) {
  {
    logged_timer a(fired, 1);
    wheel.schedule(a.node, 10ms);
    EXPECT_EQ(wheel.size(), 1u);
  }
  EXPECT_EQ(wheel.size(), 0u);
  wheel.advance(at(100ms));
  EXPECT_TRUE(fired.empty());
}

TEST(timer_wheel, DestroyingTheWheelDeactivatesItsNodes) {
  std::vector<int> fired;
  logged_timer a(fired, 1);
  {
    timer_wheel wheel(10ms, 8, at(0ms));
    wheel.schedule(a.node, 10ms);
  }
  EXPECT_FALSE(a.node.active());
  a.node.cancel();  // safe: it no longer refers to the wheel
}

TEST_F(timer_wheel_test, NextExpiryIsALowerBoundOnTheNextTimer) {
  EXPECT_FALSE(wheel.next_expiry().has_value());
  logged_timer a(fired, 1);
  logged_timer b(fired, 2);
  wheel.schedule(a.node, 35ms);
  ASSERT_TRUE(wheel.next_expiry().has_value());
  EXPECT_EQ(*wheel.next_expiry(), at(40ms));
  wheel.schedule(b.node, 12ms);
  EXPECT_EQ(*wheel.next_expiry(), at(20ms));
  b.node.cancel();
  EXPECT_LE(*wheel.next_expiry(), at(40ms));
  wheel.advance(at(20ms));
  EXPECT_EQ(*wheel.next_expiry(), at(40ms));
  a.node.cancel();
  EXPECT_FALSE(wheel.next_expiry().has_value());
}

TEST_F(timer_wheel_test, UpdateTimeMovesTheBaseWithoutFiring) {
  logged_timer a(fired, 1);
  logged_timer b(fired, 2);
  wheel.schedule(a.node, 10ms);
  wheel.update_time(at(35ms));  // a is overdue, but only advance() fires
  EXPECT_TRUE(fired.empty());
  EXPECT_EQ(wheel.now(), at(35ms));
  wheel.schedule(b.node, 10ms);  // counts from 35 ms: deadline 45 → tick 50 ms
  wheel.advance(at(35ms));
  EXPECT_EQ(fired, std::vector<int>{1});
  wheel.advance(at(49ms));
  EXPECT_EQ(fired, std::vector<int>{1});
  wheel.advance(at(50ms));
  EXPECT_EQ(fired, (std::vector<int>{1, 2}));
}

TEST_F(timer_wheel_test, TimeNeverMovesBackwards) {
  logged_timer a(fired, 1);
  wheel.advance(at(50ms));
  wheel.advance(at(20ms));
  EXPECT_EQ(wheel.now(), at(50ms));
  wheel.schedule(a.node, 10ms);
  wheel.advance(at(59ms));
  EXPECT_TRUE(fired.empty());
  wheel.advance(at(60ms));
  EXPECT_EQ(fired, std::vector<int>{1});
}

}  // namespace
}  // namespace switchboard::net
