// sse_stream.cpp — GET /sse (see sse_stream.hpp).
#include "sse_stream.hpp"

#include "json.hpp"
#include "sse_wire.hpp"
#include "support.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

namespace {

std::size_t index_from_id(std::string_view id) {
  std::size_t v = 0;
  if (id.empty() || id.size() > 6) return SIZE_MAX;
  for (char c : id) {
    if (c < '0' || c > '9') return SIZE_MAX;
    v = v * 10 + static_cast<std::size_t>(c - '0');
  }
  return v;
}

}  // namespace

sse_stream::sse_stream(sessions& s, hub& h, const realtime_config& config,
                       std::vector<std::string> channels, std::vector<channel_position> since)
    : http_peer(s, h), config_(config), channels_(std::move(channels)), positions_(std::move(since)) {
  positions_.resize(channels_.size());
}

std::size_t sse_stream::index_of(std::string_view channel) const {
  for (std::size_t i = 0; i < channels_.size(); ++i) {
    if (channels_[i] == channel) return i;
  }
  return SIZE_MAX;
}

void sse_stream::write_locked(std::string_view event) {
  if (gone_) return;
  stream_.write(event);
  wrote_ = true;  // tick() reads the clock, not every delivery
}

void sse_stream::begin(server::http_stream stream, std::uint64_t retry_ms) {
  std::vector<std::string> commands;
  {
    std::lock_guard lock(out_mutex_);
    stream_ = std::move(stream);
    begun_ = true;
    std::string retry = "retry: ";
    append_uint(retry, retry_ms);
    retry.append("\n\n");
    write_locked(retry);
    for (std::size_t i = 0; i < channels_.size(); ++i) {
      std::string c = "{\"id\":";
      append_uint(c, i);
      append_sse_subscribe_tail(c, channels_[i], positions_[i]);
      commands.push_back(std::move(c));
    }
  }
  // Outside the output lock: the subscribe replies come back through it.
  for (const std::string& c : commands) command(c);
}

void sse_stream::send(const std::string& text) {
  std::lock_guard lock(out_mutex_);
  std::string event;
  append_sse_event(event, "message", {}, text);
  write_locked(event);
}

void sse_stream::publication_locked(std::size_t index, std::string_view epoch,
                                    std::uint64_t offset, std::string_view push) {
  channel_position& p = positions_[index];
  // The epoch rarely changes: no new string per delivery.
  if (!p) {
    p.emplace();
  }
  if (p->epoch != epoch) p->epoch.assign(epoch);
  p->offset = offset;
  if (positions_.size() == 1) {
    // A stream of one channel: its id is that channel's position, so every
    // such stream writes the same bytes for a publication. The hub's fan-out
    // delivers to the streams one after another on one thread: the event is
    // built once per publication there. (A channel's epoch and offset name
    // one publication: a durable offset is never reused within an epoch.)
    struct shared_event {
      const hub* owner = nullptr;
      std::uint64_t offset = 0;
      std::string channel, epoch, bytes;
    };
    thread_local shared_event last;
    if (last.owner != &hub_ || last.offset != offset || last.channel != channels_[0] ||
        last.epoch != epoch) {
      last.owner = &hub_;
      last.offset = offset;
      last.channel.assign(channels_[0]);
      last.epoch.assign(epoch);
      std::string id;
      append_sse_id(id, positions_);
      last.bytes.clear();
      append_sse_event(last.bytes, "publication", id, push);
    }
    write_locked(last.bytes);
    return;
  }
  thread_local std::string id;
  id.clear();
  append_sse_id(id, positions_);
  std::string event;
  event.reserve(push.size() + id.size() + 40);
  append_sse_event(event, "publication", id, push);
  write_locked(event);
}

void sse_stream::reply_subscribed(std::string_view id, const local_channel& ch,
                                  const read_result& r) {
  const std::size_t index = index_from_id(id);
  if (index >= channels_.size()) return;
  std::lock_guard lock(out_mutex_);
  const bool recovered = r.recovered && *r.recovered;
  // Recovered: the position moves with each publication sent below.
  if (!recovered) positions_[index] = stream_position{r.epoch, r.offset};
  std::string data = "{";
  append_stream(data, ch.name, r.epoch, r.offset);
  if (r.recovered) append_recovery(data, *r.recovered, r.reason);
  data.push_back('}');
  std::string sse_id;
  append_sse_id(sse_id, positions_);
  std::string event;
  append_sse_event(event, "subscribed", sse_id, data);
  write_locked(event);
  if (!recovered) return;
  std::string push;
  for_each_publication(r.publications, [&](std::uint64_t offset, std::string_view tail) {
    publication_push(push, ch.name, r.epoch, offset, tail);
    publication_locked(index, r.epoch, offset, push);
  });
  positions_[index] = stream_position{r.epoch, r.offset};
}

void sse_stream::reply_error(std::string_view id, const failure& f) {
  const std::size_t index = index_from_id(id);
  std::string data = "{";
  if (index < channels_.size()) {
    data.append("\"channel\":");
    append_json_string(data, channels_[index]);
    data.push_back(',');
  }
  data.append("\"code\":");
  append_uint(data, static_cast<std::uint64_t>(f.code));
  data.append(",\"error\":");
  append_json_string(data, f.message);
  data.push_back('}');
  std::lock_guard lock(out_mutex_);
  std::string event;
  append_sse_event(event, "error", {}, data);
  write_locked(event);
}

void sse_stream::deliver(std::string_view channel, std::string_view epoch, std::uint64_t offset,
                         const std::string& push) {
  const std::size_t index = index_of(channel);
  if (index == SIZE_MAX) return;
  std::lock_guard lock(out_mutex_);
  if (offset == 0) {  // presence: not part of the position
    std::string event;
    append_sse_event(event, "presence", {}, push);
    write_locked(event);
    return;
  }
  publication_locked(index, epoch, offset, push);
}

std::uint16_t sse_stream::tick(std::uint64_t now_ms, std::string& reason) {
  std::uint16_t code = 0;
  if (must_close(code, reason)) return code;
  std::lock_guard lock(out_mutex_);
  // Ended for any reason (the client went away, a slow consumer, server
  // stop): polled here rather than told by an on_close callback, which
  // would cost every stream a heap block for its std::function.
  if (gone_ || (begun_ && !stream_.is_open())) {
    gone_ = true;
    stream_ = {};  // the server's stream state can go now
    reason = "the client closed the stream";
    return 1001;
  }
  if (wrote_) {
    wrote_ = false;
    last_write_ = now_ms;
  } else if (now_ms - last_write_ >=
             static_cast<std::uint64_t>(to_ms(config_.sse_heartbeat).count())) {
    write_locked(k_sse_heartbeat);
  }
  return 0;
}

void sse_stream::drain() {
  {
    std::lock_guard lock(out_mutex_);
    draining_ = true;
    std::string event;
    append_sse_event(event, "reconnect", {}, "{\"reason\":\"server shutting down\"}");
    write_locked(event);
  }
  close(config_.shutdown_code, "server shutting down");
}

void sse_stream::on_closed(std::uint16_t code, std::string_view reason) {
  std::lock_guard lock(out_mutex_);
  if (!draining_ && !gone_) {
    std::string data;
    close_push(data, code, reason);
    std::string event;
    append_sse_event(event, "close", {}, data);
    write_locked(event);
  }
  // On drain the server finishes the stream itself after what was written
  // (http.hpp, shutdown order); ending it here would let a keep-alive
  // connection go idle and be dropped before its last bytes leave.
  if (!gone_ && !draining_) stream_.end();
  gone_ = true;
}

}  // namespace switchboard::realtime::detail
