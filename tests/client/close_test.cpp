// close_test.cpp — the close handshake in both directions (RFC 6455 §7):
// client-initiated with the server closing TCP, server-initiated with a code
// the client echoes, a server that never closes TCP (close timeout), a server
// that vanishes without a close frame (1006), and terminate().
#include "client_fixture.hpp"
#include "test_server.hpp"

namespace switchboard::client::test {
namespace {

using protocol::event_kind;

TEST_F(client_test, ClientCloseWaitsForTheServersCloseAndTcpClose) {
  std::uint16_t code_received = 0;
  std::string reason_received;
  scripted_server server([&](server_peer& peer) {
    peer.handshake();
    const peer_event e = peer.next();
    EXPECT_EQ(e.kind, event_kind::close);
    code_received = e.code;
    reason_received = e.payload;
    peer.send_close(1000, "ok");
  });
  make_client();
  on_open_hook = [&] { client_->close(4001, "leaving"); };
  ASSERT_FALSE(client_->connect(server.url()));
  ASSERT_TRUE(run());
  EXPECT_EQ(code_received, 4001);
  EXPECT_EQ(reason_received, "leaving");
  ASSERT_TRUE(close_);
  EXPECT_EQ(close_->first, 1000);
  EXPECT_EQ(close_->second, "ok");
  EXPECT_TRUE(errors_.empty());
}

TEST_F(client_test, ServerCloseIsEchoedAndReported) {
  std::uint16_t echoed = 0;
  scripted_server server([&](server_peer& peer) {
    peer.handshake();
    peer.send_close(4000, "go away");
    const peer_event e = peer.next();
    EXPECT_EQ(e.kind, event_kind::close);
    echoed = e.code;
  });
  make_client();
  ASSERT_FALSE(client_->connect(server.url()));
  ASSERT_TRUE(run());
  EXPECT_EQ(echoed, 4000);
  ASSERT_TRUE(close_);
  EXPECT_EQ(close_->first, 4000);
  EXPECT_EQ(close_->second, "go away");
  EXPECT_EQ(states_.back().state, client_state::closed);
  EXPECT_EQ(states_.back().code, 4000);
  EXPECT_TRUE(errors_.empty());
}

TEST_F(client_test, ServerThatKeepsTcpOpenIsClosedAfterTheTimeout) {
  bool client_hung_up = false;
  std::optional<scripted_server> server(std::in_place, [&](server_peer& peer) {
    peer.handshake();
    const peer_event e = peer.next();
    EXPECT_EQ(e.kind, event_kind::close);
    peer.send_close(1000);
    client_hung_up = peer.wait_eof(3s);
  });
  client_options options;
  options.close_timeout = 200ms;
  make_client(std::move(options));
  on_open_hook = [&] { client_->close(); };
  ASSERT_FALSE(client_->connect(server->url()));
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(run());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
  ASSERT_TRUE(close_);
  EXPECT_EQ(close_->first, 1000);
  EXPECT_TRUE(errors_.empty());
  server.reset();  // joins: the script has seen the hang-up or given up
  EXPECT_TRUE(client_hung_up);
}

TEST_F(client_test, ServerThatNeverAnswersOurCloseTimesOut) {
  scripted_server server([](server_peer& peer) {
    peer.handshake();
    EXPECT_EQ(peer.next().kind, event_kind::close);
    peer.wait_eof(3s);
  });
  client_options options;
  options.close_timeout = 200ms;
  make_client(std::move(options));
  on_open_hook = [&] { client_->close(); };
  ASSERT_FALSE(client_->connect(server.url()));
  ASSERT_TRUE(run());
  ASSERT_TRUE(close_);
  EXPECT_EQ(close_->first, 1006);
  ASSERT_EQ(errors_.size(), 1u);
  EXPECT_EQ(errors_[0], client_error::close_timeout);
}

TEST_F(client_test, ConnectionLostWithoutCloseFrameIs1006) {
  scripted_server server([](server_peer& peer) { peer.handshake(); });
  make_client();
  ASSERT_FALSE(client_->connect(server.url()));
  ASSERT_TRUE(run());
  EXPECT_EQ(opens_, 1);
  ASSERT_TRUE(close_);
  EXPECT_EQ(close_->first, 1006);
  ASSERT_EQ(errors_.size(), 1u);
  EXPECT_EQ(errors_[0], client_error::closed_without_frame);
}

TEST_F(client_test, TerminateDropsAtOnceWithoutReconnecting) {
  scripted_server server([](server_peer& peer) {
    peer.handshake();
    peer.wait_eof(3s);
  });
  client_options options;
  options.reconnect.enabled = true;
  make_client(std::move(options));
  on_open_hook = [&] { client_->terminate(); };
  ASSERT_FALSE(client_->connect(server.url()));
  ASSERT_TRUE(run());
  ASSERT_TRUE(close_);
  EXPECT_EQ(close_->first, 1006);
  EXPECT_TRUE(errors_.empty());
  EXPECT_EQ(client_->state(), client_state::closed);
  EXPECT_EQ(server.accepted(), 1);
}

TEST_F(client_test, ClientMayBeDestroyedInsideItsCallbacks) {
  scripted_server server([](server_peer& peer) {
    peer.handshake();
    peer.send(protocol::opcode::text, "bye");
    peer.wait_eof(3s);
  });
  make_client();
  on_message_hook = [&] {
    client_.reset();
    loop_->stop();
  };
  ASSERT_FALSE(client_->connect(server.url()));
  ASSERT_TRUE(run());
  EXPECT_FALSE(client_);
  EXPECT_EQ(messages_.size(), 1u);
}

}  // namespace
}  // namespace switchboard::client::test
