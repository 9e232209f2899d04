// http_keepalive_test.cpp — plain HTTP keep-alive and pipelining (RFC 9112
// §9.3): several requests on one connection, a pipelined burst answered in
// order (also when handler threads answer out of order, and past the
// read-ahead bound), Connection: close and HTTP/1.0 defaults, the idle
// timeout and the per-connection request limit, an upgrade after plain
// requests, HEAD, 404 keeping the connection, errors that still close, a
// partial request across the idle timeout, requests behind a stream, and
// shutdown of idle connections.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <random>
#include <string>
#include <switchboard/protocol/message_writer.hpp>
#include <thread>
#include <vector>

#include "http_client.hpp"
#include "server_test_support.hpp"

namespace switchboard::server::test {
namespace {

class http_keepalive_test : public server_test {};

// GET /n?<i> answers "<i>" at once; GET /later?<i> answers "<i>" from a
// thread after a delay that makes the early requests the late answers;
// POST /echo answers its body; GET /stream streams what the test writes.
struct app {
  std::mutex mutex;
  std::vector<std::thread> threads;
  std::atomic<int> calls{0};
  http_stream stream;
  std::atomic<bool> streaming{false};

  ~app() { join(); }
  void join() {
    std::lock_guard lock(mutex);
    for (auto& t : threads) t.join();
    threads.clear();
  }
  void install(server& s) {
    s.http("GET", "/n", [this](const http_request& req, http_response& res) {
      ++calls;
      res.set_body(std::string(req.query()));
    });
    s.http("GET", "/later", [this](const http_request& req, http_response& res) {
      ++calls;
      const int i = std::stoi(std::string(req.query()));
      std::lock_guard lock(mutex);
      threads.emplace_back([r = res.defer(), i] {
        std::this_thread::sleep_for(std::chrono::milliseconds((20 - i % 20) * 2));
        http_response out;
        out.set_body(std::to_string(i));
        r.respond(std::move(out));
      });
    });
    s.http("POST", "/echo", [this](const http_request& req, http_response& res) {
      ++calls;
      res.set_body(std::string(req.body()));
    });
    s.http("GET", "/stream", [this](const http_request&, http_response& res) {
      std::lock_guard lock(mutex);
      stream = res.stream();
      streaming = true;
    });
  }
  http_stream get_stream() {
    std::lock_guard lock(mutex);
    return stream;
  }
};

std::string get(std::string_view target, std::string_view extra = {}) {
  return http_request_text("GET", target, extra);
}

std::uint64_t failures(server& s, handshake_failure reason) {
  return s.statistics().handshake_failures[static_cast<std::size_t>(reason)];
}

TEST_F(http_keepalive_test, SeveralRequestsOnOneConnection) {
  app a;
  running_server srv(test_options(), [&](server& s) { a.install(s); });
  http_client c(srv.port());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(c.send(get(numbered("/n?", i))));
    const http_answer_read r = c.read_answer();
    EXPECT_EQ(r.status, 200) << r.head;
    EXPECT_EQ(r.body, std::to_string(i));
    EXPECT_EQ(r.header("Connection"), std::nullopt) << r.head;  // HTTP/1.1 persists by default
    ASSERT_TRUE(c.send(http_request_text("POST", "/echo", {}, numbered("body ", i))));
    EXPECT_EQ(c.read_answer().body, numbered("body ", i));
  }
  EXPECT_EQ(a.calls.load(), 10);
  EXPECT_TRUE(c.silent_for(30ms)) << "the connection stays open";
}

TEST_F(http_keepalive_test, APipelinedBurstIsAnsweredInOrder) {
  app a;
  running_server srv(test_options(), [&](server& s) { a.install(s); });
  http_client c(srv.port());
  // 40 requests in one write (more than the 16 read ahead): immediate and
  // deferred ones mixed; the deferred answers come back out of order.
  constexpr int k_requests = 40;
  std::string burst;
  for (int i = 0; i < k_requests; ++i) {
    if (i % 3 == 2) {
      burst.append(http_request_text("POST", "/echo", {}, std::to_string(i)));
    } else {
      burst.append(get(numbered(i % 3 == 0 ? "/later?" : "/n?", i)));
    }
  }
  ASSERT_TRUE(c.send(burst));
  for (int i = 0; i < k_requests; ++i) {
    const http_answer_read r = c.read_answer();
    ASSERT_EQ(r.status, 200) << "answer " << i << ": " << r.head;
    EXPECT_EQ(r.body, std::to_string(i));
  }
  EXPECT_EQ(a.calls.load(), k_requests);
  a.join();
}

TEST_F(http_keepalive_test, ConnectionCloseIsHonoured) {
  app a;
  running_server srv(test_options(), [&](server& s) { a.install(s); });
  http_client c(srv.port());
  // The request after the one that says close is never read.
  ASSERT_TRUE(c.send(get("/n?1", "Connection: close\r\n") + get("/n?2")));
  const http_answer_read r = c.read_answer();
  EXPECT_EQ(r.body, "1");
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_EQ(c.read_to_eof(), "");
  EXPECT_EQ(a.calls.load(), 1);
}

TEST_F(http_keepalive_test, Http10ClosesUnlessItAsksForKeepAlive) {
  app a;
  running_server srv(test_options(), [&](server& s) { a.install(s); });
  {
    http_client c(srv.port());
    ASSERT_TRUE(c.send(http_request_text("GET", "/n?1", {}, {}, "HTTP/1.0")));
    const http_answer_read r = c.read_answer();
    EXPECT_EQ(r.body, "1");
    EXPECT_EQ(r.header("Connection"), "close");
    EXPECT_TRUE(c.wait_closed());
  }
  http_client c(srv.port());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(c.send(http_request_text("GET", numbered("/n?", i), "Connection: keep-alive\r\n",
                                         {}, "HTTP/1.0")));
    const http_answer_read r = c.read_answer();
    EXPECT_EQ(r.body, std::to_string(i));
    EXPECT_EQ(r.header("Connection"), "keep-alive");
  }
}

TEST_F(http_keepalive_test, AnIdleConnectionClosesQuietlyAtTheIdleTimeout) {
  app a;
  auto options = test_options();
  options.http_idle_timeout = 100ms;
  running_server srv(options, [&](server& s) { a.install(s); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(get("/n?1")));
  EXPECT_EQ(c.read_answer().body, "1");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.wait_closed());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 80ms);
  // Nothing was asked: not a failed handshake.
  const auto stats = srv.get().statistics();
  for (const auto n : stats.handshake_failures) EXPECT_EQ(n, 0u);
}

TEST_F(http_keepalive_test, AClientLeavingBetweenRequestsIsNoFailure) {
  app a;
  running_server srv(test_options(), [&](server& s) { a.install(s); });
  {
    http_client c(srv.port());
    ASSERT_TRUE(c.send(get("/n?1")));
    EXPECT_EQ(c.read_answer().body, "1");
  }
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(failures(srv.get(), handshake_failure::peer_closed), 0u);
}

TEST_F(http_keepalive_test, TheLastRequestOfTheLimitSaysClose) {
  app a;
  auto options = test_options();
  options.max_http_requests = 3;
  running_server srv(options, [&](server& s) { a.install(s); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(get("/n?1") + get("/n?2") + get("/n?3") + get("/n?4")));
  EXPECT_EQ(c.read_answer().header("Connection"), std::nullopt);
  EXPECT_EQ(c.read_answer().header("Connection"), std::nullopt);
  const http_answer_read last = c.read_answer();
  EXPECT_EQ(last.body, "3");
  EXPECT_EQ(last.header("Connection"), "close");
  EXPECT_EQ(c.read_to_eof(), "");  // the fourth is never answered
  EXPECT_EQ(a.calls.load(), 3);
}

TEST_F(http_keepalive_test, AnUpgradeMayFollowPlainRequests) {
  app a;
  running_server srv(test_options(), [&](server& s) {
    a.install(s);
    add_echo(s);
  });
  ws_client c(srv.port());
  const std::string first = c.http_exchange(get("/n?1"));
  EXPECT_EQ(first.substr(first.find("\r\n\r\n") + 4), "1");
  ASSERT_EQ(c.upgrade("/chat"), 101);
  ASSERT_TRUE(c.send_message(protocol::opcode::text, "over the same connection"));
  const received r = c.next();
  EXPECT_EQ(r.kind, protocol::event_kind::message);
  EXPECT_EQ(r.payload, "over the same connection");
}

TEST_F(http_keepalive_test, APipelinedUpgradeWaitsForTheAnswersBeforeIt) {
  app a;
  running_server srv(test_options(), [&](server& s) {
    a.install(s);
    add_echo(s);
  });
  ws_client c(srv.port());
  // A deferred request, the upgrade, and a first frame, in one write.
  std::string frame;
  protocol::message_writer(protocol::role::client)
      .append_frame(frame, protocol::opcode::text, "early", true, false);
  ASSERT_TRUE(c.send_raw(get("/later?3") +
                         "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" +
                         frame));
  const std::string answer = c.http_exchange("");
  EXPECT_EQ(answer.substr(answer.find("\r\n\r\n") + 4), "3") << answer;
  std::string head;
  ASSERT_EQ(c.read_response(&head), 101) << head;
  const received r = c.next();
  EXPECT_EQ(r.kind, protocol::event_kind::message);
  EXPECT_EQ(r.payload, "early");
  a.join();
}

TEST_F(http_keepalive_test, AnUndecidedUpgradeAfterRequestsIsBoundedByTheHandshakeTimeout) {
  app a;
  std::mutex mutex;
  std::vector<upgrade_handle> kept;
  auto options = test_options();
  options.handshake_timeout = 200ms;
  options.http_idle_timeout = 5s;
  running_server srv(options, [&](server& s) {
    a.install(s);
    ws_behavior b;
    b.on_upgrade = [&](upgrade_request& req) {
      std::lock_guard lock(mutex);
      kept.push_back(req.defer());  // never decided
    };
    s.ws("/chat", std::move(b));
  });
  ws_client c(srv.port());
  const std::string first = c.http_exchange(get("/n?1"));
  EXPECT_EQ(first.substr(first.find("\r\n\r\n") + 4), "1");
  std::this_thread::sleep_for(50ms);  // idle: the 5 s idle timer runs
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(c.upgrade("/chat"), 0);  // dropped without an answer
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(failures(srv.get(), handshake_failure::handshake_timeout), 1u);
}

TEST_F(http_keepalive_test, HeadAnswersCarryNoBodyAndTheNextAnswerFollows) {
  app a;
  running_server srv(test_options(), [&](server& s) { a.install(s); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(http_request_text("HEAD", "/n?hello") + get("/n?after")));
  const http_answer_read head = c.read_answer(true);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("Content-Length"), "5");
  const http_answer_read next = c.read_answer();
  EXPECT_EQ(next.status, 200) << next.head;
  EXPECT_EQ(next.body, "after");
}

TEST_F(http_keepalive_test, NotFoundAndMethodNotAllowedKeepTheConnection) {
  app a;
  running_server srv(test_options(), [&](server& s) { a.install(s); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(http_request_text("POST", "/nowhere", {}, "a body to skip") +
                     http_request_text("DELETE", "/n") + get("/n?ok")));
  const http_answer_read missing = c.read_answer();
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.header("Connection"), std::nullopt);
  const http_answer_read method = c.read_answer();
  EXPECT_EQ(method.status, 405);
  EXPECT_EQ(method.header("Allow"), "GET, HEAD");
  EXPECT_EQ(c.read_answer().body, "ok");
}

TEST_F(http_keepalive_test, ErrorsThatBreakTheFramingStillClose) {
  app a;
  running_server srv(test_options(), [&](server& s) { a.install(s); });
  const std::string bad[] = {
      "GET /n HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",                      // 400
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",   // 411
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",  // 413
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n",         // 400
  };
  const int statuses[] = {400, 411, 413, 400};
  for (std::size_t i = 0; i < std::size(bad); ++i) {
    http_client c(srv.port());
    // A good request, the bad one, and one more that must not be read.
    ASSERT_TRUE(c.send(get("/later?1") + bad[i] + get("/n?never")));
    EXPECT_EQ(c.read_answer().body, "1");
    const http_answer_read r = c.read_answer();
    EXPECT_EQ(r.status, statuses[i]) << r.head;
    EXPECT_EQ(r.header("Connection"), "close") << r.head;
    EXPECT_TRUE(c.wait_closed());
  }
  a.join();
  EXPECT_EQ(a.calls.load(), 4);  // only the /later requests ran
}

TEST_F(http_keepalive_test, APartialRequestOutlivesTheIdleTimeoutButNotTheRequestTimeout) {
  app a;
  auto options = test_options();
  options.http_idle_timeout = 100ms;
  options.handshake_timeout = 600ms;
  running_server srv(options, [&](server& s) { a.install(s); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(get("/n?1")));
  EXPECT_EQ(c.read_answer().body, "1");
  // Half a request, then a pause longer than the idle timeout: the request
  // timeout governs now.
  const std::string second = get("/n?2");
  ASSERT_TRUE(c.send(second.substr(0, 10)));
  std::this_thread::sleep_for(250ms);
  ASSERT_TRUE(c.send(second.substr(10)));
  EXPECT_EQ(c.read_answer().body, "2");
  // Half a request never finished: dropped without an answer.
  const auto before = failures(srv.get(), handshake_failure::handshake_timeout);
  ASSERT_TRUE(c.send(second.substr(0, 10)));
  EXPECT_EQ(c.read_to_eof(), "");
  EXPECT_EQ(failures(srv.get(), handshake_failure::handshake_timeout), before + 1);
}

TEST_F(http_keepalive_test, RequestsBehindAStreamAreAnsweredWhenItEnds) {
  app a;
  running_server srv(test_options(), [&](server& s) { a.install(s); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(get("/stream") + get("/n?after")));
  const http_answer_read head = c.read_head();
  ASSERT_TRUE(head.chunked) << head.head;
  ASSERT_TRUE(wait_until([&] { return a.streaming.load(); }));
  EXPECT_TRUE(c.silent_for(50ms)) << "nothing overtakes the stream";
  ASSERT_TRUE(a.get_stream().write("event"));
  EXPECT_EQ(c.read_chunk(), "event");
  a.get_stream().end();
  EXPECT_EQ(c.read_chunk(), "");
  EXPECT_EQ(c.read_answer().body, "after");
}

// A stream with nothing read behind it gives its request state back to the
// loop while it runs (websocket::park_stream); what the client sends later,
// and the stream's end, must find the connection as it was.
TEST_F(http_keepalive_test, ARequestSentWhileAQuietStreamRunsIsAnsweredWhenItEnds) {
  app a;
  running_server srv(test_options(), [&](server& s) { a.install(s); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(get("/stream")));
  ASSERT_TRUE(c.read_head().chunked);
  ASSERT_TRUE(wait_until([&] { return a.streaming.load(); }));
  ASSERT_TRUE(a.get_stream().write("one"));
  EXPECT_EQ(c.read_chunk(), "one");
  EXPECT_TRUE(c.silent_for(30ms));  // quiet: the stream is all the connection does
  ASSERT_TRUE(c.send(get("/n?behind")));
  EXPECT_TRUE(c.silent_for(50ms)) << "nothing overtakes the stream";
  ASSERT_TRUE(a.get_stream().write("two"));
  EXPECT_EQ(c.read_chunk(), "two");
  a.get_stream().end();
  EXPECT_EQ(c.read_chunk(), "");
  EXPECT_EQ(c.read_answer().body, "behind");
}

TEST_F(http_keepalive_test, AQuietStreamThatEndsLeavesTheConnectionServingRequests) {
  app a;
  running_server srv(test_options(), [&](server& s) { a.install(s); });
  http_client c(srv.port());
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(c.send(get("/stream")));
    ASSERT_TRUE(c.read_head().chunked) << "round " << round;
    ASSERT_TRUE(wait_until([&] { return a.streaming.load(); }));
    EXPECT_TRUE(c.silent_for(30ms));
    ASSERT_TRUE(a.get_stream().write(numbered("event ", round)));
    EXPECT_EQ(c.read_chunk(), numbered("event ", round));
    EXPECT_TRUE(c.silent_for(30ms));
    a.streaming = false;
    a.get_stream().end();
    EXPECT_EQ(c.read_chunk(), "");
    ASSERT_TRUE(c.send(get(numbered("/n?", round))));
    EXPECT_EQ(c.read_answer().body, std::to_string(round));
  }
}

TEST_F(http_keepalive_test, ShutdownClosesIdleConnectionsAtOnce) {
  app a;
  auto srv = std::make_unique<running_server>(test_options(), [&](server& s) { a.install(s); });
  http_client c(srv->port());
  ASSERT_TRUE(c.send(get("/n?1")));
  EXPECT_EQ(c.read_answer().body, "1");
  std::this_thread::sleep_for(20ms);  // idle now
  const auto start = std::chrono::steady_clock::now();
  srv->get().shutdown();
  EXPECT_TRUE(c.wait_closed());
  EXPECT_EQ(srv->get().wait(), std::error_code());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(failures(srv->get(), handshake_failure::shutdown), 0u);
}

TEST_F(http_keepalive_test, ManyConnectionsManyRequests) {
  app a;
  auto options = test_options();
  options.threads = 2;
  running_server srv(options, [&](server& s) { a.install(s); });
  std::vector<std::thread> clients;
  std::atomic<int> good{0};
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      http_client c(srv.port());
      for (int i = 0; i < 50; ++i) {
        const int n = t * 1000 + i;
        if (!c.send(get(numbered("/n?", n)))) return;
        if (c.read_answer().body == std::to_string(n)) ++good;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(good.load(), 400);
}

}  // namespace
}  // namespace switchboard::server::test
