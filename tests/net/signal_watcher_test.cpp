// signal_watcher_test.cpp — signals raised in the process arrive as loop callbacks.
#include "switchboard/net/signal_watcher.hpp"

#include <pthread.h>
#include <signal.h>

#include <vector>

#include "test_support.hpp"

namespace switchboard::net {
namespace {

using namespace std::chrono_literals;

// Restores the thread's signal mask afterwards, so that the signals this test
// blocks do not stay blocked for the tests that follow.
class signal_watcher_test : public test::net_test {
 protected:
  void SetUp() override {
    net_test::SetUp();
    ASSERT_EQ(::pthread_sigmask(SIG_SETMASK, nullptr, &saved_mask_), 0);
    loop = test::make_loop();
    ASSERT_TRUE(loop);
  }
  void TearDown() override {
    loop.reset();
    ::pthread_sigmask(SIG_SETMASK, &saved_mask_, nullptr);
    net_test::TearDown();
  }
  std::unique_ptr<event_loop> loop;

 private:
  sigset_t saved_mask_{};
};

TEST_F(signal_watcher_test, DeliversARaisedSighupOnTheLoop) {
  std::vector<int> received;
  std::error_code error;
  auto watcher = signal_watcher::create(
      *loop,
      [&](int signal_number) {
        received.push_back(signal_number);
        loop->stop();
      },
      error);
  ASSERT_TRUE(watcher) << error.message();
  // raise() targets this thread, which now blocks SIGHUP: it stays pending
  // until the signalfd reads it, instead of terminating the process.
  ASSERT_EQ(::raise(SIGHUP), 0);
  ASSERT_TRUE(test::run_for_at_most(*loop, 5s));
  EXPECT_EQ(received, std::vector<int>{SIGHUP});
}

TEST_F(signal_watcher_test, DeliversEverySignalOfTheSetAndNothingElse) {
  std::vector<int> received;
  std::error_code error;
  auto watcher = signal_watcher::create(*loop,
                                        [&](int signal_number) {
                                          received.push_back(signal_number);
                                          if (received.size() == 2) loop->stop();
                                        },
                                        error, {SIGUSR1, SIGUSR2});
  ASSERT_TRUE(watcher) << error.message();
  ASSERT_EQ(::raise(SIGUSR2), 0);
  ASSERT_EQ(::raise(SIGUSR1), 0);
  ASSERT_TRUE(test::run_for_at_most(*loop, 5s));
  // Pending standard signals are read lowest number first.
  EXPECT_EQ(received, (std::vector<int>{SIGUSR1, SIGUSR2}));
}

TEST_F(signal_watcher_test, TheHandlerMayDestroyTheWatcher) {
  std::unique_ptr<signal_watcher> watcher;
  int calls = 0;
  std::error_code error;
  watcher = signal_watcher::create(*loop,
                                   [&](int) {
                                     ++calls;
                                     watcher.reset();
                                     loop->stop();
                                   },
                                   error, {SIGUSR1, SIGUSR2});
  ASSERT_TRUE(watcher) << error.message();
  ASSERT_EQ(::raise(SIGUSR1), 0);
  ASSERT_EQ(::raise(SIGUSR2), 0);
  ASSERT_TRUE(test::run_for_at_most(*loop, 5s));
  EXPECT_EQ(calls, 1);
  // SIGUSR2 is still pending and blocked; consume it so it cannot fire later.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR2);
  const timespec no_wait{0, 0};
  EXPECT_EQ(::sigtimedwait(&set, nullptr, &no_wait), SIGUSR2);
}

TEST_F(signal_watcher_test, RejectsAnInvalidSignalNumber) {
  std::error_code error;
  auto watcher = signal_watcher::create(*loop, [](int) {}, error, {0x7fff});
  EXPECT_FALSE(watcher);
  EXPECT_EQ(error, std::errc::invalid_argument);
}

}  // namespace
}  // namespace switchboard::net
