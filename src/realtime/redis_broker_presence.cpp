// redis_broker_presence.cpp — presence through Redis: each node adds and
// removes its clients' entries in a sorted set per channel, scored by lease,
// and renews them every presence_refresh seconds; a node that dies has its
// clients leave within one lease.
#include <algorithm>
#include <string>

#include "redis_broker_state.hpp"
#include "support.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

void redis_broker::state::presence_call(std::string_view name, const char* mode,
                                        std::vector<std::string> entries,
                                        net::unique_function<void(const redisReply*)> done) {
  shard& s = shard_of(name);
  std::vector<std::string> args{"2", key('p', name), key('c', name), mode,
                                std::to_string(ms_of(opts().presence_lease))};
  for (std::string& e : entries) args.push_back(std::move(e));
  run(s, presence_script, std::move(args), std::move(done));
}

void redis_broker::state::presence_add(std::string_view name,
                                       std::shared_ptr<const presence_entry> entry) {
  channel* c = find(name);
  if (!c) return;  // REQUIRES: subscribed first (as in the memory broker)
  c->presence[entry->client] = entry->json;
  // Not connected: the next refresh after the reconnect adds it (and joins).
  if (c->home->cmd->ready()) presence_call(name, "add", {entry->json}, [](const redisReply*) {});
}

void redis_broker::state::presence_remove(std::string_view name, std::string_view client) {
  channel* c = find(name);
  if (!c) return;
  const auto it = c->presence.find(client);
  if (it == c->presence.end()) return;
  std::string json = std::move(it->second);
  c->presence.erase(it);
  // Not connected: the entry's lease runs out (leave within one lease).
  if (c->home->cmd->ready())
    presence_call(name, "remove", {std::move(json)}, [](const redisReply*) {});
}

void redis_broker::state::presence(std::string_view name, presence_request request,
                                   completion<presence_result> done) {
  shard& s = shard_of(name);
  if (!s.cmd->ready()) {
    done(presence_result{unavailable(s), 0, false, {}, {}});
    return;
  }
  if (request.limit == 0) {  // the count alone (every presence push asks for it)
    presence_call(name, "count", {}, [&s, done = std::move(done)](const redisReply* r) mutable {
      presence_result res;
      if (!r || r->type != REDIS_REPLY_INTEGER) {
        res.error = r ? make_failure(errors::broker_unavailable, reply_text(r)) : unavailable(s);
      } else {
        res.count = static_cast<std::size_t>(r->integer);
      }
      done(std::move(res));
    });
    return;
  }
  presence_call(name, "list", {},
                [&s, rq = std::move(request), done = std::move(done)](const redisReply* r) mutable {
                  presence_result res;
                  if (!r || r->type != REDIS_REPLY_ARRAY) {
                    res.error = r ? make_failure(errors::broker_unavailable, reply_text(r))
                                  : unavailable(s);
                    done(std::move(res));
                    return;
                  }
                  std::map<std::string, std::string, std::less<>> members;
                  for (std::size_t i = 0; i < r->elements; ++i) {
                    std::string json(reply_text(r->element[i]));
                    const std::string_view client = presence_client(json);
                    if (!client.empty()) members.emplace(std::string(client), std::move(json));
                  }
                  res.count = members.size();
                  if (rq.limit == 0 || res.count > rq.max_members) {
                    done(std::move(res));
                    return;
                  }
                  res.listed = true;
                  std::size_t n = 0;
                  auto it = members.upper_bound(rq.cursor);
                  for (; it != members.end() && n < rq.limit; ++it, ++n) {
                    if (n != 0) res.entries.push_back(',');
                    res.entries.append(it->second);
                  }
                  if (it != members.end() && n != 0) res.next = std::prev(it)->first;
                  done(std::move(res));
                });
}

void redis_broker::state::refresh_presence(shard* only) {
  for (auto& [name, c] : channels) {
    if (c->presence.empty() || (only && c->home != only) || !c->home->cmd->ready()) continue;
    std::vector<std::string> entries;
    entries.reserve(c->presence.size());
    for (const auto& [client, json] : c->presence) entries.push_back(json);
    presence_call(name, "refresh", std::move(entries), [](const redisReply*) {});
  }
}

void redis_broker::state::tick() {
  const std::uint64_t now = mono_ms();
  if (now >= next_refresh_ms) {
    next_refresh_ms = now + static_cast<std::uint64_t>(ms_of(opts().presence_refresh));
    refresh_presence(nullptr);
  }
  if (now >= next_meta_refresh_ms) {
    // A subscribed channel keeps its epoch however long it is quiet.
    next_meta_refresh_ms = now + 600'000;
    for (auto& [name, c] : channels) {
      if (!c->home->cmd->ready()) continue;
      const std::int64_t ttl = std::max<std::int64_t>(2 * ms_of(c->ns->history_ttl), k_day_ms);
      c->home->cmd->command({"PEXPIRE", key('m', name), std::to_string(ttl)},
                            [](const redisReply*) {});
    }
  }
}
}  // namespace switchboard::realtime::detail
