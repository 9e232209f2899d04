// loop_group_test.cpp — N loops on N threads, SO_REUSEPORT, post to loop i,
// clean stop and join.
#include "switchboard/net/loop_group.hpp"

#include <atomic>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "switchboard/net/tcp_listener.hpp"
#include "test_support.hpp"

namespace switchboard::net {
namespace {

using namespace std::chrono_literals;

class loop_group_test : public test::net_test {};

std::unique_ptr<loop_group> make_group(std::size_t threads) {
  loop_group_options options;
  options.threads = threads;
  options.loop = test::test_loop_options();
  std::error_code error;
  auto group = loop_group::create(options, error);
  EXPECT_TRUE(group) << error.message();
  return group;
}

TEST_F(loop_group_test, PostRunsOnTheTargetLoopsOwnThread) {
  auto group = make_group(2);
  ASSERT_TRUE(group);
  ASSERT_EQ(group->size(), 2u);
  ASSERT_FALSE(group->start());
  std::promise<std::thread::id> first;
  std::promise<std::thread::id> second;
  group->post(0, [&] { first.set_value(std::this_thread::get_id()); });
  group->post(1, [&] { second.set_value(std::this_thread::get_id()); });
  auto f = first.get_future();
  auto s = second.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  ASSERT_EQ(s.wait_for(5s), std::future_status::ready);
  const auto a = f.get();
  const auto b = s.get();
  EXPECT_NE(a, b);
  EXPECT_NE(a, std::this_thread::get_id());
  EXPECT_NE(b, std::this_thread::get_id());
  group->stop();
  EXPECT_FALSE(group->join());
}

TEST_F(loop_group_test, TwoLoopsShareOnePortWithReusePort) {
  auto group = make_group(2);
  ASSERT_TRUE(group);
  // One listener per loop on the same port, set up before the threads start.
  std::atomic<int> accepted[2] = {0, 0};
  std::atomic<int> total{0};
  std::mutex threads_mutex;
  std::set<std::thread::id> accepting_threads;
  listener_options options;
  options.reuse_port = true;
  std::unique_ptr<tcp_listener> listeners[2];
  std::uint16_t port = 0;
  for (std::size_t i = 0; i < 2; ++i) {
    std::error_code error;
    listeners[i] = tcp_listener::listen(
        group->loop(i), endpoint::loopback_v4(port), options,
        [&, i](unique_fd, const endpoint&) {
          ++accepted[i];
          ++total;
          std::lock_guard lock(threads_mutex);
          accepting_threads.insert(std::this_thread::get_id());
        },
        error);
    ASSERT_TRUE(listeners[i]) << error.message();
    port = listeners[i]->port();
  }
  ASSERT_EQ(listeners[0]->port(), listeners[1]->port());
  ASSERT_FALSE(group->start());

  // The kernel spreads connections over the two sockets by a hash of the
  // address pair; with 64 connections both get some (all on one: 2^-63).
  constexpr int k_connections = 64;
  {
    std::vector<unique_fd> clients;
    for (int i = 0; i < k_connections; ++i) {
      clients.push_back(test::connect_blocking(endpoint::loopback_v4(port)));
    }
    for (int i = 0; i < 500 && total < k_connections; ++i) std::this_thread::sleep_for(10ms);
  }
  group->stop();
  EXPECT_FALSE(group->join());
  EXPECT_EQ(total, k_connections);
  EXPECT_GT(accepted[0], 0);
  EXPECT_GT(accepted[1], 0);
  EXPECT_EQ(accepting_threads.size(), 2u);
  // The loops are not running any more: their objects may go from this thread.
  listeners[0].reset();
  listeners[1].reset();
}

TEST_F(loop_group_test, TheDestructorStopsAndJoins) {
  auto group = make_group(3);
  ASSERT_TRUE(group);
  ASSERT_FALSE(group->start());
  std::atomic<int> ran{0};
  for (std::size_t i = 0; i < group->size(); ++i) group->post(i, [&] { ++ran; });
  for (int i = 0; i < 500 && ran < 3; ++i) std::this_thread::sleep_for(2ms);
  group.reset();  // must not hang
  EXPECT_EQ(ran, 3);
}

TEST_F(loop_group_test, ALoopThreadMayStopTheWholeGroup) {
  auto group = make_group(2);
  ASSERT_TRUE(group);
  ASSERT_FALSE(group->start());
  group->post(1, [&] { group->stop(); });
  EXPECT_FALSE(group->join());
}

TEST_F(loop_group_test, LoopThreadsBlockTheShutdownSignals) {
  auto group = make_group(1);
  ASSERT_TRUE(group);
  ASSERT_FALSE(group->start());
  std::promise<bool> blocked;
  group->post(0, [&] {
    sigset_t mask;
    ::pthread_sigmask(SIG_SETMASK, nullptr, &mask);
    blocked.set_value(sigismember(&mask, SIGINT) == 1 && sigismember(&mask, SIGTERM) == 1 &&
                      sigismember(&mask, SIGHUP) == 1);
  });
  auto result = blocked.get_future();
  ASSERT_EQ(result.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(result.get());
  // ... and the controlling thread's mask is as it was.
  sigset_t mine;
  ::pthread_sigmask(SIG_SETMASK, nullptr, &mine);
  EXPECT_EQ(sigismember(&mine, SIGTERM), 0);
}

}  // namespace
}  // namespace switchboard::net
