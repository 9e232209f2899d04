// redis_broker.cpp — the broker shared through Redis (see redis_broker.hpp).
//
// Joining live delivery (no gap, no duplicate across nodes). A subscriber
// joins in three steps: hub::join → subscribe_node (SUBSCRIBE on the shard's
// subscriber connection), then read (a script on the command connection),
// then, on its loop, websocket::subscribe(topic, after = the read's offset).
// Three rules make that exact:
//   1. A read of a channel this node subscribes to is sent only after Redis
//      confirmed the SUBSCRIBE. A publish script appends and PUBLISHes in one
//      atomic step, so every publication is either in the read (offset <= H)
//      or arrives on the subscriber connection afterwards.
//   2. While a read of the channel is in flight, publications and presence
//      changes arriving for it are held. When the read's reply comes, its
//      completion is handed to the subscriber's loop (server::dispatch posts
//      it) *before* the held events are released to the loops
//      (server::publish, queued): each loop runs its queue in order, so the
//      connection is subscribed with after = H before any publication with
//      offset > H reaches it; the ones <= H are dropped for it by offset.
//   3. The node forwards each offset once (`delivered`): a repeat is dropped.
// After a subscriber connection is lost and back, every channel is
// subscribed again and read from the node's last delivered offset: what was
// missed meanwhile is delivered in order, or — if the stream no longer has it
// (Redis restarted empty: a new epoch; or trimmed) — on_stream_lost tells the
// node's subscribers to subscribe again (they learn recovered: false).
#include "redis_broker.hpp"

#include <openssl/sha.h>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <map>
#include <unordered_map>

#include <switchboard/net/event_loop.hpp>

#include "redis_connection.hpp"
#include "redis_scripts.hpp"
#include "support.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

namespace {

constexpr std::int64_t k_day_ms = 24 * 3600 * 1000;
// Most events held for one channel while reads are in flight; a read answers
// in a round trip, so this is only reached if Redis stalls under a flood.
constexpr std::size_t k_max_held = 100'000;

std::string sha1_hex(std::string_view text) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char b : digest) {
    out.push_back(k_hex[b >> 4]);
    out.push_back(k_hex[b & 15]);
  }
  return out;
}

// FNV-1a, 64 bits: a hash every node computes the same way (std::hash may not).
std::uint64_t stable_hash(std::string_view s) noexcept {
  std::uint64_t h = 14695981039346656037ull;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  // A final mix spreads near-identical names over the ring.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

std::uint64_t parse_u64(std::string_view s) noexcept {
  std::uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

std::string_view static_reason(std::string_view r) noexcept {
  if (r == "epoch changed") return "epoch changed";
  if (r == "offset ahead of the stream") return "offset ahead of the stream";
  if (r == "too far behind") return "too far behind";
  return {};
}

std::int64_t ms_of(double seconds) { return static_cast<std::int64_t>(seconds * 1000.0); }

read_result read_failed(failure f) {
  read_result r;
  r.error = std::move(f);
  return r;
}

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

}  // namespace

struct redis_broker::state {
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
  // A publication waiting for its shard's next publish script call.
  struct pending_publish {
    std::string meta, stream, pubsub;  // its keys
    std::string tail;
    std::string history_size, ttl_ms, meta_ttl_ms;
    completion<publish_result> done;
  };
  struct shard {
    std::unique_ptr<redis_connection> cmd;
    std::unique_ptr<redis_connection> sub;
    // Publications of this loop iteration, sent as one script call when the
    // iteration's tasks are done (flush_publishes), or before any other
    // command to this shard, so the order of commands is kept.
    std::vector<pending_publish> pending;
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

  static failure unavailable(const shard& s) {
    std::string why = s.cmd->last_error();
    if (s.cmd->ready()) {
      why = s.cmd->saturated() ? s.cmd->url().text + " is not keeping up"
                               : "lost the connection to " + s.cmd->url().text;
    }
    if (why.empty()) why = "not connected to " + s.cmd->url().text;
    return make_failure(errors::broker_unavailable, why);
  }

  void update_health() {
    std::string h;
    for (const auto& s : shards) {
      for (const redis_connection* c : {s->cmd.get(), s->sub.get()}) {
        if (c->ready() || !h.empty()) continue;
        h = "redis " + c->url().text + ": " +
            (c->last_error().empty() ? std::string("connecting") : c->last_error());
      }
    }
    std::lock_guard lock(owner.mutex_);
    if (h != owner.health_ && owner.options_.log) {
      say(h.empty() ? log_level::info : log_level::warn,
          h.empty() ? "redis: connected" : h);
    }
    owner.health_ = std::move(h);
  }

  // EVALSHA, and EVAL with the body if Redis does not know the script (a
  // restart or SCRIPT FLUSH), which also loads it again.
  void run(shard& s, const script& sc, std::vector<std::string> args,
           net::unique_function<void(const redisReply*)> done) {
    if (&sc != &publish_script) flush_publishes(s);
    std::vector<std::string_view> argv;
    argv.reserve(args.size() + 2);
    argv.push_back("EVALSHA");
    argv.push_back(sc.sha);
    for (const std::string& a : args) argv.push_back(a);
    redis_connection* conn = s.cmd.get();
    conn->command(argv, [conn, &sc, args = std::move(args),
                         done = std::move(done)](const redisReply* r) mutable {
      if (r && r->type == REDIS_REPLY_ERROR && reply_text(r).starts_with("NOSCRIPT")) {
        std::vector<std::string_view> again;
        again.push_back("EVAL");
        again.push_back(sc.body);
        for (const std::string& a : args) again.push_back(a);
        conn->command(again, std::move(done));
        return;
      }
      done(r);
    });
  }

  // ---- connections -------------------------------------------------------

  void on_cmd_ready(shard& s) {
    // First in the pipe: the EVALSHAs behind them find their scripts (a
    // restarted Redis has none; NOSCRIPT + EVAL would cost a round trip each).
    for (const script* sc : {&publish_script, &read_script, &presence_script}) {
      s.cmd->command({"SCRIPT", "LOAD", sc->body}, [](const redisReply*) {});
    }
    update_health();
    // Recoveries that could not be sent while the command connection was away.
    for (auto& [name, c] : channels) {
      if (c->home == &s) send_recovery(*c);
    }
    // Redis may have restarted empty: put our presence entries back now.
    refresh_presence(&s);
  }

  void on_sub_ready(shard& s) {
    update_health();
    // The server API's control messages travel on one shard (api_shard()).
    if (&s == &api_shard())
      s.sub->command({"SUBSCRIBE", control_key()}, [](const redisReply*) {});
    // Node messages (send_node) travel there too.
    if (&s == &api_shard() && !owner.node_id_.empty())
      s.sub->command({"SUBSCRIBE", node_key(owner.node_id_)}, [](const redisReply*) {});
    for (auto& [name, c] : channels) {
      if (c->home == &s) send_subscribe(*c);
    }
  }

  void on_sub_down(shard& s) {
    update_health();
    if (&s == &api_shard() && !owner.node_id_.empty()) events->on_node_messages_lost();
    for (auto& [name, c] : channels) {
      if (c->home != &s) continue;
      c->confirmed = false;
      fail_waiting(*c, unavailable(s));
    }
  }

  void fail_waiting(channel& c, const failure& f) {
    std::vector<waiting_read> w;
    w.swap(c.waiting);
    for (waiting_read& r : w) {
      read_result res;
      res.error = f;
      r.done(std::move(res));
    }
  }

  void send_subscribe(channel& c) {
    const std::string k = key('c', c.name);
    c.home->sub->command({"SUBSCRIBE", k}, [this, name = c.name, gen = c.generation](
                                                 const redisReply* r) {
      channel* c = find(name);
      if (!c || c->generation != gen) return;  // unsubscribed meanwhile
      if (!r || r->type == REDIS_REPLY_ERROR) return;  // lost: on_sub_ready subscribes again
      on_confirmed(*c);
    });
  }

  void on_confirmed(channel& c) {
    c.confirmed = true;
    // A reconnect: catch up from what the node delivered (rule 3's source).
    if (!c.epoch.empty()) start_recovery(c);
    std::vector<waiting_read> w;
    w.swap(c.waiting);
    for (waiting_read& r : w) {
      ++c.reads_in_flight;
      send_read(c.name, *r.ns, std::move(r.request), c.generation, std::move(r.done), false);
    }
  }

  void start_recovery(channel& c) {
    c.recovering = true;
    c.recovery_sent = false;
    send_recovery(c);
  }

  // Reads the stream after the node's last delivered offset; without a
  // command connection now, on_cmd_ready sends it later (events wait).
  void send_recovery(channel& c) {
    if (!c.recovering || c.recovery_sent || !c.confirmed || !c.home->cmd->ready()) return;
    c.recovery_sent = true;
    read_request rq;
    rq.since = stream_position{c.epoch, c.delivered};
    ++c.reads_in_flight;
    send_read(c.name, *c.ns, rq, c.generation, [](read_result) {}, true);
  }

  bool blocked(const channel& c) const {
    return c.reads_in_flight > 0 || c.epoch.empty() || c.recovering;
  }

  void on_message(std::string_view key_name, std::string_view payload) {
    const std::string_view prefix = opts().key_prefix;
    if (key_name.size() == prefix.size() + 9 && key_name.ends_with("x:control") &&
        key_name.starts_with(prefix)) {
      events->on_control(payload);
      return;
    }
    if (!owner.node_id_.empty() && key_name == node_key(owner.node_id_)) {
      events->on_node_message(payload);
      return;
    }
    if (!key_name.starts_with(prefix) || key_name.size() < prefix.size() + 2) return;
    channel* c = find(key_name.substr(prefix.size() + 2));
    if (!c || !c->confirmed || payload.empty()) return;
    held_event ev;
    ev.kind = payload.front();
    payload.remove_prefix(1);
    if (ev.kind == 'm') {
      // "m<epoch> <offset> <tail>"
      const auto sp1 = payload.find(' ');
      if (sp1 == std::string_view::npos) return;
      const auto sp2 = payload.find(' ', sp1 + 1);
      if (sp2 == std::string_view::npos) return;
      ev.epoch.assign(payload.substr(0, sp1));
      ev.offset = parse_u64(payload.substr(sp1 + 1, sp2 - sp1 - 1));
      ev.body.assign(payload.substr(sp2 + 1));
    } else if (ev.kind == 'j' || ev.kind == 'l') {
      ev.body.assign(payload);
    } else {
      return;
    }
    if (c->held.size() >= k_max_held) {
      // Redis stalls under a flood: the recovery read will fill what this drops.
      say(log_level::warn, "redis: too many held events for " + c->name + "; oldest dropped");
      c->held.pop_front();
    }
    c->held.push_back(std::move(ev));
    release_held(*c);
  }

  void deliver(channel& c, const held_event& ev) {
    if (ev.kind != 'm') {
      events->on_presence(c.name, c.epoch, ev.kind == 'j', ev.body);
      return;
    }
    if (ev.epoch != c.epoch) {
      // A new epoch while subscribed: the stream was lost (Redis restarted
      // empty, keys evicted or expired). Subscribers must start again.
      say(log_level::warn, "redis: channel " + c.name + " has a new epoch (stream lost)");
      events->on_stream_lost(c.name, ev.epoch);
      c.epoch = ev.epoch;
      c.delivered = 0;
    }
    if (ev.offset <= c.delivered) return;  // rule 3: each offset once
    c.delivered = ev.offset;
    events->on_publication(c.name, c.epoch, ev.offset, ev.body);
  }

  void release_held(channel& c) {
    while (!blocked(c) && !c.held.empty()) {
      const held_event& ev = c.held.front();
      if (ev.kind == 'm' && ev.epoch == c.epoch && ev.offset > c.delivered + 1) {
        // A gap in what the node heard (lost pub/sub messages): read what is
        // missing before delivering anything later. ev stays held.
        start_recovery(c);
        return;
      }
      held_event taken = std::move(c.held.front());
      c.held.pop_front();
      deliver(c, taken);
    }
  }

  // ---- calls -------------------------------------------------------------

  void subscribe_node(std::string_view name, const namespace_options& ns) {
    auto c = std::make_unique<channel>();
    c->name.assign(name);
    c->ns = &ns;
    c->home = &shard_of(name);
    c->generation = next_generation++;
    channel& ref = *c;
    channels[c->name] = std::move(c);
    owner.count_.store(channels.size(), std::memory_order_relaxed);
    if (ref.home->sub->ready()) send_subscribe(ref);
  }

  void unsubscribe_node(std::string_view name) {
    const auto it = channels.find(std::string(name));
    if (it == channels.end()) return;
    std::unique_ptr<channel> c = std::move(it->second);
    channels.erase(it);
    owner.count_.store(channels.size(), std::memory_order_relaxed);
    // Reads that waited for the SUBSCRIBE are plain reads now.
    for (waiting_read& r : c->waiting) {
      send_read(c->name, *r.ns, std::move(r.request), 0, std::move(r.done), false);
    }
    if (c->home->sub->ready()) {
      c->home->sub->command({"UNSUBSCRIBE", key('c', c->name)}, [](const redisReply*) {});
    }
  }

  // At most this many publications per script call: bounds the call's
  // arguments and how long Redis runs one script.
  static constexpr std::size_t k_max_batch = 64;

  void publish(std::string_view name, const namespace_options& ns, std::string tail,
               completion<publish_result> done) {
    shard& s = shard_of(name);
    if (!s.cmd->ready()) {
      done(publish_result{unavailable(s), {}, 0});
      return;
    }
    const std::int64_t ttl = ms_of(ns.history_ttl);
    s.pending.push_back(pending_publish{key('m', name), key('s', name), key('c', name),
                                        std::move(tail), std::to_string(ns.history_size),
                                        std::to_string(ttl),
                                        std::to_string(std::max<std::int64_t>(2 * ttl, k_day_ms)),
                                        std::move(done)});
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

  // One publish script call for everything pending on `s`, in order.
  void flush_publishes(shard& s) {
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

  void read(std::string_view name, const namespace_options& ns, read_request rq,
            completion<read_result> done) {
    shard& s = shard_of(name);
    if (!s.cmd->ready()) {
      done(read_failed(unavailable(s)));
      return;
    }
    channel* c = find(name);
    if (c && !c->confirmed) {
      // Rule 1: not before the SUBSCRIBE is in place.
      if (!s.sub->ready()) {
        done(read_failed(unavailable(s)));
        return;
      }
      c->waiting.push_back({&ns, std::move(rq), std::move(done)});
      return;
    }
    if (c) ++c->reads_in_flight;
    send_read(name, ns, std::move(rq), c ? c->generation : 0, std::move(done), false);
  }

  // `generation` names the subscribed channel whose reads_in_flight this
  // read counts (0: none). `recovery`: the node's own catch-up.
  void send_read(std::string_view name, const namespace_options& ns, read_request rq,
                 std::uint64_t generation, completion<read_result> done, bool recovery) {
    shard& s = shard_of(name);
    const std::int64_t ttl = ms_of(ns.history_ttl);
    std::vector<std::string> args{
        "2",
        key('m', name),
        key('s', name),
        random_hex(8),
        rq.since ? "1" : "0",
        rq.since ? rq.since->epoch : std::string(),
        rq.since ? std::to_string(rq.since->offset) : "0",
        rq.limit == SIZE_MAX ? "0" : std::to_string(rq.limit),
        std::to_string(ttl),
        rq.latest_when_lost ? "1" : "0",
        std::to_string(std::max<std::int64_t>(2 * ttl, k_day_ms)),
        std::to_string(ns.history_size)};
    const bool has_since = rq.since.has_value();
    run(s, read_script, std::move(args),
        [this, &s, name = std::string(name), generation, has_since, recovery,
         done = std::move(done)](const redisReply* r) mutable {
          parsed_read p = parse_read(s, r, has_since);
          channel* c = generation ? find(name) : nullptr;
          if (c && c->generation != generation) c = nullptr;
          if (c && !p.result.error) learn(*c, p, recovery);
          if (c && recovery) {
            c->recovery_sent = false;
            // Failed (Redis away): still recovering; on_cmd_ready sends it again.
            if (!p.result.error) c->recovering = false;
          }
          done(std::move(p.result));
          if (c) {
            --c->reads_in_flight;
            release_held(*c);
          }
        });
  }

  // What a read tells the node about a channel it is subscribed to.
  void learn(channel& c, const parsed_read& p, bool recovery) {
    const read_result& r = p.result;
    if (c.epoch.empty()) {  // the first read: live delivery starts after it
      c.epoch = r.epoch;
      c.delivered = r.offset;
      return;
    }
    if (recovery && r.recovered.value_or(false)) {
      for (const auto& [offset, tail] : p.entries) {
        if (offset <= c.delivered) continue;
        c.delivered = offset;
        events->on_publication(c.name, c.epoch, offset, tail);
      }
      return;
    }
    if (recovery || r.epoch != c.epoch) {
      // The node missed publications the stream no longer has, or the stream
      // itself is new: on_stream_lost before this read's completion runs.
      say(log_level::warn, "redis: channel " + c.name + ": delivery gap (" +
                               std::string(r.reason.empty() ? "epoch changed" : r.reason) +
                               "); its subscribers must subscribe again");
      events->on_stream_lost(c.name, r.epoch);
      c.epoch = r.epoch;
      c.delivered = r.offset;
    }
  }

  static parsed_read parse_read(const shard& s, const redisReply* r, bool has_since) {
    parsed_read p;
    if (!r) {
      p.result.error = unavailable(s);
      return p;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || (r->elements - 3) % 2 != 0) {
      p.result.error = make_failure(errors::broker_unavailable,
                                    r->type == REDIS_REPLY_ERROR ? reply_text(r) : "bad reply");
      return p;
    }
    read_result& res = p.result;
    res.epoch.assign(reply_text(r->element[0]));
    res.offset = static_cast<std::uint64_t>(r->element[1]->integer);
    const std::string_view reason = reply_text(r->element[2]);
    if (has_since) {
      res.reason = static_reason(reason);
      res.recovered = reason.empty();
    }
    for (std::size_t i = 3; i + 1 < r->elements; i += 2) {
      const std::string_view id = reply_text(r->element[i]);
      const std::uint64_t offset = parse_u64(id.substr(0, id.find('-')));
      const std::string_view tail = reply_text(r->element[i + 1]);
      if (i != 3) res.publications.push_back(',');
      append_publication(res.publications, offset, tail);
      p.entries.emplace_back(offset, std::string(tail));
    }
    return p;
  }

  void presence_call(std::string_view name, const char* mode, std::vector<std::string> entries,
                     net::unique_function<void(const redisReply*)> done) {
    shard& s = shard_of(name);
    std::vector<std::string> args{"2", key('p', name), key('c', name), mode,
                                  std::to_string(ms_of(opts().presence_lease))};
    for (std::string& e : entries) args.push_back(std::move(e));
    run(s, presence_script, std::move(args), std::move(done));
  }

  void presence_add(std::string_view name, std::shared_ptr<const presence_entry> entry) {
    channel* c = find(name);
    if (!c) return;  // REQUIRES: subscribed first (as in the memory broker)
    c->presence[entry->client] = entry->json;
    // Not connected: the next refresh after the reconnect adds it (and joins).
    if (c->home->cmd->ready()) presence_call(name, "add", {entry->json}, [](const redisReply*) {});
  }

  void presence_remove(std::string_view name, std::string_view client) {
    channel* c = find(name);
    if (!c) return;
    const auto it = c->presence.find(client);
    if (it == c->presence.end()) return;
    std::string json = std::move(it->second);
    c->presence.erase(it);
    // Not connected: the entry's lease runs out (leave within one lease).
    if (c->home->cmd->ready()) presence_call(name, "remove", {std::move(json)}, [](const redisReply*) {});
  }

  // Redis keeps the members in a sorted set by lease; the page (client-id
  // order, after the cursor, at most `limit`) is cut here, like the memory
  // broker's.
  void presence(std::string_view name, presence_request request,
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
                      res.error =
                          r ? make_failure(errors::broker_unavailable, reply_text(r)) : unavailable(s);
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

  // Renews the leases of this node's entries (on `only`, or every shard).
  void refresh_presence(shard* only) {
    for (auto& [name, c] : channels) {
      if (c->presence.empty() || (only && c->home != only) || !c->home->cmd->ready()) continue;
      std::vector<std::string> entries;
      entries.reserve(c->presence.size());
      for (const auto& [client, json] : c->presence) entries.push_back(json);
      presence_call(name, "refresh", std::move(entries), [](const redisReply*) {});
    }
  }

  void tick() {
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

  // ---- the server API ----------------------------------------------------

  std::string control_key() const { return key('x', "control"); }
  std::string node_key(std::string_view id) const {
    std::string k = key('x', "node:");
    k.append(id);
    return k;
  }

  void send_node(const std::string& id, const std::string& message,
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
  // Where the server API's keys live: placed on the ring like a channel, so
  // every node finds the same shard whatever the order of its URLs.
  shard& api_shard() { return shard_of("#server-api"); }

  void remove_history(const std::string& name, completion<std::optional<failure>> done) {
    shard& s = shard_of(name);
    if (!s.cmd->ready()) return done(unavailable(s));
    s.cmd->command({"DEL", key('s', name)}, [&s,
                                             done = std::move(done)](const redisReply* r) mutable {
      if (!r || r->type == REDIS_REPLY_ERROR) {
        return done(r ? make_failure(errors::broker_unavailable, reply_text(r)) : unavailable(s));
      }
      done(std::nullopt);
    });
  }

  void send_control(const std::string& message, completion<std::optional<failure>> done) {
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

  // A node's statistics live 5 s: a node that stops publishing them (it
  // died) leaves the list within that, and its id leaves the set at the
  // next listing.
  static constexpr std::string_view k_node_lease_ms = "5000";

  void publish_node(const std::string& id, const std::string& json) {
    shard& s = api_shard();
    if (!s.cmd->ready()) return;
    s.cmd->command({"SET", key('n', id), json, "PX", k_node_lease_ms}, [](const redisReply*) {});
    s.cmd->command({"SADD", opts().key_prefix + "nodes", id}, [](const redisReply*) {});
  }

  void nodes(completion<nodes_result> done) {
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

  // GET /api/channels: every channel with a stream position, on every shard.
  struct listing {
    completion<channels_result> done;
    channels_result result;
    std::size_t pending = 0;
  };

  void channels_call(completion<channels_result> done) {
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

  void scan(shard& s, const std::string& cursor, const std::shared_ptr<listing>& l) {
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

  void fetch_meta(shard& s, const std::string& k, const std::shared_ptr<listing>& l) {
    ++l->pending;
    const std::size_t skip = opts().key_prefix.size() + 2;
    s.cmd->command({"HMGET", k, "e", "o"}, [k, skip, l](const redisReply* r) {
      if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
          r->element[0]->type == REDIS_REPLY_STRING) {
        l->result.channels.push_back(
            {k.substr(skip), std::string(reply_text(r->element[0])),
             parse_u64(reply_text(r->element[1]))});
      }
      if (--l->pending == 0) l->done(std::move(l->result));
    });
  }
};

// ---------------------------------------------------------------------------

redis_broker::redis_broker(const realtime_config& config, redis_broker_options options)
    : config_(config), options_(std::move(options)) {}

redis_broker::~redis_broker() { stop(); }

std::string redis_broker::start(broker_events& events) {
  if (options_.urls.empty()) return "redis broker: no URL";
  std::vector<redis_url> urls;
  for (const std::string& u : options_.urls) {
    redis_url parsed;
    if (std::string e = parse_redis_url(u, parsed); !e.empty()) return e;
    urls.push_back(std::move(parsed));
  }
  std::error_code ec;
  loop_ = net::event_loop::create(ec);
  if (!loop_) return "redis broker: event loop: " + ec.message();
  state_ = std::make_unique<state>(*this, *loop_);
  state& st = *state_;
  st.events = &events;
  for (std::size_t i = 0; i < urls.size(); ++i) {
    auto s = std::make_unique<state::shard>();
    state::shard* sp = s.get();
    redis_connection::callbacks cmd_cb;
    cmd_cb.on_ready = [&st, sp] { st.on_cmd_ready(*sp); };
    cmd_cb.on_down = [&st](const std::string&) { st.update_health(); };
    s->cmd = std::make_unique<redis_connection>(*loop_, urls[i], redis_connection_options{}, cmd_cb);
    redis_connection::callbacks sub_cb;
    sub_cb.on_ready = [&st, sp] { st.on_sub_ready(*sp); };
    sub_cb.on_down = [&st, sp](const std::string&) { st.on_sub_down(*sp); };
    sub_cb.on_message = [&st](std::string_view k, std::string_view p) { st.on_message(k, p); };
    redis_connection_options so;
    so.pubsub = true;
    s->sub = std::make_unique<redis_connection>(*loop_, urls[i], so, sub_cb);
    // 64 points per shard, placed by the URL as written: every node must
    // list the same URLs (in any order) to agree on where a channel lives.
    for (int p = 0; p < 64; ++p) {
      st.ring.emplace_back(stable_hash(options_.urls[i] + "#" + std::to_string(p)), sp);
    }
    st.shards.push_back(std::move(s));
  }
  std::sort(st.ring.begin(), st.ring.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  {
    std::lock_guard lock(mutex_);
    running_ = true;
    health_ = "redis " + urls.front().text + ": connecting";
  }
  loop_->post([&st] {
    for (auto& s : st.shards) {
      s->cmd->start();
      s->sub->start();
    }
  });
  thread_ = std::thread([this] { (void)loop_->run(); });
  return {};
}

void redis_broker::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!running_) return;
    running_ = false;
  }
  state* st = state_.get();
  loop_->post([st, loop = loop_.get()] {
    for (auto& s : st->shards) {
      st->flush_publishes(*s);  // sent if the kernel takes them; answered or failed
      s->cmd->stop();
      s->sub->stop();
    }
    loop->stop();
  });
  if (thread_.joinable()) thread_.join();
  // Connections leave the loop before it goes.
  state_.reset();
}

std::string redis_broker::health() const {
  std::lock_guard lock(mutex_);
  return health_;
}

bool redis_broker::post(net::unique_function<void()> fn) {
  std::lock_guard lock(mutex_);
  if (!running_) return false;
  loop_->post(std::move(fn));
  return true;
}

namespace {
failure stopped_failure() { return make_failure(errors::broker_unavailable, "shutting down"); }
}  // namespace

void redis_broker::subscribe_node(std::string_view channel, const namespace_options& ns) {
  post([this, name = std::string(channel), &ns] { state_->subscribe_node(name, ns); });
}

void redis_broker::unsubscribe_node(std::string_view channel) {
  post([this, name = std::string(channel)] { state_->unsubscribe_node(name); });
}

void redis_broker::publish(std::string_view channel, const namespace_options& ns, std::string tail,
                           completion<publish_result> done) {
  auto shared = std::make_shared<completion<publish_result>>(std::move(done));
  if (!post([this, name = std::string(channel), &ns, t = std::move(tail), shared]() mutable {
        state_->publish(name, ns, std::move(t), std::move(*shared));
      })) {
    (*shared)(publish_result{stopped_failure(), {}, 0});
  }
}

void redis_broker::read(std::string_view channel, const namespace_options& ns,
                        read_request request, completion<read_result> done) {
  auto shared = std::make_shared<completion<read_result>>(std::move(done));
  if (!post([this, name = std::string(channel), &ns, rq = std::move(request), shared]() mutable {
        state_->read(name, ns, std::move(rq), std::move(*shared));
      })) {
    (*shared)(read_failed(stopped_failure()));
  }
}

void redis_broker::presence_add(std::string_view channel,
                                std::shared_ptr<const presence_entry> entry) {
  post([this, name = std::string(channel), e = std::move(entry)]() mutable {
    state_->presence_add(name, std::move(e));
  });
}

void redis_broker::presence_remove(std::string_view channel, std::string_view client) {
  post([this, name = std::string(channel), c = std::string(client)] {
    state_->presence_remove(name, c);
  });
}

void redis_broker::presence(std::string_view channel, presence_request request,
                            completion<presence_result> done) {
  auto shared = std::make_shared<completion<presence_result>>(std::move(done));
  if (!post([this, name = std::string(channel), rq = std::move(request), shared]() mutable {
        state_->presence(name, std::move(rq), std::move(*shared));
      })) {
    (*shared)(presence_result{stopped_failure(), 0, false, {}, {}});
  }
}

void redis_broker::channels(completion<channels_result> done) {
  auto shared = std::make_shared<completion<channels_result>>(std::move(done));
  if (!post([this, shared] { state_->channels_call(std::move(*shared)); })) {
    (*shared)(channels_result{stopped_failure(), {}});
  }
}

void redis_broker::tick() {
  post([this] { state_->tick(); });
}

void redis_broker::remove_history(std::string_view channel,
                                  completion<std::optional<failure>> done) {
  auto shared = std::make_shared<completion<std::optional<failure>>>(std::move(done));
  if (!post([this, name = std::string(channel), shared] {
        state_->remove_history(name, std::move(*shared));
      })) {
    (*shared)(stopped_failure());
  }
}

void redis_broker::send_control(std::string message, completion<std::optional<failure>> done) {
  auto shared = std::make_shared<completion<std::optional<failure>>>(std::move(done));
  if (!post([this, m = std::move(message), shared] {
        state_->send_control(m, std::move(*shared));
      })) {
    (*shared)(stopped_failure());
  }
}

void redis_broker::publish_node(std::string_view node_id, std::string json) {
  post([this, id = std::string(node_id), j = std::move(json)] { state_->publish_node(id, j); });
}

void redis_broker::send_node(std::string_view node_id, std::string message,
                             completion<node_send_result> done) {
  auto shared = std::make_shared<completion<node_send_result>>(std::move(done));
  if (!post([this, id = std::string(node_id), m = std::move(message), shared] {
        state_->send_node(id, m, std::move(*shared));
      })) {
    if (*shared) (*shared)(node_send_result{stopped_failure(), 0});
  }
}

void redis_broker::nodes(completion<nodes_result> done) {
  auto shared = std::make_shared<completion<nodes_result>>(std::move(done));
  if (!post([this, shared] { state_->nodes(std::move(*shared)); })) {
    (*shared)(nodes_result{stopped_failure(), {}});
  }
}

}  // namespace switchboard::realtime::detail
