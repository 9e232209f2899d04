// handshake_test.cpp — routing and the opening handshake: accept, every
// rejection status, plain HTTP handlers, and sync/async on_upgrade decisions.
#include <atomic>
#include <thread>

#include <switchboard/protocol/handshake.hpp>
#include <switchboard/protocol/message_writer.hpp>

#include "server_test_support.hpp"

namespace switchboard::server::test {
namespace {

using protocol::opcode;

class handshake_test : public server_test {};

void echo_at(server& s, std::string path) {
  ws_behavior b;
  b.on_message = [](websocket& ws, std::string_view p, opcode op) { ws.send(p, op); };
  s.ws(std::move(path), std::move(b));
}

TEST_F(handshake_test, AcceptsValidUpgradeWithCorrectAcceptKey) {
  running_server srv(test_options(), add_echo);
  ws_client c(srv.port());
  ASSERT_TRUE(c.connected());
  // The RFC 6455 §1.3 example key and its accept value.
  ASSERT_TRUE(c.send_raw("GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"));
  std::string head;
  EXPECT_EQ(c.read_response(&head), 101);
  EXPECT_NE(head.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), std::string::npos)
      << head;
}

TEST_F(handshake_test, UpgradeReturns101) {
  running_server srv(test_options(), add_echo);
  ws_client c(srv.port());
  std::string head;
  EXPECT_EQ(c.upgrade("/any/path?x=1", {}, &head), 101);
  EXPECT_NE(head.find("Sec-WebSocket-Accept: "), std::string::npos);
  ASSERT_TRUE(c.send_message(opcode::text, "hi"));
  EXPECT_EQ(c.next().payload, "hi");
}

TEST_F(handshake_test, UnknownPathIs404) {
  running_server srv(test_options(), [](server& s) { echo_at(s, "/echo"); });
  ws_client c(srv.port());
  EXPECT_EQ(c.upgrade("/nope"), 404);
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(handshake_test, PlainGetToWebSocketPathIs426) {
  running_server srv(test_options(), [](server& s) { echo_at(s, "/echo"); });
  ws_client c(srv.port());
  const std::string r = c.http_exchange("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 426", 0), 0u) << r;
  EXPECT_NE(r.find("Sec-WebSocket-Version: 13"), std::string::npos);
}

TEST_F(handshake_test, MissingKeyIs400) {
  running_server srv(test_options(), add_echo);
  ws_client c(srv.port());
  const std::string r = c.http_exchange(
      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 400", 0), 0u) << r;
}

TEST_F(handshake_test, PostUpgradeIs405) {
  running_server srv(test_options(), add_echo);
  ws_client c(srv.port());
  const std::string r = c.http_exchange(
      "POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 405", 0), 0u) << r;
}

TEST_F(handshake_test, OversizedHeadIs431) {
  auto options = test_options();
  options.max_head_size = 1024;
  running_server srv(options, add_echo);
  ws_client c(srv.port());
  const std::string r = c.http_exchange("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " +
                                        std::string(900, 'a') + "\r\nX-More: " +
                                        std::string(900, 'b') + "\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 431", 0), 0u) << r;
}

TEST_F(handshake_test, MaxConnectionsAnswers503) {
  auto options = test_options();
  options.max_connections = 1;
  running_server srv(options, add_echo);
  ws_client first(srv.port());
  ASSERT_EQ(first.upgrade(), 101);
  ws_client second(srv.port());
  EXPECT_EQ(second.upgrade(), 503);
  first.close();
  // The slot frees once the first connection is gone.
  for (int i = 0; i < 200 && srv.get().connections() != 0; ++i) std::this_thread::sleep_for(5ms);
  ws_client third(srv.port());
  EXPECT_EQ(third.upgrade(), 101);
}

TEST_F(handshake_test, HttpHandlerAnswersOnSharedRouter) {
  running_server srv(test_options(), [](server& s) {
    echo_at(s, "/ws");
    s.http("GET", "/healthz", [](const http_request& req, http_response& res) {
      res.set_body("ok " + std::string(req.query()));
      EXPECT_TRUE(res.add_header("X-Test", "1"));
      EXPECT_FALSE(res.add_header("X-Bad", "a\r\nInjected: 1"));
    });
  });
  ws_client c(srv.port());
  const std::string r = c.http_exchange("GET /healthz?q HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_NE(r.find("X-Test: 1\r\n"), std::string::npos);
  EXPECT_EQ(r.substr(r.size() - 4), "ok q");
  ws_client post(srv.port());
  const std::string refused = post.http_exchange("POST /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(refused.rfind("HTTP/1.1 405", 0), 0u) << refused;
  // Allow names the methods the path has (RFC 9110 §15.5.6), not a fixed GET.
  EXPECT_NE(refused.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos) << refused;
  ws_client ws(srv.port());
  EXPECT_EQ(ws.upgrade("/ws"), 101);
}

TEST_F(handshake_test, MethodNotAllowedListsThePathsMethods) {
  running_server srv(test_options(), [](server& s) {
    s.http("POST", "/api", [](const http_request&, http_response&) {});
    s.http("PUT", "/api", [](const http_request&, http_response&) {});
  });
  ws_client c(srv.port());
  const std::string r = c.http_exchange("GET /api HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 405", 0), 0u) << r;
  EXPECT_NE(r.find("\r\nAllow: POST, PUT\r\n"), std::string::npos) << r;
  EXPECT_EQ(r.find("Allow: GET"), std::string::npos) << r;
}

TEST_F(handshake_test, SyncRejectAndSubprotocol) {
  running_server srv(test_options(), [](server& s) {
    ws_behavior b;
    b.on_upgrade = [](upgrade_request& req) {
      if (req.header("Authorization") != "Bearer good") return req.reject(401, "no token");
      const std::string_view supported[] = {"v2", "v1"};
      const auto chosen = req.select_subprotocol(supported);
      const protocol::http_header extra[] = {{"X-Hello", "world"}};
      req.accept(chosen.value_or(""), extra);
    };
    s.ws("/", std::move(b));
  });
  ws_client denied(srv.port());
  std::string head;
  EXPECT_EQ(denied.upgrade("/", {}, &head), 401);
  ws_client ok(srv.port());
  EXPECT_EQ(ok.upgrade("/", "Authorization: Bearer good\r\nSec-WebSocket-Protocol: v1, v2\r\n", &head),
            101);
  EXPECT_NE(head.find("Sec-WebSocket-Protocol: v1\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("X-Hello: world\r\n"), std::string::npos) << head;
}

TEST_F(handshake_test, AsyncUpgradeAcceptAndReject) {
  std::atomic<int> opened{0};
  running_server srv(test_options(), [&](server& s) {
    ws_behavior b;
    b.with_user_data<int>();
    b.on_upgrade = [](upgrade_request& req) {
      const bool allow = req.path() == "/yes";
      req.data<int>() = 42;
      upgrade_handle handle = req.defer();
      // An "async auth lookup" on another thread.
      std::thread([handle, allow] {
        std::this_thread::sleep_for(20ms);
        if (allow) {
          handle.accept({}, {{"X-Auth", "done"}});
        } else {
          handle.reject(403, "forbidden");
        }
      }).detach();
    };
    b.on_open = [&](websocket& ws) { opened += ws.data<int>(); };
    b.on_message = [](websocket& ws, std::string_view p, opcode op) { ws.send(p, op); };
    s.ws("*", std::move(b));
  });
  ws_client yes(srv.port());
  std::string head;
  ASSERT_EQ(yes.upgrade("/yes", {}, &head), 101);
  EXPECT_NE(head.find("X-Auth: done"), std::string::npos);
  ASSERT_TRUE(yes.send_message(opcode::binary, "after async"));
  EXPECT_EQ(yes.next().payload, "after async");
  EXPECT_EQ(opened.load(), 42);
  ws_client no(srv.port());
  EXPECT_EQ(no.upgrade("/no"), 403);
  EXPECT_TRUE(no.wait_closed());
  std::this_thread::sleep_for(50ms);  // let the detached threads finish posting
}

TEST_F(handshake_test, FramesPipelinedAfterHeadAreRead) {
  running_server srv(test_options(), add_echo);
  ws_client c(srv.port());
  std::string frame;
  protocol::message_writer(protocol::role::client).append_message(frame, opcode::text, "early");
  // The head and the first frame in one write: the frame must reach the reader.
  const auto key = protocol::generate_key();
  ASSERT_TRUE(c.send_raw("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
                         std::string(key.data(), key.size()) + "\r\n\r\n" + frame));
  ASSERT_EQ(c.read_response(), 101);
  const received r = c.next();
  EXPECT_EQ(r.kind, protocol::event_kind::message);
  EXPECT_EQ(r.payload, "early");
}

}  // namespace
}  // namespace switchboard::server::test
