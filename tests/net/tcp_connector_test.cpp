// tcp_connector_test.cpp — connecting, refusal, timeout, cancellation, early
// failures reported from the loop, and a full echo over listener + connector.
#include "switchboard/net/tcp_connector.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <string>

#include "switchboard/net/tcp_listener.hpp"
#include "switchboard/net/tcp_socket.hpp"
#include "switchboard/net/tcp_stream.hpp"
#include "test_support.hpp"

namespace switchboard::net {
namespace {

using namespace std::chrono_literals;

class tcp_connector_test : public test::net_test {
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

// A port on 127.0.0.1 that nothing listens on (bound, then released).
std::uint16_t closed_port() {
  std::error_code error;
  unique_fd fd = open_tcp_socket(AF_INET, error);
  const endpoint any = endpoint::loopback_v4(0);
  EXPECT_EQ(::bind(fd.get(), any.data(), any.size()), 0);
  return local_endpoint(fd.get(), error).port();
}

TEST_F(tcp_connector_test, ConnectsToAListener) {
  std::error_code error;
  unique_fd server_side;
  auto listener = tcp_listener::listen(
      *loop, endpoint::loopback_v4(0), {},
      [&](unique_fd socket, const endpoint&) { server_side = std::move(socket); }, error);
  ASSERT_TRUE(listener) << error.message();
  tcp_connector connector(*loop);
  std::error_code result = std::make_error_code(std::errc::interrupted);
  unique_fd client;
  connector.connect(listener->local_endpoint(), 5s, [&](std::error_code e, unique_fd socket) {
    result = e;
    client = std::move(socket);
  });
  EXPECT_TRUE(connector.in_progress());
  loop->add_iteration_hook([&] {
    if (client && server_side) loop->stop();
  });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_FALSE(result) << result.message();
  EXPECT_FALSE(connector.in_progress());
  std::error_code peer_error;
  EXPECT_EQ(peer_endpoint(client.get(), peer_error), listener->local_endpoint());
}

TEST_F(tcp_connector_test, ANonListeningPortIsRefused) {
  tcp_connector connector(*loop);
  std::error_code result;
  bool called = false;
  connector.connect(endpoint::loopback_v4(closed_port()), 5s, [&](std::error_code e, unique_fd s) {
    called = true;
    result = e;
    EXPECT_FALSE(s);
    loop->stop();
  });
  EXPECT_FALSE(called);  // never from inside connect()
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(result, std::errc::connection_refused) << result.message();
}

TEST_F(tcp_connector_test, AnEarlyFailureIsStillReportedFromTheLoop) {
  tcp_connector connector(*loop);
  std::error_code result;
  bool called = false;
  connector.connect(endpoint{}, 5s, [&](std::error_code e, unique_fd) {  // no address family
    called = true;
    result = e;
    loop->stop();
  });
  EXPECT_FALSE(called);
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_TRUE(called);
  EXPECT_TRUE(result);
  EXPECT_LE(loop->iterations(), 2u);  // the next iteration, not the next tick
}

// A listener whose accept queue is full drops new SYNs: a connect to it
// stays pending and can only time out. Returns the listening socket; the
// caller keeps `filler` open. Empty when the queue could not be seen full.
unique_fd full_listener(unique_fd& filler, endpoint& address) {
  std::error_code error;
  unique_fd fd = open_tcp_socket(AF_INET, error);
  const endpoint any = endpoint::loopback_v4(0);
  EXPECT_EQ(::bind(fd.get(), any.data(), any.size()), 0);
  EXPECT_EQ(::listen(fd.get(), 0), 0);  // room for one queued connection
  address = local_endpoint(fd.get(), error);
  filler = test::connect_blocking(address);
  // For a listening socket TCP_INFO reports the accept queue length in
  // tcpi_unacked; wait until the filler is really queued.
  for (int i = 0; i < 500; ++i) {
    tcp_info info{};
    socklen_t length = sizeof info;
    if (::getsockopt(fd.get(), IPPROTO_TCP, TCP_INFO, &info, &length) == 0 &&
        info.tcpi_unacked >= 1) {
      return fd;
    }
    std::this_thread::sleep_for(2ms);
  }
  return {};
}

TEST_F(tcp_connector_test, AConnectThatGetsNoAnswerTimesOut) {
  unique_fd filler;
  endpoint address;
  unique_fd listening = full_listener(filler, address);
  if (!listening) GTEST_SKIP() << "could not observe a full accept queue";
  tcp_connector connector(*loop);
  std::error_code result;
  unique_fd socket;
  const auto start = std::chrono::steady_clock::now();
  loop->update_now();  // the set-up took time: count the timeout from here
  connector.connect(address, 200ms, [&](std::error_code e, unique_fd s) {
    result = e;
    socket = std::move(s);
    loop->stop();
  });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  if (!result) GTEST_SKIP() << "this kernel completed the handshake despite the full queue";
  EXPECT_EQ(result, std::errc::timed_out) << result.message();
  EXPECT_FALSE(socket);
  EXPECT_GE(elapsed, 199ms);  // now() is whole milliseconds, rounded down
  EXPECT_LT(elapsed, 1000ms);
}

TEST_F(tcp_connector_test, CancelAndDestructionDropTheCallbackAndTheSocket) {
  unique_fd filler;
  endpoint address;
  unique_fd listening = full_listener(filler, address);
  if (!listening) GTEST_SKIP() << "could not observe a full accept queue";
  int calls = 0;
  tcp_connector cancelled(*loop);
  cancelled.connect(address, 100ms, [&](std::error_code, unique_fd) { ++calls; });
  cancelled.cancel();
  EXPECT_FALSE(cancelled.in_progress());
  {
    tcp_connector destroyed(*loop);
    destroyed.connect(address, 100ms, [&](std::error_code, unique_fd) { ++calls; });
  }
  test::stop_timer s(*loop);
  loop->timers().schedule(s.node, 300ms);  // past both timeouts
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(calls, 0);
}

TEST_F(tcp_connector_test, TheCallbackMayConnectAgain) {
  std::error_code error;
  int accepted = 0;
  auto listener = tcp_listener::listen(
      *loop, endpoint::loopback_v4(0), {}, [&](unique_fd, const endpoint&) { ++accepted; }, error);
  ASSERT_TRUE(listener);
  tcp_connector connector(*loop);
  std::vector<std::error_code> results;
  connector.connect(endpoint::loopback_v4(closed_port()), 5s, [&](std::error_code e, unique_fd) {
    results.push_back(e);
    connector.connect(listener->local_endpoint(), 5s,
                      [&](std::error_code e2, unique_fd) { results.push_back(e2); });
  });
  loop->add_iteration_hook([&] {
    if (results.size() == 2 && accepted == 1) loop->stop();
  });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0], std::errc::connection_refused);
  EXPECT_FALSE(results[1]);
}

// The whole path: listener on port 0, accept, connector, two streams, a
// 300 KiB echo that crosses the direct-write threshold and many reads.
struct echo_side final : stream_handler {
  explicit echo_side(event_loop& loop, bool echo) : stream(loop, *this), echo(echo) {}
  void on_data(tcp_stream& s, std::span<std::byte> data) override {
    if (echo) {
      s.send(data);
    } else {
      received.append(reinterpret_cast<const char*>(data.data()), data.size());
    }
  }
  void on_close(tcp_stream&, std::error_code e) override { closed = e ? e : closed; }
  tcp_stream stream;
  bool echo;
  std::string received;
  std::error_code closed;
};

TEST_F(tcp_connector_test, EchoThroughListenerConnectorAndStreams) {
  echo_side server(*loop, true);
  echo_side client(*loop, false);
  std::error_code error;
  auto listener = tcp_listener::listen(
      *loop, endpoint::loopback_v4(0), {},
      [&](unique_fd socket, const endpoint&) {
        EXPECT_FALSE(server.stream.open(std::move(socket)));
      },
      error);
  ASSERT_TRUE(listener) << error.message();
  const std::string message = test::pattern(0, 300 * 1024);
  tcp_connector connector(*loop);
  connector.connect(listener->local_endpoint(), 5s, [&](std::error_code e, unique_fd socket) {
    ASSERT_FALSE(e) << e.message();
    ASSERT_FALSE(client.stream.open(std::move(socket)));
    for (std::size_t offset = 0; offset < message.size(); offset += 1000) {  // many small sends
      const std::size_t n = std::min<std::size_t>(1000, message.size() - offset);
      client.stream.send(test::as_bytes(message.substr(offset, n)));
    }
  });
  loop->add_iteration_hook([&] {
    if (client.received.size() >= message.size()) loop->stop();
  });
  ASSERT_TRUE(test::run_for_at_most(*loop, 10s));
  EXPECT_FALSE(server.closed);
  EXPECT_FALSE(client.closed);
  ASSERT_EQ(client.received.size(), message.size());
  EXPECT_TRUE(client.received == message);
  server.stream.close();
  client.stream.close();
}

}  // namespace
}  // namespace switchboard::net
