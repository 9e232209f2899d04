// memory_broker.cpp — the embedded broker (see memory_broker.hpp).
#include "memory_broker.hpp"

#include <map>
#include <utility>
#include <vector>

#include "channel.hpp"
#include "snapshot.hpp"
#include "support.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

namespace {

struct kept_publication {
  std::uint64_t offset;
  std::int64_t time_ms;  // wall clock, so a snapshot keeps TTLs across restarts
  std::string json;      // {"offset":N,"data":…,"client":"…","user":"…"}
};

// A channel's kept publications, oldest first. libstdc++'s deque allocates
// its map and first block (~550 B) even when empty, and most channels (one
// per user, say) keep nothing most of the time: the deque exists only while
// it holds something.
class history_buffer {
 public:
  bool empty() const noexcept { return !q_; }
  std::size_t size() const noexcept { return q_ ? q_->size() : 0; }
  const kept_publication& front() const { return q_->front(); }
  const kept_publication& operator[](std::size_t i) const { return (*q_)[i]; }
  void push_back(kept_publication p) {
    if (!q_) q_ = std::make_unique<std::deque<kept_publication>>();
    q_->push_back(std::move(p));
  }
  void pop_front() {
    q_->pop_front();
    if (q_->empty()) q_.reset();
  }
  template <class F>
  void for_each(F&& f) const {
    if (q_) {
      for (const kept_publication& p : *q_) f(p);
    }
  }

 private:
  std::unique_ptr<std::deque<kept_publication>> q_;  // null when empty
};

// By client id, ordered: a presence page starts after its cursor in O(log n).
using presence_map = std::map<std::string_view, std::shared_ptr<const presence_entry>>;

}  // namespace

struct memory_broker::stream {
  std::string name;
  std::string epoch;
  const namespace_options* ns = nullptr;
  std::uint64_t top = 0;  // the last offset given out
  history_buffer history;
  bool node_subscribed = false;
  std::unique_ptr<presence_map> presence;  // null when nobody is present
};

memory_broker::memory_broker(const realtime_config& config, memory_broker_options options)
    : config_(config), options_(std::move(options)) {}

memory_broker::~memory_broker() = default;

std::int64_t memory_broker::now() const {
  return options_.wall_clock ? options_.wall_clock() : wall_ms();
}

std::string memory_broker::start(broker_events& events) {
  events_ = &events;
  std::lock_guard lock(mutex_);
  return load_snapshot();
}

void memory_broker::stop() {
  std::lock_guard lock(mutex_);
  if (stopped_) return;
  stopped_ = true;
  save_snapshot();
}

memory_broker::stream& memory_broker::stream_of(std::string_view name,
                                                const namespace_options& ns) {
  if (stream* s = find(name)) return *s;
  auto s = std::make_unique<stream>();
  s->name.assign(name);
  s->epoch = random_hex(8);
  s->ns = &ns;
  stream& ref = *s;
  streams_.emplace(s->name, std::move(s));
  count_.store(streams_.size(), std::memory_order_relaxed);
  return ref;
}

memory_broker::stream* memory_broker::find(std::string_view name) {
  const auto it = streams_.find(name);
  return it == streams_.end() ? nullptr : it->second.get();
}

void memory_broker::prune(stream& s, std::int64_t now_wall) {
  if (s.ns->history_ttl <= 0) return;
  const auto ttl = static_cast<std::int64_t>(s.ns->history_ttl * 1000.0);
  while (!s.history.empty() && s.history.front().time_ms + ttl <= now_wall) s.history.pop_front();
}

void memory_broker::maybe_drop(stream& s) {
  if (s.node_subscribed || !s.history.empty() || s.presence) return;
  streams_.erase(s.name);
  count_.store(streams_.size(), std::memory_order_relaxed);
}

void memory_broker::subscribe_node(std::string_view channel, const namespace_options& ns) {
  std::lock_guard lock(mutex_);
  stream_of(channel, ns).node_subscribed = true;
}

void memory_broker::unsubscribe_node(std::string_view channel) {
  std::lock_guard lock(mutex_);
  if (stream* s = find(channel)) {
    s->node_subscribed = false;
    maybe_drop(*s);
  }
}

void memory_broker::publish(std::string_view channel, const namespace_options& ns,
                            std::string tail, completion<publish_result> done) {
  publish_result result;
  {
    std::lock_guard lock(mutex_);
    stream& s = stream_of(channel, ns);
    const std::int64_t now_wall = now();
    prune(s, now_wall);
    const std::uint64_t offset = ++s.top;
    events_->on_publication(s.name, s.epoch, offset, tail);
    result.epoch = s.epoch;
    result.offset = offset;
    if (s.ns->history_size > 0) {
      std::string json;
      json.reserve(tail.size() + 24);
      append_publication(json, offset, tail);
      s.history.push_back(kept_publication{offset, now_wall, std::move(json)});
      while (s.history.size() > s.ns->history_size) s.history.pop_front();
    }
    maybe_drop(s);
  }
  done(std::move(result));
}

void memory_broker::read(std::string_view channel, const namespace_options& ns,
                         read_request request, completion<read_result> done) {
  read_result r;
  {
    std::lock_guard lock(mutex_);
    stream& s = stream_of(channel, ns);
    prune(s, now());
    r.epoch = s.epoch;
    r.offset = s.top;
    const auto append_latest = [&] {
      const std::size_t skip =
          s.history.size() > request.limit ? s.history.size() - request.limit : 0;
      for (std::size_t i = skip; i < s.history.size(); ++i) {
        if (i != skip) r.publications.push_back(',');
        r.publications.append(s.history[i].json);
      }
    };
    if (request.since) {
      const stream_position& since = *request.since;
      const std::uint64_t first_kept = s.history.empty() ? s.top + 1 : s.history.front().offset;
      // Recovery is exact only inside one epoch, up to the stream's end, and
      // while everything after `since` is still kept.
      if (since.epoch != s.epoch) {
        r.reason = "epoch changed";
      } else if (since.offset > s.top) {
        r.reason = "offset ahead of the stream";
      } else if (since.offset + 1 < first_kept) {
        r.reason = "too far behind";
      }
      r.recovered = r.reason.empty();
      if (*r.recovered) {
        std::size_t n = 0;
        s.history.for_each([&](const kept_publication& p) {
          if (p.offset <= since.offset || n >= request.limit) return;
          if (n++ != 0) r.publications.push_back(',');
          r.publications.append(p.json);
        });
      } else if (request.latest_when_lost) {
        append_latest();
      }
    } else {
      append_latest();
    }
    maybe_drop(s);
  }
  done(std::move(r));
}

void memory_broker::presence_add(std::string_view channel,
                                 std::shared_ptr<const presence_entry> entry) {
  std::lock_guard lock(mutex_);
  stream* s = find(channel);
  // REQUIRES: the node subscribed first; a stream can't be gone meanwhile.
  if (!s) return;
  if (!s->presence) s->presence = std::make_unique<presence_map>();
  const presence_entry& e = *entry;
  // The key views the entry's own id: replace the pair, never only the value.
  s->presence->erase(e.client);
  s->presence->emplace(e.client, std::move(entry));
  events_->on_presence(s->name, s->epoch, true, e.json);
}

void memory_broker::presence_remove(std::string_view channel, std::string_view client) {
  std::lock_guard lock(mutex_);
  stream* s = find(channel);
  if (!s || !s->presence) return;
  const auto it = s->presence->find(client);
  if (it == s->presence->end()) return;
  const std::shared_ptr<const presence_entry> entry = std::move(it->second);
  s->presence->erase(it);
  if (s->presence->empty()) s->presence.reset();
  events_->on_presence(s->name, s->epoch, false, entry->json);
  maybe_drop(*s);
}

void memory_broker::presence(std::string_view channel, presence_request request,
                             completion<presence_result> done) {
  presence_result r;
  {
    std::lock_guard lock(mutex_);
    if (stream* s = find(channel); s && s->presence) {
      const presence_map& members = *s->presence;
      r.count = members.size();
      // A crowded channel is told by its count: listing it is what made
      // presence quadratic (docs/protocol.md, "Presence").
      if (r.count <= request.max_members && request.limit > 0) {
        r.listed = true;
        auto it = request.cursor.empty() ? members.begin()
                                         : members.upper_bound(std::string_view(request.cursor));
        for (std::size_t n = 0; it != members.end() && n < request.limit; ++it, ++n) {
          if (n != 0) r.entries.push_back(',');
          r.entries.append(it->second->json);
          if (n + 1 == request.limit && std::next(it) != members.end()) r.next.assign(it->first);
        }
      }
    } else {
      r.listed = request.limit > 0;
    }
  }
  done(std::move(r));
}

void memory_broker::channels(completion<channels_result> done) {
  channels_result r;
  {
    std::lock_guard lock(mutex_);
    r.channels.reserve(streams_.size());
    for (const auto& [name, s] : streams_) r.channels.push_back({s->name, s->epoch, s->top});
  }
  done(std::move(r));
}

std::size_t memory_broker::channel_count() const { return count_.load(std::memory_order_relaxed); }

void memory_broker::tick() {
  std::lock_guard lock(mutex_);
  const std::int64_t now_wall = now();
  std::vector<stream*> all;
  all.reserve(streams_.size());
  for (auto& [name, s] : streams_) all.push_back(s.get());
  for (stream* s : all) {
    prune(*s, now_wall);
    maybe_drop(*s);
  }
}

// REQUIRES: mutex_.
std::string memory_broker::load_snapshot() {
  if (options_.snapshot_file.empty()) return {};
  std::size_t loaded = 0;
  stream* current = nullptr;  // null: the line's namespace is not configured
  const std::int64_t now_wall = now();
  const auto finish = [&] {
    if (!current) return;
    while (current->history.size() > current->ns->history_size) current->history.pop_front();
    prune(*current, now_wall);
  };
  std::string error = read_snapshot(
      options_.snapshot_file,
      [&](const snapshot_channel& c) {
        finish();
        current = nullptr;
        const auto ns = config_.namespaces.find(namespace_of(c.name, k_default_namespace));
        if (ns == config_.namespaces.end()) return;  // the namespace was removed from the config
        auto s = std::make_unique<stream>();
        s->name = c.name;
        s->epoch = c.epoch;
        s->ns = &ns->second;
        s->top = c.offset;
        current = s.get();
        streams_[s->name] = std::move(s);
        ++loaded;
      },
      [&](snapshot_publication&& p) {
        if (current) current->history.push_back({p.offset, p.time_ms, std::move(p.json)});
      });
  finish();
  count_.store(streams_.size(), std::memory_order_relaxed);
  if (!error.empty()) return error;
  if (options_.log) {
    options_.log(log_level::info, "snapshot: " + std::to_string(loaded) +
                                      " channels restored from " + options_.snapshot_file);
  }
  return {};
}

// REQUIRES: mutex_.
void memory_broker::save_snapshot() {
  if (options_.snapshot_file.empty()) return;
  const auto say = [&](log_level level, const std::string& m) {
    if (options_.log) options_.log(level, m);
  };
  snapshot_writer out(options_.snapshot_file);
  if (!out.ok()) {
    say(log_level::error, "snapshot: cannot write " + options_.snapshot_file + ".tmp");
    return;
  }
  const std::int64_t now_wall = now();
  std::size_t saved = 0;
  for (auto& [name, s] : streams_) {
    prune(*s, now_wall);
    if (s->top == 0) continue;
    out.begin_channel(s->name, s->epoch, s->top);
    s->history.for_each(
        [&](const kept_publication& p) { out.add(p.offset, p.time_ms, p.json); });
    out.end_channel();
    ++saved;
  }
  if (std::string error = out.commit(); !error.empty()) {
    say(log_level::error, "snapshot: " + error);
    return;
  }
  say(log_level::info,
      "snapshot: " + std::to_string(saved) + " channels saved to " + options_.snapshot_file);
}

}  // namespace switchboard::realtime::detail
