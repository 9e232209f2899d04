// statistics_test.cpp — server::statistics(): messages and payload bytes in
// and out (topic deliveries once per subscriber), backpressure drops, and the
// handshakes the server turns away, counted by reason and reported to
// server_options::on_handshake_failure (not the application's rejections).
#include <atomic>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "server_test_support.hpp"

namespace switchboard::server::test {
namespace {

using protocol::event_kind;
using protocol::opcode;

class statistics_test : public server_test {};

// What the hook heard, from the loop threads.
struct failure_log {
  std::mutex mutex;
  std::vector<std::pair<int, std::string>> entries;

  void install(server_options& options) {
    options.on_handshake_failure = [this](int status, std::string_view reason) {
      std::lock_guard lock(mutex);
      entries.emplace_back(status, std::string(reason));
    };
  }
  std::size_t size() {
    std::lock_guard lock(mutex);
    return entries.size();
  }
  std::pair<int, std::string> at(std::size_t i) {
    std::lock_guard lock(mutex);
    return i < entries.size() ? entries[i] : std::pair<int, std::string>{-1, ""};
  }
};

// A pure function: no server, so no descriptor-leak check either (the
// sanitizer runtime may open files of its own during such a short test).
TEST(statistics_tokens, ReasonTokensAreTheEnumeratorNames) {
  EXPECT_EQ(handshake_failure_token(handshake_failure::head_too_large), "head_too_large");
  EXPECT_EQ(handshake_failure_token(handshake_failure::bad_key), "bad_key");
  EXPECT_EQ(handshake_failure_token(handshake_failure::unsupported_version), "unsupported_version");
  EXPECT_EQ(handshake_failure_token(handshake_failure::max_connections), "max_connections");
  EXPECT_EQ(handshake_failure_token(handshake_failure::not_found), "not_found");
  EXPECT_EQ(handshake_failure_token(handshake_failure::body_too_large), "body_too_large");
  EXPECT_EQ(handshake_failure_token(handshake_failure::handshake_timeout), "handshake_timeout");
  EXPECT_EQ(handshake_failure_token(handshake_failure::open_failed), "open_failed");
  EXPECT_EQ(handshake_failure_token(static_cast<handshake_failure>(200)), "unknown");
}

TEST_F(statistics_test, CountsMessagesAndPayloadBytesBothWays) {
  running_server srv(test_options(), add_echo);
  EXPECT_EQ(srv.get().statistics().messages_received, 0u);
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  const std::string payloads[] = {"a", std::string(300, 'b'), std::string(70000, 'c')};
  for (const std::string& p : payloads) {
    ASSERT_TRUE(c.send_message(opcode::binary, p));
    EXPECT_EQ(c.next().payload, p);
  }
  // Control frames are not data messages.
  ASSERT_TRUE(c.send_frame(opcode::ping, "ping"));
  EXPECT_EQ(c.next().kind, event_kind::pong);
  // A fragmented message counts once, with all its bytes.
  ASSERT_TRUE(c.send_frame(opcode::text, "frag", false));
  ASSERT_TRUE(c.send_frame(opcode::continuation, "mented", true));
  EXPECT_EQ(c.next().payload, "fragmented");
  const server_statistics s = srv.get().statistics();
  EXPECT_EQ(s.messages_received, 4u);
  EXPECT_EQ(s.bytes_received, 1u + 300u + 70000u + 10u);
  EXPECT_EQ(s.messages_sent, 4u);
  EXPECT_EQ(s.bytes_sent, 1u + 300u + 70000u + 10u);
  EXPECT_EQ(s.connections, 1u);
  EXPECT_EQ(s.backpressure_drops, 0u);
  EXPECT_EQ(s.handshake_failures_total(), 0u);
}

TEST_F(statistics_test, StreamedMessagesCountOnceWithAllTheirBytes) {
  running_server srv(test_options(), [](server& s) {
    ws_behavior b;
    b.on_fragment = [](websocket& ws, std::string_view, opcode, bool, bool last) {
      if (last) ws.send("done", opcode::text);
    };
    s.ws("/", std::move(b));
  });
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_frame(opcode::binary, "abc", false));
  ASSERT_TRUE(c.send_frame(opcode::continuation, "defg", false));
  ASSERT_TRUE(c.send_frame(opcode::continuation, "h", true));
  EXPECT_EQ(c.next().payload, "done");
  const server_statistics s = srv.get().statistics();
  EXPECT_EQ(s.messages_received, 1u);
  EXPECT_EQ(s.bytes_received, 8u);
}

TEST_F(statistics_test, TopicDeliveriesCountOncePerSubscriberAcrossLoops) {
  auto options = test_options();
  options.threads = 2;
  running_server srv(options, [](server& s) {
    ws_behavior b;
    b.on_message = [](websocket& ws, std::string_view p, opcode) {
      ws.subscribe(p);
      ws.send("ok", opcode::text);
    };
    s.ws("/", std::move(b));
  });
  std::vector<std::unique_ptr<ws_client>> clients;
  for (int i = 0; i < 6; ++i) {
    auto c = std::make_unique<ws_client>(srv.port());
    ASSERT_EQ(c->upgrade(), 101);
    ASSERT_TRUE(c->send_message(opcode::text, "room"));
    ASSERT_EQ(c->next().payload, "ok");
    clients.push_back(std::move(c));
  }
  const server_statistics before = srv.get().statistics();
  EXPECT_EQ(before.messages_received, 6u);
  EXPECT_EQ(before.messages_sent, 6u);
  EXPECT_EQ(before.bytes_sent, 12u);
  srv.get().publish("room", "0123456789", opcode::text);
  srv.get().publish("nobody", "0123456789", opcode::text);
  for (auto& c : clients) EXPECT_EQ(c->next().payload, "0123456789");
  // Each loop counts its deliveries after writing them all: the last client
  // may read before the loop has stored its count.
  EXPECT_TRUE(wait_until([&] { return srv.get().statistics().messages_sent == 6u + 6u; }));
  EXPECT_EQ(srv.get().statistics().bytes_sent, 12u + 60u);
}

TEST_F(statistics_test, BackpressureDropsAreCounted) {
  auto options = test_options();
  options.max_backpressure = 64 * 1024;
  options.policy = backpressure_policy::drop;
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<bool> flooded{false};
  running_server srv(options, [&](server& s) {
    ws_behavior b;
    b.on_message = [&](websocket& ws, std::string_view, opcode) {
      // The client does not read: the kernel's buffers fill, then the cap.
      const std::string chunk(64 * 1024, 'x');
      for (int i = 0; i < 400; ++i) {
        if (ws.send(chunk) == send_status::dropped) ++dropped;
      }
      flooded = true;
    };
    s.ws("/", std::move(b));
  });
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_message(opcode::text, "flood"));
  ASSERT_TRUE(wait_until([&] { return flooded.load(); }));
  EXPECT_GT(dropped.load(), 0u);
  const server_statistics s = srv.get().statistics();
  EXPECT_EQ(s.backpressure_drops, dropped.load());
  EXPECT_EQ(s.messages_sent, 400u - dropped.load());
  EXPECT_EQ(s.bytes_sent, (400u - dropped.load()) * 64u * 1024u);
}

TEST_F(statistics_test, TheClosePolicyCountsOneDropPerClosedConnection) {
  auto options = test_options();
  options.max_backpressure = 64 * 1024;
  std::atomic<bool> flooded{false};
  running_server srv(options, [&](server& s) {
    ws_behavior b;
    b.on_message = [&](websocket& ws, std::string_view, opcode) {
      const std::string chunk(64 * 1024, 'x');
      for (int i = 0; i < 400; ++i) ws.send(chunk);
      flooded = true;
    };
    s.ws("/", std::move(b));
  });
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_message(opcode::text, "flood"));
  ASSERT_TRUE(wait_until([&] { return flooded.load(); }));
  EXPECT_EQ(srv.get().statistics().backpressure_drops, 1u);
}

TEST_F(statistics_test, HandshakeFailuresByReasonAndTheHook) {
  failure_log log;
  auto options = test_options();
  options.max_connections = 1;
  log.install(options);
  running_server srv(options, [](server& s) {
    ws_behavior b;
    // The application's own rejection is not a handshake failure.
    b.on_upgrade = [](upgrade_request& req) {
      if (req.query() == "deny") return req.reject(403, "denied");
      req.accept();
    };
    b.on_message = [](websocket& ws, std::string_view p, opcode op) { ws.send(p, op); };
    s.ws("/ws", std::move(b));
    s.http("GET", "/healthz", [](const http_request&, http_response& res) { res.set_status(503); });
  });
  const std::string upgrade_head =
      "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  {
    ws_client c(srv.port());
    const std::string r = c.http_exchange(upgrade_head +
                                          "Sec-WebSocket-Version: 13\r\n"
                                          "Sec-WebSocket-Key: dG9vIHNob3J0\r\n\r\n");
    EXPECT_EQ(r.rfind("HTTP/1.1 400", 0), 0u) << r;
  }
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log.at(0), std::make_pair(400, std::string("bad_key")));
  {
    ws_client c(srv.port());
    const std::string r = c.http_exchange(upgrade_head +
                                          "Sec-WebSocket-Version: 8\r\n"
                                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    EXPECT_EQ(r.rfind("HTTP/1.1 426", 0), 0u) << r;
  }
  EXPECT_EQ(log.at(1), std::make_pair(426, std::string("unsupported_version")));
  {
    ws_client c(srv.port());
    EXPECT_EQ(c.upgrade("/nowhere"), 404);
  }
  EXPECT_EQ(log.at(2), std::make_pair(404, std::string("not_found")));
  {
    ws_client c(srv.port());
    EXPECT_EQ(c.http_exchange("POST /healthz HTTP/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 405", 0),
              0u);
  }
  EXPECT_EQ(log.at(3), std::make_pair(405, std::string("method_not_allowed")));
  {
    ws_client c(srv.port());
    EXPECT_EQ(
        c.http_exchange("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
            .rfind("HTTP/1.1 413", 0),
        0u);
  }
  EXPECT_EQ(log.at(4), std::make_pair(413, std::string("body_too_large")));
  {
    ws_client c(srv.port());
    EXPECT_EQ(
        c.http_exchange("GET / HTTP/1.1\r\nHost: x\r\nB@d: 1\r\n\r\n").rfind("HTTP/1.1 400", 0),
        0u);
  }
  EXPECT_EQ(log.at(5), std::make_pair(400, std::string("bad_header_name")));
  // Not failures: the application's 403, its handler's 503, an accepted upgrade.
  {
    ws_client c(srv.port());
    EXPECT_EQ(c.upgrade("/ws?deny"), 403);
    ws_client h(srv.port());
    EXPECT_EQ(h.http_exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 503", 0),
              0u);
  }
  ws_client first(srv.port());
  ASSERT_EQ(first.upgrade("/ws"), 101);
  EXPECT_EQ(log.size(), 6u);
  // max_connections = 1: the next upgrade is the server's 503.
  {
    ws_client second(srv.port());
    EXPECT_EQ(second.upgrade("/ws"), 503);
  }
  EXPECT_EQ(log.at(6), std::make_pair(503, std::string("max_connections")));
  const server_statistics s = srv.get().statistics();
  EXPECT_EQ(s.handshake_failures_for(handshake_failure::bad_key), 1u);
  EXPECT_EQ(s.handshake_failures_for(handshake_failure::unsupported_version), 1u);
  EXPECT_EQ(s.handshake_failures_for(handshake_failure::not_found), 1u);
  EXPECT_EQ(s.handshake_failures_for(handshake_failure::method_not_allowed), 1u);
  EXPECT_EQ(s.handshake_failures_for(handshake_failure::body_too_large), 1u);
  EXPECT_EQ(s.handshake_failures_for(handshake_failure::bad_header_name), 1u);
  EXPECT_EQ(s.handshake_failures_for(handshake_failure::max_connections), 1u);
  EXPECT_EQ(s.handshake_failures_total(), 7u);
  EXPECT_EQ(log.size(), 7u);
}

TEST_F(statistics_test, DroppedHandshakesReportStatusZero) {
  failure_log log;
  auto options = test_options();
  options.handshake_timeout = 150ms;
  log.install(options);
  running_server srv(options, add_echo);
  {
    // Half a head, then silence: the timeout drops it without an answer.
    ws_client slow(srv.port());
    ASSERT_TRUE(slow.send_raw("GET / HTTP/1.1\r\nHost:"));
    EXPECT_TRUE(slow.wait_closed());
  }
  ASSERT_TRUE(wait_until([&] { return log.size() == 1; }));
  EXPECT_EQ(log.at(0), std::make_pair(0, std::string("handshake_timeout")));
  {
    // Half a head, then the client leaves.
    ws_client gone(srv.port());
    ASSERT_TRUE(gone.send_raw("GET / HTTP/1.1\r\n"));
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(wait_until([&] { return log.size() == 2; }));
  EXPECT_EQ(log.at(1), std::make_pair(0, std::string("peer_closed")));
  const server_statistics s = srv.get().statistics();
  EXPECT_EQ(s.handshake_failures_for(handshake_failure::handshake_timeout), 1u);
  EXPECT_EQ(s.handshake_failures_for(handshake_failure::peer_closed), 1u);
}

TEST_F(statistics_test, ADeferredDecisionThatNeverComesIsATimeout) {
  failure_log log;
  auto options = test_options();
  options.handshake_timeout = 150ms;
  log.install(options);
  running_server srv(options, [](server& s) {
    ws_behavior b;
    b.on_upgrade = [](upgrade_request& req) { (void)req.defer(); };
    s.ws("/", std::move(b));
  });
  ws_client c(srv.port());
  EXPECT_EQ(c.upgrade(), 0);  // closed without an answer
  ASSERT_TRUE(wait_until([&] { return log.size() == 1; }));
  EXPECT_EQ(log.at(0), std::make_pair(0, std::string("handshake_timeout")));
  EXPECT_TRUE(wait_until([&] { return srv.get().connections() == 0; }));
}

}  // namespace
}  // namespace switchboard::server::test
