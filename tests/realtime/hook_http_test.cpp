// hook_http_test.cpp — the proxy hooks' HTTP client (hook_http.hpp) and the
// pure parts of hooks.hpp: URL syntax, the response reader under every
// chunking, the client against a loopback server (keep-alive reuse, timeout,
// refused, a server that closes an idle connection), the signature, and the
// reading of a backend's answer.
#include "hook_http.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hooks.hpp"

namespace switchboard::realtime::detail {
namespace {

// --- URLs --------------------------------------------------------------------

TEST(hook_url, reads_scheme_host_port_and_path) {
  http_url u;
  ASSERT_EQ(parse_http_url_syntax("http://127.0.0.1:8000/hooks/connect?x=1", u), "");
  EXPECT_FALSE(u.tls);
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 8000);
  EXPECT_EQ(u.path, "/hooks/connect?x=1");
  EXPECT_EQ(u.origin, "http://127.0.0.1:8000");
  ASSERT_EQ(parse_http_url_syntax("https://backend.example", u), "");
  EXPECT_TRUE(u.tls);
  EXPECT_EQ(u.port, 443);
  EXPECT_EQ(u.path, "/");
  ASSERT_EQ(parse_http_url_syntax("http://[::1]:9/p", u), "");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.origin, "http://[::1]:9");
}

TEST(hook_url, refuses_what_cannot_be_called) {
  http_url u;
  for (const char* bad :
       {"ftp://x/", "http://", "http://:80/", "http://h:0/", "http://h:65536/", "http://h:/",
        "http://user:pw@h/", "http://h/a b", "http://h/#frag", "http://[::1/", "http://h:8x/"}) {
    EXPECT_NE(parse_http_url_syntax(bad, u), "") << bad;
  }
}

// --- the response reader -----------------------------------------------------

struct read_outcome {
  http_response_reader::status status = http_response_reader::status::need_more;
  int code = 0;
  std::string body;
  bool keep_alive = false;
  std::size_t left_over = 0;  // bytes after the response
  std::string error;
};

// Feeds `wire` in pieces of `step` bytes (0: all at once), then, if the
// response is still open, the end of the connection when `close_at_end`.
read_outcome read_in_steps(std::string_view wire, std::size_t step, bool close_at_end = false) {
  http_response_reader r(64);
  read_outcome out;
  out.status = http_response_reader::status::need_more;
  std::size_t at = 0;
  while (at < wire.size()) {
    const std::size_t n = step == 0 ? wire.size() - at : std::min(step, wire.size() - at);
    std::size_t consumed = 0;
    out.status = r.feed(wire.substr(at, n), consumed);
    if (out.status == http_response_reader::status::complete) {
      out.left_over = wire.size() - at - consumed;
      break;
    }
    if (out.status == http_response_reader::status::error) break;
    EXPECT_EQ(consumed, n);
    at += n;
  }
  if (out.status == http_response_reader::status::need_more && close_at_end)
    out.status = r.finish();
  out.code = r.status_code();
  out.body = r.body();
  out.keep_alive = r.keep_alive();
  out.error = r.error();
  return out;
}

struct reader_case {
  const char* name;
  std::string wire;
  bool close_at_end;
  http_response_reader::status status = http_response_reader::status::need_more;
  int code;
  std::string body;
  bool keep_alive;
  std::size_t left_over;
};

std::vector<reader_case> reader_cases() {
  using s = http_response_reader::status;
  return {
      {"content_length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, s::complete,
       200, "hello", true, 0},
      {"bytes_after_the_response_are_left", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
       false, s::complete, 200, "ok", true, 5},
      {"connection_close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
       false, s::complete, 200, "", false, 0},
      {"http_1_0_closes", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", false, s::complete, 200,
       "x", false, 0},
      {"chunked_with_extension_and_trailer",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0"
       "\r\nX-Trailer: 1\r\n\r\n",
       false, s::complete, 200, "abc0123456789", true, 0},
      {"until_close", "HTTP/1.1 200 OK\r\n\r\n{\"result\":{}}", true, s::complete, 200,
       "{\"result\":{}}", false, 0},
      {"interim_100_is_skipped",
       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n!", false,
       s::complete, 201, "!", true, 0},
      {"no_content", "HTTP/1.1 204 No Content\r\n\r\n", false, s::complete, 204, "", true, 0},
      {"two_lengths_disagree",
       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", false, s::error, 200,
       "", false, 0},
      {"length_not_a_number", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, s::error, 200,
       "", false, 0},
      {"length_over_the_limit", "HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n", false, s::error,
       200, "", false, 0},
      {"chunks_over_the_limit",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + std::string(64, 'a') +
           "\r\n1\r\nb\r\n0\r\n\r\n",
       false, s::error, 200, std::string(64, 'a'), false, 0},
      {"gzip_coding_refused", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false,
       s::error, 200, "", false, 0},
      {"bad_chunk_size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false,
       s::error, 200, "", false, 0},
      {"chunk_longer_than_its_size",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", false, s::error, 200,
       "a", false, 0},
      {"bare_lf_in_chunk_line", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\nab", false,
       s::error, 200, "", false, 0},
      {"not_http", "SSH-2.0-OpenSSH\r\n\r\n", false, s::error, 0, "", false, 0},
      {"closed_mid_body", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", true, s::error, 200,
       "abc", false, 0},
      {"closed_before_anything", "", true, s::error, 0, "", false, 0},
  };
}

TEST(hook_http_reader, every_case_under_every_chunking) {
  for (const reader_case& c : reader_cases()) {
    for (std::size_t step : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{3},
                             std::size_t{7}, std::size_t{16}}) {
      SCOPED_TRACE(std::string(c.name) + " step " + std::to_string(step));
      const read_outcome o = read_in_steps(c.wire, step, c.close_at_end);
      EXPECT_EQ(o.status, c.status) << o.error;
      if (c.status == http_response_reader::status::complete) {
        EXPECT_EQ(o.code, c.code);
        EXPECT_EQ(o.body, c.body);
        EXPECT_EQ(o.keep_alive, c.keep_alive);
        EXPECT_EQ(o.left_over, c.left_over);
      } else {
        EXPECT_FALSE(o.error.empty());
        EXPECT_FALSE(o.keep_alive);
      }
    }
  }
}

TEST(hook_http_reader, reset_reads_the_next_response) {
  http_response_reader r;
  std::size_t consumed = 0;
  ASSERT_EQ(r.feed("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", consumed),
            http_response_reader::status::complete);
  r.reset();
  EXPECT_FALSE(r.started());
  ASSERT_EQ(r.feed("HTTP/1.1 500 Oops\r\nContent-Length: 1\r\n\r\nb", consumed),
            http_response_reader::status::complete);
  EXPECT_EQ(r.status_code(), 500);
  EXPECT_EQ(r.body(), "b");
}

// --- the client against a loopback server ------------------------------------

// A blocking one-thread HTTP server: for each accepted connection, reads
// requests (head + Content-Length body) and answers each with `answer`
// unless `silent`; closes after `requests_per_connection` answers.
class loopback_server {
 public:
  loopback_server(std::string answer, bool silent = false, int requests_per_connection = 1000)
      : answer_(std::move(answer)), silent_(silent), per_connection_(requests_per_connection) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~loopback_server() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }
  int requests() const { return requests_; }
  std::string last_request() {
    std::lock_guard lock(mutex_);
    return last_;
  }

 private:
  void serve() {
    while (!stop_) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      ++accepted_;
      std::string in;
      int answered = 0;
      char buf[4096];
      while (!stop_ && answered < per_connection_) {
        const auto head_end = in.find("\r\n\r\n");
        if (head_end != std::string::npos) {
          const auto cl = in.find("Content-Length: ");
          const std::size_t length = cl == std::string::npos ? 0 : std::stoul(in.substr(cl + 16));
          if (in.size() >= head_end + 4 + length) {
            {
              std::lock_guard lock(mutex_);
              last_ = in.substr(0, head_end + 4 + length);
            }
            in.erase(0, head_end + 4 + length);
            ++requests_;
            if (!silent_) (void)::send(c, answer_.data(), answer_.size(), MSG_NOSIGNAL);
            ++answered;
            continue;
          }
        }
        const ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        in.append(buf, static_cast<std::size_t>(n));
      }
      ::close(c);
    }
  }

  std::string answer_;
  bool silent_;
  int per_connection_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> requests_{0};
  std::mutex mutex_;
  std::string last_;
  std::thread thread_;
};

struct client_fixture {
  std::unique_ptr<net::event_loop> loop;
  std::unique_ptr<http_client> client;
  http_url url;

  explicit client_fixture(std::uint16_t port, http_client_options o = {}) {
    std::error_code ec;
    loop = net::event_loop::create(
        ec, net::event_loop_options{.timer_tick = std::chrono::milliseconds(10)});
    client = std::make_unique<http_client>(*loop, nullptr, o);
    EXPECT_EQ(parse_http_url_syntax("http://127.0.0.1:" + std::to_string(port) + "/hook", url), "");
    EXPECT_EQ(resolve_http_url(url), "");
  }
  ~client_fixture() { client.reset(); }

  // Sends `n` requests one after the other (each after the previous answer)
  // and runs the loop until the last answer.
  std::vector<http_result> run_sequential(
      int n, std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) {
    std::vector<http_result> results;
    std::function<void()> next = [&] {
      http_request r;
      r.url = &url;
      r.body = "{\"n\":" + std::to_string(results.size()) + "}";
      r.headers.emplace_back("X-Test", "1");
      r.timeout = timeout;
      client->send(std::move(r), [&](http_result res) {
        results.push_back(std::move(res));
        if (static_cast<int>(results.size()) == n) {
          loop->stop();
        } else {
          next();
        }
      });
    };
    loop->post([&] { next(); });
    loop->run();
    return results;
  }
};

TEST(hook_http_client, keeps_the_connection_alive_between_requests) {
  loopback_server server("HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{\"result\":{}}");
  client_fixture f(server.port());
  const auto results = f.run_sequential(5);
  ASSERT_EQ(results.size(), 5u);
  for (const auto& r : results) {
    EXPECT_EQ(r.error, "");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "{\"result\":{}}");
  }
  EXPECT_EQ(server.accepted(), 1);
  const std::string req = server.last_request();
  EXPECT_TRUE(req.starts_with("POST /hook HTTP/1.1\r\nHost: 127.0.0.1:"));
  EXPECT_NE(req.find("\r\nX-Test: 1\r\n"), std::string::npos);
  EXPECT_NE(req.find("\r\nContent-Type: application/json\r\n"), std::string::npos);
  EXPECT_TRUE(req.ends_with("\r\n\r\n{\"n\":4}"));
}

TEST(hook_http_client, a_connection_the_server_closed_while_idle_is_replaced) {
  // One answer per connection, without Connection: close: the client learns
  // of the close only when it reuses the connection, and sends again.
  loopback_server server("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, 1);
  client_fixture f(server.port());
  const auto results = f.run_sequential(3);
  ASSERT_EQ(results.size(), 3u);
  for (const auto& r : results) EXPECT_EQ(r.body, "ok") << r.error;
  EXPECT_EQ(server.requests(), 3);
}

TEST(hook_http_client, a_silent_server_times_out) {
  loopback_server server("", true);
  client_fixture f(server.port());
  const auto results = f.run_sequential(1, std::chrono::milliseconds(100));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].timed_out);
  EXPECT_EQ(results[0].error, "timed out");
}

TEST(hook_http_client, nothing_listening_is_an_error) {
  std::uint16_t port = 0;
  {
    loopback_server closed("");
    port = closed.port();
  }
  client_fixture f(port);
  const auto results = f.run_sequential(1);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].timed_out);
  EXPECT_NE(results[0].error.find("connect to http://127.0.0.1:"), std::string::npos)
      << results[0].error;
}

TEST(hook_http_client, a_full_queue_fails_at_once) {
  loopback_server server("", true);
  http_client_options o;
  o.max_connections = 1;
  o.max_queue = 2;
  client_fixture f(server.port(), o);
  std::vector<http_result> results;
  f.loop->post([&] {
    for (int i = 0; i < 4; ++i) {
      http_request r;
      r.url = &f.url;
      r.timeout = std::chrono::milliseconds(200);
      f.client->send(std::move(r), [&](http_result res) {
        results.push_back(std::move(res));
        if (results.size() == 4) f.loop->stop();
      });
    }
  });
  f.loop->run();
  ASSERT_EQ(results.size(), 4u);
  // Sent in one loop iteration, all four wait in the queue before any goes
  // out: the third and fourth find it full and fail at once; the first two
  // wait for the silent server until their timeout.
  EXPECT_EQ(results[0].error, "too many hook requests waiting (queue full)");
  EXPECT_EQ(results[1].error, "too many hook requests waiting (queue full)");
  EXPECT_TRUE(results[2].timed_out);
  EXPECT_TRUE(results[3].timed_out);
}

// --- signatures and answers --------------------------------------------------

TEST(hook_signature, is_hmac_sha256_of_timestamp_dot_body) {
  // python3 -c "import hmac,hashlib; print(hmac.new(b'key-of-the-test',
  //   b'1700000000.{\"client\":\"ab\"}', hashlib.sha256).hexdigest())"
  EXPECT_EQ(hook_signature("key-of-the-test", "1700000000", "{\"client\":\"ab\"}"),
            "70fd60935883f5166c2cda1f11379b70835d71588092b85e9a014a927a2d1267");
  EXPECT_NE(hook_signature("key-of-the-test", "1700000001", "{\"client\":\"ab\"}"),
            hook_signature("key-of-the-test", "1700000000", "{\"client\":\"ab\"}"));
}

TEST(hook_answer, allow_with_changes) {
  const hook_answer a = read_hook_answer(
      hook_kind::connect, 200,
      R"({"result":{"user":"u1","info":{"n":1},"channels":["a","b"],"expire_at":1700000000,"x":1}})");
  ASSERT_EQ(a.result, hook_answer::outcome::allow) << a.error;
  EXPECT_EQ(a.user, "u1");
  EXPECT_EQ(a.info, "{\"n\":1}");
  EXPECT_EQ(a.channels, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(a.expire_at, 1700000000);
  const hook_answer p = read_hook_answer(hook_kind::publish, 200, R"({"result":{"data":[1, 2]}})");
  ASSERT_EQ(p.result, hook_answer::outcome::allow);
  EXPECT_EQ(p.data, "[1,2]");
  // A field of another hook is ignored, not applied.
  const hook_answer s = read_hook_answer(hook_kind::subscribe, 200, R"({"result":{"user":"x"}})");
  ASSERT_EQ(s.result, hook_answer::outcome::allow);
  EXPECT_FALSE(s.user);
}

TEST(hook_answer, deny_with_code_and_message) {
  const hook_answer a =
      read_hook_answer(hook_kind::rpc, 200, R"({"error":{"code":4403,"message":"no"}})");
  ASSERT_EQ(a.result, hook_answer::outcome::deny);
  EXPECT_EQ(a.denial, (failure{4403, "no"}));
}

TEST(hook_answer, anything_else_is_a_failure) {
  for (const auto& [status, body] : std::vector<std::pair<int, std::string>>{
           {500, R"({"result":{}})"},
           {302, R"({"result":{}})"},
           {200, "not json"},
           {200, "[1]"},
           {200, "{}"},
           {200, R"({"result":[]})"},
           {200, R"({"result":{},"result":{}})"},
           {200, R"({"error":{"code":200,"message":"x"}})"},
           {200, R"({"error":{"code":5000,"message":"x"}})"},
           {200, R"({"error":{"code":403}})"},
           {200, R"({"error":"no"})"},
           {200, R"({"result":{"user":5}})"},
           {200, R"({"result":{"channels":["a",1]}})"},
           {200, R"({"result":{"expire_at":-1}})"},
           {200, R"({"result":{"info":[1]}})"},
       }) {
    const hook_answer a = read_hook_answer(hook_kind::connect, status, body);
    EXPECT_EQ(a.result, hook_answer::outcome::failed) << status << " " << body;
    EXPECT_FALSE(a.error.empty());
  }
}

}  // namespace
}  // namespace switchboard::realtime::detail
