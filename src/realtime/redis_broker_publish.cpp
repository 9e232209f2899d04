// redis_broker_publish.cpp — publications through Redis: the ones of one loop
// iteration go to their shard as one publish script call (at most
// k_max_batch), grouped by channel, which assigns their offsets, appends them
// to the channels' streams and PUBLISHes them (one message per channel; one
// per publication with broker.packed_publish = false), atomically.
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
  // Most batches hold one hot channel or a few: the newest group first.
  // Without the packed form (broker.packed_publish = false) every publication
  // is a group of its own: the script then PUBLISHes each in the single form,
  // the only one a node of an older version reads (a rolling upgrade).
  pending_channel* group = nullptr;
  if (opts().packed_publish) {
    for (auto it = s.pending.rbegin(); it != s.pending.rend(); ++it) {
      if (it->name == name) {
        group = &*it;
        break;
      }
    }
  }
  if (!group) {
    group = &s.pending.emplace_back();
    group->name.assign(name);
    group->ns = &ns;
    // Room for a burst up front: growing one by one to 64 reallocates (and
    // moves every tail and completion) six times.
    const std::size_t room =
        opts().packed_publish ? std::min<std::size_t>(16, k_max_batch - s.pending_order.size())
                              : 1;
    group->tails.reserve(room);
    group->done.reserve(room);
  }
  group->tails.push_back(std::move(tail));
  group->done.push_back(std::move(done));
  s.pending_order.push_back(static_cast<std::uint32_t>(group - s.pending.data()));
  if (s.pending_order.size() >= k_max_batch) {
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
  std::vector<pending_channel> batch;
  batch.swap(s.pending);
  std::vector<std::uint32_t> order;
  order.swap(s.pending_order);
  std::vector<std::string> args;
  args.reserve(2 + batch.size() * 7 + order.size());
  args.push_back(std::to_string(batch.size() * 3));
  for (const pending_channel& g : batch) {
    args.push_back(key('m', g.name));
    args.push_back(key('s', g.name));
    args.push_back(key('c', g.name));
  }
  args.push_back(random_hex(8));
  for (pending_channel& g : batch) {
    const std::int64_t ttl = ms_of(g.ns->history_ttl);
    args.push_back(std::to_string(g.tails.size()));
    args.push_back(std::to_string(g.ns->history_size));
    args.push_back(std::to_string(ttl));
    args.push_back(std::to_string(std::max<std::int64_t>(2 * ttl, k_day_ms)));
    for (std::string& t : g.tails) args.push_back(std::move(t));
  }
  run(s, publish_script, std::move(args),
      [&s, batch = std::move(batch), order = std::move(order)](const redisReply* r) mutable {
        std::optional<failure> error;
        if (!r) {
          error = unavailable(s);
        } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 * batch.size()) {
          error = make_failure(errors::broker_unavailable,
                               r->type == REDIS_REPLY_ERROR ? reply_text(r) : "bad reply");
        }
        // Completions in the order of the publications (a publisher's
        // replies keep the order of its commands), not of the groups.
        std::vector<std::uint32_t> next(batch.size(), 0);
        for (const std::uint32_t i : order) {
          const std::uint32_t j = next[i]++;
          publish_result res;
          if (error) {
            res.error = *error;
          } else {
            res.epoch.assign(reply_text(r->element[2 * i]));
            res.offset = static_cast<std::uint64_t>(r->element[2 * i + 1]->integer) + j;
          }
          batch[i].done[j](std::move(res));
        }
      });
}
}  // namespace switchboard::realtime::detail
