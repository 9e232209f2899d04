// redis_broker_publish.cpp — publications through Redis: the ones of one loop
// iteration go to their shard as one publish script call (at most
// k_max_batch), which assigns their offsets, appends them to the channels'
// streams and PUBLISHes them, atomically.
#include <algorithm>
#include <string>

#include "redis_broker_state.hpp"
#include "support.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

void redis_broker::state::publish(std::string_view name, const namespace_options& ns,
                                  std::string tail, completion<publish_result> done) {
  shard& s = shard_of(name);
  if (!s.cmd->ready()) {
    done(publish_result{unavailable(s), {}, 0});
    return;
  }
  const std::int64_t ttl = ms_of(ns.history_ttl);
  s.pending.push_back(
      pending_publish{key('m', name), key('s', name), key('c', name), std::move(tail),
                      std::to_string(ns.history_size), std::to_string(ttl),
                      std::to_string(std::max<std::int64_t>(2 * ttl, k_day_ms)), std::move(done)});
  if (s.pending.size() >= k_max_batch) {
    flush_publishes(s);
  } else if (!s.flush_scheduled) {
    s.flush_scheduled = true;
    loop.defer([this, &s] {
      s.flush_scheduled = false;
      flush_publishes(s);
    });
  }
}

void redis_broker::state::flush_publishes(shard& s) {
  if (s.pending.empty()) return;
  std::vector<pending_publish> batch;
  batch.swap(s.pending);
  std::vector<std::string> args;
  args.reserve(2 + batch.size() * 7);
  args.push_back(std::to_string(batch.size() * 3));
  for (pending_publish& p : batch) {
    args.push_back(std::move(p.meta));
    args.push_back(std::move(p.stream));
    args.push_back(std::move(p.pubsub));
  }
  args.push_back(random_hex(8));
  for (pending_publish& p : batch) {
    args.push_back(std::move(p.tail));
    args.push_back(std::move(p.history_size));
    args.push_back(std::move(p.ttl_ms));
    args.push_back(std::move(p.meta_ttl_ms));
  }
  run(s, publish_script, std::move(args),
      [&s, batch = std::move(batch)](const redisReply* r) mutable {
        std::optional<failure> error;
        if (!r) {
          error = unavailable(s);
        } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 * batch.size()) {
          error = make_failure(errors::broker_unavailable,
                               r->type == REDIS_REPLY_ERROR ? reply_text(r) : "bad reply");
        }
        for (std::size_t i = 0; i < batch.size(); ++i) {
          publish_result res;
          if (error) {
            res.error = *error;
          } else {
            res.epoch.assign(reply_text(r->element[2 * i]));
            res.offset = static_cast<std::uint64_t>(r->element[2 * i + 1]->integer);
          }
          batch[i].done(std::move(res));
        }
      });
}
}  // namespace switchboard::realtime::detail
