// redis_connection_test.cpp — the RESP connection against a real
// redis-server (redis_process.hpp): URLs, pipelining with FIFO replies,
// AUTH and SELECT, unix sockets, pub/sub pushes, failing fast while Redis is
// away and reconnecting when it is back.
#include "redis_connection.hpp"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "redis_loop.hpp"

namespace switchboard::realtime::detail {
namespace {

using namespace std::chrono_literals;
using test::loop_thread;
using test::redis_process;
using test::url_of;

// Counts on_ready calls and waits for them.
struct readiness {
  std::mutex mutex;
  std::condition_variable cv;
  int ready = 0;
  int down = 0;
  redis_connection::callbacks callbacks() {
    redis_connection::callbacks cb;
    cb.on_ready = [this] {
      std::lock_guard lock(mutex);
      ++ready;
      cv.notify_all();
    };
    cb.on_down = [this](const std::string&) {
      std::lock_guard lock(mutex);
      ++down;
      cv.notify_all();
    };
    return cb;
  }
  bool wait_ready(int n, std::chrono::milliseconds limit = 5s) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, limit, [&] { return ready >= n; });
  }
  bool wait_down(int n, std::chrono::milliseconds limit = 5s) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, limit, [&] { return down >= n; });
  }
};

// Sends one command on the loop and waits for its reply, as text
// ("nil", "int:N", "err:…", or the string); "lost" for nullptr.
std::string call(loop_thread& lt, redis_connection& c, std::vector<std::string> argv) {
  return test::command(lt, c, std::move(argv), [](const redisReply* r) -> std::string {
    if (!r) return "lost";
    switch (r->type) {
      case REDIS_REPLY_NIL: return "nil";
      case REDIS_REPLY_INTEGER: return "int:" + std::to_string(r->integer);
      case REDIS_REPLY_ERROR: return "err:" + std::string(reply_text(r));
      default: return std::string(reply_text(r));
    }
  });
}

TEST(redis_url_test, AcceptsTheDocumentedForms) {
  redis_url u;
  EXPECT_EQ(parse_redis_url("redis://127.0.0.1:6380", u), "");
  EXPECT_EQ(u.text, "redis://127.0.0.1:6380");
  EXPECT_EQ(u.db, 0);
  EXPECT_EQ(parse_redis_url("redis://:s3cret@127.0.0.1:6380/2", u), "");
  EXPECT_EQ(u.password, "s3cret");
  EXPECT_EQ(u.user, "");
  EXPECT_EQ(u.db, 2);
  EXPECT_EQ(u.text.find("s3cret"), std::string::npos) << "the password stays out of logs";
  EXPECT_EQ(parse_redis_url("redis://app:p%40ss@localhost", u), "");
  EXPECT_EQ(u.user, "app");
  EXPECT_EQ(u.password, "p@ss");
  EXPECT_EQ(parse_redis_url("redis://[::1]:7000", u), "");
  EXPECT_EQ(u.address.ss_family, AF_INET6);
  EXPECT_EQ(parse_redis_url("unix:///run/redis.sock", u), "");
  EXPECT_EQ(u.address.ss_family, AF_UNIX);
}

TEST(redis_url_test, RefusesBadOnesWithAReason) {
  redis_url u;
  EXPECT_NE(parse_redis_url("http://127.0.0.1:6379", u).find("expected redis://"),
            std::string::npos);
  EXPECT_NE(parse_redis_url("redis://127.0.0.1:0", u).find("port"), std::string::npos);
  EXPECT_NE(parse_redis_url("redis://127.0.0.1:99999", u).find("port"), std::string::npos);
  EXPECT_NE(parse_redis_url("redis://127.0.0.1:6379/x", u).find("database"), std::string::npos);
  EXPECT_NE(parse_redis_url("redis://:6379", u).find("no host"), std::string::npos);
  EXPECT_NE(parse_redis_url("redis://[::1", u).find("unclosed"), std::string::npos);
  EXPECT_NE(parse_redis_url("unix://relative.sock", u).find("absolute"), std::string::npos);
  EXPECT_NE(parse_redis_url("redis://no-such-host.invalid:6379", u).find("does not resolve"),
            std::string::npos);
}

TEST(redis_connection_test, PipelinedRepliesComeBackInOrder) {
  redis_process redis;
  ASSERT_TRUE(redis.ok());
  loop_thread lt;
  readiness r;
  redis_connection c(lt.loop(), url_of(redis.url()), {}, r.callbacks());
  lt.run([&] { c.start(); });
  ASSERT_TRUE(r.wait_ready(1));
  // 2,000 commands written before any reply is read: one buffer, FIFO callbacks.
  std::vector<long long> seen;
  std::promise<void> all;
  lt.run([&] {
    for (int i = 0; i < 2000; ++i) {
      c.command({"INCR", "counter"}, [&, i](const redisReply* reply) {
        seen.push_back(reply ? reply->integer : -1);
        if (i == 1999) all.set_value();
      });
    }
    EXPECT_EQ(c.in_flight(), 2000u);
  });
  ASSERT_EQ(all.get_future().wait_for(5s), std::future_status::ready);
  ASSERT_EQ(seen.size(), 2000u);
  for (std::size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], static_cast<long long>(i + 1));
  // Binary-safe arguments (hiredis's formatter): NUL, CR LF, a large value.
  const std::string odd("a\0b\r\nc", 6);
  const std::string big(300'000, 'x');
  EXPECT_EQ(call(lt, c, {"SET", "odd", odd}), "OK");
  EXPECT_EQ(call(lt, c, {"GET", "odd"}), odd);
  EXPECT_EQ(call(lt, c, {"SET", "big", big}), "OK");
  EXPECT_EQ(call(lt, c, {"GET", "big"}), big);
  EXPECT_EQ(call(lt, c, {"NOSUCHCOMMAND"}).rfind("err:", 0), 0u);
  lt.run([&] { c.stop(); });
}

TEST(redis_connection_test, AuthAndSelectFromTheUrl) {
  redis_process redis({"--requirepass", "pw"});
  ASSERT_TRUE(redis.ok());
  loop_thread lt;
  readiness r3, r0;
  const std::string base = "redis://:pw@127.0.0.1:" + std::to_string(redis.port());
  redis_connection db3(lt.loop(), url_of(base + "/3"), {}, r3.callbacks());
  redis_connection db0(lt.loop(), url_of(base), {}, r0.callbacks());
  lt.run([&] {
    db3.start();
    db0.start();
  });
  ASSERT_TRUE(r3.wait_ready(1));
  ASSERT_TRUE(r0.wait_ready(1));
  EXPECT_EQ(call(lt, db3, {"SET", "where", "three"}), "OK");
  EXPECT_EQ(call(lt, db0, {"GET", "where"}), "nil");
  EXPECT_EQ(call(lt, db0, {"SELECT", "3"}), "OK");
  EXPECT_EQ(call(lt, db0, {"GET", "where"}), "three");
  lt.run([&] {
    db3.stop();
    db0.stop();
  });
}

TEST(redis_connection_test, AWrongPasswordIsNeverReady) {
  redis_process redis({"--requirepass", "pw"});
  ASSERT_TRUE(redis.ok());
  loop_thread lt;
  readiness r;
  redis_connection c(lt.loop(), url_of("redis://:wrong@127.0.0.1:" + std::to_string(redis.port())),
                     {}, r.callbacks());
  lt.run([&] { c.start(); });
  ASSERT_TRUE(r.wait_down(1));
  std::string error;
  bool ready = true;
  lt.run([&] {
    error = c.last_error();
    ready = c.ready();
  });
  EXPECT_FALSE(ready);
  EXPECT_NE(error.find("AUTH/SELECT refused"), std::string::npos) << error;
  EXPECT_EQ(call(lt, c, {"PING"}), "lost");  // fails fast, no queue
  lt.run([&] { c.stop(); });
}

TEST(redis_connection_test, UnixSocket) {
  redis_process redis;
  ASSERT_TRUE(redis.ok());
  loop_thread lt;
  readiness r;
  redis_connection c(lt.loop(), url_of("unix://" + redis.socket_path()), {}, r.callbacks());
  lt.run([&] { c.start(); });
  ASSERT_TRUE(r.wait_ready(1));
  EXPECT_EQ(call(lt, c, {"PING"}), "PONG");
  lt.run([&] { c.stop(); });
}

TEST(redis_connection_test, SubscriberGetsPushesBesideReplies) {
  redis_process redis;
  ASSERT_TRUE(redis.ok());
  loop_thread lt;
  readiness rs, rp;
  std::mutex mutex;
  std::vector<std::string> messages;
  redis_connection_options so;
  so.pubsub = true;
  auto cb = rs.callbacks();
  cb.on_message = [&](std::string_view channel, std::string_view payload) {
    std::lock_guard lock(mutex);
    messages.push_back(std::string(channel) + "=" + std::string(payload));
  };
  redis_connection sub(lt.loop(), url_of(redis.url()), so, cb);
  redis_connection pub(lt.loop(), url_of(redis.url()), {}, rp.callbacks());
  lt.run([&] {
    sub.start();
    pub.start();
  });
  ASSERT_TRUE(rs.wait_ready(1));
  ASSERT_TRUE(rp.wait_ready(1));
  std::promise<std::string> confirmed;
  lt.run([&] {
    sub.command({"SUBSCRIBE", "ch"}, [&](const redisReply* r) {
      confirmed.set_value(r && r->elements == 3 ? std::string(reply_text(r->element[0])) : "?");
    });
  });
  EXPECT_EQ(confirmed.get_future().get(), "subscribe");
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(call(lt, pub, {"PUBLISH", "ch", std::to_string(i)}), "int:1");
  }
  ASSERT_TRUE([&] {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard lock(mutex);
        if (messages.size() == 100) return true;
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }());
  std::lock_guard lock(mutex);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(messages[i], "ch=" + std::to_string(i));
  lt.run([&] {
    sub.stop();
    pub.stop();
  });
}

TEST(redis_connection_test, FailsFastWhileAwayAndReconnects) {
  redis_process redis;
  ASSERT_TRUE(redis.ok());
  loop_thread lt;
  readiness r;
  redis_connection_options o;
  o.backoff_base = 50ms;
  o.backoff_cap = 200ms;
  redis_connection c(lt.loop(), url_of(redis.url()), o, r.callbacks());
  lt.run([&] { c.start(); });
  ASSERT_TRUE(r.wait_ready(1));
  EXPECT_EQ(call(lt, c, {"SET", "k", "v"}), "OK");
  // A command in flight when Redis dies gets nullptr (its outcome is unknown).
  std::promise<std::string> in_flight;
  lt.run([&] {
    c.command({"BLPOP", "nothing", "0"}, [&](const redisReply* reply) {
      in_flight.set_value(reply ? "reply" : "lost");
    });
  });
  redis.kill();
  EXPECT_EQ(in_flight.get_future().get(), "lost");
  ASSERT_TRUE(r.wait_down(1));
  EXPECT_EQ(call(lt, c, {"PING"}), "lost");
  ASSERT_TRUE(redis.restart());
  ASSERT_TRUE(r.wait_ready(2, 10s));
  EXPECT_EQ(call(lt, c, {"GET", "k"}), "nil");  // restarted empty
  EXPECT_EQ(call(lt, c, {"PING"}), "PONG");
  lt.run([&] { c.stop(); });
}

}  // namespace
}  // namespace switchboard::realtime::detail
