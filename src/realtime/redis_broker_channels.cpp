// redis_broker_channels.cpp — the channels a node subscribes to through
// Redis, and how a subscriber joins live delivery.
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
#include <string>

#include "redis_broker_state.hpp"
#include "redis_packed.hpp"
#include "support.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

namespace {

// Most events held for one channel while reads are in flight; a read answers
// in a round trip, so this is only reached if Redis stalls under a flood.
constexpr std::size_t k_max_held = 100'000;

std::string_view static_reason(std::string_view r) noexcept {
  if (r == "epoch changed") return "epoch changed";
  if (r == "offset ahead of the stream") return "offset ahead of the stream";
  if (r == "too far behind") return "too far behind";
  return {};
}

}  // namespace

void redis_broker::state::fail_waiting(channel& c, const failure& f) {
  std::vector<waiting_read> w;
  w.swap(c.waiting);
  for (waiting_read& r : w) {
    read_result res;
    res.error = f;
    r.done(std::move(res));
  }
}

void redis_broker::state::send_subscribe(channel& c) {
  const std::string k = key('c', c.name);
  c.home->sub->command({"SUBSCRIBE", k},
                       [this, name = c.name, gen = c.generation](const redisReply* r) {
                         channel* c = find(name);
                         if (!c || c->generation != gen) return;  // unsubscribed meanwhile
                         if (!r || r->type == REDIS_REPLY_ERROR)
                           return;  // lost: on_sub_ready subscribes again
                         on_confirmed(*c);
                       });
}

void redis_broker::state::on_confirmed(channel& c) {
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

void redis_broker::state::start_recovery(channel& c) {
  c.recovering = true;
  c.recovery_sent = false;
  send_recovery(c);
}

void redis_broker::state::send_recovery(channel& c) {
  if (!c.recovering || c.recovery_sent || !c.confirmed || !c.home->cmd->ready()) return;
  c.recovery_sent = true;
  read_request rq;
  rq.since = stream_position{c.epoch, c.delivered};
  ++c.reads_in_flight;
  send_read(
      c.name, *c.ns, rq, c.generation, [](read_result) {}, true);
}

void redis_broker::state::on_message(std::string_view key_name, std::string_view payload) {
  const std::string_view prefix = opts().key_prefix;
  if (key_name.size() == prefix.size() + 9 && key_name.ends_with("x:control") &&
      key_name.starts_with(prefix)) {
    events->on_control(payload);
    return;
  }
  // <prefix>x:node:<our id> (node_key()), compared in place: this runs for
  // every pub/sub message.
  const std::string& me = owner.node_id_;
  if (!me.empty() && key_name.size() == prefix.size() + 7 + me.size() &&
      key_name.starts_with(prefix) && key_name.substr(prefix.size(), 7) == "x:node:" &&
      key_name.ends_with(me)) {
    events->on_node_message(payload);
    return;
  }
  if (!key_name.starts_with(prefix) || key_name.size() < prefix.size() + 2) return;
  channel* c = find(key_name.substr(prefix.size() + 2));
  if (!c || !c->confirmed || payload.empty()) return;
  held_event ev;
  ev.kind = payload.front();
  payload.remove_prefix(1);
  if (ev.kind == 'M') {
    on_packed(*c, payload);
    return;
  }
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
  hold(*c, std::move(ev));
  release_held(*c);
}

void redis_broker::state::hold(channel& c, held_event ev) {
  if (c.held.size() >= k_max_held) {
    // Redis stalls under a flood: the recovery read will fill what this drops.
    say(log_level::warn, "redis: too many held events for " + c.name + "; oldest dropped");
    c.held.pop_front();
  }
  c.held.push_back(std::move(ev));
}

void redis_broker::state::on_packed(channel& c, std::string_view payload) {
  packed_publications p;
  if (!parse_packed(payload, p)) {
    // Not from a publish script: dropped whole; the next publication's
    // offset gap makes the node read what it missed from the stream.
    say(log_level::warn, "redis: malformed packed publications on " + c.name + "; dropped");
    return;
  }
  std::size_t i = 0;
  // Nothing held and no read in flight: delivered straight from the message,
  // by release_held's rules, without copying each publication into `held`.
  for (; i < p.tails.size() && c.held.empty() && !blocked(c); ++i) {
    const std::uint64_t offset = p.first + i;
    if (p.epoch == c.epoch && offset > c.delivered + 1) break;  // a gap: held, recovered
    deliver_publication(c, p.epoch, offset, p.tails[i]);
  }
  for (; i < p.tails.size(); ++i) {
    held_event ev;
    ev.kind = 'm';
    ev.epoch.assign(p.epoch);
    ev.offset = p.first + i;
    ev.body.assign(p.tails[i]);
    hold(c, std::move(ev));
  }
  release_held(c);
}

void redis_broker::state::deliver(channel& c, const held_event& ev) {
  if (ev.kind != 'm') {
    events->on_presence(c.name, c.epoch, ev.kind == 'j', ev.body);
    return;
  }
  deliver_publication(c, ev.epoch, ev.offset, ev.body);
}

void redis_broker::state::deliver_publication(channel& c, std::string_view epoch,
                                              std::uint64_t offset, std::string_view body) {
  if (epoch != c.epoch) {
    // A new epoch while subscribed: the stream was lost (Redis restarted
    // empty, keys evicted or expired). Subscribers must start again.
    say(log_level::warn, "redis: channel " + c.name + " has a new epoch (stream lost)");
    events->on_stream_lost(c.name, epoch);
    c.epoch.assign(epoch);
    c.delivered = 0;
  }
  if (offset <= c.delivered) return;  // rule 3: each offset once
  c.delivered = offset;
  events->on_publication(c.name, c.epoch, offset, body);
}

void redis_broker::state::release_held(channel& c) {
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

void redis_broker::state::subscribe_node(std::string_view name, const namespace_options& ns) {
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

void redis_broker::state::unsubscribe_node(std::string_view name) {
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

void redis_broker::state::read(std::string_view name, const namespace_options& ns, read_request rq,
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

void redis_broker::state::send_read(std::string_view name, const namespace_options& ns,
                                    read_request rq, std::uint64_t generation,
                                    completion<read_result> done, bool recovery) {
  shard& s = shard_of(name);
  const std::int64_t ttl = ms_of(ns.history_ttl);
  std::vector<std::string> args{"2",
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

void redis_broker::state::learn(channel& c, const parsed_read& p, bool recovery) {
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

redis_broker::state::parsed_read redis_broker::state::parse_read(const shard& s,
                                                                 const redisReply* r,
                                                                 bool has_since) {
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
}  // namespace switchboard::realtime::detail
