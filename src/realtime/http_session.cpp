// http_session.cpp — an HTTP session's downstream (see http_session.hpp).
#include "http_session.hpp"

#include "json.hpp"
#include "sse_wire.hpp"
#include "support.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

namespace {

void write_message(const server::http_stream& s, std::uint64_t seq, std::string_view text) {
  std::string event;
  event.reserve(text.size() + 40);
  append_sse_event(event, "message", std::to_string(seq), text);
  s.write(std::move(event));
}

void end_with_reconnect(const server::http_stream& s) {
  std::string event;
  append_sse_event(event, "reconnect", {}, "{\"reason\":\"another stream took the session\"}");
  s.write(std::move(event));
  s.end();
}

}  // namespace

http_session::http_session(sessions& s, hub& h, const realtime_config& config, std::string id)
    : http_peer(s, h), config_(config), id_(std::move(id)), detached_since_(mono_ms()) {}

void http_session::send(const std::string& text) {
  std::lock_guard lock(out_mutex_);
  push_locked(text);
}

void http_session::deliver(std::string_view, std::string_view, std::uint64_t,
                           const std::string& push) {
  std::lock_guard lock(out_mutex_);
  push_locked(push);
}

void http_session::push_locked(const std::string& text) {
  if (ended_) return;
  ++seq_;
  buffer_.emplace_back(seq_, text);
  buffered_ += text.size();
  if (stream_.is_open()) {
    write_message(stream_, seq_, text);
    sent_upto_ = seq_;
    last_write_ = mono_ms();
  } else if (poll_) {
    answer_poll_locked(mono_ms());
  }
  // Sent messages are kept for a reconnect, but not past the cap.
  while (buffered_ > config_.sse_max_buffered && !buffer_.empty() &&
         buffer_.front().first <= sent_upto_) {
    buffered_ -= buffer_.front().second.size();
    buffer_.pop_front();
  }
  // Unsent ones past it: a slow consumer, as /ws closes one with 1008.
  if (buffered_ > config_.sse_max_buffered) {
    request_close(1008, "downstream buffer over sse.max_buffered");
  }
}

void http_session::acknowledge_locked(std::uint64_t upto) {
  while (!buffer_.empty() && buffer_.front().first <= upto) {
    buffered_ -= buffer_.front().second.size();
    buffer_.pop_front();
  }
}

void http_session::messages_after_locked(std::uint64_t after, std::string& out) const {
  out.clear();
  out.append("{\"messages\":[");
  bool first = true;
  for (const auto& [seq, text] : buffer_) {
    if (seq <= after) continue;
    if (!first) out.push_back(',');
    first = false;
    out.append("{\"seq\":");
    append_uint(out, seq);
    out.append(",\"data\":");
    append_json_string(out, text);
    out.push_back('}');
  }
  out.append("]}");
}

void http_session::answer_poll_locked(std::uint64_t now_ms) {
  server::http_response res;
  res.set_content_type("application/json");
  std::string body;
  messages_after_locked(poll_after_, body);
  res.set_body(std::move(body));
  poll_->respond(std::move(res));
  if (seq_ > sent_upto_) sent_upto_ = seq_;
  poll_.reset();
  detached_since_ = now_ms;
}

std::uint64_t http_session::attach_stream(server::http_stream stream,
                                          std::optional<std::uint64_t> last_seen) {
  std::lock_guard lock(out_mutex_);
  const std::uint64_t from = last_seen ? std::min(*last_seen, seq_) : sent_upto_;
  acknowledge_locked(from);
  // Why: a resume that would skip messages must not look exact.
  if (from < seq_ && (buffer_.empty() || buffer_.front().first > from + 1)) return 0;
  if (ended_) {  // lingering(): its last messages, then the end
    for (const auto& [seq, text] : buffer_) write_message(stream, seq, text);
    sent_upto_ = seq_;
    stream.end();
    return ++stream_number_;
  }
  if (stream_.is_open()) end_with_reconnect(stream_);
  if (poll_) answer_poll_locked(mono_ms());
  stream_ = std::move(stream);
  detached_since_ = 0;
  last_write_ = mono_ms();
  for (const auto& [seq, text] : buffer_) write_message(stream_, seq, text);
  sent_upto_ = seq_;
  return ++stream_number_;
}

void http_session::stream_closed(std::uint64_t n) {
  std::lock_guard lock(out_mutex_);
  if (n != stream_number_) return;  // a replaced stream
  stream_ = {};
  if (!poll_) detached_since_ = mono_ms();
}

void http_session::poll(std::uint64_t after, server::http_responder responder) {
  std::lock_guard lock(out_mutex_);
  const std::uint64_t now = mono_ms();
  if (poll_) {  // the older poll gives way, answered with what it has
    answer_poll_locked(now);
  }
  acknowledge_locked(std::min(after, seq_));
  poll_ = std::move(responder);
  poll_after_ = after;
  if (ended_ || seq_ > after) {
    answer_poll_locked(now);
    return;
  }
  if (stream_.is_open()) end_with_reconnect(stream_);
  stream_ = {};
  poll_deadline_ = now + static_cast<std::uint64_t>(to_ms(config_.sse_poll_timeout).count());
  detached_since_ = 0;
}

std::uint16_t http_session::tick(std::uint64_t now_ms, std::string& reason) {
  std::uint16_t code = 0;
  if (must_close(code, reason)) return code;
  std::lock_guard lock(out_mutex_);
  if (ended_) return 0;
  if (poll_ && now_ms >= poll_deadline_) answer_poll_locked(now_ms);
  if (stream_.is_open() &&
      now_ms - last_write_ >= static_cast<std::uint64_t>(to_ms(config_.sse_heartbeat).count())) {
    stream_.write(std::string(k_sse_heartbeat));
    last_write_ = now_ms;
  }
  if (!stream_.is_open() && !poll_ && detached_since_ == 0) detached_since_ = now_ms;
  if (detached_since_ != 0 &&
      now_ms - detached_since_ >=
          static_cast<std::uint64_t>(to_ms(config_.sse_session_idle_timeout).count())) {
    reason = "session idle: no stream or poll within sse.session_idle_timeout";
    idle_expired_ = true;
    return 1001;
  }
  return 0;
}

bool http_session::lingering(std::uint64_t now_ms) {
  std::lock_guard lock(out_mutex_);
  // An expired session is simply gone (404), as docs/protocol.md says: its
  // client is not there to take anything.
  return ended_ && !idle_expired_ && sent_upto_ < seq_ &&
         now_ms - ended_at_ <
             static_cast<std::uint64_t>(to_ms(config_.sse_session_idle_timeout).count());
}

bool http_session::answers(std::string_view verb, std::uint64_t now_ms) {
  if (!is_closed()) return true;
  return (verb == "poll" || verb == "stream") && lingering(now_ms);
}

void http_session::drain() {
  {
    std::lock_guard lock(out_mutex_);
    draining_ = true;
  }
  close(config_.shutdown_code, "server shutting down");
}

void http_session::on_closed(std::uint16_t code, std::string_view reason) {
  std::lock_guard lock(out_mutex_);
  std::string last;
  close_push(last, code, reason);
  push_locked(last);
  ended_ = true;
  ended_at_ = mono_ms();
  if (stream_.is_open()) {
    if (draining_) {
      std::string event;
      append_sse_event(event, "reconnect", {}, "{\"reason\":\"server shutting down\"}");
      stream_.write(std::move(event));
    } else {
      // (On drain the server finishes the stream after what was written.)
      stream_.end();
    }
  }
  stream_ = {};
}

}  // namespace switchboard::realtime::detail
