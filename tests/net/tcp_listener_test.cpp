// tcp_listener_test.cpp — port 0, the accept loop, IPv6, pause/resume, bind
// errors, and running out of descriptors (in a forked child).
#include "switchboard/net/tcp_listener.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "switchboard/net/tcp_socket.hpp"
#include "test_support.hpp"

namespace switchboard::net {
namespace {

using namespace std::chrono_literals;

class tcp_listener_test : public test::net_test {
 protected:
  void SetUp() override {
    net_test::SetUp();
    loop = test::make_loop();
    ASSERT_TRUE(loop);
  }
  void TearDown() override {
    accepted.clear();
    listener.reset();
    loop.reset();
    net_test::TearDown();
  }
  void listen(const endpoint& local, const listener_options& options = {}) {
    std::error_code error;
    listener = tcp_listener::listen(
        *loop, local, options,
        [this](unique_fd socket, const endpoint& peer) {
          accepted.push_back(std::move(socket));
          peers.push_back(peer);
        },
        error);
    ASSERT_TRUE(listener) << error.message();
  }
  // Stops the loop at the end of the first iteration for which `done` holds.
  template <class Predicate>
  void stop_when(Predicate done) {
    loop->add_iteration_hook([this, done] {
      if (done()) loop->stop();
    });
  }

  std::unique_ptr<event_loop> loop;
  std::unique_ptr<tcp_listener> listener;
  std::vector<unique_fd> accepted;
  std::vector<endpoint> peers;
};

TEST_F(tcp_listener_test, BindsPortZeroAndReportsTheChosenPort) {
  listen(endpoint::loopback_v4(0));
  EXPECT_NE(listener->port(), 0);
  EXPECT_EQ(listener->local_endpoint(), endpoint::loopback_v4(listener->port()));
  EXPECT_TRUE(listener->accepting());
}

// Connections waiting in a listening socket's accept queue.
unsigned queued_connections(int listening_fd) {
  tcp_info info{};
  socklen_t length = sizeof info;
  if (::getsockopt(listening_fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return 0;
  return info.tcpi_unacked;  // for a listening socket: the accept queue length
}

TEST_F(tcp_listener_test, AcceptsEveryQueuedConnectionInOneWake) {
  listen(endpoint::loopback_v4(0));
  std::vector<unique_fd> clients;
  for (int i = 0; i < 50; ++i)
    clients.push_back(test::connect_blocking(listener->local_endpoint()));
  // connect() returns before the kernel has necessarily queued the server
  // side; TCP_INFO on a listening socket reports the queue length.
  for (int i = 0; i < 1000 && queued_connections(listener->native_handle()) < 50; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(queued_connections(listener->native_handle()), 50u);
  stop_when([&] { return !accepted.empty(); });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(accepted.size(), 50u);  // all in the first iteration that saw any
  EXPECT_EQ(listener->statistics().accepted, 50u);
  std::error_code error;
  const endpoint client_address = local_endpoint(clients.front().get(), error);
  EXPECT_EQ(peers.front(), client_address);
  for (const auto& socket : accepted) {
    EXPECT_NE(::fcntl(socket.get(), F_GETFL) & O_NONBLOCK, 0);
    EXPECT_NE(::fcntl(socket.get(), F_GETFD) & FD_CLOEXEC, 0);
  }
}

TEST_F(tcp_listener_test, ListensOnIpv6Loopback) {
  std::error_code error;
  listener = tcp_listener::listen(
      *loop, endpoint::loopback_v6(0), {},
      [this](unique_fd socket, const endpoint& peer) {
        accepted.push_back(std::move(socket));
        peers.push_back(peer);
      },
      error);
  if (!listener && (error == std::errc::address_family_not_supported ||
                    error == std::errc::address_not_available)) {
    GTEST_SKIP() << "no IPv6 loopback here: " << error.message();
  }
  ASSERT_TRUE(listener) << error.message();
  unique_fd client = test::connect_blocking(listener->local_endpoint());
  stop_when([&] { return !accepted.empty(); });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0].family(), AF_INET6);
  EXPECT_EQ(peers[0].address_string(), "::1");
}

TEST_F(tcp_listener_test, PausedListenersLeaveConnectionsQueuedUntilResumed) {
  listen(endpoint::loopback_v4(0));
  listener->pause();
  EXPECT_FALSE(listener->accepting());
  unique_fd client = test::connect_blocking(listener->local_endpoint());
  int hooks = 0;
  loop->add_iteration_hook([&] {
    ++hooks;
    if (hooks < 20) {
      loop->defer([] {});  // spin a few iterations on purpose
    } else if (hooks == 20) {
      EXPECT_TRUE(accepted.empty());
      listener->resume();
    } else if (!accepted.empty()) {
      loop->stop();
    }
  });
  loop->defer([] {});
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(accepted.size(), 1u);
}

TEST_F(tcp_listener_test, AcceptedSocketsHaveNoDelayAndTheirPeersAddress) {
  listen(endpoint::loopback_v4(0));
  std::vector<unique_fd> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(test::connect_blocking(listener->local_endpoint()));
  stop_when([&] { return accepted.size() == 3; });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  for (std::size_t i = 0; i < accepted.size(); ++i) {
    int on = 0;
    socklen_t length = sizeof on;
    ASSERT_EQ(::getsockopt(accepted[i].get(), IPPROTO_TCP, TCP_NODELAY, &on, &length), 0);
    EXPECT_EQ(on, 1);
    std::error_code error;
    EXPECT_EQ(peers[i], local_endpoint(clients[i].get(), error));  // in the order of connect
  }
}

// A listener paused by its accept handler hands over nothing more until
// resumed (on io_uring the rest of the batch the kernel took is held), then
// the rest in order.
TEST_F(tcp_listener_test, PausingFromTheAcceptHandlerHoldsTheRestUntilResumed) {
  std::error_code listen_error;
  listener = tcp_listener::listen(
      *loop, endpoint::loopback_v4(0), {},
      [this](unique_fd socket, const endpoint& peer) {
        accepted.push_back(std::move(socket));
        peers.push_back(peer);
        if (accepted.size() == 1) listener->pause();
      },
      listen_error);
  ASSERT_TRUE(listener) << listen_error.message();
  std::vector<unique_fd> clients;
  for (int i = 0; i < 5; ++i) clients.push_back(test::connect_blocking(listener->local_endpoint()));
  for (int i = 0; i < 1000 && queued_connections(listener->native_handle()) < 5; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(queued_connections(listener->native_handle()), 5u);
  int quiet_iterations = 0;
  loop->add_iteration_hook([&] {
    if (!listener->accepting()) {
      EXPECT_EQ(accepted.size(), 1u);
      if (++quiet_iterations == 10) listener->resume();
      loop->defer([] {});  // keep iterating
    }
    if (accepted.size() == 5) loop->stop();
  });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  ASSERT_EQ(accepted.size(), 5u);
  EXPECT_EQ(quiet_iterations, 10);
  for (std::size_t i = 0; i < 5; ++i) {
    std::error_code error;
    EXPECT_EQ(peers[i], local_endpoint(clients[i].get(), error)) << i;
  }
}

// Nothing is accepted while the loop is not running: connections wait in the
// kernel's queue (on io_uring, an accept left armed in the kernel would take
// them behind the loop's back, with the descriptor limit of its arming).
TEST_F(tcp_listener_test, NothingIsAcceptedBetweenRuns) {
  listen(endpoint::loopback_v4(0));
  unique_fd first = test::connect_blocking(listener->local_endpoint());
  const auto first_hook = loop->add_iteration_hook([&] {
    if (accepted.size() == 1) loop->stop();
  });
  ASSERT_TRUE(test::run_for_at_most(*loop));  // the listener has accepted once
  loop->remove_iteration_hook(first_hook);
  std::vector<unique_fd> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(test::connect_blocking(listener->local_endpoint()));
  for (int i = 0; i < 1000 && queued_connections(listener->native_handle()) < 3; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(queued_connections(listener->native_handle()), 3u);
  EXPECT_EQ(accepted.size(), 1u);
  stop_when([&] { return accepted.size() == 4; });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(accepted.size(), 4u);
  EXPECT_EQ(queued_connections(listener->native_handle()), 0u);
}

// A storm is handed over k_max_accepts_per_wake connections per iteration,
// so the loop's other work runs in between.
TEST_F(tcp_listener_test, AStormIsHandedOverAtMostAWakeFullPerIteration) {
  constexpr std::size_t k_storm = tcp_listener::k_max_accepts_per_wake + 44;
  listen(endpoint::loopback_v4(0));
  std::vector<unique_fd> clients;
  for (std::size_t i = 0; i < k_storm; ++i) {
    clients.push_back(test::connect_blocking(listener->local_endpoint()));
  }
  for (int i = 0; i < 1000 && queued_connections(listener->native_handle()) < k_storm; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(queued_connections(listener->native_handle()), k_storm);
  std::vector<std::size_t> per_iteration;
  std::size_t before = 0;
  loop->add_iteration_hook([&] {
    if (accepted.size() != before) per_iteration.push_back(accepted.size() - before);
    before = accepted.size();
    if (accepted.size() == k_storm) loop->stop();
  });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  ASSERT_EQ(per_iteration.size(), 2u);
  EXPECT_EQ(per_iteration[0], tcp_listener::k_max_accepts_per_wake);
  EXPECT_EQ(per_iteration[1], 44u);
}

TEST_F(tcp_listener_test, AnAddressInUseIsAnError) {
  listen(endpoint::loopback_v4(0));
  std::error_code error;
  auto second = tcp_listener::listen(
      *loop, listener->local_endpoint(), {}, [](unique_fd, const endpoint&) {}, error);
  EXPECT_FALSE(second);
  EXPECT_EQ(error, std::errc::address_in_use);
}

TEST_F(tcp_listener_test, TheAcceptHandlerMayDestroyTheListener) {
  std::error_code error;
  int calls = 0;
  listener = tcp_listener::listen(
      *loop, endpoint::loopback_v4(0), {},
      [&](unique_fd, const endpoint&) {
        ++calls;
        listener.reset();
        loop->stop();
      },
      error);
  ASSERT_TRUE(listener);
  unique_fd a = test::connect_blocking(listener->local_endpoint());
  unique_fd b = test::connect_blocking(listener->local_endpoint());
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(calls, 1);
}

// Runs in a forked child; returns its exit status (0 = pass), which the parent
// checks (gtest results recorded in the child would be lost). The child lowers
// its descriptor limit so that accept4 fails with EMFILE, and checks that the
// listener pauses instead of spinning, then recovers once descriptors free up.
int emfile_child() {
  std::error_code error;
  event_loop_options options = test::test_loop_options();
  auto loop = event_loop::create(error, options);
  if (!loop) return 10;
  std::size_t accepted = 0;
  listener_options listen_options;
  listen_options.resource_pause = 50ms;
  auto listener = tcp_listener::listen(
      *loop, endpoint::loopback_v4(0), listen_options,
      [&](unique_fd, const endpoint&) { ++accepted; },  // closes the socket at once
      error);
  if (!listener) return 11;

  // Warm-up: accept one connection and run one posted task while descriptors
  // are still free. UBSan checks the dynamic type at the first virtual call
  // through each type, and that check needs a spare descriptor (it probes the
  // vtable's memory through a pipe): without this it would report a false
  // "invalid vptr" once the process is out of descriptors.
  {
    unique_fd warm = test::connect_blocking(listener->local_endpoint());
    bool posted = false;
    loop->post([&] { posted = true; });
    const auto hook = loop->add_iteration_hook([&] {
      if (accepted == 1 && posted) loop->stop();
    });
    test::stop_timer limit(*loop);
    loop->timers().schedule(limit.node, 5s);
    if (loop->run() || limit.fired) return 23;
    loop->remove_iteration_hook(hook);
    accepted = 0;
  }

  // Leave 16 descriptor numbers free above the highest one in use, then fill
  // them all with connected clients (queued, not yet accepted).
  int highest = 0;
  for (int fd = 0; fd < 65536; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1) highest = fd;
  }
  const rlimit limit{static_cast<rlim_t>(highest + 1 + 16), static_cast<rlim_t>(highest + 1 + 16)};
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return 12;
  std::vector<unique_fd> clients;
  for (;;) {
    unique_fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!client) {
      if (errno == EMFILE) break;
      return 13;
    }
    const endpoint& to = listener->local_endpoint();
    if (::connect(client.get(), to.data(), to.size()) != 0) return 14;
    clients.push_back(std::move(client));
  }
  if (clients.size() < 4) return 15;
  const std::size_t queued = clients.size();

  // Phase 1 (300 ms): every accept4 fails. A listener that kept watching its
  // readable socket would make the level-triggered loop spin thousands of times.
  test::stop_timer phase1(*loop);
  // From now, not from the last iteration: making the clients may take long
  // (a loaded machine, strace), and on io_uring the accept batch runs one
  // iteration after the readiness report.
  loop->update_now();
  loop->timers().schedule(phase1.node, 300ms);
  if (loop->run()) return 16;
  if (!phase1.fired) return 17;
  const std::uint64_t iterations = loop->iterations();
  if (accepted != 0) return 18;
  if (listener->statistics().resource_pauses == 0) return 19;
  if (iterations > 100) return 20;

  // Phase 2: free two descriptors; after the pause the listener accepts every
  // queued connection (each accepted socket is closed at once, freeing its slot).
  clients.resize(clients.size() - 2);
  loop->add_iteration_hook([&] {
    if (accepted == queued) loop->stop();
  });
  test::stop_timer deadline(*loop);
  loop->timers().schedule(deadline.node, 5s);
  if (loop->run()) return 21;
  if (accepted != queued) return 22;
  return 0;
}

TEST_F(tcp_listener_test, RunningOutOfDescriptorsPausesAcceptingInsteadOfSpinning) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(emfile_child());
  int status = 0;
  pid_t done = 0;
  for (int i = 0; i < 2000 && done == 0; ++i) {  // up to 20 s
    done = ::waitpid(child, &status, WNOHANG);
    if (done == 0) std::this_thread::sleep_for(10ms);
  }
  if (done == 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
    FAIL() << "the child hung";
  }
  ASSERT_TRUE(WIFEXITED(status)) << "the child died of signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "see the return codes in emfile_child()";
}

}  // namespace
}  // namespace switchboard::net
