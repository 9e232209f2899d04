// timeout_test.cpp — the timer-driven rules: handshake (slowloris), idle,
// keepalive ping + pong timeout, and the backpressure cap with both policies.
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <string>
#include <thread>

#include "server_test_support.hpp"

namespace switchboard::server::test {
namespace {

using protocol::event_kind;
using protocol::opcode;

class timeout_test : public server_test {};

TEST_F(timeout_test, HandshakeTimeoutDropsSlowlorisWhileOthersAreServed) {
  auto options = test_options();
  options.handshake_timeout = 300ms;
  running_server srv(options, add_echo);
  ws_client slow(srv.port());
  ASSERT_TRUE(slow.send_raw("GET / HTTP/1.1\r\n"));
  const auto start = std::chrono::steady_clock::now();
  ws_client good(srv.port());
  ASSERT_EQ(good.upgrade(), 101);
  for (int i = 0; i < 5; ++i) {
    slow.send_raw("X-Drip: 1\r\n");  // trickling does not extend the deadline
    ASSERT_TRUE(good.send_message(opcode::text, "served"));
    EXPECT_EQ(good.next().payload, "served");
    std::this_thread::sleep_for(20ms);
  }
  char byte;
  EXPECT_EQ(::recv(slow.fd(), &byte, 1, 0), 0) << "no answer, just a close";
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 3s);
  // The upgraded connection is not subject to the handshake timeout.
  ASSERT_TRUE(good.send_message(opcode::text, "still here"));
  EXPECT_EQ(good.next().payload, "still here");
}

TEST_F(timeout_test, IdleTimeoutClosesWith1001) {
  auto options = test_options();
  options.idle_timeout = 200ms;
  options.ping_interval = 0ms;
  running_server srv(options, add_echo);
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  const auto start = std::chrono::steady_clock::now();
  received r = c.next();
  ASSERT_EQ(r.kind, event_kind::close);
  EXPECT_EQ(r.code, 1001);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
  ASSERT_TRUE(c.send_close(1001));
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(timeout_test, KeepalivePingAndPongTimeout) {
  auto options = test_options();
  options.ping_interval = 100ms;
  options.pong_timeout = 150ms;
  running_server srv(options, add_echo);
  // A client that answers stays open across several pings.
  ws_client alive(srv.port());
  ASSERT_EQ(alive.upgrade(), 101);
  for (int i = 0; i < 3; ++i) {
    received r = alive.next();
    ASSERT_EQ(r.kind, event_kind::ping);
    ASSERT_TRUE(alive.send_frame(opcode::pong, r.payload));
  }
  // A client that never answers is closed (1008) after ping + pong timeout.
  ws_client silent(srv.port());
  ASSERT_EQ(silent.upgrade(), 101);
  EXPECT_EQ(silent.next().kind, event_kind::ping);
  received r = silent.next();
  ASSERT_EQ(r.kind, event_kind::close);
  EXPECT_EQ(r.code, 1008);
  ASSERT_TRUE(alive.send_message(opcode::text, "ok"));
  for (r = alive.next(); r.kind == event_kind::ping; r = alive.next()) {
    alive.send_frame(opcode::pong, r.payload);
  }
  EXPECT_EQ(r.payload, "ok");
}

struct flood_result {
  std::atomic<int> sent{0};
  std::atomic<int> dropped{0};
  std::atomic<std::size_t> max_buffered{0};
  std::atomic<int> drains{0};
  std::atomic<int> close_code{0};
};

void flood_server(server& s, flood_result& result) {
  ws_behavior b;
  b.on_message = [&result](websocket& ws, std::string_view, opcode) {
    const std::string chunk(64 * 1024, 'f');
    for (int i = 0; i < 4000; ++i) {
      const send_status st = ws.send(chunk);
      result.max_buffered = std::max(result.max_buffered.load(), ws.buffered_amount());
      if (st == send_status::dropped) {
        ++result.dropped;
        break;
      }
      ++result.sent;
    }
  };
  b.on_drain = [&result](websocket&) { ++result.drains; };
  b.on_close = [&result](websocket&, std::uint16_t code, std::string_view) {
    result.close_code = code;
  };
  s.ws("/", std::move(b));
}

TEST_F(timeout_test, BackpressureClosePolicyBoundsMemoryAndCloses1008) {
  auto options = test_options();
  options.max_backpressure = 256 * 1024;
  options.policy = backpressure_policy::close;
  flood_result result;
  running_server srv(options, [&](server& s) { flood_server(s, result); });
  ws_client c(srv.port(), 10s);
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_message(opcode::text, "flood"));  // then stop reading for a while
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(result.dropped.load(), 1);
  EXPECT_LE(result.max_buffered.load(), options.max_backpressure + 64 * 1024 + 256);
  int messages = 0;
  received r;
  for (r = c.next(); r.kind == event_kind::message; r = c.next()) ++messages;
  ASSERT_EQ(r.kind, event_kind::close);
  EXPECT_EQ(r.code, 1008);
  EXPECT_EQ(messages, result.sent.load());
  ASSERT_TRUE(c.send_close(1008));
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(timeout_test, BackpressureDropPolicyDropsAndDrains) {
  auto options = test_options();
  options.max_backpressure = 256 * 1024;
  options.policy = backpressure_policy::drop;
  flood_result result;
  running_server srv(options, [&](server& s) {
    flood_server(s, result);
  });
  ws_client c(srv.port(), 10s);
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_message(opcode::text, "flood"));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(result.dropped.load(), 1);
  EXPECT_LE(result.max_buffered.load(), options.max_backpressure + 64 * 1024 + 256);
  for (int i = 0; i < result.sent.load(); ++i) ASSERT_EQ(c.next().kind, event_kind::message);
  for (int i = 0; i < 200 && result.drains.load() == 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_GE(result.drains.load(), 1);
  EXPECT_EQ(result.close_code.load(), 0);  // still open
  ASSERT_TRUE(c.send_close(1000));
  EXPECT_EQ(c.next().kind, event_kind::close);
}

}  // namespace
}  // namespace switchboard::server::test
