// event_orphans.hpp — private: the `disconnect` events of a node that died
// without sending them (docs/hooks.md, "Orphaned disconnects"), with the
// Redis broker.
//
// Each node keeps, in Redis, the clients it has announced (`connect` sent,
// `disconnect` not yet) with their user, and a lease it renews:
//
//   P events:nodes          a set of node ids that may hold clients
//   P events:lease:<node>   SET PX presence_lease, renewed every presence_refresh
//   P events:clients:<node> a hash client -> user (no TTL: it must outlive
//                           its node, that is its whole point)
//   P events:claim:<node>   who is emitting a lost node's disconnects
//
// Every presence_refresh each node looks at the set; for every other node
// whose lease is gone it runs one Lua script that, atomically, checks the
// lease again, takes the claim (SET NX PX) and returns the hash. Only the
// node whose SET NX succeeded gets the clients: it appends one `disconnect`
// per client to its own outbox (marked `"orphaned": true`, code 1006, reason
// "node lost", the lost node's id in `node`), fsyncs it, and only then
// deletes the hash, the node from the set and the claim. A claimant that
// dies in between leaves the claim to expire (one lease) and another node
// emits the same events again, with the same ids ("<node>-lost-<client>"):
// the receiver drops them as any duplicate.
//
// The keys live on one shard, chosen by the URLs as written (every node must
// list the same ones, as for the broker).
//
// Bound: one node's record is one hash; 10,000 clients are one HGETALL
// (about 0.6 MB) and one outbox append of 10,000 events with one fsync.
//
// Thread-safety: everything on the hook thread (hook_caller's loop),
// construction included.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <switchboard/net/event_loop.hpp>
#include <switchboard/net/timer_wheel.hpp>
#include <switchboard/realtime/service.hpp>
#include <unordered_map>
#include <utility>
#include <vector>

#include "redis_connection.hpp"

namespace switchboard::realtime::detail {

struct orphan_options {
  std::vector<std::string> urls;  // the broker's
  std::string key_prefix;
  double lease = 30;    // seconds (broker.presence_lease)
  double refresh = 10;  // seconds (broker.presence_refresh)
  std::string node;     // this node's id
};

// True if the configuration names the Redis broker.
bool uses_redis_broker(const std::vector<std::string>& broker_urls);

// Picks the URL every node picks from the same list (rendezvous hashing on
// the URLs as written, so their order does not matter).
const std::string& orphan_home_url(const std::vector<std::string>& urls);

// The Lua claim script (tests read it to run it against a real Redis).
extern const char* const k_orphan_claim_script;

class orphan_tracker {
 public:
  // The lost node's id and its clients (client, user). Returns true once the
  // events are durable (the record is deleted then), false if they could not
  // be recorded (the record stays; the claim expires and is tried again).
  using emit_lost = std::function<bool(std::string_view node,
                                       const std::vector<std::pair<std::string, std::string>>&)>;

  // REQUIRES: on `loop`'s thread; `url` resolved (resolve_redis_url).
  orphan_tracker(net::event_loop& loop, redis_url url, orphan_options options, log_function log,
                 emit_lost emit);
  ~orphan_tracker();
  orphan_tracker(const orphan_tracker&) = delete;
  orphan_tracker& operator=(const orphan_tracker&) = delete;

  void start();
  // A clean stop: deletes this node's record and lease (its clients' own
  // disconnects were sent), then runs `done` (at once if Redis is not there).
  void finish(std::function<void()> done);

  void track(std::string_view client, std::string_view user);
  void untrack(std::string_view client);

  std::size_t tracked() const noexcept { return clients_.size(); }
  std::uint64_t orphaned() const noexcept { return orphaned_; }

 private:
  std::string key(std::string_view kind, std::string_view node) const;
  void on_ready();
  void on_timer();
  void renew();
  void scan();
  void claim(const std::string& node);
  void say(log_level level, const std::string& m) const {
    if (log_) log_(level, m);
  }

  net::event_loop& loop_;
  orphan_options options_;
  log_function log_;
  emit_lost emit_;
  std::unique_ptr<redis_connection> conn_;
  net::timer_node timer_;
  std::unordered_map<std::string, std::string> clients_;  // client -> user
  std::uint64_t orphaned_ = 0;
  bool finishing_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace switchboard::realtime::detail
