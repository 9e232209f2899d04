// http_deferred_test.cpp — HTTP handlers that answer later
// (http_response::defer()): from another thread, from the handler itself,
// once only, HEAD without a body, a request pipelined behind a waiting one
// answered after it, and a request whose answer never comes dropped at the
// handshake timeout; relays (http_responder::relay, http_stream::relay).
#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server_test_support.hpp"

namespace switchboard::server::test {
namespace {

class http_deferred_test : public server_test {};

std::string get(std::string_view path, std::string_view method = "GET",
                std::string_view extra = {}) {
  return std::string(method) + " " + std::string(path) + " HTTP/1.1\r\nHost: x\r\n" +
         std::string(extra) + "\r\n";
}

std::string body_of(const std::string& response) {
  const auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : response.substr(end + 4);
}

bool status_is(const std::string& response, int status) {
  return response.rfind("HTTP/1.1 " + numbered("", status) + " ", 0) == 0;
}

// Answers from a thread of its own after `delay`.
struct later {
  std::mutex mutex;
  std::vector<std::thread> threads;
  ~later() { join(); }
  // Call before the server goes: a late respond() must find its loop alive.
  void join() {
    std::lock_guard lock(mutex);
    for (auto& t : threads) t.join();
    threads.clear();
  }
  void answer(http_responder r, int status, std::string body, std::chrono::milliseconds delay) {
    std::lock_guard lock(mutex);
    threads.emplace_back([r, status, body = std::move(body), delay] {
      std::this_thread::sleep_for(delay);
      http_response res;
      res.set_status(status);
      res.set_body(body);
      r.respond(std::move(res));
      r.respond(http_response());  // only the first answer counts
    });
  }
};

TEST_F(http_deferred_test, AnsweredFromAnotherThread) {
  later l;
  running_server srv(test_options(), [&](server& s) {
    s.http("GET", "/slow", [&](const http_request&, http_response& res) {
      res.set_body("not this");  // what the response holds at return is not sent
      l.answer(res.defer(), 202, "from another thread", 50ms);
    });
  });
  ws_client c(srv.port());
  const std::string r = c.http_exchange(get("/slow"));
  EXPECT_TRUE(status_is(r, 202)) << r;
  EXPECT_EQ(body_of(r), "from another thread");
  l.join();
}

TEST_F(http_deferred_test, AnsweredBeforeTheHandlerReturns) {
  running_server srv(test_options(), [&](server& s) {
    s.http("GET", "/now", [&](const http_request&, http_response& res) {
      http_response out;
      out.set_body("inside");
      res.defer().respond(std::move(out));
    });
  });
  ws_client c(srv.port());
  const std::string r = c.http_exchange(get("/now"));
  EXPECT_TRUE(status_is(r, 200)) << r;
  EXPECT_EQ(body_of(r), "inside");
}

TEST_F(http_deferred_test, HeadGetsNoBody) {
  later l;
  running_server srv(test_options(), [&](server& s) {
    s.http("HEAD", "/slow", [&](const http_request&, http_response& res) {
      l.answer(res.defer(), 200, "12345", 10ms);
    });
  });
  ws_client c(srv.port());
  // "Connection: close": the answer ends at EOF, so nothing may follow the head.
  const std::string r = c.http_exchange(get("/slow", "HEAD", "Connection: close\r\n"));
  EXPECT_TRUE(status_is(r, 200)) << r;
  EXPECT_NE(r.find("Content-Length: 5\r\n"), std::string::npos) << r;
  EXPECT_EQ(body_of(r), "");
  l.join();
}

TEST_F(http_deferred_test, ARequestSentWhileOneWaitsIsAnsweredAfterIt) {
  later l;
  std::atomic<int> calls{0};
  running_server srv(test_options(), [&](server& s) {
    s.http("GET", "/slow", [&](const http_request&, http_response& res) {
      const int n = ++calls;
      // The first answer comes last: the second waits behind it.
      l.answer(res.defer(), 200, numbered("answer ", n), n == 1 ? 100ms : 0ms);
    });
  });
  ws_client c(srv.port());
  ASSERT_TRUE(c.send_raw(get("/slow")));
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(c.send_raw(get("/slow")));  // pipelined behind the waiting one
  EXPECT_EQ(body_of(c.http_exchange("")), "answer 1");
  EXPECT_EQ(body_of(c.http_exchange("")), "answer 2");
  EXPECT_EQ(calls.load(), 2);
  l.join();
}

TEST_F(http_deferred_test, NeverAnsweredIsDroppedAtTheHandshakeTimeout) {
  http_responder kept;
  std::mutex mutex;
  auto options = test_options();
  options.handshake_timeout = 200ms;
  running_server srv(options, [&](server& s) {
    s.http("GET", "/never", [&](const http_request&, http_response& res) {
      std::lock_guard lock(mutex);
      kept = res.defer();
    });
  });
  ws_client c(srv.port());
  const std::string r = c.http_exchange(get("/never"));
  EXPECT_EQ(r, "");  // closed without an answer
  std::lock_guard lock(mutex);
  kept.respond(http_response());  // too late: the connection is gone, nothing happens
}

// Relays (a request answered on another node of a cluster): a responder
// made from a function gets the first answer only; a stream made from a sink
// writes, ends and reports through it.
TEST(http_relay_test, relay_responder_takes_the_first_answer_only) {
  std::vector<int> answers;
  http_responder r = http_responder::relay([&](http_response res) { answers.push_back(res.status()); });
  http_responder copy = r;
  http_response first;
  first.set_status(202);
  copy.respond(std::move(first));
  http_response second;
  second.set_status(500);
  r.respond(std::move(second));
  EXPECT_EQ(answers, std::vector<int>{202});
  EXPECT_FALSE(r.stream(http_response{}).is_open());
}

TEST(http_relay_test, relay_stream_goes_to_its_sink) {
  struct sink final : http_stream_sink {
    std::string bytes;
    bool open = true;
    bool write(std::string b) override {
      if (!open) return false;
      bytes.append(b);
      return true;
    }
    void end() override { open = false; }
    bool is_open() const noexcept override { return open; }
  };
  auto k = std::make_shared<sink>();
  const http_stream s = http_stream::relay(k);
  EXPECT_TRUE(s.is_open());
  EXPECT_TRUE(s.write("data: a\n\n"));
  EXPECT_EQ(s.queued(), 0u);
  s.end();
  EXPECT_FALSE(s.is_open());
  EXPECT_FALSE(s.write("data: b\n\n"));
  EXPECT_EQ(k->bytes, "data: a\n\n");
  EXPECT_FALSE(http_stream{}.is_open());
}

}  // namespace
}  // namespace switchboard::server::test
