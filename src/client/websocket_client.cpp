// websocket_client.cpp — the client connection's state machine once open:
// frames, sends, the close handshake, teardown and reconnect (connecting and
// the upgrade are in connect.cpp). The wire rules themselves live
// in switchboard::protocol; this file decides what to do when each happens.
#include "switchboard/client/websocket_client.hpp"

#include "client_detail.hpp"

#include "switchboard/protocol/close_code.hpp"
#include "switchboard/protocol/error.hpp"
#include "switchboard/protocol/utf8.hpp"

namespace switchboard::client {

using detail::as_bytes;
using detail::k_abnormal;

namespace {

// A send buffer that grew for one large message is freed afterwards, so an
// idle client keeps at most this much.
constexpr std::size_t k_keep_frame_buffer = 64 * 1024;

constexpr std::uint16_t k_no_status = protocol::to_underlying(protocol::close_code::no_status);

}  // namespace

std::string_view to_string(client_state state) noexcept {
  switch (state) {
    case client_state::idle: return "idle";
    case client_state::connecting: return "connecting";
    case client_state::handshaking: return "handshaking";
    case client_state::open: return "open";
    case client_state::closing: return "closing";
    case client_state::closed: return "closed";
    case client_state::reconnect_wait: return "reconnect_wait";
  }
  return "unknown";
}

websocket_client::websocket_client(net::event_loop& loop, client_options options,
                                   client_handlers handlers)
    : loop_(&loop),
      options_(std::move(options)),
      handlers_(std::move(handlers)),
      backoff_(options_.reconnect, options_.random_seed),
      connector_(loop),
      stream_(loop, *this),  // plain until a wss:// URL sets TLS
      parser_(options_.response_limits),
      reader_(protocol::reader_options{protocol::role::client, options_.max_message_size,
                                       /*stream=*/false, /*allow_rsv1=*/false}) {
  phase_timer_.bind<&websocket_client::on_phase_timeout>(this);
  reconnect_timer_.bind<&websocket_client::on_reconnect_timer>(this);
  // Views into options_, which never moves again (the client is not movable).
  for (const std::string& p : options_.protocols) protocol_views_.emplace_back(p);
  for (const auto& [name, value] : options_.headers) header_views_.push_back({name, value});
}

websocket_client::~websocket_client() { release_connection(); }

void websocket_client::release_connection() noexcept {
  phase_timer_.cancel();
  connector_.cancel();
  stream_.close();
}

void websocket_client::on_handshake(net::transport&) { tls_established_ = true; }

void websocket_client::on_data(net::transport&, std::span<std::byte> data) {
  if (state_ == client_state::handshaking) {
    on_handshake_data(data);
  } else if (state_ == client_state::open || state_ == client_state::closing) {
    read_frames(std::span(reinterpret_cast<char*>(data.data()), data.size()));
  }
}

void websocket_client::read_frames(std::span<char> input) {
  net::detail::lifetime_flag::scope alive(lifetime_);
  // A failed reader is sticky: ignore whatever else arrives while closing.
  while (reader_.last_error() == protocol::error::none &&
         (state_ == client_state::open || state_ == client_state::closing)) {
    const protocol::reader_event event = reader_.next(input);
    switch (event.kind) {
      case protocol::event_kind::need_more:
        return;
      case protocol::event_kind::message:
      case protocol::event_kind::message_part:  // not in buffered mode
        if (event.compressed) {
          // RFC 7692 §6.2: bombs (1009), corrupt data and bad UTF-8 (1007).
          const protocol::error error = inflate_message(event);
          if (error != protocol::error::none) return fail_protocol(error, alive);
          if (handlers_.on_message) handlers_.on_message(inflate_buffer_, event.op);
          if (alive.destroyed()) return;
          inflate_buffer_.clear();
          if (inflate_buffer_.capacity() > k_keep_frame_buffer) std::string().swap(inflate_buffer_);
        } else if (handlers_.on_message) {
          handlers_.on_message(event.payload, event.op);
        }
        break;
      case protocol::event_kind::ping:
        // RFC 6455 §5.5.3: answer with the same payload, unless we are closing.
        if (!close_sent_) {
          frame_buffer_.clear();
          writer_.append_pong(frame_buffer_, event.payload);
          (void)stream_.send(as_bytes(frame_buffer_));
        }
        if (handlers_.on_ping) handlers_.on_ping(event.payload);
        break;
      case protocol::event_kind::pong:
        if (handlers_.on_pong) handlers_.on_pong(event.payload);
        break;
      case protocol::event_kind::close:
        on_server_close(event.code, event.payload);
        return;  // nothing may follow a close frame
      case protocol::event_kind::error:
        return fail_protocol(event.err, alive);
    }
    if (alive.destroyed()) return;
  }
}

void websocket_client::fail_protocol(protocol::error error,
                                     net::detail::lifetime_flag::scope& alive) {
  // Fail the connection (RFC 6455 §7.1.7): our close frame with the code for
  // the rule broken, then wait for the server to close TCP.
  const std::string_view rule = protocol::describe(error);
  if (!close_sent_) {
    send_close_frame(protocol::to_underlying(protocol::close_code_for(error)), {});
    if (alive.destroyed()) return;
  }
  if (handlers_.on_error) {
    handlers_.on_error(error, "protocol error from server: " + std::string(rule));
  }
}

protocol::error websocket_client::inflate_message(const protocol::reader_event& event) {
  // RSV1 is only allowed by the reader once permessage-deflate was agreed.
  inflate_buffer_.clear();
  protocol::inflater& inflater = *inflater_;
  return event.op == protocol::opcode::text ? inflater.inflate_text(event.payload, inflate_buffer_)
                                            : inflater.inflate(event.payload, inflate_buffer_);
}

void websocket_client::on_server_close(std::uint16_t code, std::string_view reason) {
  close_received_ = true;
  server_code_ = code;
  server_reason_.assign(reason);
  if (!close_sent_) {
    // Echo the code (RFC 6455 §5.5.1); a close without a code gets one without.
    send_close_frame(code, {});
  }
  // Either way the server closes TCP next (RFC 6455 §7.1.1); phase_timer_ bounds the wait.
}

void websocket_client::send_close_frame(std::uint16_t code, std::string_view reason) {
  frame_buffer_.clear();
  writer_.append_close(frame_buffer_, code, reason);
  (void)stream_.send(as_bytes(frame_buffer_));
  close_sent_ = true;
  loop_->timers().schedule(phase_timer_, options_.close_timeout);
  set_state(client_state::closing);
}

void websocket_client::on_drained(net::transport&) {
  if (handlers_.on_drained) handlers_.on_drained();
}

std::string websocket_client::describe(std::error_code error) const {
  // OpenSSL's account names the reason ("certificate has expired"); the
  // code's message only the OpenSSL routine that failed.
  const std::string_view tls_text = stream_.last_error_text();
  if (error.category() == net::tls_category() && !tls_text.empty()) {
    std::string text(tls_text);
    for (char& c : text) {
      if (c == '\n' || c == '\r') c = ' ';  // one line for the application's log
    }
    return text;
  }
  return error.message();
}

void websocket_client::on_close(net::transport&, std::error_code error) {
  switch (state_) {
    case client_state::handshaking:
      if (error && stream_.is_tls() && !tls_established_) {
        finish(error, "TLS handshake with " + url_.host + " failed: " + describe(error), k_abnormal,
               {}, true);
      } else if (error) {
        finish(error, "handshake failed: " + describe(error), k_abnormal, {}, true);
      } else {
        finish(client_error::handshake_eof,
               "handshake failed: the server closed the connection without answering", k_abnormal,
               {}, true);
      }
      return;
    case client_state::open: {
      const std::error_code why = error ? error : client_error::closed_without_frame;
      finish(why, "connection lost: " + describe(why), k_abnormal, {}, true);
      return;
    }
    case client_state::closing:
      if (close_received_) {
        // The close handshake is complete and the server closed TCP: the normal end.
        finish({}, {}, server_code_, server_reason_, true);
      } else {
        finish({}, {}, k_abnormal, {}, true);
      }
      return;
    default:
      return;
  }
}

void websocket_client::on_phase_timeout() {
  if (state_ == client_state::handshaking) {
    const std::string limit = std::to_string(options_.handshake_timeout.count()) + " ms";
    finish(client_error::handshake_timeout,
           stream_.is_tls() && !tls_established_
               ? "TLS handshake with " + url_.host + " failed: no answer within " + limit
               : "handshake failed: no response within " + limit,
           k_abnormal, {}, true);
  } else if (state_ == client_state::closing) {
    if (close_received_) {
      // The server finished the handshake but kept TCP open: we close it.
      finish({}, {}, server_code_, server_reason_, true);
    } else {
      finish(client_error::close_timeout,
             "the server did not answer our close frame within " +
                 std::to_string(options_.close_timeout.count()) + " ms",
             k_abnormal, {}, true);
    }
  }
}

void websocket_client::on_reconnect_timer() {
  if (state_ == client_state::reconnect_wait) start_attempt();
}

send_status websocket_client::send(std::string_view payload, protocol::opcode op) {
  if (state_ != client_state::open) return send_status::dropped;
  if (op != protocol::opcode::text && op != protocol::opcode::binary) return send_status::dropped;
  // The server must fail the connection on bad UTF-8 (RFC 6455 §8.1): never send it.
  if (op == protocol::opcode::text && !protocol::is_valid_utf8(payload)) {
    return send_status::dropped;
  }
  if (stream_.buffered_bytes() > options_.max_buffered_bytes) return send_status::dropped;
  bool rsv1 = false;
  if (deflater_ && protocol::should_compress(payload.size(), options_.compress_threshold)) {
    deflate_buffer_.clear();
    // On failure (zlib out of memory) the message goes out uncompressed:
    // RSV1 is decided per message (RFC 7692 §6).
    if (deflater_->compress(payload, deflate_buffer_) == protocol::error::none) {
      payload = deflate_buffer_;
      rsv1 = true;
    }
  }
  frame_buffer_.resize(protocol::message_writer::max_message_wire_size(payload.size()));
  frame_buffer_.resize(writer_.write_message(frame_buffer_.data(), op, payload, 0, rsv1));
  if (deflate_buffer_.capacity() > k_keep_frame_buffer) std::string().swap(deflate_buffer_);
  const send_status status = stream_.send(as_bytes(frame_buffer_));
  if (frame_buffer_.capacity() > k_keep_frame_buffer) std::string().swap(frame_buffer_);
  return status;
}

send_status websocket_client::ping(std::string_view payload) {
  if (state_ != client_state::open) return send_status::dropped;
  frame_buffer_.clear();
  writer_.append_ping(frame_buffer_, payload);
  return stream_.send(as_bytes(frame_buffer_));
}

void websocket_client::close(std::uint16_t code, std::string_view reason) {
  switch (state_) {
    case client_state::idle:
    case client_state::closed:
    case client_state::closing:
      user_closed_ = true;
      return;
    case client_state::open:
      user_closed_ = true;
      if (code != k_no_status && !protocol::is_valid_on_wire(code)) code = 1000;
      if (!protocol::is_valid_utf8(reason)) reason = {};
      send_close_frame(code, reason);
      return;
    case client_state::connecting:
    case client_state::handshaking:
    case client_state::reconnect_wait:
      user_closed_ = true;
      finish({}, {}, k_abnormal, {}, false);
      return;
  }
}

void websocket_client::terminate() {
  user_closed_ = true;
  if (state_ == client_state::idle || state_ == client_state::closed) return;
  finish({}, {}, k_abnormal, {}, false);
}

void websocket_client::finish(std::error_code error, std::string_view text, std::uint16_t code,
                              std::string_view reason, bool allow_reconnect) {
  // `text` and `reason` may point into members this function clears.
  const std::string text_copy(text);
  const std::string reason_copy(reason);
  release_connection();
  reconnect_timer_.cancel();
  const bool was_open = was_open_;
  was_open_ = false;
  state_ = client_state::closed;

  net::detail::lifetime_flag::scope alive(lifetime_);
  if (error && handlers_.on_error) {
    handlers_.on_error(error, text_copy);
    // The application may have destroyed us or connected again.
    if (alive.destroyed() || state_ != client_state::closed) return;
  }
  if (was_open && handlers_.on_close) {
    handlers_.on_close(code, reason_copy);
    if (alive.destroyed() || state_ != client_state::closed) return;
  }
  const reconnect_policy& policy = options_.reconnect;
  if (allow_reconnect && !user_closed_ && policy.enabled) {
    if (policy.max_attempts == 0 || attempt_ < policy.max_attempts) {
      // attempt_ counts the consecutive failures since the last open (0 when
      // an open connection just ended): the window doubles with each.
      const std::chrono::milliseconds delay = backoff_.delay(attempt_);
      loop_->timers().schedule(reconnect_timer_, delay);
      set_state(client_state::reconnect_wait, code, delay);
      return;
    }
    if (handlers_.on_error) {
      handlers_.on_error(client_error::reconnect_exhausted,
                         "gave up after " + std::to_string(attempt_) + " attempts");
      if (alive.destroyed() || state_ != client_state::closed) return;
    }
  }
  set_state(client_state::closed, code);
}

void websocket_client::set_state(client_state state, std::uint16_t code,
                                 std::chrono::milliseconds delay) {
  state_ = state;
  if (!handlers_.on_state) return;
  state_change change;
  change.state = state;
  change.code = code;
  change.delay = delay;
  change.attempt = state == client_state::reconnect_wait ? attempt_ + 1 : attempt_;
  handlers_.on_state(change);
}

}  // namespace switchboard::client
