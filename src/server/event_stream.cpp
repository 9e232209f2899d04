// event_stream.cpp — event-stream connections (http_response::
// open_event_stream): a plain HTTP GET turned into a long-lived connection
// of the server, in the same object and user-data space as an upgraded
// WebSocket. Its body is chunked (RFC 9112 §7.1): every send() and every
// topic publication is one chunk; close() writes the last chunk. The client
// sends nothing after its request, so there is no reader; bytes that arrive
// anyway end the stream.
#include <charconv>
#include <string>

#include <switchboard/server/endpoint.hpp>
#include <switchboard/server/http.hpp>
#include <switchboard/server/websocket.hpp>

#include "loop_context.hpp"

namespace switchboard::server {

namespace {

std::span<const std::byte> bytes_of(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

using detail::from_net;

// A chunk's size line: the size in hex, CRLF. Returns its length.
std::size_t chunk_size_line(char (&out)[24], std::size_t size) noexcept {
  char* end = std::to_chars(out, out + 16, size, 16).ptr;
  *end++ = '\r';
  *end++ = '\n';
  return static_cast<std::size_t>(end - out);
}

constexpr std::string_view k_last_chunk = "0\r\n\r\n";  // no trailers

}  // namespace

websocket* http_response::open_event_stream(const ws_behavior& endpoint) {
  if (ctx_ == nullptr || deferred_ || stream_ || event_stream_) return nullptr;
  websocket* ws = ctx_->find(id_);
  if (ws == nullptr || !ws->begin_event_stream(endpoint, seq_)) return nullptr;
  event_stream_ = true;
  return ws;
}

bool websocket::begin_event_stream(const ws_behavior& endpoint, std::uint32_t seq) {
  if (state_ != state::handshake || !has_handshake_ || behavior_ != nullptr) return false;
  detail::handshake_state& hs = *handshake_;
  // Why only the connection's one request: the head goes out when the
  // handler returns, so nothing may be owed before it, and a request read
  // behind it would never be answered (the connection is no longer HTTP).
  if (hs.answers.size() != 1 || hs.answers.front().seq != seq || hs.answers.front().ready) {
    return false;
  }
  const detail::http_answer& a = hs.answers.front();
  // HEAD has no body; HTTP/1.0 has no chunked coding.
  if (a.head_only || a.http10 || hs.parser.head().method() != "GET") return false;
  const bool behind = hs.body_in_after
                          ? hs.after.size() > hs.body_length
                          : hs.head.size() > hs.start + hs.head_length + hs.body_length;
  if (behind || ctx_->shutting_down()) return false;
  // The endpoint's user data must fit the space allocated with connections.
  if (endpoint.user_data_size > ctx_->core().user_data_size) return false;
  if (!ctx_->core().try_count_connection()) return false;
  counted_ = true;
  behavior_ = &endpoint;
  if (behavior_->construct_user_data != nullptr) behavior_->construct_user_data(user_data());
  return true;
}

void websocket::start_event_stream(const http_response& head) {
  detail::handshake_state* hs = handshake_;
  std::string& out = ctx_->scratch();
  out.clear();
  // HTTP/1.1 (begin_event_stream checked): persistent unless a side says
  // otherwise, so no Connection field; the body is chunked.
  head.serialize_stream_head(out, true, {});
  stream_.send(bytes_of(out));
  hs->answers.clear();
  handshake_ = nullptr;  // reader_ (null: none) from now on
  has_handshake_ = false;
  ctx_->release_handshake(hs);
  state_ = state::open;
  event_stream_ = true;
  close_pending_ = true;
  ping_sent_ = 0;  // held the keep-alive request count until now
  last_receive_ = now_ms();
  schedule_heartbeat();  // replaces the handshake timeout
  if (behavior_->on_open) behavior_->on_open(*this);
}

void websocket::note_stream_write() noexcept {
  // As now_ms(), from the loop's cached clock (inline here: once per delivery).
  last_receive_ = static_cast<std::uint32_t>(ctx_->loop().now().time_since_epoch().count());
}

send_status websocket::send_chunk(std::string_view payload) {
  if (state_ != state::open) return send_status::dropped;
  // Why: an empty chunk is the last chunk; it would end the body.
  if (payload.empty()) return send_status::ok;
  if (over_backpressure()) return send_status::dropped;
  char line[24];
  const std::size_t n = chunk_size_line(line, payload.size());
  note_stream_write();
  return from_net(
      stream_.send({bytes_of({line, n}), bytes_of(payload), bytes_of("\r\n")}));
}

send_status websocket::write_chunk_admitted(const net::staged_bytes& chunk) {
  note_stream_write();
  return from_net(stream_.send(chunk));
}

send_status websocket::write_chunk_admitted(std::string_view payload) {
  char line[24];
  const std::size_t n = chunk_size_line(line, payload.size());
  note_stream_write();
  return from_net(
      stream_.send({bytes_of({line, n}), bytes_of(payload), bytes_of("\r\n")}));
}

void websocket::close_event_stream(std::uint16_t code, std::string_view reason) {
  if (close_sent_ != 0) return;  // on_closing's own sends closing us again
  close_sent_ = code == 0 ? protocol::to_underlying(protocol::close_code::no_status) : code;
  // The endpoint's final event, then the last chunk after what is queued;
  // on_close and the end of the connection follow from the timer, outside
  // the caller (a topic fan-out may be closing us for backpressure: on_close
  // must not run inside it).
  if (behavior_->on_closing) behavior_->on_closing(*this, code, reason);
  if (state_ != state::open) return;  // terminated by on_closing
  before_write();
  stream_.send(bytes_of(k_last_chunk));
  state_ = state::closing;
  ctx_->loop().timers().schedule(timer_, std::chrono::milliseconds{0});
}

void websocket::on_event_stream_data() {
  // A client of an event stream sends nothing after its request; what comes
  // anyway (a pipelined request we would never answer) ends the stream
  // cleanly. After close() it is discarded until the peer's FIN.
  if (state_ == state::open) close(protocol::to_underlying(protocol::close_code::normal), {});
}

void websocket::on_event_stream_timer() {
  if (state_ == state::closing) {
    // close() wrote the last chunk: the endpoint hears the code it gave,
    // and the connection closes once the bytes are out (half-close first:
    // the client may still be sending).
    state_ = state::lingering;
    notify_close(close_sent_, {});
    if (state_ == state::closed) return;  // terminated from on_close
    linger(true);
    return;
  }
  // Open: a heartbeat once a whole period passed without a write; else
  // wake up when it would have.
  const auto period = static_cast<std::uint32_t>(behavior_->event_stream_heartbeat.count());
  if (period == 0) return;  // no heartbeat (the timer is not armed for one)
  std::uint32_t silent = now_ms() - last_receive_;
  if (silent >= period) {
    ping(behavior_->event_stream_comment);
    if (state_ != state::open) return;  // closed for backpressure
    silent = 0;
  }
  ctx_->loop().timers().schedule(timer_, std::chrono::milliseconds{period - silent});
}

void websocket::schedule_heartbeat() {
  const auto period = behavior_->event_stream_heartbeat;
  if (period.count() > 0) {
    ctx_->loop().timers().schedule(timer_, period);
  } else {
    timer_.cancel();
  }
}

namespace detail {

net::staged_bytes loop_context::stage_chunk(std::string_view payload) {
  char line[24];
  const std::size_t n = chunk_size_line(line, payload.size());
  chunk_buffer_.clear();
  chunk_buffer_.append(line, n);
  chunk_buffer_.append(payload);
  chunk_buffer_.append("\r\n");
  const net::staged_bytes staged = loop_->cork().stage(bytes_of(chunk_buffer_));
  trim(chunk_buffer_);
  return staged;
}

}  // namespace detail

}  // namespace switchboard::server
