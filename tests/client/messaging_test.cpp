// messaging_test.cpp — data and control frames once open: echo of text and
// binary messages (empty and 1 MiB included), frames that arrive in the same
// read as the 101, ping/pong both ways, protocol errors from the server, and
// what send() refuses.
#include "client_fixture.hpp"
#include "switchboard/protocol/error.hpp"
#include "test_server.hpp"

namespace switchboard::client::test {
namespace {

using protocol::event_kind;
using protocol::opcode;

// Echoes every data message until the client's close, which it answers.
void echo_script(server_peer& peer) {
  peer.handshake();
  for (;;) {
    const peer_event e = peer.next();
    if (e.kind == event_kind::message) {
      peer.send(e.op, e.payload);
    } else if (e.kind == event_kind::ping) {
      peer.send(opcode::pong, e.payload);
    } else if (e.kind == event_kind::close) {
      peer.send_close(e.code);
      return;
    } else if (e.kind != event_kind::pong) {
      ADD_FAILURE() << "unexpected event " << static_cast<int>(e.kind);
      return;
    }
  }
}

TEST_F(client_test, EchoesTextAndBinaryIncludingEmptyAndOneMebibyte) {
  scripted_server server(echo_script);
  std::string big(1024 * 1024, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 251);
  const std::vector<received_message> sent{{"hello", opcode::text},
                                           {"h\xC3\xA9llo \xE2\x9C\x93", opcode::text},
                                           {"", opcode::text},
                                           {std::string("\0\x01\xFF", 3), opcode::binary},
                                           {"", opcode::binary},
                                           {big, opcode::binary}};
  make_client();
  on_open_hook = [&] {
    for (const auto& m : sent) EXPECT_NE(client_->send(m.payload, m.op), send_status::dropped);
  };
  on_message_hook = [&] {
    if (messages_.size() == sent.size()) client_->close();
  };
  ASSERT_FALSE(client_->connect(server.url()));
  ASSERT_TRUE(run());
  ASSERT_EQ(messages_.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(messages_[i].op, sent[i].op) << i;
    EXPECT_TRUE(messages_[i].payload == sent[i].payload) << "message " << i << " differs";
  }
  ASSERT_TRUE(close_);
  EXPECT_EQ(close_->first, 1000);
  EXPECT_TRUE(errors_.empty());
}

TEST_F(client_test, FramesInTheSameReadAsThe101AreDelivered) {
  scripted_server server([](server_peer& peer) {
    peer.read_request();
    peer.accept({}, server_peer::frame(opcode::ping, "p") +
                        server_peer::frame(opcode::text, "early") +
                        server_peer::frame(opcode::binary, "bird"));
    EXPECT_EQ(peer.next().kind, event_kind::pong);
    const peer_event e = peer.next();
    EXPECT_EQ(e.kind, event_kind::close);
    peer.send_close(e.code);
  });
  make_client();
  int opened_before_messages = -1;
  on_open_hook = [&] { opened_before_messages = static_cast<int>(messages_.size()); };
  on_message_hook = [&] {
    if (messages_.size() == 2) client_->close();
  };
  ASSERT_FALSE(client_->connect(server.url()));
  ASSERT_TRUE(run());
  EXPECT_EQ(opened_before_messages, 0) << "on_open must come before the early frames";
  ASSERT_EQ(messages_.size(), 2u);
  EXPECT_EQ(messages_[0].payload, "early");
  EXPECT_EQ(messages_[1].payload, "bird");
  EXPECT_EQ(messages_[1].op, opcode::binary);
  EXPECT_EQ(pings_, std::vector<std::string>{"p"});
}

TEST_F(client_test, ServerPingIsAnsweredWithTheSamePayload) {
  std::string pong_payload;
  scripted_server server([&](server_peer& peer) {
    peer.handshake();
    peer.send(opcode::ping, "are you there");
    const peer_event pong = peer.next();
    EXPECT_EQ(pong.kind, event_kind::pong);
    pong_payload = pong.payload;
    peer.send_close(1000, "done");
    EXPECT_EQ(peer.next().kind, event_kind::close);
  });
  make_client();
  ASSERT_FALSE(client_->connect(server.url()));
  ASSERT_TRUE(run());
  EXPECT_EQ(pong_payload, "are you there");
  EXPECT_EQ(pings_, std::vector<std::string>{"are you there"});
  ASSERT_TRUE(close_);
  EXPECT_EQ(close_->first, 1000);
  EXPECT_EQ(close_->second, "done");
}

TEST_F(client_test, ClientPingGetsThePongReported) {
  scripted_server server(echo_script);
  make_client();
  on_open_hook = [&] { EXPECT_EQ(client_->ping("42"), send_status::ok); };
  ASSERT_FALSE(client_->connect(server.url()));
  // Stop once the pong is in: poll from a hook on the loop.
  const auto hook = loop_->add_iteration_hook([&] {
    if (!pongs_.empty() && client_->state() == client_state::open) client_->close();
  });
  ASSERT_TRUE(run());
  loop_->remove_iteration_hook(hook);
  EXPECT_EQ(pongs_, std::vector<std::string>{"42"});
}

TEST_F(client_test, MaskedServerFrameFailsTheConnectionWith1002) {
  std::uint16_t code_received = 0;
  scripted_server server([&](server_peer& peer) {
    peer.handshake();
    std::string masked;
    protocol::message_writer(protocol::role::client).append_frame(masked, opcode::text, "x");
    peer.send_raw(masked);
    const peer_event e = peer.next();
    EXPECT_EQ(e.kind, event_kind::close);
    code_received = e.code;
    peer.send_close(e.code);
  });
  make_client();
  ASSERT_FALSE(client_->connect(server.url()));
  ASSERT_TRUE(run());
  EXPECT_EQ(code_received, 1002);
  ASSERT_EQ(errors_.size(), 1u);
  EXPECT_EQ(errors_[0], protocol::error::masked_frame);
  EXPECT_TRUE(messages_.empty());
}

TEST_F(client_test, SendRefusesWhenNotOpenAndInvalidUtf8) {
  scripted_server server(echo_script);
  make_client();
  EXPECT_EQ(client_->send_text("early"), send_status::dropped);
  ASSERT_FALSE(client_->connect(server.url()));
  EXPECT_EQ(client_->send_text("still connecting"), send_status::dropped);
  on_open_hook = [&] {
    EXPECT_EQ(client_->send_text("\xC3\x28"), send_status::dropped);
    EXPECT_EQ(client_->send(std::string_view("x"), opcode::ping), send_status::dropped);
    EXPECT_EQ(client_->send_binary("\xC3\x28"), send_status::ok);
    client_->close();
    EXPECT_EQ(client_->send_text("after close"), send_status::dropped);
    EXPECT_EQ(client_->ping(), send_status::dropped);
  };
  ASSERT_TRUE(run());
  // Data sent before the server saw our close still arrives while closing.
  ASSERT_EQ(messages_.size(), 1u);
  EXPECT_EQ(messages_[0].payload, "\xC3\x28");
}

}  // namespace
}  // namespace switchboard::client::test
