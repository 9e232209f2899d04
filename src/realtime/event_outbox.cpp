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

std::string read_file(const std::string& path, bool& exists) {
  std::ifstream in(path, std::ios::binary);
  exists = static_cast<bool>(in);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

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
  stopped_ = false;
  hooks_.run(
      [this, alive = std::weak_ptr<bool>(alive_), acked, unsent = std::move(unsent)]() mutable {
        if (alive.expired()) return;
        acked_ = acked;
        for (queued& q : unsent) pending_.push_back(std::move(q));
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
  // The retry timer lives on the hook loop: cancel it there, and wait.
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  hooks_.run([&] {
    retry_.cancel();
    std::lock_guard l(m);
    done = true;
    cv.notify_one();
  });
  std::unique_lock l(m);
  cv.wait_for(l, std::chrono::seconds(2), [&] { return done; });
}

void event_outbox::emit(const lifecycle_event& e) {
  std::lock_guard lock(mutex_);
  if (stopped_ || !writer_) return;
  const std::uint64_t seq = next_seq_++;
  std::string json("{\"id\":\"");
  json.append(node_);
  json.push_back('-');
  json.append(std::to_string(seq));
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
  json.push_back('}');
  journal_record r;
  r.offset = seq;
  r.time_ms = wall_ms();
  r.kept = true;
  r.channel = k_record_channel;
  r.epoch = k_record_epoch;
  r.tail = json;
  if (std::string err = writer_->append(r, config_.journal_fsync == fsync_policy::always);
      !err.empty()) {
    // Not in the outbox: it would be lost by a crash, so it is said loudly.
    if (log_) log_(log_level::error, "events: outbox append failed: " + err);
  }
  // Posted under the mutex: the hook thread receives events in sequence order.
  hooks_.run([this, alive = std::weak_ptr<bool>(alive_), seq, json = std::move(json)]() mutable {
    if (alive.expired()) return;
    pending_.push_back({seq, std::move(json)});
    kick();
  });
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
  http_request r;
  r.url = &url_;
  r.timeout = to_ms(config_.hooks_timeout);
  r.headers = hooks_.signed_headers("events", body);
  r.body = std::move(body);
  in_flight_ = true;
  const std::uint64_t last = pending_[count - 1].seq;
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
    acked_ = last;
    if (std::string e = write_acked(acked_); !e.empty() && log_) log_(log_level::error, e);
    if (pending_.empty()) {
      std::lock_guard lock(mutex_);
      // Every event so far is acknowledged: a large outbox starts over.
      if (!stopped_ && writer_ && writer_->size() > k_compact_bytes && next_seq_ == acked_ + 1) {
        std::string error;
        journal_header header;
        header.base = "events";
        if (auto w = journal_writer::create(config_.events_outbox, header, error)) {
          writer_ = std::move(w);
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
    log_(log_level::warn, "events: webhook " + url_.origin + url_.path + " did not acknowledge (" +
                              (r.error.empty() ? "HTTP " + std::to_string(r.status) : r.error) +
                              "); retrying");
  }
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
