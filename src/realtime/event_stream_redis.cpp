// event_stream_redis.cpp — lifecycle events through a Redis stream (see
// event_stream_redis.hpp).
#include "event_stream_redis.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <random>

#include "hooks.hpp"
#include "support.hpp"

namespace switchboard::realtime::detail {

namespace {

// KEYS: the stream. ARGV: the most events it may hold, then the events.
// Refuses the whole batch when the stream is full: its events stay in the
// node's outbox file, nothing unsent is trimmed.
constexpr const char* k_append_script =
    "if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end\n"
    "for i = 2, #ARGV do redis.call('XADD', KEYS[1], '*', 'e', ARGV[i]) end\n"
    "return 1\n";

// KEYS: the sender role. ARGV: this node, the lease (ms). 1 if still ours.
constexpr const char* k_renew_script =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

// KEYS: the sender role, the acknowledged id, the stream. ARGV: this node,
// the batch's last id, the lowest id to keep. 0 if the role is not ours
// any more (the new holder resends from its own reading of the id).
constexpr const char* k_ack_script =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "redis.call('SET', KEYS[2], ARGV[2])\n"
    "redis.call('XTRIM', KEYS[3], 'MINID', ARGV[3])\n"
    "return 1\n";

// KEYS: the sender role. ARGV: this node.
constexpr const char* k_release_script =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end\n"
    "return 1\n";

constexpr std::chrono::milliseconds k_poll{50};

// "ms-seq" -> "ms-(seq+1)": the first id after `id`.
std::string next_id(std::string_view id) {
  const std::size_t dash = id.find('-');
  std::uint64_t seq = 0;
  if (dash == std::string_view::npos) return std::string(id) + "-1";
  std::from_chars(id.data() + dash + 1, id.data() + id.size(), seq);
  std::string out(id.substr(0, dash));
  out.push_back('-');
  out.append(std::to_string(seq + 1));
  return out;
}

}  // namespace

event_stream::event_stream(hook_caller& hooks, const http_url& url, redis_url redis,
                           event_stream_options options, log_function log,
                           event_stream_counters& counters)
    : hooks_(hooks),
      url_(url),
      options_(std::move(options)),
      log_(std::move(log)),
      counters_(counters) {
  timer_.bind<&event_stream::on_tick>(this);
  redis_connection::callbacks cb;
  cb.on_down = [this](const std::string& why) {
    say(log_level::warn, "events: stream: redis " + why);
    busy_ = false;  // a read or ack in flight was answered with nullptr
  };
  conn_ = std::make_unique<redis_connection>(hooks_.loop(), std::move(redis),
                                             redis_connection_options{}, cb);
}

event_stream::~event_stream() {
  timer_.cancel();
  if (conn_) conn_->stop();
}

void event_stream::set_holder(bool holder) {
  holder_ = holder;
  counters_.sender.store(holder, std::memory_order_relaxed);
}

std::string event_stream::key(std::string_view name) const {
  std::string k = options_.key_prefix;
  k.append("events:");
  k.append(name);
  return k;
}

void event_stream::start() {
  conn_->start();
  schedule(k_poll);
}

void event_stream::schedule(std::chrono::milliseconds delay) {
  hooks_.loop().update_now();
  hooks_.loop().timers().schedule(timer_, delay);
}

void event_stream::on_tick() {
  if (finishing_) return;
  if (conn_->ready()) {
    const std::uint64_t now = mono_ms();
    if (!holder_) {
      // Tried every third of a lease (not every tick): a dead holder's role
      // is taken over within a lease and a third.
      if (now >= next_acquire_ms_) {
        next_acquire_ms_ = now + static_cast<std::uint64_t>(to_ms(options_.lease / 3).count());
        acquire();
      }
    } else if (now >= next_renew_ms_) {
      renew();
    }
    if (holder_ && !busy_ && now >= retry_at_ms_) {
      if (batch_.empty()) {
        read_next();
      } else {
        post();
      }
    }
  }
  schedule(k_poll);
}

void event_stream::acquire() {
  if (busy_) return;
  busy_ = true;
  const std::string lease_ms =
      std::to_string(std::max<std::int64_t>(1, to_ms(options_.lease).count()));
  conn_->command({"SET", key("sender"), options_.node, "NX", "PX", lease_ms},
                 [this, alive = std::weak_ptr<bool>(alive_)](const redisReply* r) {
                   if (alive.expired()) return;
                   if (!r || r->type != REDIS_REPLY_STATUS) {  // nil: another node holds it
                     busy_ = false;
                     return;
                   }
                   conn_->command({"GET", key("acked")}, [this, alive](const redisReply* g) {
                     if (alive.expired()) return;
                     busy_ = false;
                     if (!g) return;  // the role runs out unrenewed; acquired again later
                     set_holder(true);
                     next_renew_ms_ =
                         mono_ms() + static_cast<std::uint64_t>(to_ms(options_.lease / 3).count());
                     acked_ = g->type == REDIS_REPLY_STRING ? std::string(reply_text(g)) : "0-0";
                     batch_.clear();
                     say(log_level::info,
                         "events: this node sends the event stream (after " + acked_ + ")");
                   });
                 });
}

void event_stream::renew() {
  next_renew_ms_ = mono_ms() + static_cast<std::uint64_t>(to_ms(options_.lease / 3).count());
  const std::string lease_ms =
      std::to_string(std::max<std::int64_t>(1, to_ms(options_.lease).count()));
  conn_->command({"EVAL", k_renew_script, "1", key("sender"), options_.node, lease_ms},
                 [this, alive = std::weak_ptr<bool>(alive_)](const redisReply* r) {
                   if (alive.expired() || !r) return;
                   if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) return;
                   // Lost it (we stalled past the lease): the new holder resends.
                   say(log_level::warn, "events: the event stream's sender role was lost");
                   set_holder(false);
                   batch_.clear();
                 });
}

void event_stream::read_next() {
  busy_ = true;
  std::string from("(");
  from.append(acked_);
  const std::string count = std::to_string(std::max<std::size_t>(1, options_.batch));
  conn_->command({"XRANGE", key("stream"), from, "+", "COUNT", count},
                 [this, alive = std::weak_ptr<bool>(alive_)](const redisReply* r) {
                   if (alive.expired()) return;
                   busy_ = false;
                   if (!r || r->type != REDIS_REPLY_ARRAY || !holder_) return;
                   batch_.clear();
                   for (std::size_t i = 0; i < r->elements; ++i) {
                     const redisReply* entry = r->element[i];
                     if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2) continue;
                     const redisReply* fields = entry->element[1];
                     std::string_view event;
                     for (std::size_t f = 0;
                          fields->type == REDIS_REPLY_ARRAY && f + 1 < fields->elements; f += 2) {
                       if (reply_text(fields->element[f]) == "e") {
                         event = reply_text(fields->element[f + 1]);
                       }
                     }
                     // An entry without an event (not ours) is skipped, not sent.
                     if (!event.empty()) {
                       batch_.emplace_back(reply_text(entry->element[0]), event);
                     } else {
                       acked_.assign(reply_text(entry->element[0]));
                     }
                   }
                   if (!batch_.empty()) post();
                 });
}

void event_stream::post() {
  busy_ = true;
  std::string body("{\"events\":[");
  for (std::size_t i = 0; i < batch_.size(); ++i) {
    if (i) body.push_back(',');
    body.append(batch_[i].second);
  }
  body.append("]}");
  http_request r;
  r.url = &url_;
  r.timeout = to_ms(options_.timeout);
  r.headers = hooks_.signed_headers("events", body);
  r.body = std::move(body);
  hooks_.client().send(std::move(r), [this, alive = std::weak_ptr<bool>(alive_)](http_result res) {
    if (alive.expired()) return;
    const bool ok = res.error.empty() && res.status >= 200 && res.status <= 299;
    on_posted(ok, res.error.empty() ? "HTTP " + std::to_string(res.status) : res.error);
  });
}

void event_stream::on_posted(bool ok, const std::string& why) {
  if (!ok) {
    if (attempt_ == 0) {
      say(log_level::warn, "events: webhook " + url_.origin + url_.path + " did not acknowledge (" +
                               why + "); retrying");
    }
    counters_.retries.fetch_add(1, std::memory_order_relaxed);
    const double cap = std::max(0.1, options_.retry_max);
    const double base =
        std::min(cap, 0.1 * static_cast<double>(1u << std::min<std::uint32_t>(attempt_, 16)));
    ++attempt_;
    thread_local std::mt19937 rng{std::random_device{}()};
    const double wait = std::uniform_real_distribution<double>(base / 2, base)(rng);
    retry_at_ms_ = mono_ms() + static_cast<std::uint64_t>(to_ms(wait).count());
    busy_ = false;
    return;
  }
  attempt_ = 0;
  if (finishing_) {
    busy_ = false;
    return;
  }
  const std::string last = batch_.back().first;
  const std::size_t n = batch_.size();
  conn_->command({"EVAL", k_ack_script, "3", key("sender"), key("acked"), key("stream"),
                  options_.node, last, next_id(last)},
                 [this, alive = std::weak_ptr<bool>(alive_), last, n](const redisReply* r) {
                   if (alive.expired()) return;
                   busy_ = false;
                   if (!r) return;  // unknown: the batch is posted again (a duplicate)
                   if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
                     acked_ = last;
                     counters_.delivered.fetch_add(n, std::memory_order_relaxed);
                     batch_.clear();
                     if (holder_ && !finishing_) read_next();
                     return;
                   }
                   set_holder(false);  // another node sends from its reading of acked
                   batch_.clear();
                 });
}

void event_stream::append(std::vector<std::string> events, std::function<void(bool)> done) {
  if (!conn_->ready() || events.empty()) return done(events.empty());
  const std::string max = std::to_string(options_.max_len);
  const std::string stream = key("stream");
  std::vector<std::string_view> argv{"EVAL", k_append_script, "1", stream, max};
  for (const std::string& e : events) argv.push_back(e);
  conn_->command(argv, [this, alive = std::weak_ptr<bool>(alive_),
                        done = std::move(done)](const redisReply* r) {
    if (alive.expired()) return;
    const bool ok = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
      if (!refused_logged_) {
        say(log_level::error,
            "events: the event stream holds events.stream_max events (the webhook is down?): "
            "new events wait in the outbox file");
      }
      refused_logged_ = true;
    } else if (ok) {
      refused_logged_ = false;
    } else if (r && r->type == REDIS_REPLY_ERROR) {
      say(log_level::error, "events: stream append: " + std::string(reply_text(r)));
    }
    done(ok);
  });
}

void event_stream::finish(std::function<void()> done) {
  finishing_ = true;
  timer_.cancel();
  if (!holder_ || !conn_->ready()) return done();
  set_holder(false);
  conn_->command({"EVAL", k_release_script, "1", key("sender"), options_.node},
                 [done = std::move(done)](const redisReply*) { done(); });
}

}  // namespace switchboard::realtime::detail
