// redis_loop.hpp — what the tests against a real redis-server
// (redis_process.hpp) share: an event loop on a thread of its own, a parsed
// URL, and one command sent on a redis_connection from the test's thread
// with its reply waited for (5 s at most).
//
// Thread-safety: loop_thread::run() and command() from the test's thread;
// the connection lives on the loop.
#pragma once

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "redis_connection.hpp"
#include "redis_process.hpp"

namespace switchboard::realtime::test {

// An event loop on its own thread; run() executes a function there and waits.
class loop_thread {
 public:
  loop_thread() {
    std::error_code ec;
    loop_ = net::event_loop::create(ec);
    thread_ = std::thread([this] { (void)loop_->run(); });
  }
  ~loop_thread() {
    loop_->stop();
    thread_.join();
  }
  loop_thread(const loop_thread&) = delete;
  loop_thread& operator=(const loop_thread&) = delete;

  net::event_loop& loop() { return *loop_; }
  template <class F>
  void run(F f) {
    std::promise<void> done;
    loop_->post([&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

 private:
  std::unique_ptr<net::event_loop> loop_;
  std::thread thread_;
};

inline detail::redis_url url_of(const std::string& text) {
  detail::redis_url u;
  EXPECT_EQ(detail::parse_redis_url(text, u), "");
  return u;
}
inline detail::redis_url url_of(const redis_process& redis) { return url_of(redis.url()); }

// Sends `argv` on `c` (on the loop) and waits for the reply, which `text`
// turns into the string returned (it gets nullptr for a lost command);
// "timeout" if none came within 5 s.
template <class Text>
std::string command(loop_thread& lt, detail::redis_connection& c, std::vector<std::string> argv,
                    Text text) {
  auto answer = std::make_shared<std::promise<std::string>>();
  auto f = answer->get_future();
  lt.run([&] {
    std::vector<std::string_view> v(argv.begin(), argv.end());
    c.command(v, [answer, text](const redisReply* r) { answer->set_value(text(r)); });
  });
  if (f.wait_for(std::chrono::seconds(5)) != std::future_status::ready) return "timeout";
  return f.get();
}

}  // namespace switchboard::realtime::test
