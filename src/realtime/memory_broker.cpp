// memory_broker.cpp — the embedded broker (see memory_broker.hpp).
#include "memory_broker.hpp"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <utility>
#include <vector>

#include "channel.hpp"
#include "compact_strings.hpp"
#include "snapshot.hpp"
#include "storage.hpp"
#include "support.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

namespace {

struct kept_publication {
  std::uint64_t offset;
  std::int64_t time_ms;  // wall clock, so a snapshot keeps TTLs across restarts
  std::uint64_t seq;     // order of keeping over every channel (history_memory)
  std::string json;      // {"offset":N,"data":…,"client":"…","user":"…"}
};

// What a kept publication counts against limits.history_memory: its text
// and about what the deque, the string's heap block and malloc add to it.
std::size_t cost_of(const kept_publication& p) {
  return p.json.size() + 80;
}

// The journal is rewritten (compacted into the snapshot) once it is this
// many times the size of what it describes, and at least k_compact_floor.
constexpr std::size_t k_compact_factor = 2;
constexpr std::size_t k_compact_floor = 8u << 20;

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

// 96 bytes: the set's node (with its next pointer) is one 112-byte chunk.
// The epoch is epoch_text (compact_strings.hpp): 16 hex digits inline.
struct memory_broker::stream {
  stream(std::string_view n, const namespace_options& o, std::string_view e)
      : name(n), epoch(e), ns(&o) {}

  const std::string name;  // the set's key: never changes
  epoch_text epoch;
  const namespace_options* ns = nullptr;
  std::uint64_t top = 0;  // the last offset given out
  history_buffer history;
  std::unique_ptr<presence_map> presence;  // null when nobody is present
  bool node_subscribed = false;
};

std::size_t memory_broker::stream_hash::operator()(std::string_view name) const noexcept {
  return std::hash<std::string_view>{}(name);
}
std::size_t memory_broker::stream_hash::operator()(const stream& s) const noexcept {
  return (*this)(std::string_view(s.name));
}
bool memory_broker::stream_equal::operator()(const stream& a, const stream& b) const noexcept {
  return a.name == b.name;
}
bool memory_broker::stream_equal::operator()(std::string_view a, const stream& b) const noexcept {
  return a == b.name;
}
bool memory_broker::stream_equal::operator()(const stream& a, std::string_view b) const noexcept {
  return a.name == b;
}

namespace {
// The set's elements are const so that their key cannot change; a stream's
// key is its const name, so every other member may be written.
template <class S>
S& mut(const S& s) noexcept {
  return const_cast<S&>(s);
}
}  // namespace

memory_broker::memory_broker(const realtime_config& config, memory_broker_options options)
    : config_(config), options_(std::move(options)) {
  // Two streams per bucket on average: half the bucket array (8 bytes a
  // bucket, ~1.5 buckets per stream at the default of one) for a chain of
  // two on the lookup of a publish.
  streams_.max_load_factor(2.0f);
  // A stream and the set's next pointer in one 112-byte malloc chunk (104 B
  // asked). (Here: the type is private.)
  static_assert(sizeof(void*) != 8 || sizeof(stream) <= 96);
}

memory_broker::~memory_broker() = default;

std::int64_t memory_broker::now() const {
  return options_.wall_clock ? options_.wall_clock() : wall_ms();
}

std::string memory_broker::start(broker_events& events) {
  events_ = &events;
  std::lock_guard lock(mutex_);
  return load_state();
}

void memory_broker::stop() {
  std::lock_guard lock(mutex_);
  if (stopped_) return;
  stopped_ = true;
  save_snapshot();
}

memory_broker::stream* memory_broker::stream_of(std::string_view name,
                                                const namespace_options& ns) {
  if (stream* s = find(name)) return s;
  // Why: every channel costs memory whoever names it; an anonymous client
  // must not be able to make the server hold an unbounded number.
  if (streams_.size() >= config_.max_channels) return nullptr;
  return &create_stream(name, ns, random_hex(8));
}

memory_broker::stream& memory_broker::create_stream(std::string_view name,
                                                    const namespace_options& ns,
                                                    std::string epoch) {
  stream& ref = mut(*streams_.emplace(name, ns, epoch).first);
  count_.store(streams_.size(), std::memory_order_relaxed);
  return ref;
}

memory_broker::stream* memory_broker::find(std::string_view name) {
  const auto it = streams_.find(name);
  return it == streams_.end() ? nullptr : &mut(*it);
}

void memory_broker::prune(stream& s, std::int64_t now_wall) {
  if (s.ns->history_ttl <= 0) return;
  const auto ttl = static_cast<std::int64_t>(s.ns->history_ttl * 1000.0);
  while (!s.history.empty() && s.history.front().time_ms + ttl <= now_wall) pop_kept(s);
}

void memory_broker::push_kept(stream& s, std::uint64_t offset, std::int64_t time_ms,
                              std::string json) {
  kept_publication p{offset, time_ms, ++next_seq_, std::move(json)};
  if (s.history.empty()) oldest_.emplace(p.seq, &s);
  history_bytes_ += cost_of(p);
  s.history.push_back(std::move(p));
  history_bytes_gauge_.store(history_bytes_, std::memory_order_relaxed);
}

void memory_broker::pop_kept(stream& s) {
  const kept_publication& front = s.history.front();
  // The set's node is taken out and put back with the next key: no
  // allocation per publication on a full channel.
  auto node = oldest_.extract({front.seq, &s});
  history_bytes_ -= cost_of(front);
  s.history.pop_front();
  if (!s.history.empty()) {
    node.value().first = s.history.front().seq;
    oldest_.insert(std::move(node));
  }
  history_bytes_gauge_.store(history_bytes_, std::memory_order_relaxed);
}

void memory_broker::clear_kept(stream& s) {
  while (!s.history.empty()) pop_kept(s);
}

// Why: limits.history_memory bounds what every channel keeps together; the
// oldest publication of the server goes first, whichever channel holds it.
// A client that asks for it later is told "too far behind".
void memory_broker::evict_over_budget() {
  while (history_bytes_ > config_.history_memory && !oldest_.empty()) {
    stream& victim = *oldest_.begin()->second;
    pop_kept(victim);
    evictions_.fetch_add(1, std::memory_order_relaxed);
    if (victim.history.empty()) maybe_drop(victim);
  }
}

void memory_broker::maybe_drop(stream& s) {
  if (s.node_subscribed || !s.history.empty() || s.presence) return;
  streams_.erase(streams_.find(std::string_view(s.name)));
  count_.store(streams_.size(), std::memory_order_relaxed);
}

void memory_broker::subscribe_node(std::string_view channel, const namespace_options& ns) {
  std::lock_guard lock(mutex_);
  if (stream* s = stream_of(channel, ns)) {
    s->node_subscribed = true;
  } else {
    refused_nodes_.emplace(channel);  // the subscriber's read is refused
  }
}

void memory_broker::unsubscribe_node(std::string_view channel) {
  std::lock_guard lock(mutex_);
  if (const auto it = refused_nodes_.find(channel); it != refused_nodes_.end()) {
    refused_nodes_.erase(it);
    return;
  }
  if (stream* s = find(channel)) {
    s->node_subscribed = false;
    maybe_drop(*s);
  }
}

void memory_broker::publish(std::string_view channel, const namespace_options& ns,
                            std::string tail, completion<publish_result> done) {
  publish_result result;
  [&] {
    std::lock_guard lock(mutex_);
    stream* sp = stream_of(channel, ns);
    if (!sp) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      result.error = make_failure(errors::channel_limit);
      return;
    }
    stream& s = *sp;
    const std::int64_t now_wall = now();
    prune(s, now_wall);
    const std::uint64_t offset = s.top + 1;
    const bool keep = s.ns->history_size > 0;
    if (journal_) {
      // Before anyone sees the publication: what a crash keeps is a prefix
      // of what was delivered, never less (journal.hpp).
      journal_record r{offset, now_wall, keep, s.name, s.epoch, {}};
      if (keep) r.tail = tail;
      if (std::string e = journal_->append(r, options_.journal_fsync == fsync_policy::always);
          !e.empty()) {
        if (journal_error_.empty() && options_.log) options_.log(log_level::error, e);
        journal_error_ = std::move(e);
        result.error = make_failure(errors::history_not_saved);
        maybe_drop(s);
        return;
      }
      journal_error_.clear();
    }
    s.top = offset;
    events_->on_publication(s.name, s.epoch, offset, tail);
    result.epoch = s.epoch;
    result.offset = offset;
    if (keep) {
      std::string json;
      json.reserve(tail.size() + 24);
      append_publication(json, offset, tail);
      push_kept(s, offset, now_wall, std::move(json));
      while (s.history.size() > s.ns->history_size) pop_kept(s);
    }
    maybe_drop(s);
    evict_over_budget();
    maybe_compact();
  }();
  done(std::move(result));
}

void memory_broker::read(std::string_view channel, const namespace_options& ns,
                         read_request request, completion<read_result> done) {
  read_result r;
  [&] {
    std::lock_guard lock(mutex_);
    stream* sp = refused_nodes_.contains(channel) ? nullptr : stream_of(channel, ns);
    if (!sp) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      r.error = make_failure(errors::channel_limit);
      return;
    }
    stream& s = *sp;
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
  }();
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
    for (const stream& s : streams_) {
      r.channels.push_back({s.name, std::string(std::string_view(s.epoch)), s.top});
    }
  }
  done(std::move(r));
}

void memory_broker::remove_history(std::string_view channel,
                                   completion<std::optional<failure>> done) {
  std::optional<failure> result;
  {
    std::lock_guard lock(mutex_);
    if (stream* s = find(channel); s && !s->history.empty()) {
      clear_kept(*s);
      maybe_drop(*s);
      // The journal still holds the removed publications: rewrite it now,
      // or a restart would bring them back.
      if (!maybe_compact(true)) result = make_failure(errors::removal_not_saved);
    }
  }
  done(std::move(result));
}

void memory_broker::send_control(std::string message, completion<std::optional<failure>> done) {
  // Not under the mutex: the node's handler may call the broker again.
  events_->on_control(message);
  done(std::nullopt);
}

void memory_broker::publish_node(std::string_view node_id, std::string json) {
  (void)node_id;
  std::lock_guard lock(mutex_);
  node_json_ = std::move(json);
}

void memory_broker::nodes(completion<nodes_result> done) {
  nodes_result r;
  {
    std::lock_guard lock(mutex_);
    if (!node_json_.empty()) r.nodes.push_back(node_json_);
  }
  done(std::move(r));
}

std::size_t memory_broker::channel_count() const { return count_.load(std::memory_order_relaxed); }

broker_stats memory_broker::stats() const {
  return {history_bytes_gauge_.load(std::memory_order_relaxed),
          evictions_.load(std::memory_order_relaxed), refused_.load(std::memory_order_relaxed)};
}

std::string memory_broker::health() const {
  std::lock_guard lock(mutex_);
  return journal_error_;
}

void memory_broker::tick() {
  std::shared_ptr<journal_writer> to_sync;
  {
    std::lock_guard lock(mutex_);
    const std::int64_t now_wall = now();
    std::vector<stream*> all;
    all.reserve(streams_.size());
    for (const stream& s : streams_) all.push_back(&mut(s));
    for (stream* s : all) {
      prune(*s, now_wall);
      maybe_drop(*s);
    }
    const std::uint64_t mono = mono_ms();
    if (journal_ && options_.journal_fsync == fsync_policy::everysec &&
        mono - last_sync_ms_ >= 1000) {
      last_sync_ms_ = mono;
      to_sync = journal_;
    }
  }
  // Outside the mutex: publishers append meanwhile; the file stays open while
  // `to_sync` holds it even if a compaction replaces it.
  if (to_sync) {
    if (std::string e = to_sync->sync(); !e.empty() && options_.log) {
      options_.log(log_level::error, e);
    }
  }
}

// ---------------------------------------------------------------------------
// Durability: the snapshot, the journal, and the proof that epochs may be kept.

// REQUIRES: mutex_.
std::string memory_broker::load_state() {
  if (options_.snapshot_file.empty()) return {};
  const auto say = [&](log_level level, const std::string& m) {
    if (options_.log) options_.log(level, m);
  };
  const std::int64_t now_wall = now();
  std::size_t loaded = 0;
  stream* current = nullptr;  // null: the line's namespace is not configured
  snapshot_header header;
  std::string error = read_snapshot(
      options_.snapshot_file, header,
      [&](const snapshot_channel& c) {
        current = nullptr;
        const auto ns = config_.namespaces.find(namespace_of(c.name, k_default_namespace));
        if (ns == config_.namespaces.end()) return;  // the namespace was removed from the config
        stream* s = find(c.name);
        if (s) {
          clear_kept(*s);  // a repeated line: the last one wins
          s->epoch = c.epoch;
        } else {
          s = &create_stream(c.name, ns->second, c.epoch);
        }
        s->top = c.offset;
        current = s;
        ++loaded;
      },
      [&](snapshot_publication&& p) {
        if (!current) return;
        push_kept(*current, p.offset, p.time_ms, std::move(p.json));
        while (current->history.size() > current->ns->history_size) pop_kept(*current);
      });
  if (!error.empty()) return error;
  if (header.found || loaded != 0) {
    say(log_level::info, "snapshot: " + std::to_string(loaded) + " channels restored from " +
                             options_.snapshot_file);
  }
  // The snapshot alone proves the state only if a clean shutdown wrote it.
  bool proven = header.found && header.clean;
  const std::string boot = options_.boot_id.empty() ? boot_id() : options_.boot_id;

  if (!options_.journal_file.empty()) {
    std::string bytes;
    {
      std::ifstream in(options_.journal_file, std::ios::binary);
      if (in) bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    if (!bytes.empty()) {
      bool continues = false;
      journal_header jh;
      std::size_t replayed = 0;
      const journal_scan scan = scan_journal(
          bytes,
          [&](const journal_header& h) {
            jh = h;
            // Only over the snapshot it was started from: an older journal is
            // already in the snapshot (or belongs to another state entirely).
            continues = header.found && !header.id.empty() && h.base == header.id;
            return continues;
          },
          [&](const journal_record& r) {
            replay(r, now_wall);
            ++replayed;
          });
      if (!scan.error.empty()) {
        // Why: refuse rather than overwrite a file that is not ours.
        return options_.journal_file + ": " + scan.error + " (move it away to start without it)";
      }
      if (!continues && !proven) {
        say(log_level::warn, "journal: " + options_.journal_file +
                                 " does not continue the snapshot it sits beside (it belongs to "
                                 "an earlier state, or the snapshot was replaced); not replayed");
      }
      if (continues) {
        say(log_level::info, "journal: " + std::to_string(replayed) +
                                 " publications replayed from " + options_.journal_file);
        const std::size_t cut = bytes.size() - scan.valid_bytes;
        if (scan.torn) {
          say(log_level::warn, "journal: the last record was incomplete (" + scan.bad_reason +
                                   "); " + std::to_string(cut) + " bytes at offset " +
                                   std::to_string(scan.valid_bytes) +
                                   " cut (a write the crash interrupted: never acknowledged)");
        } else if (scan.corrupt) {
          // Why: a new journal replaces this one below; keep the damaged one
          // for whoever wants to look at what could not be replayed.
          const std::string kept = options_.journal_file + ".damaged";
          const bool moved = std::rename(options_.journal_file.c_str(), kept.c_str()) == 0;
          say(log_level::error,
              "journal: damaged at offset " + std::to_string(scan.valid_bytes) + " (" +
                  scan.bad_reason + "); " + std::to_string(cut) + " bytes after it not replayed" +
                  (moved ? ", file kept as " + kept : ", and it could not be kept"));
        }
        if (!proven) {
          // Every publication anyone saw was written before it was seen; it
          // is still in the file if it was fsynced first, or if the machine
          // did not restart (the page cache outlives the process).
          proven = !scan.corrupt && (jh.fsync == static_cast<std::uint8_t>(fsync_policy::always) ||
                                     (!boot.empty() && jh.boot == boot));
        }
      }
    }
  }

  if (!proven && !streams_.empty()) {
    for (const stream& s : streams_) mut(s).epoch = random_hex(8);
    say(log_level::warn,
        "the previous run did not shut down cleanly and nothing proves the saved history is "
        "complete: " +
            std::to_string(streams_.size()) +
            " channels start new epochs (clients are told to reload, never given wrong data)");
  }
  evict_over_budget();

  // Invalidate the clean mark before serving: from now on only a clean
  // shutdown (or the journal) proves the state. With a journal, the snapshot
  // is its new base, written between the journal's creation and its rename.
  const std::string id = random_hex(8);
  if (options_.journal_file.empty()) {
    if (std::string e = write_snapshot(id, false); !e.empty()) return "snapshot: " + e;
    return {};
  }
  std::string e;
  journal_ = journal_writer::create(
      options_.journal_file,
      journal_header{static_cast<std::uint8_t>(options_.journal_fsync), id, boot}, e,
      [&] { return write_snapshot(id, false); });
  if (!journal_) return "journal: " + e;
  compact_floor_ = k_compact_floor;
  last_sync_ms_ = mono_ms();
  return {};
}

// REQUIRES: mutex_. One publication of the journal, over what is loaded.
void memory_broker::replay(const journal_record& r, std::int64_t now_wall) {
  const auto ns = config_.namespaces.find(namespace_of(r.channel, k_default_namespace));
  if (ns == config_.namespaces.end() || !valid_channel_name(r.channel)) return;
  stream* s = find(r.channel);
  if (!s) {
    s = &create_stream(r.channel, ns->second, std::string(r.epoch));
    s->top = r.offset - 1;
  } else if (s->epoch != r.epoch) {
    // The channel was forgotten and started again under a new epoch.
    clear_kept(*s);
    s->epoch.assign(r.epoch);
    s->top = r.offset - 1;
  }
  if (r.offset <= s->top) return;  // already in the snapshot
  // A gap (history was off for a while): what is kept before it can't be
  // served as a continuous stream.
  if (r.offset != s->top + 1) clear_kept(*s);
  s->top = r.offset;
  prune(*s, now_wall);
  if (r.kept && s->ns->history_size > 0) {
    std::string json;
    append_publication(json, r.offset, r.tail);
    push_kept(*s, r.offset, r.time_ms, std::move(json));
    while (s->history.size() > s->ns->history_size) pop_kept(*s);
  }
  evict_over_budget();
}

// REQUIRES: mutex_.
std::string memory_broker::write_snapshot(const std::string& id, bool clean) {
  snapshot_writer out(options_.snapshot_file, id, clean);
  if (!out.ok()) return out.error();
  const std::int64_t now_wall = now();
  for (const stream& cs : streams_) {
    stream* s = &mut(cs);
    prune(*s, now_wall);
    if (s->top == 0) continue;
    out.begin_channel(s->name, s->epoch, s->top);
    s->history.for_each(
        [&](const kept_publication& p) { out.add(p.offset, p.time_ms, p.json); });
    out.end_channel();
  }
  return out.commit();
}

// REQUIRES: mutex_. Rewrites the journal into the snapshot once it is
// k_compact_factor times what it describes.
bool memory_broker::maybe_compact(bool force) {
  if (!journal_) return true;
  const std::size_t live = history_bytes_ + streams_.size() * 64;
  const std::size_t size = journal_->size();
  if (!force && (size <= compact_floor_ || size <= k_compact_factor * live)) return true;
  const std::string id = random_hex(8);
  std::string e;
  auto next = journal_writer::create(
      options_.journal_file,
      journal_header{static_cast<std::uint8_t>(options_.journal_fsync), id,
                     options_.boot_id.empty() ? boot_id() : options_.boot_id},
      e, [&] { return write_snapshot(id, false); });
  if (!next) {
    // The old journal and its snapshot still hold everything: go on with
    // them, and try again after as much again has been written.
    compact_floor_ = size + k_compact_floor;
    if (options_.log) options_.log(log_level::error, "journal: compaction failed: " + e);
    return false;
  }
  journal_ = std::move(next);
  compact_floor_ = k_compact_floor;
  if (options_.log) {
    options_.log(log_level::debug, "journal: compacted " + std::to_string(size) + " bytes into " +
                                       options_.snapshot_file);
  }
  return true;
}

// REQUIRES: mutex_.
void memory_broker::save_snapshot() {
  if (options_.snapshot_file.empty()) return;
  const auto say = [&](log_level level, const std::string& m) {
    if (options_.log) options_.log(level, m);
  };
  if (std::string e = write_snapshot(random_hex(8), true); !e.empty()) {
    say(log_level::error, "snapshot: " + e);
    journal_error_ = "snapshot not saved at shutdown: " + e;  // health(): the exit says so
    if (journal_) {
      // The journal still holds what the snapshot could not: make it durable.
      if (std::string s = journal_->sync(); !s.empty()) say(log_level::error, s);
    }
    return;
  }
  journal_.reset();  // the clean snapshot holds everything; the journal is behind it
  std::size_t saved = 0;
  for (const stream& s : streams_) saved += s.top != 0 ? 1 : 0;
  say(log_level::info,
      "snapshot: " + std::to_string(saved) + " channels saved to " + options_.snapshot_file);
}

}  // namespace switchboard::realtime::detail
