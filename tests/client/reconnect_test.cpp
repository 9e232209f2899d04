// reconnect_test.cpp — automatic reconnection: a server that goes away and
// comes back on the same port; every state change is reported; attempts are
// counted; each delay lies in [0, min(cap, base · 2^n)] for n consecutive
// failures; max_attempts ends it; close() cancels a scheduled reconnect.
#include <optional>

#include "client_fixture.hpp"
#include "test_server.hpp"

namespace switchboard::client::test {
namespace {

using protocol::event_kind;

client_options reconnecting(std::uint32_t max_attempts) {
  client_options options;
  options.reconnect.enabled = true;
  options.reconnect.base = 40ms;
  options.reconnect.cap = 100ms;
  options.reconnect.max_attempts = max_attempts;
  options.random_seed = 12345;
  return options;
}

TEST_F(client_test, ReconnectsWithBackoffWhenTheServerComesBack) {
  // Server 1 accepts and drops the connection without a close frame.
  std::optional<scripted_server> server(std::in_place, [](server_peer& peer) { peer.handshake(); });
  const std::uint16_t port = server->port();
  make_client(reconnecting(10));
  const backoff windows(client_->options().reconnect);
  int waits = 0;
  on_state_hook = [&](const state_change& change) {
    if (change.state != client_state::reconnect_wait) return;
    ++waits;
    // The first wait follows an open connection (n = 0); later ones follow
    // n = attempt - 1 consecutive failures.
    EXPECT_GE(change.delay.count(), 0);
    EXPECT_LE(change.delay, windows.window(change.attempt - 1)) << "attempt " << change.attempt;
    if (waits == 1) {
      server.reset();  // gone: the next attempts are refused
    } else if (waits == 3) {
      // Back, on the same port: accepts, then answers the client's close.
      server.emplace(
          [](server_peer& peer) {
            peer.handshake();
            const peer_event e = peer.next();
            EXPECT_EQ(e.kind, event_kind::close);
            peer.send_close(e.code);
          },
          port);
    }
  };
  on_open_hook = [&] {
    EXPECT_EQ(client_->attempts(), 0u) << "a successful open resets the count";
    if (opens_ == 2) client_->close();
  };
  ASSERT_FALSE(client_->connect("ws://127.0.0.1:" + std::to_string(port) + "/"));
  ASSERT_TRUE(run());

  EXPECT_EQ(opens_, 2);
  EXPECT_EQ(waits, 3);
  // connecting(1) handshaking open reconnect_wait(1) connecting(1) closed? no:
  // a refused attempt goes straight to reconnect_wait with the next number.
  std::vector<std::uint32_t> wait_attempts;
  std::vector<std::uint32_t> connect_attempts;
  for (const auto& s : states_) {
    if (s.state == client_state::reconnect_wait) wait_attempts.push_back(s.attempt);
    if (s.state == client_state::connecting) connect_attempts.push_back(s.attempt);
  }
  EXPECT_EQ(wait_attempts, (std::vector<std::uint32_t>{1, 2, 3}));
  EXPECT_EQ(connect_attempts, (std::vector<std::uint32_t>{1, 1, 2, 3}));
  EXPECT_EQ(states_.back().state, client_state::closed);
  EXPECT_EQ(states_.back().code, 1000);
  // One lost connection (1006) and two refused connects reported as errors.
  ASSERT_EQ(errors_.size(), 3u);
  EXPECT_EQ(errors_[0], client_error::closed_without_frame);
  EXPECT_EQ(errors_[1], std::errc::connection_refused);
  EXPECT_EQ(errors_[2], std::errc::connection_refused);
}

TEST_F(client_test, GivesUpAfterMaxAttempts) {
  make_client(reconnecting(3));
  ASSERT_FALSE(client_->connect("ws://127.0.0.1:" + std::to_string(unused_port()) + "/"));
  ASSERT_TRUE(run());
  int connects = 0;
  for (const auto& s : states_) connects += s.state == client_state::connecting ? 1 : 0;
  EXPECT_EQ(connects, 3);
  EXPECT_EQ(client_->attempts(), 3u);
  ASSERT_FALSE(errors_.empty());
  EXPECT_EQ(errors_.back(), client_error::reconnect_exhausted);
  EXPECT_EQ(states_.back().state, client_state::closed);
}

TEST_F(client_test, CloseCancelsAScheduledReconnect) {
  client_options options = reconnecting(0);
  options.reconnect.base = 5000ms;
  options.reconnect.cap = 5000ms;
  make_client(std::move(options));
  on_state_hook = [&](const state_change& change) {
    if (change.state == client_state::reconnect_wait) client_->close();
  };
  ASSERT_FALSE(client_->connect("ws://127.0.0.1:" + std::to_string(unused_port()) + "/"));
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(run());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(states_.back().state, client_state::closed);
  int connects = 0;
  for (const auto& s : states_) connects += s.state == client_state::connecting ? 1 : 0;
  EXPECT_EQ(connects, 1);
}

TEST_F(client_test, ConnectAgainAfterClosedWorks) {
  scripted_server server([](server_peer& peer) {
    peer.handshake();
    const peer_event e = peer.next();
    peer.send_close(e.code);
  });
  make_client();
  on_open_hook = [&] { client_->close(); };
  ASSERT_FALSE(client_->connect(server.url()));
  ASSERT_TRUE(run());
  ASSERT_FALSE(client_->connect(server.url()));
  ASSERT_TRUE(run());
  EXPECT_EQ(opens_, 2);
  EXPECT_EQ(server.accepted(), 2);
}

}  // namespace
}  // namespace switchboard::client::test
