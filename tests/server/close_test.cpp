// close_test.cpp — the close handshake in both directions and protocol
// errors failing the connection with the right close code.
#include <atomic>
#include <string>

#include <thread>

#include <switchboard/protocol/message_writer.hpp>

#include "server_test_support.hpp"

namespace switchboard::server::test {
namespace {

using protocol::event_kind;
using protocol::opcode;

class close_test : public server_test {};

TEST_F(close_test, ClientInitiatedCloseIsEchoedThenServerClosesTcp) {
  std::atomic<int> closed_code{0};
  running_server srv(test_options(), [&](server& s) {
    ws_behavior b;
    b.on_close = [&](websocket&, std::uint16_t code, std::string_view) { closed_code = code; };
    s.ws("/", std::move(b));
  });
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_close(4001, "bye"));
  received r = c.next();
  EXPECT_EQ(r.kind, event_kind::close);
  EXPECT_EQ(r.code, 4001);
  EXPECT_TRUE(c.wait_closed());  // the server closes TCP first
  EXPECT_EQ(closed_code.load(), 4001);
}

TEST_F(close_test, EmptyCloseIsAnsweredEmpty) {
  running_server srv(test_options(), add_echo);
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_frame(opcode::close, ""));
  received r = c.next();
  EXPECT_EQ(r.kind, event_kind::close);
  EXPECT_EQ(r.code, 1005);  // what a reader reports for an empty close
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(close_test, ServerInitiatedCloseWaitsForPeerThenClosesTcp) {
  std::atomic<int> closed_code{0};
  running_server srv(test_options(), [&](server& s) {
    ws_behavior b;
    b.on_message = [](websocket& ws, std::string_view p, opcode) {
      ws.close(4000, p);
      EXPECT_EQ(ws.send("dropped"), send_status::dropped);  // nothing after our close
    };
    b.on_close = [&](websocket&, std::uint16_t code, std::string_view) { closed_code = code; };
    s.ws("/", std::move(b));
  });
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_message(opcode::text, "please close"));
  received r = c.next();
  ASSERT_EQ(r.kind, event_kind::close);
  EXPECT_EQ(r.code, 4000);
  EXPECT_EQ(r.payload, "please close");
  ASSERT_TRUE(c.send_close(4000));
  EXPECT_TRUE(c.wait_closed());
  EXPECT_EQ(closed_code.load(), 4000);
}

TEST_F(close_test, CloseTimeoutClosesTcpWhenPeerNeverAnswers) {
  auto options = test_options();
  options.close_timeout = 100ms;
  running_server srv(options, [](server& s) {
    ws_behavior b;
    b.on_open = [](websocket& ws) { ws.close(1000); };
    s.ws("/", std::move(b));
  });
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  EXPECT_EQ(c.next().kind, event_kind::close);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.wait_closed());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}


TEST_F(close_test, UnmaskedFrameFailsWith1002) {
  running_server srv(test_options(), add_echo);
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_frame(opcode::text, "naked", true, /*masked=*/false));
  received r = c.next();
  ASSERT_EQ(r.kind, event_kind::close);
  EXPECT_EQ(r.code, 1002);
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(close_test, InvalidUtf8FailsWith1007) {
  std::atomic<int> closed_code{0};
  running_server srv(test_options(), [&](server& s) {
    ws_behavior b;
    b.on_close = [&](websocket&, std::uint16_t code, std::string_view) { closed_code = code; };
    s.ws("/", std::move(b));
  });
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_message(opcode::text, "ok \xC0\xAF"));
  received r = c.next();
  ASSERT_EQ(r.kind, event_kind::close);
  EXPECT_EQ(r.code, 1007);
  EXPECT_TRUE(c.wait_closed());
  EXPECT_EQ(closed_code.load(), 1007);
}

TEST_F(close_test, TooBigFailsWith1009AtTheHeader) {
  auto options = test_options();
  options.max_message_size = 1000;
  running_server srv(options, add_echo);
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_message(opcode::binary, std::string(1000, 'x')));
  EXPECT_EQ(c.next().payload.size(), 1000u);
  // Only the header of an oversized frame: rejected before its payload arrives.
  std::string frame;
  protocol::message_writer(protocol::role::client).append_frame(frame, opcode::binary,
                                                               std::string(1001, 'y'));
  ASSERT_TRUE(c.send_raw(frame.substr(0, 8)));
  received r = c.next();
  ASSERT_EQ(r.kind, event_kind::close);
  EXPECT_EQ(r.code, 1009);
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(close_test, ReservedOpcodeFailsWith1002) {
  running_server srv(test_options(), add_echo);
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_raw(std::string("\x83\x80\x01\x02\x03\x04", 6)));
  received r = c.next();
  ASSERT_EQ(r.kind, event_kind::close);
  EXPECT_EQ(r.code, 1002);
}

TEST_F(close_test, TerminateAndTcpDropReport1006) {
  std::atomic<int> closed_code{0};
  running_server srv(test_options(), [&](server& s) {
    ws_behavior b;
    b.on_message = [](websocket& ws, std::string_view, opcode) { ws.terminate(); };
    b.on_close = [&](websocket&, std::uint16_t code, std::string_view) { closed_code = code; };
    s.ws("/", std::move(b));
  });
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_message(opcode::text, "kill me"));
  EXPECT_TRUE(c.wait_closed());
  for (int i = 0; i < 200 && closed_code.load() == 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(closed_code.load(), 1006);
  closed_code = 0;
  ws_client d(srv.port());
  ASSERT_EQ(d.upgrade(), 101);
  d.close();
  for (int i = 0; i < 200 && closed_code.load() == 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(closed_code.load(), 1006);
}

}  // namespace
}  // namespace switchboard::server::test
