// event_orphans_test.cpp — a lost node's disconnects (event_orphans.hpp)
// against a real redis-server (redis_process.hpp): the claim script gives a
// lost node's clients to exactly one claimant and none while the lease lives;
// trackers on one loop: a node that stops renewing has its tracked clients
// (minus those it untracked) handed to a survivor once, a node that finishes
// cleanly has none; every node picks the same home URL whatever their order.
#include "event_orphans.hpp"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <algorithm>
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

// One command's reply, flattened to text: nil "(nil)", an integer its
// digits, an array its elements joined by ','.
std::string flat(const redisReply* r) {
  if (!r) return "(lost)";
  switch (r->type) {
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_INTEGER:
      return std::to_string(r->integer);
    case REDIS_REPLY_ARRAY: {
      std::string out;
      for (std::size_t i = 0; i < r->elements; ++i) {
        if (i) out.push_back(',');
        out.append(flat(r->element[i]));
      }
      return "[" + out + "]";
    }
    default:
      return std::string(reply_text(r));
  }
}

// A plain connection on the loop for the test's own commands.
class client {
 public:
  client(loop_thread& lt, const redis_process& redis) : lt_(lt) {
    auto ready = std::make_shared<std::promise<void>>();
    auto future = ready->get_future();
    lt_.run([&] {
      redis_connection::callbacks cb;
      cb.on_ready = [ready, once = std::make_shared<bool>(false)] {
        if (!*once) ready->set_value();
        *once = true;
      };
      conn_ = std::make_unique<redis_connection>(lt_.loop(), url_of(redis),
                                                 redis_connection_options{}, cb);
      conn_->start();
    });
    EXPECT_EQ(future.wait_for(5s), std::future_status::ready);
  }
  ~client() {
    lt_.run([&] { conn_.reset(); });
  }
  std::string call(std::vector<std::string> argv) {
    return test::command(lt_, *conn_, std::move(argv), flat);
  }

 private:
  loop_thread& lt_;
  std::unique_ptr<redis_connection> conn_;
};

std::string claim(client& c, const std::string& claimant, const std::string& node) {
  return c.call({"EVAL", k_orphan_claim_script, "4", "t:events:lease:" + node,
                 "t:events:claim:" + node, "t:events:clients:" + node, "t:events:nodes", claimant,
                 "5000", node});
}

TEST(OrphanClaim, OneClaimantGetsTheClientsNoneWhileTheLeaseLives) {
  redis_process redis;
  ASSERT_TRUE(redis.ok());
  loop_thread lt;
  client c(lt, redis);
  EXPECT_EQ(c.call({"HSET", "t:events:clients:dead", "c1", "alice", "c2", "bob"}), "2");
  EXPECT_EQ(c.call({"SADD", "t:events:nodes", "dead"}), "1");
  EXPECT_EQ(c.call({"SET", "t:events:lease:dead", "1", "PX", "60000"}), "OK");
  EXPECT_EQ(claim(c, "a", "dead"), "(nil)");  // alive: nobody claims it
  EXPECT_EQ(c.call({"DEL", "t:events:lease:dead"}), "1");
  const std::string got = claim(c, "a", "dead");
  EXPECT_TRUE(got == "[c1,alice,c2,bob]" || got == "[c2,bob,c1,alice]") << got;
  EXPECT_EQ(claim(c, "b", "dead"), "(nil)");  // taken by a
  EXPECT_EQ(c.call({"GET", "t:events:claim:dead"}), "a");
  // a empty record: the node just leaves the set, nothing to emit.
  EXPECT_EQ(c.call({"SADD", "t:events:nodes", "idle"}), "1");
  EXPECT_EQ(claim(c, "a", "idle"), "[]");
  EXPECT_EQ(c.call({"SISMEMBER", "t:events:nodes", "idle"}), "0");
  EXPECT_EQ(c.call({"EXISTS", "t:events:claim:idle"}), "0");
}

struct lost_log {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> calls;
  orphan_tracker::emit_lost fn() {
    return [this](std::string_view node,
                  const std::vector<std::pair<std::string, std::string>>& clients) {
      std::lock_guard lock(mutex);
      calls.emplace_back(std::string(node), clients);
      cv.notify_all();
      return true;
    };
  }
  bool wait(std::size_t n, std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, limit, [&] { return calls.size() >= n; });
  }
};

orphan_options options(const redis_process& redis, std::string node) {
  orphan_options o;
  o.urls = {redis.url()};
  o.key_prefix = "t:";
  o.lease = 0.4;
  o.refresh = 0.1;
  o.node = std::move(node);
  return o;
}

TEST(OrphanTracker, LostNodesClientsGoToOneSurvivorOnce) {
  redis_process redis;
  ASSERT_TRUE(redis.ok());
  loop_thread lt;
  lost_log from_a, survivors;  // b and c both report to `survivors`
  std::unique_ptr<orphan_tracker> a, b, c;
  lt.run([&] {
    a = std::make_unique<orphan_tracker>(lt.loop(), url_of(redis), options(redis, "na"),
                                         log_function{}, from_a.fn());
    b = std::make_unique<orphan_tracker>(lt.loop(), url_of(redis), options(redis, "nb"),
                                         log_function{}, survivors.fn());
    c = std::make_unique<orphan_tracker>(lt.loop(), url_of(redis), options(redis, "nc"),
                                         log_function{}, survivors.fn());
    a->start();
    b->start();
    c->start();
    a->track("c1", "alice");
    a->track("c2", "bob");
    a->track("c3", "carol");
    a->untrack("c2");  // its own disconnect was sent
    b->track("c9", "zed");
  });
  client check(lt, redis);
  // a's record reaches Redis (written at connect, or when a became ready).
  for (int i = 0; i < 50 && check.call({"HLEN", "t:events:clients:na"}) != "2"; ++i) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(check.call({"HLEN", "t:events:clients:na"}), "2");
  std::this_thread::sleep_for(300ms);  // a renews its lease meanwhile: nobody claims it
  EXPECT_FALSE(survivors.wait(1, 1ms));
  lt.run([&] { a.reset(); });  // dies: no finish, its lease runs out
  ASSERT_TRUE(survivors.wait(1, 3s));
  std::this_thread::sleep_for(500ms);  // more scans by both: no second emission
  std::lock_guard lock(survivors.mutex);
  ASSERT_EQ(survivors.calls.size(), 1u);
  auto call = survivors.calls.front();
  EXPECT_EQ(call.first, "na");
  std::sort(call.second.begin(), call.second.end());
  const std::vector<std::pair<std::string, std::string>> want{{"c1", "alice"}, {"c3", "carol"}};
  EXPECT_EQ(call.second, want);
  EXPECT_EQ(check.call({"EXISTS", "t:events:clients:na"}), "0");
  EXPECT_EQ(check.call({"SISMEMBER", "t:events:nodes", "na"}), "0");
  EXPECT_EQ(check.call({"HGET", "t:events:clients:nb", "c9"}), "zed");  // b's untouched
  lt.run([&] {
    b.reset();
    c.reset();
  });
}

TEST(OrphanTracker, CleanFinishLeavesNothingToClaim) {
  redis_process redis;
  ASSERT_TRUE(redis.ok());
  loop_thread lt;
  lost_log from_a, from_b;
  std::unique_ptr<orphan_tracker> a, b;
  lt.run([&] {
    a = std::make_unique<orphan_tracker>(lt.loop(), url_of(redis), options(redis, "na"),
                                         log_function{}, from_a.fn());
    b = std::make_unique<orphan_tracker>(lt.loop(), url_of(redis), options(redis, "nb"),
                                         log_function{}, from_b.fn());
    a->start();
    b->start();
    a->track("c1", "alice");
  });
  client check(lt, redis);
  for (int i = 0; i < 50 && check.call({"HLEN", "t:events:clients:na"}) != "1"; ++i) {
    std::this_thread::sleep_for(50ms);
  }
  std::promise<void> finished;
  lt.run([&] { a->finish([&] { finished.set_value(); }); });
  ASSERT_EQ(finished.get_future().wait_for(5s), std::future_status::ready);
  lt.run([&] { a.reset(); });
  EXPECT_EQ(check.call({"EXISTS", "t:events:clients:na"}), "0");
  EXPECT_EQ(check.call({"SISMEMBER", "t:events:nodes", "na"}), "0");
  std::this_thread::sleep_for(700ms);  // past a's lease: b scans meanwhile
  EXPECT_FALSE(from_b.wait(1, 1ms));
  lt.run([&] { b.reset(); });
}

TEST(OrphanHome, EveryOrderPicksTheSameUrl) {
  std::vector<std::string> urls{"redis://a:6379", "redis://b:6379", "redis://c:6379",
                                "redis://d:6379"};
  const std::string first = orphan_home_url(urls);
  std::sort(urls.begin(), urls.end());
  do {
    EXPECT_EQ(orphan_home_url(urls), first);
  } while (std::next_permutation(urls.begin(), urls.end()));
  EXPECT_TRUE(uses_redis_broker({"redis://a:6379"}));
  EXPECT_FALSE(uses_redis_broker({"memory"}));
  EXPECT_FALSE(uses_redis_broker({}));
}

}  // namespace
}  // namespace switchboard::realtime::detail
