// event_loop_test.cpp — posting from other threads, stop, defer, hooks,
// registration, timers driven by the loop.
#include "switchboard/net/event_loop.hpp"

#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace switchboard::net {
namespace {

using namespace std::chrono_literals;
using test::run_for_at_most;

class event_loop_test : public test::net_test {
 protected:
  void SetUp() override {
    net_test::SetUp();
    loop = test::make_loop();
    ASSERT_TRUE(loop);
  }
  void TearDown() override {
    loop.reset();
    net_test::TearDown();
  }
  std::unique_ptr<event_loop> loop;
};

TEST_F(event_loop_test, PostedTasksFromManyThreadsRunOnceEachInPerProducerOrder) {
  constexpr int k_producers = 4;
  constexpr int k_tasks = 20000;
  std::vector<std::vector<int>> seen(k_producers);  // touched by the loop thread only
  int remaining = k_producers * k_tasks;
  std::thread::id loop_thread = std::this_thread::get_id();
  bool wrong_thread = false;

  std::vector<std::thread> producers;
  for (int p = 0; p < k_producers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < k_tasks; ++i) {
        loop->post([&, p, i] {
          if (std::this_thread::get_id() != loop_thread) wrong_thread = true;
          seen[static_cast<std::size_t>(p)].push_back(i);
          if (--remaining == 0) loop->stop();
        });
      }
    });
  }
  const bool finished = run_for_at_most(*loop, 20s);
  for (auto& producer : producers) producer.join();
  ASSERT_TRUE(finished) << remaining << " tasks did not run";
  EXPECT_FALSE(wrong_thread);
  for (const auto& sequence : seen) {
    ASSERT_EQ(sequence.size(), static_cast<std::size_t>(k_tasks));
    for (int i = 0; i < k_tasks; ++i) ASSERT_EQ(sequence[static_cast<std::size_t>(i)], i);
  }
}

// True while thread `tid` of this process sleeps in an epoll wait, judged from
// /proc/self/task/<tid>/syscall (its first field is the system call number).
bool blocked_in_epoll(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/syscall");
  long number = -1;
  if (!(in >> number)) return false;
#ifdef SYS_io_uring_enter
  if (number == SYS_io_uring_enter) return true;  // the io_uring backend's wait
#endif
  return number == SYS_epoll_wait || number == SYS_epoll_pwait;
}

TEST_F(event_loop_test, PostWakesALoopThatIsBlockedWithNothingToDo) {
  const pid_t loop_tid = static_cast<pid_t>(::syscall(SYS_gettid));
  std::atomic<bool> ran{false};
  std::thread producer([&] {
    // Wait (bounded) until the loop sleeps in epoll_wait with no timeout.
    for (int i = 0; i < 500 && !blocked_in_epoll(loop_tid); ++i) std::this_thread::sleep_for(2ms);
    loop->post([&] {
      ran = true;
      loop->stop();
    });
  });
  const bool finished = run_for_at_most(*loop, 5s);
  producer.join();
  EXPECT_TRUE(finished);
  EXPECT_TRUE(ran);
}

TEST_F(event_loop_test, ALoopPostingToItselfWritesNoEventfdAndRunsItBeforeTheHooks) {
  std::vector<std::string> order;
  std::uint64_t posted_from = 0;
  std::uint64_t ran_in = 0;
  std::uint64_t wakeups_before = 0;
  std::uint64_t wakeups_in_task = 0;
  loop->add_iteration_hook([&] {
    if (!order.empty()) order.push_back("hook");
  });
  struct poster {
    explicit poster(event_loop& l, std::function<void()> f) : loop(&l), fn(std::move(f)) {
      node.bind<&poster::fire>(this);
    }
    void fire() { fn(); }
    event_loop* loop;
    std::function<void()> fn;
    timer_node node;
  } p(*loop, [&] {  // from a timer: the first iteration, before I/O dispatch
    posted_from = loop->iterations();
    wakeups_before = loop->wakeups();
    loop->post([&] {
      ran_in = loop->iterations();
      wakeups_in_task = loop->wakeups();
      order.push_back("posted");
      loop->stop();
    });
    loop->defer([&] { order.push_back("deferred"); });
  });
  loop->timers().schedule(p.node, 0ms);
  ASSERT_TRUE(run_for_at_most(*loop, 5s));
  EXPECT_EQ(order, (std::vector<std::string>{"deferred", "posted", "hook"}));
  EXPECT_EQ(ran_in, posted_from);
  EXPECT_EQ(wakeups_in_task, wakeups_before);
}

TEST_F(event_loop_test, ATaskALoopPostsToItselfFromAHookRunsInTheNextIterationWithoutWaiting) {
  std::uint64_t posted_in = 0;
  std::uint64_t ran_in = 0;
  const auto hook = loop->add_iteration_hook([&] {
    if (posted_in != 0) return;
    posted_in = loop->iterations();
    loop->post([&] {
      ran_in = loop->iterations();
      loop->stop();
    });
  });
  loop->defer([] {});  // a first iteration that does not wait for an event
  ASSERT_TRUE(run_for_at_most(*loop, 5s));  // it must not block with the task queued
  EXPECT_EQ(ran_in, posted_in + 1);
  loop->remove_iteration_hook(hook);
}

TEST_F(event_loop_test, PostUnwokenLeavesTheWakeUpToTheCallerOncePerBatch) {
  const pid_t loop_tid = static_cast<pid_t>(::syscall(SYS_gettid));
  std::atomic<int> ran{0};
  std::atomic<std::uint64_t> wakeups_seen{0};
  std::vector<bool> first;
  int ran_before_wake = -1;
  std::thread producer([&] {
    for (int i = 0; i < 500 && !blocked_in_epoll(loop_tid); ++i) std::this_thread::sleep_for(2ms);
    for (int i = 0; i < 3; ++i) {
      first.push_back(loop->post_unwoken([&, i] {
        ++ran;
        if (i == 2) {
          wakeups_seen = loop->wakeups();
          loop->stop();
        }
      }));
    }
    // Nothing woke the loop: it still sleeps, the tasks unrun.
    std::this_thread::sleep_for(20ms);
    ran_before_wake = ran.load();
    loop->wake();
  });
  const bool finished = run_for_at_most(*loop, 5s);
  producer.join();
  ASSERT_TRUE(finished);
  EXPECT_EQ(first, (std::vector<bool>{true, false, false}));
  EXPECT_EQ(ran_before_wake, 0);
  EXPECT_EQ(ran.load(), 3);
  EXPECT_EQ(wakeups_seen.load(), 1u);  // one eventfd write for the three
}

TEST_F(event_loop_test, StopFromAnotherThreadEndsRun) {
  std::promise<void> running;
  loop->post([&] { running.set_value(); });
  std::thread stopper([&] {
    running.get_future().wait();
    loop->stop();
  });
  EXPECT_TRUE(run_for_at_most(*loop, 5s));
  stopper.join();
}

TEST_F(event_loop_test, StopBeforeRunMakesRunReturnAfterOneIterationAndIsConsumed) {
  loop->stop();
  EXPECT_TRUE(run_for_at_most(*loop, 5s));
  EXPECT_EQ(loop->iterations(), 1u);
  // The request was consumed: the loop runs again until stopped again.
  int runs = 0;
  loop->post([&] { ++runs; });
  loop->post([&] { loop->stop(); });
  EXPECT_TRUE(run_for_at_most(*loop, 5s));
  EXPECT_EQ(runs, 1);
}

TEST_F(event_loop_test, DeferredTasksRunAfterCallbacksAndBeforeHooks) {
  std::vector<std::string> order;
  std::uint64_t posted_in = 0;
  std::uint64_t deferred_in = 0;
  std::uint64_t nested_in = 0;
  loop->add_iteration_hook([&] {
    if (!order.empty()) order.push_back("hook");
  });
  loop->post([&] {
    posted_in = loop->iterations();
    loop->defer([&] {
      deferred_in = loop->iterations();
      order.push_back("deferred");
      loop->defer([&] {  // deferred by a deferred task: the next iteration
        nested_in = loop->iterations();
        order.push_back("nested");
        loop->stop();
      });
    });
    order.push_back("posted");
  });
  ASSERT_TRUE(run_for_at_most(*loop, 5s));  // the nested task must not wait for an event
  EXPECT_EQ(order, (std::vector<std::string>{"posted", "deferred", "hook", "nested", "hook"}));
  EXPECT_EQ(deferred_in, posted_in);
  EXPECT_EQ(nested_in, posted_in + 1);
}

TEST_F(event_loop_test, HooksRunOncePerIterationAndMayAddOrRemoveHooks) {
  std::uint64_t calls = 0;
  bool mismatch = false;
  int late_calls = 0;
  event_loop::hook_id self = 0;
  int self_calls = 0;
  loop->add_iteration_hook([&] {
    ++calls;
    if (calls != loop->iterations()) mismatch = true;
    if (calls == 3) {
      loop->add_iteration_hook([&] { ++late_calls; });  // first runs in iteration 4
    }
    if (calls == 6) loop->stop();
    if (calls < 6) loop->defer([] {});  // keep iterating without events
  });
  self = loop->add_iteration_hook([&] {
    ++self_calls;
    loop->remove_iteration_hook(self);  // removing itself while running
  });
  loop->defer([] {});  // a first iteration that does not wait for an event
  ASSERT_TRUE(run_for_at_most(*loop, 5s));
  EXPECT_EQ(calls, 6u);
  EXPECT_FALSE(mismatch);
  EXPECT_EQ(self_calls, 1);
  EXPECT_EQ(late_calls, 3);  // iterations 4, 5, 6
}

// Counts its events; on the first one removes `other` (and forgets it).
class eventfd_handler final : public io_handler {
 public:
  eventfd_handler(event_loop& loop) : loop_(&loop), fd_(::eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~eventfd_handler() { remove(); }
  void add() { ASSERT_FALSE(loop_->add(fd_.get(), EPOLLIN, *this)); }
  void remove() {
    if (registered_) loop_->remove(fd_.get(), *this);
    registered_ = false;
  }
  void on_events(std::uint32_t) override {
    ++events;
    if (other != nullptr) other->remove();
    loop_->stop();
  }
  int events = 0;
  eventfd_handler* other = nullptr;
  bool registered_ = true;

 private:
  event_loop* loop_;
  unique_fd fd_;
};

TEST_F(event_loop_test, ARemovedHandlerGetsNoEventsFromTheBatchAlreadyCollected) {
  eventfd_handler a(*loop);
  eventfd_handler b(*loop);
  a.add();
  b.add();
  a.other = &b;
  b.other = &a;
  ASSERT_TRUE(run_for_at_most(*loop, 5s));  // both are readable in the same batch
  EXPECT_EQ(a.events + b.events, 1);
}

TEST_F(event_loop_test, AHandlerRemovedByATimerGetsNoEventsFromTheBatchAlreadyCollected) {
  // The zero-delay timer makes the first epoll_wait return at once, with the
  // readable eventfd in its batch; the timer fires before I/O dispatch.
  auto victim = std::make_unique<eventfd_handler>(*loop);
  victim->add();
  struct killer {
    explicit killer(std::unique_ptr<eventfd_handler>& v) : victim(&v) {
      node.bind<&killer::fire>(this);
    }
    void fire() { victim->reset(); }
    std::unique_ptr<eventfd_handler>* victim;
    timer_node node;
  } k(victim);
  loop->timers().schedule(k.node, 0ms);
  loop->add_iteration_hook([&] { loop->stop(); });
  ASSERT_TRUE(run_for_at_most(*loop, 5s));  // ASan reports a use after free here
  EXPECT_EQ(victim, nullptr);
}

// Always readable (an eventfd never read); counts its reports.
class busy_handler final : public io_handler {
 public:
  explicit busy_handler(event_loop& loop)
      : loop_(&loop), fd_(::eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC)) {
    EXPECT_FALSE(loop_->add(fd_.get(), EPOLLIN, *this));
  }
  ~busy_handler() { loop_->remove(fd_.get(), *this); }
  void on_events(std::uint32_t) override { ++reports; }
  int reports = 0;

 private:
  event_loop* loop_;
  unique_fd fd_;
};

TEST_F(event_loop_test, PostedTasksDoNotWaitBehindMoreReadyDescriptorsThanMaxEvents) {
  // One ready descriptor per epoll_wait, three always ready ahead of the
  // eventfd: the eventfd is reported in the fourth iteration only, but the
  // queue must run in the first (a loop with thousands of ready sockets must
  // not leave publications for all its subscribers behind them).
  event_loop_options options = test::test_loop_options();
  options.max_events = 1;
  auto small = test::make_loop(options);
  ASSERT_TRUE(small);
  std::vector<std::unique_ptr<busy_handler>> busy;
  for (int i = 0; i < 3; ++i) busy.push_back(std::make_unique<busy_handler>(*small));
  std::uint64_t ran_in = 0;
  small->post([&] {  // from this thread before run(): an eventfd write
    ran_in = small->iterations();
    small->stop();
  });
  ASSERT_TRUE(run_for_at_most(*small, 5s));
  EXPECT_EQ(ran_in, 1u);
  busy.clear();
}

TEST_F(event_loop_test, TimersFireFromTheLoopWithoutAnyOtherEvent) {
  test::stop_timer s(*loop);
  const auto start = std::chrono::steady_clock::now();
  loop->update_now();  // count from here, not from the loop's creation
  loop->timers().schedule(s.node, 50ms);
  ASSERT_TRUE(run_for_at_most(*loop, 5s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 49ms);  // now() is rounded down to 1 ms
  EXPECT_LE(loop->iterations(), 3u);                          // it slept until the timer was due
}

TEST_F(event_loop_test, NowIsCachedForTheWholeIteration) {
  steady_time in_task{};
  steady_time in_hook{};
  loop->add_iteration_hook([&] { in_hook = loop->now(); });
  loop->post([&] {
    in_task = loop->now();
    std::this_thread::sleep_for(5ms);  // the clock moves on; now() must not
    loop->stop();
  });
  ASSERT_TRUE(run_for_at_most(*loop, 5s));
  EXPECT_EQ(in_task, in_hook);
}

TEST_F(event_loop_test, TheReceiveBufferHasTheConfiguredSize) {
  EXPECT_EQ(loop->recv_buffer().size(), 512u * 1024u);
  event_loop_options options = test::test_loop_options();
  options.recv_buffer_size = 4096;
  auto small = test::make_loop(options);
  ASSERT_TRUE(small);
  EXPECT_EQ(small->recv_buffer().size(), 4096u);
}

TEST_F(event_loop_test, TasksLeftInTheQueueAreDestroyedWithTheLoop) {
  auto witness = std::make_shared<int>(0);
  loop->post([witness] {});
  EXPECT_EQ(witness.use_count(), 2);
  loop.reset();
  EXPECT_EQ(witness.use_count(), 1);
}

}  // namespace
}  // namespace switchboard::net
