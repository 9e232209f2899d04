// handshake_test.cpp — connect and upgrade: the request the client sends, a
// good 101 with and without a subprotocol, each way the server's answer can be
// wrong, and connect failures (refused, timed out) and errors connect() returns.
#include <sys/socket.h>

#include <thread>

#include "client_fixture.hpp"
#include "switchboard/protocol/error.hpp"
#include "test_server.hpp"

namespace switchboard::client::test {
namespace {

using protocol::opcode;

// Answer the client's close and hang up.
void finish_close(server_peer& peer) {
  const peer_event e = peer.next();
  EXPECT_EQ(e.kind, protocol::event_kind::close);
  peer.send_close(e.code);
  peer.close();
}

// Accept, then finish_close: the shortest full session.
void accept_then_finish_close(server_peer& peer, std::string_view subprotocol = {}) {
  peer.handshake(subprotocol);
  finish_close(peer);
}

TEST_F(client_test, HandshakeSendsAWellFormedRequestAndOpens) {
  std::string request;
  scripted_server server([&](server_peer& peer) {
    // Stored before the 101 goes out, so before the client can open.
    request = peer.read_request();
    peer.accept();
    finish_close(peer);
  });
  client_options options;
  options.origin = "http://example.test";
  options.headers = {{"Authorization", "Bearer abc"}};
  make_client(std::move(options));
  on_open_hook = [&] { client_->close(1000, "bye"); };
  ASSERT_FALSE(client_->connect(server.url("/chat?room=1")));
  ASSERT_TRUE(run());

  EXPECT_EQ(opens_, 1);
  EXPECT_EQ(subprotocol_, "");
  const std::vector<client_state> expected{client_state::connecting, client_state::handshaking,
                                           client_state::open, client_state::closing,
                                           client_state::closed};
  EXPECT_EQ(state_sequence(), expected);
  EXPECT_EQ(states_.back().code, 1000);
  ASSERT_TRUE(close_);
  EXPECT_EQ(close_->first, 1000);
  EXPECT_TRUE(errors_.empty());
  EXPECT_EQ(request.rfind("GET /chat?room=1 HTTP/1.1\r\n", 0), 0u) << request;
  EXPECT_NE(request.find("Host: 127.0.0.1:"), std::string::npos);
  EXPECT_NE(request.find("Origin: http://example.test\r\n"), std::string::npos);
  EXPECT_NE(request.find("Authorization: Bearer abc\r\n"), std::string::npos);
  EXPECT_EQ(request.find("Sec-WebSocket-Protocol"), std::string::npos);
}

TEST_F(client_test, SubprotocolChosenByTheServerIsReported) {
  std::string offered;
  scripted_server server([&](server_peer& peer) {
    peer.read_request();
    offered = peer.offered_protocols();
    peer.accept("chat.v2");
    finish_close(peer);
  });
  client_options options;
  options.protocols = {"chat.v1", "chat.v2"};
  make_client(std::move(options));
  on_open_hook = [&] {
    EXPECT_EQ(client_->subprotocol(), "chat.v2");
    client_->close();
  };
  ASSERT_FALSE(client_->connect(server.url()));
  ASSERT_TRUE(run());
  EXPECT_EQ(subprotocol_, "chat.v2");
  EXPECT_EQ(offered, "chat.v1, chat.v2");
  EXPECT_TRUE(errors_.empty());
}

struct failure_case {
  const char* name;
  std::function<void(server_peer&)> script;
  std::vector<std::string> protocols;
  std::error_code expected;
  const char* text;  // a part of the error text
};

class handshake_failure : public client_test,
                          public ::testing::WithParamInterface<failure_case> {};

TEST_P(handshake_failure, IsReportedAndNeverOpens) {
  const failure_case& c = GetParam();
  scripted_server server(c.script);
  client_options options;
  options.protocols = c.protocols;
  options.handshake_timeout = 300ms;
  make_client(std::move(options));
  ASSERT_FALSE(client_->connect(server.url()));
  ASSERT_TRUE(run());
  EXPECT_EQ(opens_, 0);
  EXPECT_FALSE(close_) << "on_close is only for connections that opened";
  ASSERT_EQ(errors_.size(), 1u);
  EXPECT_EQ(errors_[0], c.expected) << errors_[0].message();
  EXPECT_NE(error_texts_[0].find(c.text), std::string::npos) << error_texts_[0];
  EXPECT_EQ(client_->state(), client_state::closed);
  EXPECT_EQ(states_.back().code, 1006);
}

INSTANTIATE_TEST_SUITE_P(
    cases, handshake_failure,
    ::testing::Values(
        failure_case{"not_101",
                     [](server_peer& p) {
                       p.read_request();
                       p.send_raw("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                     },
                     {}, make_error_code(protocol::error::response_not_101),
                     "handshake failed: server answered 404 Not Found"},
        failure_case{"bad_accept",
                     [](server_peer& p) {
                       p.read_request();
                       p.send_raw("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                                  "AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n");
                     },
                     {}, make_error_code(protocol::error::response_bad_accept), "handshake failed"},
        failure_case{"unexpected_subprotocol",
                     [](server_peer& p) {
                       p.read_request();
                       p.accept("other");
                     },
                     {"mine"}, make_error_code(protocol::error::response_unexpected_protocol),
                     "handshake failed"},
        failure_case{"subprotocol_none_offered",
                     [](server_peer& p) {
                       p.read_request();
                       p.accept("other");
                     },
                     {}, make_error_code(protocol::error::response_unexpected_protocol),
                     "handshake failed"},
        failure_case{"malformed_head",
                     [](server_peer& p) {
                       p.read_request();
                       p.send_raw("HTTP/1.1 101\nUpgrade: websocket\r\n\r\n");
                     },
                     {}, make_error_code(protocol::error::bare_lf), "malformed response"},
        failure_case{"eof_before_answer", [](server_peer& p) { p.read_request(); }, {},
                     make_error_code(client_error::handshake_eof), "without answering"},
        failure_case{"timeout",
                     [](server_peer& p) {
                       p.read_request();
                       p.wait_eof();
                     },
                     {}, make_error_code(client_error::handshake_timeout), "no response within"}),
    [](const ::testing::TestParamInfo<failure_case>& info) { return info.param.name; });

TEST_F(client_test, ConnectionRefusedIsReported) {
  make_client();
  ASSERT_FALSE(client_->connect("ws://127.0.0.1:" + std::to_string(unused_port()) + "/"));
  ASSERT_TRUE(run());
  ASSERT_EQ(errors_.size(), 1u);
  EXPECT_EQ(errors_[0], std::errc::connection_refused);
  EXPECT_NE(error_texts_[0].find("cannot connect to 127.0.0.1:"), std::string::npos);
  EXPECT_EQ(state_sequence(),
            (std::vector<client_state>{client_state::connecting, client_state::closed}));
}

TEST_F(client_test, ConnectTimeoutWhenTheServerNeverAnswersTheSyn) {
  // A listener with a full accept queue makes the kernel drop further SYNs.
  std::error_code error;
  net::unique_fd listener = net::open_tcp_socket(AF_INET, error);
  const net::endpoint local = net::endpoint::loopback_v4(0);
  ASSERT_EQ(::bind(listener.get(), local.data(), local.size()), 0);
  ASSERT_EQ(::listen(listener.get(), 0), 0);
  const net::endpoint bound = net::local_endpoint(listener.get(), error);
  std::vector<net::unique_fd> fillers;
  for (int i = 0; i < 3; ++i) {
    fillers.push_back(net::open_tcp_socket(AF_INET, error));
    (void)::connect(fillers.back().get(), bound.data(), bound.size());
  }
  std::this_thread::sleep_for(50ms);

  client_options options;
  options.connect_timeout = 200ms;
  make_client(std::move(options));
  ASSERT_FALSE(client_->connect("ws://" + bound.to_string() + "/"));
  ASSERT_TRUE(run());
  ASSERT_EQ(errors_.size(), 1u);
  if (errors_[0] != std::errc::timed_out) {
    GTEST_SKIP() << "the kernel did not drop the SYN here: " << errors_[0].message();
  }
  EXPECT_EQ(opens_, 0);
}

TEST_F(client_test, ConnectRefusesWhatItCannotDoAtOnce) {
  client_options options;
  options.protocols = {"not a token"};
  make_client(std::move(options));
  // No client_options::tls: wss:// cannot be spoken.
  EXPECT_EQ(client_->connect("wss://127.0.0.1/"), client_error::tls_not_supported);
  EXPECT_EQ(client_->connect("http://127.0.0.1/"), client_error::unsupported_scheme);
  EXPECT_EQ(client_->connect("ws://127.0.0.1:99999/"), client_error::bad_url);
  EXPECT_EQ(client_->connect("ws://127.0.0.1:1/"), client_error::bad_request);
  EXPECT_EQ(client_->state(), client_state::idle);
  EXPECT_TRUE(states_.empty());
}

TEST_F(client_test, SecondConnectWhileConnectingIsRefused) {
  scripted_server server([](server_peer& peer) { accept_then_finish_close(peer); });
  make_client();
  ASSERT_FALSE(client_->connect(server.url()));
  EXPECT_EQ(client_->connect(server.url()), client_error::already_connecting);
  on_open_hook = [&] { client_->close(); };
  ASSERT_TRUE(run());
  EXPECT_EQ(opens_, 1);
}

}  // namespace
}  // namespace switchboard::client::test
