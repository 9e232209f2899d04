// event_orphans.cpp — a lost node's disconnects (see event_orphans.hpp).
#include "event_orphans.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <chrono>

#include "support.hpp"

namespace switchboard::realtime::detail {

// KEYS: the lost node's lease, its claim, its clients hash, the node set.
// ARGV: the claimant, the claim's lifetime (ms), the lost node's id.
// Returns nil (alive, or claimed by another node) or the hash as a flat
// array; an empty hash is dealt with here (the node leaves the set).
const char* const k_orphan_claim_script =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return false end\n"
    "if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end\n"
    "local c = redis.call('HGETALL', KEYS[3])\n"
    "if #c == 0 then\n"
    "  redis.call('SREM', KEYS[4], ARGV[3])\n"
    "  redis.call('DEL', KEYS[2])\n"
    "end\n"
    "return c\n";

namespace {

// HSETs per command when the whole record is written again.
constexpr std::size_t k_rewrite_chunk = 500;

}  // namespace

bool uses_redis_broker(const std::vector<std::string>& urls) {
  return !urls.empty() && !(urls.size() == 1 && urls.front() == "memory");
}

const std::string& orphan_home_url(const std::vector<std::string>& urls) {
  // REQUIRES: !urls.empty().
  std::size_t best = 0;
  std::uint64_t best_h = 0;
  for (std::size_t i = 0; i < urls.size(); ++i) {
    const std::uint64_t h = stable_hash(urls[i] + "#events");
    if (i == 0 || h > best_h) {
      best = i;
      best_h = h;
    }
  }
  return urls[best];
}

orphan_tracker::orphan_tracker(net::event_loop& loop, redis_url url, orphan_options options,
                               log_function log, emit_lost emit)
    : loop_(loop), options_(std::move(options)), log_(std::move(log)), emit_(std::move(emit)) {
  timer_.bind<&orphan_tracker::on_timer>(this);
  redis_connection::callbacks cb;
  cb.on_ready = [this] { on_ready(); };
  cb.on_down = [this](const std::string& why) {
    say(log_level::warn, "events: orphaned disconnects: redis " + why);
  };
  conn_ = std::make_unique<redis_connection>(loop_, std::move(url), redis_connection_options{}, cb);
}

orphan_tracker::~orphan_tracker() {
  timer_.cancel();
  if (conn_) conn_->stop();
}

std::string orphan_tracker::key(std::string_view kind, std::string_view node) const {
  std::string k = options_.key_prefix;
  k.append("events:");
  k.append(kind);
  if (!node.empty()) {
    k.push_back(':');
    k.append(node);
  }
  return k;
}

void orphan_tracker::start() {
  conn_->start();
  loop_.update_now();
  loop_.timers().schedule(timer_, to_ms(options_.refresh));
}

void orphan_tracker::on_ready() {
  if (finishing_) return;
  // Connected (again): the lease first, so nobody claims us meanwhile; then
  // the record as it is now (what was sent while Redis was away is lost).
  renew();
  conn_->command({"DEL", key("clients", options_.node)}, [](const redisReply*) {});
  const std::string hash = key("clients", options_.node);
  std::vector<std::string_view> argv;
  auto it = clients_.begin();
  while (it != clients_.end()) {
    argv.assign({"HSET", hash});
    for (std::size_t n = 0; n < k_rewrite_chunk && it != clients_.end(); ++n, ++it) {
      argv.push_back(it->first);
      argv.push_back(it->second);
    }
    conn_->command(argv, [](const redisReply*) {});
  }
}

void orphan_tracker::renew() {
  const std::string lease_ms =
      std::to_string(std::max<std::int64_t>(1, to_ms(options_.lease).count()));
  conn_->command({"SET", key("lease", options_.node), "1", "PX", lease_ms},
                 [](const redisReply*) {});
  conn_->command({"SADD", key("nodes", {}), options_.node}, [](const redisReply*) {});
}

void orphan_tracker::on_timer() {
  if (finishing_) return;
  if (conn_->ready()) {
    renew();
    scan();
  }
  loop_.update_now();
  loop_.timers().schedule(timer_, to_ms(options_.refresh));
}

void orphan_tracker::scan() {
  conn_->command({"SMEMBERS", key("nodes", {})},
                 [this, alive = std::weak_ptr<bool>(alive_)](const redisReply* r) {
                   if (alive.expired() || !r || r->type != REDIS_REPLY_ARRAY || finishing_) return;
                   for (std::size_t i = 0; i < r->elements; ++i) {
                     const std::string node(reply_text(r->element[i]));
                     if (node != options_.node && !node.empty()) claim(node);
                   }
                 });
}

void orphan_tracker::claim(const std::string& node) {
  const std::string lease = key("lease", node);
  const std::string claim_key = key("claim", node);
  const std::string hash = key("clients", node);
  const std::string nodes = key("nodes", {});
  // The claim outlives a claimant that dies mid-way by one lease, then the
  // next node takes it over.
  const std::string claim_ms =
      std::to_string(std::max<std::int64_t>(1000, to_ms(options_.lease).count()));
  conn_->command({"EVAL", k_orphan_claim_script, "4", lease, claim_key, hash, nodes, options_.node,
                  claim_ms, node},
                 [this, alive = std::weak_ptr<bool>(alive_), node, claim_key, hash,
                  nodes](const redisReply* r) {
                   if (alive.expired() || !r) return;
                   if (r->type == REDIS_REPLY_ERROR) {
                     say(log_level::error, "events: orphaned disconnects: claim of node " + node +
                                               ": " + std::string(reply_text(r)));
                     return;
                   }
                   if (r->type != REDIS_REPLY_ARRAY || r->elements == 0)
                     return;  // alive, taken, empty
                   std::vector<std::pair<std::string, std::string>> lost;
                   lost.reserve(r->elements / 2);
                   for (std::size_t i = 0; i + 1 < r->elements; i += 2) {
                     lost.emplace_back(reply_text(r->element[i]), reply_text(r->element[i + 1]));
                   }
                   say(log_level::info, "events: node " + node + " lost its lease with " +
                                            std::to_string(lost.size()) +
                                            " clients: emitting their disconnects");
                   if (!emit_(node, lost)) return;  // the claim runs out; tried again then
                   orphaned_ += lost.size();
                   conn_->command({"DEL", hash}, [](const redisReply*) {});
                   conn_->command({"SREM", nodes, node}, [](const redisReply*) {});
                   conn_->command({"DEL", claim_key}, [](const redisReply*) {});
                 });
}

void orphan_tracker::track(std::string_view client, std::string_view user) {
  auto [it, added] = clients_.try_emplace(std::string(client), user);
  if (!added) it->second.assign(user);
  if (conn_->ready() && !finishing_) {
    conn_->command({"HSET", key("clients", options_.node), client, user}, [](const redisReply*) {});
  }
}

void orphan_tracker::untrack(std::string_view client) {
  const auto it = clients_.find(std::string(client));
  if (it == clients_.end()) return;
  clients_.erase(it);
  if (conn_->ready() && !finishing_) {
    conn_->command({"HDEL", key("clients", options_.node), client}, [](const redisReply*) {});
  }
}

void orphan_tracker::finish(std::function<void()> done) {
  finishing_ = true;
  timer_.cancel();
  if (!conn_->ready()) return done();
  conn_->command({"DEL", key("clients", options_.node)}, [](const redisReply*) {});
  conn_->command({"DEL", key("lease", options_.node)}, [](const redisReply*) {});
  conn_->command({"SREM", key("nodes", {}), options_.node},
                 [done = std::move(done)](const redisReply*) { done(); });
}

}  // namespace switchboard::realtime::detail
