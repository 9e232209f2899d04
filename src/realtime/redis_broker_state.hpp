// redis_broker_state.hpp — private to the redis_broker*.cpp files: the
// state of the Redis broker, which lives on the broker's own loop thread
// (every member function runs there; redis_broker's public calls post to it).
// One file per job:
//   redis_broker.cpp           connections to each shard, health, scripts,
//                              start/stop and the public calls
//   redis_broker_channels.cpp  joining live delivery: SUBSCRIBE, reads,
//                              recovery, held events, each offset once
//   redis_broker_publish.cpp   publications batched per shard per iteration
//   redis_broker_presence.cpp  presence entries, leases and their refresh
//   redis_broker_cluster.cpp   what the server API needs across nodes:
//                              control messages, node statistics, listings
#pragma once

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <switchboard/net/event_loop.hpp>
#include <unordered_map>
#include <utility>
#include <vector>

#include "redis_broker.hpp"
#include "redis_connection.hpp"
#include "redis_scripts.hpp"
#include "support.hpp"

namespace switchboard::realtime::detail {

struct redis_broker::state {
  // Milliseconds in a day: the least a channel's meta key outlives its history.
  static constexpr std::int64_t k_day_ms = 24 * 3600 * 1000;

  struct script {
    const char* body;
    std::string sha;
  };

  // A read, parsed: the publications one by one (for a node's own recovery)
  // and joined (for the caller).
  struct parsed_read {
    read_result result;
    std::vector<std::pair<std::uint64_t, std::string>> entries;  // offset, tail
  };

  static std::string sha1_hex(std::string_view text);
  static std::uint64_t parse_u64(std::string_view s) noexcept {
    std::uint64_t v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
  }
  static std::int64_t ms_of(double seconds) { return static_cast<std::int64_t>(seconds * 1000.0); }
  static read_result read_failed(failure f) {
    read_result r;
    r.error = std::move(f);
    return r;
  }

  struct held_event {
    char kind;  // 'm' publication, 'j' join, 'l' leave
    std::string epoch;
    std::uint64_t offset = 0;
    std::string body;  // tail or entry json
  };
  struct waiting_read {
    const namespace_options* ns;
    read_request request;
    completion<read_result> done;
  };
  struct shard;
  // A channel this node is subscribed to (hub: first local subscriber).
  struct channel {
    std::string name;
    const namespace_options* ns = nullptr;
    shard* home = nullptr;
    std::uint64_t generation = 0;  // tells a re-subscribed channel from the old one
    bool confirmed = false;        // Redis acknowledged the SUBSCRIBE
    std::string epoch;             // known: from a read or a publication
    std::uint64_t delivered = 0;   // the last offset handed to on_publication
    int reads_in_flight = 0;
    // The node may have missed publications (a reconnect, or a gap in the
    // offsets it heard): events wait until a recovery read says what to do.
    bool recovering = false;
    bool recovery_sent = false;
    std::vector<waiting_read> waiting;  // reads waiting for the confirmation
    std::deque<held_event> held;
    std::map<std::string, std::string, std::less<>> presence;  // client → entry json (ours)
  };
  // One channel's publications waiting for its shard's next publish script
  // call, in order: the script does the channel's own work once for them.
  struct pending_channel {
    std::string name;
    const namespace_options* ns = nullptr;
    std::vector<std::string> tails;
    std::vector<completion<publish_result>> done;
  };
  struct shard {
    std::unique_ptr<redis_connection> cmd;
    std::unique_ptr<redis_connection> sub;
    // Publications of this loop iteration, sent as one script call when the
    // iteration's tasks are done (flush_publishes), or before any other
    // command to this shard, so the order of commands is kept.
    std::vector<pending_channel> pending;
    std::vector<std::uint32_t> pending_order;  // each publication's group, in order
    bool flush_scheduled = false;
  };

  state(redis_broker& o, net::event_loop& l) : owner(o), loop(l) {}

  redis_broker& owner;
  net::event_loop& loop;
  broker_events* events = nullptr;
  std::vector<std::unique_ptr<shard>> shards;
  std::vector<std::pair<std::uint64_t, shard*>> ring;  // sorted by point
  std::unordered_map<std::string, std::unique_ptr<channel>> channels;
  std::uint64_t next_generation = 1;
  script publish_script{redis_scripts::k_publish, sha1_hex(redis_scripts::k_publish)};
  script read_script{redis_scripts::k_read, sha1_hex(redis_scripts::k_read)};
  script presence_script{redis_scripts::k_presence, sha1_hex(redis_scripts::k_presence)};
  std::uint64_t next_refresh_ms = 0;
  std::uint64_t next_meta_refresh_ms = 0;

  const redis_broker_options& opts() const { return owner.options_; }
  void say(log_level level, const std::string& m) const {
    if (opts().log) opts().log(level, m);
  }

  std::string key(char kind, std::string_view name) const {
    std::string k = opts().key_prefix;
    k.push_back(kind);
    k.push_back(':');
    k.append(name);
    return k;
  }

  shard& shard_of(std::string_view name) {
    const std::uint64_t h = stable_hash(name);
    auto it = std::lower_bound(ring.begin(), ring.end(), h,
                               [](const auto& p, std::uint64_t v) { return p.first < v; });
    if (it == ring.end()) it = ring.begin();
    return *it->second;
  }

  channel* find(std::string_view name) {
    const auto it = channels.find(std::string(name));
    return it == channels.end() ? nullptr : it->second.get();
  }

  // ---- redis_broker.cpp: connections, health, scripts --------------------

  static failure unavailable(const shard& s);
  void update_health();
  // EVALSHA, and EVAL with the body if Redis does not know the script (a
  // restart or SCRIPT FLUSH), which also loads it again.
  void run(shard& s, const script& sc, std::vector<std::string> args,
           net::unique_function<void(const redisReply*)> done);
  void on_cmd_ready(shard& s);
  void on_sub_ready(shard& s);
  void on_sub_down(shard& s);

  // ---- redis_broker_channels.cpp: joining live delivery -------------------

  void subscribe_node(std::string_view name, const namespace_options& ns);
  void unsubscribe_node(std::string_view name);
  void read(std::string_view name, const namespace_options& ns, read_request rq,
            completion<read_result> done);
  // `generation` names the subscribed channel whose reads_in_flight this
  // read counts (0: none). `recovery`: the node's own catch-up.
  void send_read(std::string_view name, const namespace_options& ns, read_request rq,
                 std::uint64_t generation, completion<read_result> done, bool recovery);
  // What a read tells the node about a channel it is subscribed to.
  void learn(channel& c, const parsed_read& p, bool recovery);
  static parsed_read parse_read(const shard& s, const redisReply* r, bool has_since);
  void fail_waiting(channel& c, const failure& f);
  void send_subscribe(channel& c);
  void on_confirmed(channel& c);
  void start_recovery(channel& c);
  // Reads the stream after the node's last delivered offset; without a
  // command connection now, on_cmd_ready sends it later (events wait).
  void send_recovery(channel& c);
  bool blocked(const channel& c) const {
    return c.reads_in_flight > 0 || c.epoch.empty() || c.recovering;
  }
  void on_message(std::string_view key_name, std::string_view payload);
  // The packed form (redis_packed.hpp, without its 'M'): held one by one.
  void on_packed(channel& c, std::string_view payload);
  void hold(channel& c, held_event ev);
  void deliver(channel& c, const held_event& ev);
  void deliver_publication(channel& c, std::string_view epoch, std::uint64_t offset,
                           std::string_view body);
  void release_held(channel& c);

  // ---- redis_broker_publish.cpp -------------------------------------------

  // At most this many publications per script call: bounds the call's
  // arguments and how long Redis runs one script.
  static constexpr std::size_t k_max_batch = 64;
  void publish(std::string_view name, const namespace_options& ns, std::string tail,
               completion<publish_result> done);
  // One publish script call for everything pending on `s`, in order.
  void flush_publishes(shard& s);

  // ---- redis_broker_presence.cpp ------------------------------------------

  void presence_call(std::string_view name, const char* mode, std::vector<std::string> entries,
                     net::unique_function<void(const redisReply*)> done);
  void presence_add(std::string_view name, std::shared_ptr<const presence_entry> entry);
  void presence_remove(std::string_view name, std::string_view client);
  // Redis keeps the members in a sorted set by lease; the page (client-id
  // order, after the cursor, at most `limit`) is cut here, like the memory
  // broker's.
  void presence(std::string_view name, presence_request request, completion<presence_result> done);
  // Renews the leases of this node's entries (on `only`, or every shard).
  void refresh_presence(shard* only);
  // Presence refresh every presence_refresh seconds; channels' meta keys
  // renewed every 10 minutes (a quiet channel keeps its epoch).
  void tick();

  // ---- redis_broker_cluster.cpp: the server API across nodes --------------

  std::string control_key() const { return key('x', "control"); }
  // Where send_node() messages to node `id` are PUBLISHed (it SUBSCRIBEs).
  std::string node_key(std::string_view id) const {
    std::string k = key('x', "node:");
    k.append(id);
    return k;
  }
  void send_node(const std::string& id, const std::string& message,
                 completion<node_send_result> done);
  // Where the server API's keys live: placed on the ring like a channel, so
  // every node finds the same shard whatever the order of its URLs.
  shard& api_shard() { return shard_of("#server-api"); }
  void remove_history(const std::string& name, completion<std::optional<failure>> done);
  void send_control(const std::string& message, completion<std::optional<failure>> done);
  // A node's statistics live 5 s: a node that stops publishing them (it
  // died) leaves the list within that, and its id leaves the set at the
  // next listing.
  static constexpr std::string_view k_node_lease_ms = "5000";
  void publish_node(const std::string& id, const std::string& json);
  void nodes(completion<nodes_result> done);
  // GET /api/channels: every channel with a stream position, on every shard.
  struct listing {
    completion<channels_result> done;
    channels_result result;
    std::size_t pending = 0;
  };
  void channels_call(completion<channels_result> done);
  void scan(shard& s, const std::string& cursor, const std::shared_ptr<listing>& l);
  void fetch_meta(shard& s, const std::string& k, const std::shared_ptr<listing>& l);
};

}  // namespace switchboard::realtime::detail
