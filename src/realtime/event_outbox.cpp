// event_outbox.cpp — lifecycle events at least once (see event_outbox.hpp).
#include "event_outbox.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "json.hpp"
#include "support.hpp"

namespace switchboard::realtime::detail {

namespace {

// The journal's channel and epoch fields of an event record (both must be
// non-empty in that format; the event itself is the tail).
constexpr std::string_view k_record_channel = "event";
constexpr std::string_view k_record_epoch = "outbox";
// Past this size, an outbox whose every event is acknowledged starts over.
constexpr std::size_t k_compact_bytes = 4 * 1024 * 1024;
// Bytes read back from the outbox at a time (many windows of small events).
constexpr std::size_t k_refill_bytes = 4 * 1024 * 1024;
constexpr std::uint32_t k_max_header_bytes = 64 * 1024;

std::string read_file(const std::string& path, bool& exists) {
  std::ifstream in(path, std::ios::binary);
  exists = static_cast<bool>(in);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

namespace {

// REQUIRES: at + 4 <= b.size(). The journal's little-endian u32.
std::uint32_t read_u32(std::string_view b, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}

}  // namespace

outbox_readback read_back_events(std::string_view head, std::string_view chunk, std::size_t want,
                                 const std::function<void(std::uint64_t, std::string_view)>& each) {
  outbox_readback out;
  // Whole records only (u32 length, u32 crc, payload), at most `want`.
  std::size_t cut = 0;
  while (out.records < want && cut + 8 <= chunk.size()) {
    const std::uint64_t next = cut + 8 + static_cast<std::uint64_t>(read_u32(chunk, cut));
    if (next > chunk.size()) break;
    cut = static_cast<std::size_t>(next);
    ++out.records;
  }
  std::string bytes(head);
  bytes.append(chunk.substr(0, cut));
  const journal_scan scan = scan_journal(
      bytes, [](const journal_header&) { return true; },
      [&](const journal_record& r) { each(r.offset, r.tail); });
  // Every record taken must be whole and good: a bad one is damage, not an
  // event to skip.
  if (!scan.error.empty()) {
    out.error = scan.error;
  } else if (scan.valid_bytes != bytes.size()) {
    out.error = scan.bad_reason.empty() ? "a damaged record" : scan.bad_reason;
  } else if (scan.records != out.records) {
    out.error = "a record that is not an event";
  }
  if (!out.error.empty()) out.records = 0;
  out.bytes = out.error.empty() ? cut : 0;
  return out;
}

event_outbox::event_outbox(const realtime_config& config, hook_caller& hooks, log_function log)
    : config_(config), hooks_(hooks), log_(std::move(log)) {
  retry_.bind<&event_outbox::on_retry>(this);
}

event_outbox::~event_outbox() {
  stop();
}

std::string event_outbox::write_acked(std::uint64_t seq) {
  // write, fsync, rename: the file holds one whole number, old or new.
  const std::string path = config_.events_outbox + ".acked";
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return "events: cannot write " + tmp;
  const std::string text = std::to_string(seq) + "\n";
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) return "events: cannot write " + path;
  return {};
}

std::string event_outbox::start() {
  if (std::string e = parse_http_url_syntax(config_.events_url, url_); !e.empty()) return e;
  if (std::string e = resolve_http_url(url_); !e.empty()) return e;
  node_ = random_hex(4);
  bool exists = false;
  const std::string acked_text = read_file(config_.events_outbox + ".acked", exists);
  std::uint64_t acked = 0;
  if (exists) acked = std::strtoull(acked_text.c_str(), nullptr, 10);
  const std::string bytes = read_file(config_.events_outbox, exists);
  std::deque<queued> unsent;
  std::uint64_t last = acked;
  if (exists && !bytes.empty()) {
    const journal_scan scan = scan_journal(
        bytes, [](const journal_header&) { return true; },
        [&](const journal_record& r) {
          last = std::max(last, r.offset);
          if (r.offset > acked) unsent.push_back({r.offset, std::string(r.tail)});
        });
    if (!scan.error.empty()) return "events: outbox " + config_.events_outbox + ": " + scan.error;
    // A torn last record is an event nobody was told about (the append failed
    // with the process); anything after a bad record is lost and said so.
    if (scan.corrupt && log_) {
      log_(log_level::error, "events: outbox " + config_.events_outbox +
                                 " is damaged after event " + std::to_string(last) + ": " +
                                 scan.bad_reason);
    }
  }
  // The outbox starts over with the unacknowledged events only.
  std::string error;
  journal_header header;
  header.base = "events";
  writer_ = journal_writer::create(config_.events_outbox, header, error);
  if (!writer_) return "events: outbox " + config_.events_outbox + ": " + error;
  const std::size_t header_end = writer_->size();
  for (const queued& q : unsent) {
    journal_record r;
    r.offset = q.seq;
    r.kept = true;
    r.channel = k_record_channel;
    r.epoch = k_record_epoch;
    r.tail = q.json;
    if (std::string e = writer_->append(r, false); !e.empty()) return "events: " + e;
  }
  if (std::string e = writer_->sync(); !e.empty()) return "events: " + e;
  next_seq_ = last + 1;
  first_seq_ = next_seq_;
  acked_seq_ = acked;
  const bool orphans = uses_redis_broker(config_.broker_urls);
  use_stream_ = config_.events_store == "redis" || (config_.events_store == "auto" && orphans);
  if (orphans) {
    // Resolved here, off the loops (getaddrinfo blocks).
    if (std::string e = parse_redis_url(orphan_home_url(config_.broker_urls), orphan_url_);
        !e.empty()) {
      return "events: " + e;
    }
  }
  stopped_ = false;
  const bool backlog = !unsent.empty();
  unsent.clear();
  hooks_.run(
      [this, alive = std::weak_ptr<bool>(alive_), acked, orphans, backlog, header_end]() mutable {
        if (alive.expired()) return;
        acked_ = acked;
        // The backlog is read back from the file a window at a time, as after
        // a long outage.
        loaded_upto_ = acked;
        loaded_end_ = header_end;
        spilled_ = backlog;
        if (spilled_) refill();
        if (orphans) {
          orphan_options o;
          o.urls = config_.broker_urls;
          o.key_prefix = config_.broker_key_prefix;
          o.lease = config_.presence_lease;
          o.refresh = config_.presence_refresh;
          o.node = node_;
          orphans_ = std::make_unique<orphan_tracker>(
              hooks_.loop(), orphan_url_, std::move(o), log_,
              [this](std::string_view node,
                     const std::vector<std::pair<std::string, std::string>>& clients) {
                return emit_lost(node, clients);
              });
          orphans_->start();
        }
        if (use_stream_) {
          event_stream_options so;
          so.key_prefix = config_.broker_key_prefix;
          so.node = node_;
          so.lease = config_.presence_lease;
          so.batch = config_.events_batch;
          so.max_len = config_.events_stream_max;
          so.retry_max = config_.events_retry_max;
          so.timeout = config_.hooks_timeout;
          stream_ = std::make_unique<event_stream>(hooks_, url_, orphan_url_, std::move(so), log_,
                                                   stream_counters_);
          stream_->start();
        }
        kick();
      });
  return {};
}

void event_outbox::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    if (writer_) (void)writer_->sync();
  }
  *alive_ = false;
  // The retry timer and the Redis record live on the hook loop: end them
  // there, and wait (a bounded while: a Redis that does not answer leaves
  // the record to be claimed, with no clients in it).
  struct waiter {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    void signal() {
      std::lock_guard l(m);
      done = true;
      cv.notify_one();
    }
  };
  auto w = std::make_shared<waiter>();
  hooks_.run([this, w] {
    retry_.cancel();
    // The stream's sender role first (another node takes it at once), then
    // this node's record of its clients.
    auto records = [this, w] {
      if (!orphans_) return w->signal();
      orphans_->finish([this, w] {
        // Not from inside the tracker's own callback: on the next turn.
        hooks_.run([this, w] {
          orphans_.reset();
          w->signal();
        });
      });
    };
    if (!stream_) return records();
    stream_->finish([this, records] {
      hooks_.run([this, records] {
        stream_.reset();
        records();
      });
    });
  });
  std::unique_lock l(w->m);
  w->cv.wait_for(l, std::chrono::seconds(2), [&] { return w->done; });
}

void event_outbox::emit(const lifecycle_event& e) {
  std::lock_guard lock(mutex_);
  if (stopped_ || !writer_) return;
  record(e, config_.journal_fsync == fsync_policy::always);
}

bool event_outbox::emit_lost(std::string_view node,
                             const std::vector<std::pair<std::string, std::string>>& clients) {
  std::lock_guard lock(mutex_);
  if (stopped_ || !writer_) return false;
  std::string id;
  for (const auto& [client, user] : clients) {
    lifecycle_event e;
    e.type = "disconnect";
    e.client = client;
    e.user = user;
    e.code = 1006;  // no close frame was seen: the connection just went away
    e.reason = "node lost";
    e.lost_node = node;
    // The same on every node that may emit it: a second claimant's copy is a
    // duplicate the receiver recognises.
    id.assign(node);
    id.append("-lost-");
    id.append(client);
    e.id = id;
    record(e, false);
  }
  // Durable before the lost node's record is deleted.
  if (std::string err = writer_->sync(); !err.empty()) {
    if (log_) log_(log_level::error, "events: outbox sync failed: " + err);
    return false;
  }
  orphaned_.fetch_add(clients.size(), std::memory_order_relaxed);
  return true;
}

event_outbox::statistics event_outbox::stats() const {
  statistics s;
  {
    std::lock_guard lock(mutex_);
    s.emitted = next_seq_ - first_seq_;
    const std::uint64_t acked = acked_seq_.load(std::memory_order_relaxed);
    s.pending = next_seq_ - 1 > acked ? next_seq_ - 1 - acked : 0;
    s.outbox_bytes = writer_ ? writer_->size() : 0;
  }
  s.acknowledged = acked_count_.load(std::memory_order_relaxed);
  s.retries = retries_.load(std::memory_order_relaxed);
  s.orphaned = orphaned_.load(std::memory_order_relaxed);
  s.tracked = tracked_.load(std::memory_order_relaxed);
  s.in_memory = in_memory_.load(std::memory_order_relaxed);
  s.delivered = stream_counters_.delivered.load(std::memory_order_relaxed);
  s.stream_retries = stream_counters_.retries.load(std::memory_order_relaxed);
  s.sender = stream_counters_.sender.load(std::memory_order_relaxed);
  return s;
}

void event_outbox::record(const lifecycle_event& e, bool sync) {
  const std::uint64_t seq = next_seq_++;
  std::string json("{\"id\":\"");
  if (e.id.empty()) {
    json.append(node_);
    json.push_back('-');
    json.append(std::to_string(seq));
  } else {
    json.append(e.id);  // hex and a client id: nothing to escape
  }
  json.append("\",\"seq\":");
  append_uint(json, seq);
  json.append(",\"type\":");
  append_json_string(json, e.type);
  json.append(",\"time\":");
  append_uint(json, static_cast<std::uint64_t>(wall_ms()));
  json.append(",\"client\":");
  append_json_string(json, e.client);
  if (!e.user.empty()) {
    json.append(",\"user\":");
    append_json_string(json, e.user);
  }
  if (!e.channel.empty()) {
    json.append(",\"channel\":");
    append_json_string(json, e.channel);
  }
  if (e.code >= 0) {
    json.append(",\"code\":");
    append_uint(json, static_cast<std::uint64_t>(e.code));
    json.append(",\"reason\":");
    append_json_string(json, e.reason);
  }
  if (!e.lost_node.empty()) {
    json.append(",\"orphaned\":true,\"node\":");
    append_json_string(json, e.lost_node);
  }
  json.push_back('}');
  journal_record r;
  r.offset = seq;
  r.time_ms = wall_ms();
  r.kept = true;
  r.channel = k_record_channel;
  r.epoch = k_record_epoch;
  r.tail = json;
  std::size_t end = 0;  // the record's end in the file; 0: not in it
  if (std::string err = writer_->append(r, sync); !err.empty()) {
    // Not in the outbox: it would be lost by a crash, so it is said loudly.
    if (log_) log_(log_level::error, "events: outbox append failed: " + err);
  } else {
    end = writer_->size();
  }
  // This node's record of its clients in Redis (event_orphans.hpp): a
  // client is in it from its connect to its own disconnect.
  enum class change : std::uint8_t { none, track, untrack };
  change c = change::none;
  if (e.lost_node.empty()) {
    if (e.type == "connect") c = change::track;
    if (e.type == "disconnect") c = change::untrack;
  }
  std::string client = c == change::none ? std::string() : std::string(e.client);
  std::string user = c == change::track ? std::string(e.user) : std::string();
  // Posted under the mutex: the hook thread receives events in sequence order.
  hooks_.run([this, alive = std::weak_ptr<bool>(alive_), seq, end, json = std::move(json), c,
              client = std::move(client), user = std::move(user)]() mutable {
    if (alive.expired()) return;
    queue(seq, end, std::move(json));
    if (orphans_ && c == change::track) orphans_->track(client, user);
    if (orphans_ && c == change::untrack) orphans_->untrack(client);
    if (orphans_) tracked_.store(orphans_->tracked(), std::memory_order_relaxed);
    kick();
  });
}

void event_outbox::queue(std::uint64_t seq, std::size_t end, std::string json) {
  if (seq <= loaded_upto_) return;  // already read back from the file
  const std::size_t window = std::max<std::size_t>(1, config_.events_memory_window);
  if (spilled_ || pending_.size() >= window) {
    if (end == 0) return;  // neither in memory nor in the file: said when the append failed
    if (!spilled_ && log_) {
      log_(log_level::warn, "events: " + std::to_string(window) +
                                " events wait in memory (events.memory_window); later ones "
                                "wait in the outbox file only");
    }
    spilled_ = true;
    return;
  }
  pending_.push_back({seq, std::move(json)});
  loaded_upto_ = seq;
  if (end != 0) loaded_end_ = end;
  in_memory_.store(pending_.size(), std::memory_order_relaxed);
}

void event_outbox::refill() {
  std::size_t size = 0;
  {
    std::lock_guard lock(mutex_);
    if (!writer_) return;
    size = writer_->size();  // every record before it is whole
  }
  const std::size_t window = std::max<std::size_t>(1, config_.events_memory_window);
  if (pending_.size() >= window) return;
  const std::size_t want = window - pending_.size();
  const int fd = ::open(config_.events_outbox.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (log_) log_(log_level::error, "events: cannot read back " + config_.events_outbox);
    return;
  }
  // The magic and the header record (u32 length, u32 crc, payload), then
  // the records from where memory stopped, as one journal for the scanner.
  auto read_at = [fd](std::string& out, std::size_t at, std::size_t n) {
    out.resize(n);
    std::size_t got = 0;
    while (got < n) {
      const ssize_t r = ::pread(fd, out.data() + got, n - got, static_cast<off_t>(at + got));
      if (r <= 0) break;
      got += static_cast<std::size_t>(r);
    }
    out.resize(got);
  };
  std::string head;
  read_at(head, 0, k_journal_magic.size() + 8);
  std::string bytes;
  // A header is a few dozen bytes: a larger length is damage, not a read.
  if (head.size() == k_journal_magic.size() + 8 &&
      read_u32(head, k_journal_magic.size()) <= k_max_header_bytes) {
    read_at(bytes, 0, head.size() + read_u32(head, k_journal_magic.size()));
  }
  const std::size_t header_size = bytes.size();
  // What the window has room for (events are a few hundred bytes), or at
  // most k_refill_bytes when that does not hold one whole record.
  const std::size_t left = size - std::min(size, loaded_end_);
  std::string chunk;
  read_at(chunk, loaded_end_, std::min(left, std::max<std::size_t>(64 * 1024, want * 512)));
  if (chunk.size() < left && chunk.size() >= 8 &&
      8 + static_cast<std::size_t>(read_u32(chunk, 0)) > chunk.size()) {
    read_at(chunk, loaded_end_, std::min(left, k_refill_bytes));
  }
  ::close(fd);
  const outbox_readback rb =
      read_back_events(bytes, chunk, want, [&](std::uint64_t seq, std::string_view json) {
        if (seq <= loaded_upto_) return;
        pending_.push_back({seq, std::string(json)});
        loaded_upto_ = seq;
      });
  if (header_size == 0 || !rb.error.empty()) {
    if (log_) {
      log_(log_level::error, "events: outbox " + config_.events_outbox +
                                 " could not be read back: " +
                                 (header_size == 0 ? std::string("no header") : rb.error));
    }
    return;  // spilled_ stays: tried again at the next acknowledgement
  }
  const std::size_t cut = rb.bytes;
  const std::size_t count = rb.records;
  if (cut == 0 && loaded_end_ < size && count < want) {
    // A record that does not fit the read or a damaged length: no progress
    // is possible, and staying silent would look like an idle webhook.
    if (log_) {
      log_(log_level::error, "events: outbox " + config_.events_outbox + " is damaged at byte " +
                                 std::to_string(loaded_end_) + ": later events are not sent");
    }
    return;
  }
  loaded_end_ += cut;
  // Caught up with the file: the events still on their way here are newer.
  if (count < want && loaded_end_ >= size) spilled_ = false;
  in_memory_.store(pending_.size(), std::memory_order_relaxed);
}

void event_outbox::kick() {
  if (in_flight_ || retry_.active() || pending_.empty()) return;
  const std::size_t count =
      std::min(pending_.size(), std::max<std::size_t>(1, config_.events_batch));
  std::string body("{\"events\":[");
  for (std::size_t i = 0; i < count; ++i) {
    if (i) body.push_back(',');
    body.append(pending_[i].json);
  }
  body.append("]}");
  const std::uint64_t last = pending_[count - 1].seq;
  if (stream_) {
    // events.store = redis: Redis takes the batch; the stream's sender
    // (this node or another) POSTs it.
    std::vector<std::string> events;
    events.reserve(count);
    for (std::size_t i = 0; i < count; ++i) events.push_back(pending_[i].json);
    in_flight_ = true;
    stream_->append(std::move(events),
                    [this, alive = std::weak_ptr<bool>(alive_), last, count](bool ok) {
                      if (alive.expired()) return;
                      http_result res;
                      if (ok) {
                        res.status = 200;
                      } else {
                        res.error = "redis did not take them";
                      }
                      on_sent(last, count, res);
                    });
    return;
  }
  http_request r;
  r.url = &url_;
  r.timeout = to_ms(config_.hooks_timeout);
  r.headers = hooks_.signed_headers("events", body);
  r.body = std::move(body);
  in_flight_ = true;
  hooks_.client().send(std::move(r),
                       [this, alive = std::weak_ptr<bool>(alive_), last, count](http_result res) {
                         if (alive.expired()) return;
                         on_sent(last, count, res);
                       });
}

void event_outbox::on_sent(std::uint64_t last, std::size_t count, const http_result& r) {
  in_flight_ = false;
  if (r.error.empty() && r.status >= 200 && r.status <= 299) {
    attempt_ = 0;
    for (std::size_t i = 0; i < count && !pending_.empty(); ++i) pending_.pop_front();
    // Half the window sent: the next events come back from the file.
    if (spilled_ && pending_.size() <= config_.events_memory_window / 2) refill();
    in_memory_.store(pending_.size(), std::memory_order_relaxed);
    acked_ = last;
    acked_seq_.store(last, std::memory_order_relaxed);
    acked_count_.fetch_add(count, std::memory_order_relaxed);
    if (std::string e = write_acked(acked_); !e.empty() && log_) log_(log_level::error, e);
    if (pending_.empty()) {
      std::lock_guard lock(mutex_);
      // Every event so far is acknowledged: a large outbox starts over.
      if (!stopped_ && !spilled_ && writer_ && writer_->size() > k_compact_bytes &&
          next_seq_ == acked_ + 1) {
        std::string error;
        journal_header header;
        header.base = "events";
        if (auto w = journal_writer::create(config_.events_outbox, header, error)) {
          writer_ = std::move(w);
          loaded_end_ = writer_->size();
        } else if (log_) {
          log_(log_level::warn, "events: outbox not compacted: " + error);
        }
      }
    }
    kick();
    return;
  }
  // Not acknowledged: the same batch again after a growing, jittered wait.
  if (log_ && attempt_ == 0) {
    log_(log_level::warn,
         "events: " +
             (stream_ ? std::string("the Redis stream") : "webhook " + url_.origin + url_.path) +
             " did not acknowledge (" +
             (r.error.empty() ? "HTTP " + std::to_string(r.status) : r.error) + "); retrying");
  }
  retries_.fetch_add(1, std::memory_order_relaxed);
  const double cap = std::max(0.1, config_.events_retry_max);
  const double base =
      std::min(cap, 0.1 * static_cast<double>(1u << std::min<std::uint32_t>(attempt_, 16)));
  ++attempt_;
  thread_local std::mt19937 rng{std::random_device{}()};
  const double wait = std::uniform_real_distribution<double>(base / 2, base)(rng);
  hooks_.loop().update_now();
  hooks_.loop().timers().schedule(retry_, to_ms(wait));
}

void event_outbox::on_retry() {
  kick();
}

}  // namespace switchboard::realtime::detail
