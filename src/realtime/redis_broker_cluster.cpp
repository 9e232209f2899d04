// redis_broker_cluster.cpp — what the server API needs across nodes: the
// control messages every node hears, each node's statistics (a key with a
// short lease), the channel listing over every shard, history removal.
#include <string>

#include "redis_broker_state.hpp"
#include "support.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

void redis_broker::state::remove_history(const std::string& name,
                                         completion<std::optional<failure>> done) {
  shard& s = shard_of(name);
  if (!s.cmd->ready()) return done(unavailable(s));
  s.cmd->command(
      {"DEL", key('s', name)}, [&s, done = std::move(done)](const redisReply* r) mutable {
        if (!r || r->type == REDIS_REPLY_ERROR) {
          return done(r ? make_failure(errors::broker_unavailable, reply_text(r)) : unavailable(s));
        }
        done(std::nullopt);
      });
}

void redis_broker::state::send_control(const std::string& message,
                                       completion<std::optional<failure>> done) {
  shard& s = api_shard();
  if (!s.cmd->ready()) return done(unavailable(s));
  s.cmd->command({"PUBLISH", control_key(), message}, [&s, done = std::move(done)](
                                                          const redisReply* r) mutable {
    if (!r || r->type == REDIS_REPLY_ERROR) {
      return done(r ? make_failure(errors::broker_unavailable, reply_text(r)) : unavailable(s));
    }
    done(std::nullopt);
  });
}

void redis_broker::state::send_node(const std::string& id, const std::string& message,
                                    completion<node_send_result> done) {
  shard& s = api_shard();
  if (!s.cmd->ready()) {
    if (done) done(node_send_result{unavailable(s), 0});
    return;
  }
  s.cmd->command({"PUBLISH", node_key(id), message}, [&s, done = std::move(done)](
                                                         const redisReply* r) mutable {
    if (!done) return;
    if (!r || r->type != REDIS_REPLY_INTEGER) {
      return done(node_send_result{
          r ? make_failure(errors::broker_unavailable, reply_text(r)) : unavailable(s), 0});
    }
    done(node_send_result{std::nullopt, static_cast<std::size_t>(r->integer)});
  });
}

void redis_broker::state::publish_node(const std::string& id, const std::string& json) {
  shard& s = api_shard();
  if (!s.cmd->ready()) return;
  s.cmd->command({"SET", key('n', id), json, "PX", k_node_lease_ms}, [](const redisReply*) {});
  s.cmd->command({"SADD", opts().key_prefix + "nodes", id}, [](const redisReply*) {});
}

void redis_broker::state::nodes(completion<nodes_result> done) {
  shard& s = api_shard();
  if (!s.cmd->ready()) return done(nodes_result{unavailable(s), {}});
  s.cmd->command({"SMEMBERS", opts().key_prefix + "nodes"}, [this, &s, done = std::move(done)](
                                                                const redisReply* r) mutable {
    if (!r || r->type != REDIS_REPLY_ARRAY) {
      return done(nodes_result{
          r ? make_failure(errors::broker_unavailable, reply_text(r)) : unavailable(s), {}});
    }
    std::vector<std::string> ids;
    for (std::size_t i = 0; i < r->elements; ++i) ids.emplace_back(reply_text(r->element[i]));
    if (ids.empty()) return done(nodes_result{});
    std::vector<std::string> keys;
    std::vector<std::string_view> argv{"MGET"};
    for (const std::string& id : ids) keys.push_back(key('n', id));
    for (const std::string& k : keys) argv.push_back(k);
    s.cmd->command(argv, [this, &s, ids = std::move(ids),
                          done = std::move(done)](const redisReply* r) mutable {
      nodes_result res;
      if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != ids.size()) {
        res.error = r ? make_failure(errors::broker_unavailable, reply_text(r)) : unavailable(s);
        return done(std::move(res));
      }
      std::vector<std::string_view> gone{"SREM"};
      const std::string set = opts().key_prefix + "nodes";
      gone.push_back(set);
      for (std::size_t i = 0; i < r->elements; ++i) {
        if (r->element[i]->type == REDIS_REPLY_STRING) {
          res.nodes.emplace_back(reply_text(r->element[i]));
        } else {
          gone.push_back(ids[i]);  // its lease ran out: the node is gone
        }
      }
      if (gone.size() > 2) s.cmd->command(gone, [](const redisReply*) {});
      done(std::move(res));
    });
  });
}

void redis_broker::state::channels_call(completion<channels_result> done) {
  auto l = std::make_shared<listing>();
  l->done = std::move(done);
  for (auto& s : shards) {
    if (!s->cmd->ready()) {
      l->result.error = unavailable(*s);
      break;
    }
  }
  if (l->result.error) {
    l->done(std::move(l->result));
    return;
  }
  for (auto& s : shards) scan(*s, "0", l);
  if (l->pending == 0) l->done(std::move(l->result));
}

void redis_broker::state::scan(shard& s, const std::string& cursor,
                               const std::shared_ptr<listing>& l) {
  ++l->pending;
  const std::string pattern = opts().key_prefix + "m:*";
  flush_publishes(s);
  s.cmd->command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"},
                 [this, &s, l](const redisReply* r) {
                   if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                     if (!l->result.error) l->result.error = unavailable(s);
                   } else {
                     const std::string next(reply_text(r->element[0]));
                     const redisReply* keys = r->element[1];
                     for (std::size_t i = 0; i < keys->elements; ++i) {
                       const std::string k(reply_text(keys->element[i]));
                       fetch_meta(s, k, l);
                     }
                     if (next != "0") scan(s, next, l);
                   }
                   if (--l->pending == 0) l->done(std::move(l->result));
                 });
}

void redis_broker::state::fetch_meta(shard& s, const std::string& k,
                                     const std::shared_ptr<listing>& l) {
  ++l->pending;
  const std::size_t skip = opts().key_prefix.size() + 2;
  s.cmd->command({"HMGET", k, "e", "o"}, [k, skip, l](const redisReply* r) {
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
      l->result.channels.push_back({k.substr(skip), std::string(reply_text(r->element[0])),
                                    parse_u64(reply_text(r->element[1]))});
    }
    if (--l->pending == 0) l->done(std::move(l->result));
  });
}
}  // namespace switchboard::realtime::detail
