// http_exchange.cpp — plain HTTP on a connection: reading requests one
// after another from the same bytes (keep-alive, pipelining), bodies,
// handlers, answers sent strictly in request order (a deferred answer holds
// the ones behind it), streaming answers (http_stream) and the connection's
// timers while it speaks plain HTTP. The upgrade itself is handshake.cpp's.
#include <algorithm>
#include <atomic>
#include <cassert>
#include <charconv>
#include <string>
#include <switchboard/net/tcp_socket.hpp>
#include <switchboard/protocol/handshake.hpp>
#include <switchboard/server/http.hpp>
#include <switchboard/server/websocket.hpp>
#include <utility>

#include "loop_context.hpp"

namespace switchboard::server {

namespace {

// Requests of one connection read ahead of their answers. A client that
// pipelines more waits (its bytes stay unparsed, bounded below) until the
// answers ahead go out: what one connection can make the server hold (and
// its handlers run) at once stays small.
constexpr std::size_t k_max_pipelined = 16;

std::span<const std::byte> bytes_of(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// True if the client waits for "100 Continue" before sending its body
// (RFC 9110 §10.1.1; HTTP/1.0 clients do not wait).
bool expects_continue(const protocol::request_head& head) noexcept {
  if (head.version_major() < 1 || (head.version_major() == 1 && head.version_minor() < 1)) {
    return false;
  }
  const auto expect = head.find("Expect");
  return expect && protocol::ascii_iequals(*expect, "100-continue");
}

// RFC 9112 §9.3: an HTTP/1.1 connection persists unless a side says
// "close"; an HTTP/1.0 one only if the request says "keep-alive".
bool wants_close(const protocol::request_head& head) noexcept {
  if (head.has_token("Connection", "close")) return true;
  return head.version_minor() == 0 && !head.has_token("Connection", "keep-alive");
}

// The Connection field of an answer: "close" when it ends the connection,
// "keep-alive" for HTTP/1.0 (whose default is close), none for HTTP/1.1.
std::string_view connection_field(const detail::http_answer& a) noexcept {
  if (a.close_after) return "close";
  return a.http10 ? std::string_view("keep-alive") : std::string_view();
}

void init_stream(detail::stream_state& st, detail::loop_context* ctx, connection_id id) {
  st.ctx = ctx;
  st.id = id;
  st.cap = ctx->options().max_backpressure;
  st.gate = ctx->gate();
}

}  // namespace

std::string http_request::remote_address() const {
  if (native_handle_ < 0) return {};
  std::error_code ec;
  const net::endpoint peer = net::peer_endpoint(native_handle_, ec);
  return ec ? std::string() : peer.address_string();
}

// --- the handles -------------------------------------------------------------

bool detail::stream_state::post_locked() {
  if (flush_posted) return true;
  std::lock_guard gate_lock(gate->mutex);
  // The loop_context is gone (server destroyed): nobody will ever send this.
  if (gate->loop == nullptr) {
    gone = true;
    return false;
  }
  flush_posted = true;
  gate->loop->post([self = shared_from_this()] { self->ctx->on_stream_task(self); });
  return true;
}

http_stream http_response::stream(std::function<void()> on_close) {
  stream_ = std::make_shared<detail::stream_state>();
  stream_->on_close = std::move(on_close);
  if (ctx_ == nullptr) {
    stream_->gone = true;  // not a response the server made: nowhere to send
  } else {
    init_stream(*stream_, ctx_, id_);
  }
  return http_stream(stream_);
}

bool http_stream::write(std::string_view bytes) const {
  if (sink_) return sink_->write(std::string(bytes));
  if (!state_) return false;
  detail::stream_state& st = *state_;
  std::lock_guard lock(st.mutex);
  if (st.gone || st.ended || st.overflow) return false;
  if (bytes.empty()) return true;
  // A slow consumer: checked before queueing (as websocket::send), so one
  // write of any size fits on top of max_backpressure and memory stays
  // bounded by the cap plus one write. The loop closes the connection.
  if (st.pending.size() + st.socket_bytes.load(std::memory_order_relaxed) > st.cap) {
    st.overflow = true;
    st.post_locked();
    return false;
  }
  st.pending.append(bytes);
  return st.post_locked();
}

void http_stream::end() const {
  if (sink_) return sink_->end();
  if (!state_) return;
  detail::stream_state& st = *state_;
  std::lock_guard lock(st.mutex);
  if (st.gone || st.ended) return;
  st.ended = true;
  st.post_locked();
}

std::size_t http_stream::queued() const noexcept {
  if (!state_) return 0;
  std::lock_guard lock(state_->mutex);
  return state_->pending.size() + state_->socket_bytes.load(std::memory_order_relaxed);
}

bool http_stream::is_open() const noexcept {
  if (sink_) return sink_->is_open();
  if (!state_) return false;
  std::lock_guard lock(state_->mutex);
  return !state_->gone && !state_->ended && !state_->overflow;
}

struct detail::responder_relay {
  std::atomic<bool> answered{false};
  std::function<void(http_response)> answer;
};

http_responder http_responder::relay(std::function<void(http_response)> answer) {
  http_responder r;
  r.relay_ = std::make_shared<detail::responder_relay>();
  r.relay_->answer = std::move(answer);
  return r;
}

void http_responder::respond(http_response response) const {
  if (relay_) {
    // The first answer counts, as for a connection.
    if (!relay_->answered.exchange(true, std::memory_order_acq_rel) && relay_->answer) {
      relay_->answer(std::move(response));
    }
    return;
  }
  if (ctx_ == nullptr) return;
  detail::loop_context* ctx = ctx_;
  ctx->loop().post(
      [ctx, id = id_, seq = seq_, r = std::move(response)] { ctx->complete_http(id, seq, r); });
}

http_stream http_responder::stream(http_response head, std::function<void()> on_close) const {
  auto st = std::make_shared<detail::stream_state>();
  st->on_close = std::move(on_close);
  if (ctx_ == nullptr) {
    st->gone = true;
    return http_stream(st);
  }
  detail::loop_context* ctx = ctx_;
  init_stream(*st, ctx, id_);
  // Posted before any write of the returned handle can post its bytes, so
  // the loop starts the stream first (tasks of one thread run in order).
  ctx->loop().post(
      [ctx, id = id_, seq = seq_, h = std::move(head), st] { ctx->complete_http(id, seq, h, st); });
  return http_stream(st);
}

// --- loop side -----------------------------------------------------------------

void detail::loop_context::finish_stream(stream_state& st) {
  {
    std::lock_guard lock(st.mutex);
    st.gone = true;
    std::string().swap(st.pending);
  }
  if (st.on_close_ran) return;
  st.on_close_ran = true;
  // Moved out first: the callback may drop the last handle to `st`'s owner.
  auto callback = std::move(st.on_close);
  if (callback) callback();
}

void detail::loop_context::complete_http(connection_id id, std::uint32_t seq,
                                         const http_response& response,
                                         std::shared_ptr<stream_state> stream) {
  websocket* ws = find(id);
  // Gone, timed out, or no longer speaking HTTP: nothing to send; a stream
  // that never started is over.
  if (ws == nullptr || ws->state_ != websocket::state::handshake || !ws->has_handshake_) {
    if (stream) finish_stream(*stream);
    return;
  }
  ws->complete_answer(seq, response, std::move(stream));
}

void detail::loop_context::on_stream_task(const std::shared_ptr<stream_state>& stream) {
  websocket* ws = find(stream->id);
  // A connection that went away finished its streams as it went.
  if (ws == nullptr || ws->state_ != websocket::state::handshake ||
      !(ws->has_handshake_ || ws->parked_stream_)) {
    return;
  }
  ws->on_stream_task(*stream);
}

// --- the connection --------------------------------------------------------------

void websocket::on_handshake_data(std::span<std::byte> data) {
  if (parked_stream_) unpark_stream();  // bytes behind a stream: read as before
  if (!has_handshake_) {
    handshake_ = ctx_->acquire_handshake();
    has_handshake_ = true;
    if (ping_sent_ != 0) {
      // An idle keep-alive connection's next request (see arm_http_timer):
      // handshake_timeout runs from its first byte.
      handshake_->requests = ping_sent_;
      handshake_->restart_timer = true;
    }
  }
  detail::handshake_state& hs = *handshake_;
  // An answer that ends the connection is decided: later bytes are not read
  // as requests.
  if (hs.closing) return;
  const auto& opts = ctx_->options();
  // Bytes the connection may hold unparsed: one request (head and body)
  // and a little; more means a client pipelining past what it is answered.
  const std::size_t bound = opts.max_head_size + opts.max_http_body;
  const char* p = reinterpret_cast<const char*>(data.data());
  if (hs.head_live) {
    if (hs.after.size() + data.size() > bound + hs.body_length) {
      return drop_handshake(handshake_failure::pipelined_too_large);
    }
    hs.after.append(p, data.size());
  } else {
    if (hs.start == hs.head.size()) {
      hs.head.clear();
      hs.start = 0;
    } else if (hs.start > hs.head.size() / 2) {
      // Nothing points into the consumed part: shift what is left (the
      // parser keeps offsets relative to the request's first byte).
      hs.head.erase(0, hs.start);
      hs.start = 0;
    }
    if (hs.head.size() - hs.start + data.size() > bound) {
      return drop_handshake(handshake_failure::pipelined_too_large);
    }
    hs.head.append(p, data.size());
  }
  drive_http();
}

void websocket::drive_http() {
  while (state_ == state::handshake) {
    flush_answers();
    if (state_ != state::handshake || !read_request()) break;
  }
  arm_http_timer();
}

bool websocket::read_request() {
  detail::handshake_state& hs = *handshake_;
  if (hs.closing) return false;
  if (hs.head_live) {
    if (hs.upgrade_waiting) {
      if (!hs.answers.empty()) return false;
      start_upgrade();
      return false;  // no longer plain HTTP (or rejected)
    }
    if (hs.body_in_after && hs.after.size() < hs.body_length) return false;
    serve_request();
    return true;
  }
  // Requests behind a stream are read when it ends; and no more than
  // k_max_pipelined at once.
  if (hs.answers.size() >= k_max_pipelined) return false;
  if (std::any_of(hs.answers.begin(), hs.answers.end(),
                  [](const detail::http_answer& a) { return a.stream != nullptr; })) {
    return false;
  }
  if (hs.start == hs.head.size()) return false;
  const protocol::parse_result r = hs.parser.parse(std::string_view(hs.head).substr(hs.start));
  if (r.status == protocol::parse_status::need_more) return false;
  // A malformed or oversized head (431, 414, 400): answer and close.
  if (r.status == protocol::parse_status::error) {
    reject_handshake(r.err);
    return true;
  }
  hs.head_live = true;
  hs.head_length = r.consumed;
  ++hs.requests;
  on_head_complete();
  return true;
}

void websocket::start_http() {
  detail::handshake_state& hs = *handshake_;
  const protocol::request_head& head = hs.parser.head();
  const protocol::body_length body = protocol::request_body_length(head);
  switch (body.framing) {
    case protocol::body_framing::transfer_coded:
      // Bodies are framed by Content-Length alone: a chunked (or otherwise
      // transfer-coded) body is refused before it is read (RFC 9110 §15.5.12);
      // the connection cannot find the next request after it, so it closes.
      return reject_handshake(handshake_failure::transfer_encoding, 411,
                              "chunked request bodies are not supported; send Content-Length");
    case protocol::body_framing::bad:
      return reject_handshake(handshake_failure::bad_content_length, 400, "bad Content-Length");
    case protocol::body_framing::none:
    case protocol::body_framing::content_length:
      break;
  }
  // max_http_body: refused from the head alone, before a byte of it is buffered.
  if (body.bytes > ctx_->options().max_http_body) {
    return reject_handshake(handshake_failure::body_too_large, 413, "request body too large");
  }
  hs.body_length = static_cast<std::size_t>(body.bytes);
  const std::size_t body_start = hs.start + hs.head_length;
  if (hs.head.size() - body_start >= hs.body_length) return;  // all here: read_request serves it
  // The rest arrives in later reads, still bounded by the handshake timeout.
  // Until the handler ran, `head` must not move: the body goes to `after`.
  hs.after.assign(hs.head, body_start);
  hs.head.resize(body_start);
  hs.body_in_after = true;
  // The interim answer may not overtake earlier requests' answers.
  if (expects_continue(head) && hs.answers.empty()) {
    static constexpr std::string_view k_continue = "HTTP/1.1 100 Continue\r\n\r\n";
    stream_.send(bytes_of(k_continue));
  }
}

void websocket::serve_request() {
  detail::handshake_state& hs = *handshake_;
  const protocol::request_head& head = hs.parser.head();
  const auto& opts = ctx_->options();
  const std::string_view body =
      hs.body_in_after
          ? std::string_view(hs.after).substr(0, hs.body_length)
          : std::string_view(hs.head).substr(hs.start + hs.head_length, hs.body_length);
  const std::uint32_t seq = hs.next_seq++;
  detail::http_answer& a = hs.answers.emplace_back();
  a.seq = seq;
  a.head_only = head.method() == "HEAD";
  a.http10 = head.version_minor() == 0;
  // The last request this connection serves: the client asked for it, the
  // per-connection limit is reached, or the server is stopping.
  a.close_after = wants_close(head) ||
                  (opts.max_http_requests != 0 && hs.requests >= opts.max_http_requests) ||
                  ctx_->shutting_down();
  if (a.close_after) hs.closing = true;

  if (hs.handler == nullptr) {
    // 404 / 405 from the router; the body (if any) was skipped.
    http_response r;
    r.set_status(hs.route_status);
    r.set_body(hs.route_status == 404 ? "no such path" : "method not allowed");
    if (hs.route_status == 405) r.add_header("Allow", hs.allow);
    r.serialize(a.bytes, !a.head_only, connection_field(a));
    a.ready = true;
    finish_request();
    return;
  }
  http_request request(head, body, stream_.native_handle());
  http_response response;
  response.ctx_ = ctx_;
  response.id_ = id();
  response.seq_ = seq;
  (*hs.handler)(request, response);
  if (state_ != state::handshake) {
    // The handler terminated us: a stream it started is over before it began.
    if (response.stream_) detail::loop_context::finish_stream(*response.stream_);
    return;
  }
  if (response.event_stream_) return start_event_stream(response);  // event_stream.cpp
  detail::http_answer& mine = hs.answers.back();  // `a` (deque references stay valid)
  if (response.stream_) {
    start_answer_stream(mine, response, std::move(response.stream_));
  } else if (!response.deferred()) {
    response.serialize(mine.bytes, !mine.head_only, connection_field(mine));
    mine.ready = true;
  }
  finish_request();
}

void websocket::start_answer_stream(detail::http_answer& a, const http_response& head,
                                    std::shared_ptr<detail::stream_state> stream) {
  // HTTP/1.0 has no chunked coding: the body ends with the connection.
  if (a.http10 && !a.head_only) {
    a.close_after = true;
    handshake_->closing = true;
  }
  head.serialize_stream_head(a.bytes, !a.http10, connection_field(a));
  a.stream = std::move(stream);
  a.ready = true;
}

void websocket::finish_request() {
  detail::handshake_state& hs = *handshake_;
  hs.parser.reset();
  if (hs.body_in_after) {
    // What came after the body is the next request's start.
    hs.head.assign(hs.after, hs.body_length);
    hs.start = 0;
    hs.after.clear();
  } else {
    hs.start += hs.head_length + hs.body_length;
  }
  hs.head_live = false;
  hs.body_in_after = false;
  hs.handler = nullptr;
  hs.route_status = 0;
  hs.head_length = 0;
  hs.body_length = 0;
}

void websocket::complete_answer(std::uint32_t seq, const http_response& response,
                                std::shared_ptr<detail::stream_state> stream) {
  detail::handshake_state& hs = *handshake_;
  const auto it = std::find_if(hs.answers.begin(), hs.answers.end(),
                               [seq](const detail::http_answer& a) { return a.seq == seq; });
  // Already answered (the first answer counts), or dropped.
  if (it == hs.answers.end() || it->ready) {
    if (stream) detail::loop_context::finish_stream(*stream);
    return;
  }
  if (stream) {
    start_answer_stream(*it, response, std::move(stream));
  } else {
    response.serialize(it->bytes, !it->head_only, connection_field(*it));
    it->ready = true;
  }
  drive_http();
}

void websocket::on_stream_task(detail::stream_state& st) {
  if (parked_stream_) {
    detail::http_answer& a = parked_->answer;
    if (a.stream.get() != &st) return;
    bool overflow;
    {
      std::lock_guard lock(st.mutex);
      overflow = st.overflow;
    }
    if (overflow) return close_slow_stream(false);
    // Still open (or closed by pump_stream): nothing else to do while parked.
    if (!pump_stream(a)) return;
    // The stream ended and its last chunk is out: the answer is complete, as
    // flush_answers() would have found it. The connection reads requests
    // again (or closes), which needs the full state.
    const bool close = a.close_after;
    unpark_stream();
    handshake_->answers.pop_front();
    if (close) {
      handshake_->answers.clear();
      timer_.cancel();
      linger(true);
      return;
    }
    handshake_->restart_timer = true;
    return drive_http();
  }
  detail::handshake_state& hs = *handshake_;
  const bool mine =
      std::any_of(hs.answers.begin(), hs.answers.end(),
                  [&st](const detail::http_answer& a) { return a.stream.get() == &st; });
  if (!mine) return;
  bool overflow;
  {
    std::lock_guard lock(st.mutex);
    overflow = st.overflow;
  }
  if (overflow) return close_slow_stream(false);
  drive_http();
}

void websocket::flush_answers() {
  detail::handshake_state& hs = *handshake_;
  bool sent = false;
  while (state_ == state::handshake && !hs.answers.empty()) {
    detail::http_answer& a = hs.answers.front();
    if (!a.ready) break;
    if (a.stream) {
      if (!a.started) {
        a.started = true;
        stream_.send(bytes_of(a.bytes));
        std::string().swap(a.bytes);
        if (a.head_only) {
          // HEAD: the head is the whole answer; the stream is over at once.
          detail::loop_context::finish_stream(*a.stream);
          if (state_ != state::handshake) return;
        }
      }
      if (!a.head_only && !pump_stream(a)) break;  // still open, or closed
      if (state_ != state::handshake) return;
    } else {
      stream_.send(bytes_of(a.bytes));
    }
    sent = true;
    const bool close = a.close_after;
    hs.answers.pop_front();
    if (close) {
      // The last answer: nothing behind it was read. Close after the flush.
      hs.answers.clear();
      timer_.cancel();
      linger(true);
      return;
    }
  }
  if (sent) hs.restart_timer = true;  // progress: the next request gets a full timeout
}

bool websocket::pump_stream(detail::http_answer& a) {
  detail::stream_state& st = *a.stream;
  std::string data;
  bool ended, overflow;
  {
    std::lock_guard lock(st.mutex);
    data.swap(st.pending);
    ended = st.ended;
    overflow = st.overflow;
    st.flush_posted = false;
  }
  if (overflow) {
    close_slow_stream(false);
    return false;
  }
  if (!data.empty()) {
    if (a.http10) {
      stream_.send(bytes_of(data));
    } else {
      // One chunk per hand-over (RFC 9112 §7.1): size in hex, CRLF, data, CRLF.
      char size[24];
      char* end = std::to_chars(size, size + 16, data.size(), 16).ptr;
      *end++ = '\r';
      *end++ = '\n';
      stream_.send({bytes_of({size, static_cast<std::size_t>(end - size)}), bytes_of(data),
                    bytes_of("\r\n")});
    }
  }
  st.socket_bytes.store(stream_.buffered_bytes(), std::memory_order_relaxed);
  // The server-wide bound: a stream whose socket is full while the total
  // is over max_outbound_memory goes (its bytes cannot be dropped one by one).
  const std::size_t memory = ctx_->options().max_outbound_memory;
  if (memory != 0 && stream_.write_blocked() && ctx_->core().outbound_bytes() > memory) {
    close_slow_stream(true);
    return false;
  }
  if (!ended) return false;
  if (!a.http10) stream_.send(bytes_of("0\r\n\r\n"));  // the last chunk, no trailers
  detail::loop_context::finish_stream(st);
  return state_ == state::handshake;
}

void websocket::close_slow_stream(bool memory) {
  // A reader that does not keep up with its stream: its queue and the
  // connection go now (a last chunk would wait behind them).
  if (memory) {
    ctx_->count_outbound_memory_drop();
  } else {
    ctx_->count_backpressure_drop();
  }
  terminate();
}

void websocket::arm_http_timer() {
  const auto& opts = ctx_->options();
  if (state_ == state::upgrading && has_handshake_ && handshake_->restart_timer) {
    // An upgrade after plain requests waits for the application's decision:
    // handshake_timeout from its first byte, as a first request's would.
    handshake_->restart_timer = false;
    if (opts.handshake_timeout.count() > 0) {
      ctx_->loop().timers().schedule(timer_, opts.handshake_timeout);
    } else {
      timer_.cancel();
    }
    return;
  }
  if (state_ != state::handshake || !has_handshake_) return;
  detail::handshake_state& hs = *handshake_;
  // A stream being sent has no timeout of its own.
  if (!hs.answers.empty() && hs.answers.front().started) {
    timer_.cancel();
    hs.restart_timer = false;
    park_stream();
    return;
  }
  const bool idle = hs.answers.empty() && !hs.head_live && hs.start == hs.head.size();
  if (idle) {
    // Every answer is out and nothing more arrived: the connection holds no
    // request state while it waits (the pooled state goes back to the loop).
    // The count of requests it carried lives in ping_sent_, unused before an
    // upgrade; nonzero there marks the connection idle.
    ping_sent_ = static_cast<std::uint32_t>(std::clamp<std::size_t>(hs.requests, 1, UINT32_MAX));
    ctx_->release_handshake(handshake_);
    handshake_ = nullptr;
    has_handshake_ = false;
    if (opts.http_idle_timeout.count() > 0) {
      ctx_->loop().timers().schedule(timer_, opts.http_idle_timeout);
    } else {
      timer_.cancel();
    }
    return;
  }
  if (!hs.restart_timer) return;  // the running deadline stands
  hs.restart_timer = false;
  if (opts.handshake_timeout.count() > 0) {
    ctx_->loop().timers().schedule(timer_, opts.handshake_timeout);
  } else {
    timer_.cancel();
  }
}

void websocket::on_http_drained() {
  if (parked_stream_) {
    parked_->answer.stream->socket_bytes.store(stream_.buffered_bytes(), std::memory_order_relaxed);
    return;
  }
  detail::handshake_state& hs = *handshake_;
  if (!hs.answers.empty() && hs.answers.front().started) {
    hs.answers.front().stream->socket_bytes.store(stream_.buffered_bytes(),
                                                  std::memory_order_relaxed);
  }
}

bool websocket::http_idle() const noexcept {
  // A parked stream holds no request state either, but it is no idle
  // connection: ping_sent_ still counts the requests of an earlier idle spell.
  return state_ == state::handshake && !has_handshake_ && !parked_stream_ && ping_sent_ != 0;
}

bool websocket::stop_http(bool graceful) {
  if (http_idle()) {
    // Waiting for a next request that nobody sent: just close.
    terminate();
    return true;
  }
  if (parked_stream_) unpark_stream();
  if (!has_handshake_) return false;
  detail::handshake_state& hs = *handshake_;
  if (hs.answers.empty() || !hs.answers.front().started) return false;
  if (!graceful) {
    terminate();  // the shutdown deadline: streams end where they are
    return true;
  }
  // A stream being sent: what was written goes out, then its last chunk,
  // then the connection closes.
  hs.closing = true;
  detail::http_answer& a = hs.answers.front();
  a.close_after = true;
  {
    std::lock_guard lock(a.stream->mutex);
    a.stream->ended = true;
  }
  flush_answers();
  return true;
}

bool websocket::http_streaming() const noexcept {
  if (state_ == state::handshake && parked_stream_) return true;
  return state_ == state::handshake && has_handshake_ && !handshake_->answers.empty() &&
         handshake_->answers.front().started;
}

void websocket::end_http_streams() noexcept {
  if (parked_stream_) return detail::loop_context::finish_stream(*parked_->answer.stream);
  if (!has_handshake_) return;
  for (detail::http_answer& a : handshake_->answers) {
    if (a.stream) detail::loop_context::finish_stream(*a.stream);
  }
}

}  // namespace switchboard::server

namespace switchboard::server {

void websocket::park_stream() {
  detail::handshake_state& hs = *handshake_;
  // Only a lone started stream with nothing read behind it and nothing
  // decided about the connection: the pooled state then holds nothing the
  // stream needs (its answer has its own bytes and handle).
  if (hs.answers.size() != 1 || !hs.answers.front().started || hs.answers.front().head_only ||
      hs.head_live || hs.closing || hs.start != hs.head.size() || !hs.after.empty()) {
    return;
  }
  // A plain HTTP connection never constructs the endpoint's user data (that
  // happens at an upgrade, and a parked connection unparks before it reads
  // one): its space, allocated with the connection, holds the parked answer
  // when it fits, so a streaming connection allocates nothing for it.
  const bool inline_space =
      behavior_ == nullptr && ctx_->core().user_data_size >= sizeof(detail::parked_stream);
  detail::parked_stream parked{std::move(hs.answers.front()), hs.requests, hs.next_seq};
  auto* p = inline_space ? ::new (user_data()) detail::parked_stream(std::move(parked))
                         : new detail::parked_stream(std::move(parked));
  parked_inline_ = inline_space;
  hs.answers.clear();
  ctx_->release_handshake(handshake_);
  has_handshake_ = false;
  parked_ = p;
  parked_stream_ = true;
}

void websocket::unpark_stream() {
  detail::parked_stream* p = parked_;
  detail::handshake_state* hs = ctx_->acquire_handshake();
  hs->answers.push_back(std::move(p->answer));
  hs->requests = p->requests;
  hs->next_seq = p->next_seq;
  free_parked();
  handshake_ = hs;
  has_handshake_ = true;
}

void websocket::free_parked() noexcept {
  if (parked_inline_) {
    parked_->~parked_stream();
  } else {
    delete parked_;
  }
  parked_ = nullptr;
  parked_stream_ = false;
  parked_inline_ = false;
}

}  // namespace switchboard::server
