// websocket.cpp — an open connection: frames in (parsed in place from the
// loop's receive buffer), frames out (through the cork), the close handshake,
// keepalive and the timeouts, all driven by one timer_node. TLS is the
// transport's business: this file sees plaintext either way, and differs only
// in how it ends a connection (close_notify before closing TCP).
#include <switchboard/server/websocket.hpp>

#include <algorithm>
#include <cassert>

#include <switchboard/protocol/error.hpp>
#include <switchboard/protocol/message_writer.hpp>
#include <switchboard/protocol/small_frame.hpp>

#include "loop_context.hpp"

namespace switchboard::server {

namespace {
using protocol::event_kind;
using protocol::opcode;

// Reader buffers larger than this are freed after the message (bounds idle memory).
constexpr std::size_t k_keep_reader_buffer = 64 * 1024;
// The largest payload a frame's 7-bit length field holds (RFC 6455 §5.2).
constexpr std::uint64_t k_max_short_length = 125;
// How long we wait for the peer's FIN after shutting our side down when no
// close_timeout is configured.
constexpr std::chrono::milliseconds k_default_linger{2000};

std::span<const std::byte> bytes_of(const void* data, std::size_t size) noexcept {
  return {static_cast<const std::byte*>(data), size};
}

using detail::from_net;

// True if `input` is exactly one masked ping or pong frame: after reading it,
// a reader that held nothing before holds nothing again (keepalive replies).
bool is_single_control_frame(std::span<const char> input) noexcept {
  if (input.size() < 6) return false;
  const auto b0 = static_cast<std::uint8_t>(input[0]);
  const auto b1 = static_cast<std::uint8_t>(input[1]);
  const auto op = b0 & 0x0F;
  const std::size_t len = b1 & 0x7F;
  return (b0 & 0x80) != 0 && (op == 0x9 || op == 0xA) && (b1 & 0x80) != 0 && len <= 125 &&
         input.size() == 6 + len;
}
}  // namespace

websocket::websocket(detail::loop_context& ctx, std::uint32_t slot,
                     std::uint32_t generation) noexcept
    : stream_(ctx.loop(), *this, ctx.tls()), ctx_(&ctx), slot_(slot), generation_(generation) {
  timer_.bind<&websocket::on_timer>(this);
}

websocket::~websocket() {
  if (has_handshake_) {
    ctx_->release_handshake(handshake_);
  } else if (parked_stream_) {
    {
      std::lock_guard lock(parked_->answer.stream->mutex);
      parked_->answer.stream->gone = true;  // as release_handshake() does
    }
    free_parked();
  } else if (reader_ != nullptr) {
    ctx_->release_reader(reader_);
  }
  if (behavior_ != nullptr && behavior_->destroy_user_data != nullptr) {
    behavior_->destroy_user_data(user_data());
  }
  if (counted_) ctx_->core().uncount_connection();
}

void* websocket::user_data() noexcept {
  return reinterpret_cast<char*>(this) + detail::k_user_data_offset;
}

connection_id websocket::id() const noexcept { return {ctx_->index(), slot_, generation_}; }

std::uint32_t websocket::now_ms() const noexcept { return ctx_->now_ms(); }

void websocket::on_data(net::transport&, std::span<std::byte> data) {
  last_receive_ = now_ms();
  awaiting_pong_ = false;  // anything received proves the peer alive
  switch (state_) {
    case state::handshake:
      on_handshake_data(data);
      break;
    case state::upgrading:
      // A client may pipeline frames after its head; keep them for after the 101,
      // but not without bound while the application decides.
      if (handshake_->after.size() + data.size() > ctx_->options().max_head_size) {
        drop_handshake(handshake_failure::pipelined_too_large);
        return;
      }
      handshake_->after.append(reinterpret_cast<const char*>(data.data()), data.size());
      break;
    case state::open:
    case state::closing:
      if (event_stream_) return on_event_stream_data();
      on_frames({reinterpret_cast<char*>(data.data()), data.size()});
      break;
    case state::lingering:
    case state::closed:
      break;  // after the close handshake: discard until the peer's FIN
  }
}

void websocket::on_frames(std::span<char> input) {
  const bool streaming = behavior_->on_fragment != nullptr;
  if (reader_ == nullptr && !streaming) {
    // The common read: whole small messages (small_frame.hpp) and nothing
    // held from an earlier read. They are read straight from the receive
    // buffer, with no reader taken from the loop's pool and given back;
    // whatever else arrives goes to a reader, from the first such frame on.
    const auto limit = static_cast<std::size_t>(
        std::min(k_max_short_length, ctx_->options().max_message_size));
    opcode op{};
    std::string_view payload;
    for (;;) {
      const protocol::small_frame found = protocol::read_small_frame(input, 0x80, limit, op, payload);
      if (found == protocol::small_frame::none) break;
      if (found == protocol::small_frame::invalid_utf8) {
        fail(protocol::error::invalid_utf8);
        return;
      }
      // After our close frame, data is discarded (RFC 6455 §1.4).
      if (state_ == state::open) {
        ctx_->count_received(payload.size());
        if (behavior_->on_message) behavior_->on_message(*this, payload, op);
        // A callback may have closed or terminated the connection.
        if (state_ != state::open && state_ != state::closing) return;
      }
      if (input.empty()) return;
    }
  }
  const bool fresh = reader_ == nullptr;
  if (fresh) reader_ = ctx_->acquire_reader(streaming, deflate_);
  const bool single_control = fresh && is_single_control_frame(input);
  bool clean = false;  // the reader holds no partial frame or message
  for (;;) {
    const protocol::reader_event ev = reader_->next(input);
    switch (ev.kind) {
      case event_kind::need_more:
        if (clean) {
          ctx_->release_reader(reader_);
          reader_ = nullptr;
        }
        return;
      case event_kind::message:
        clean = input.empty();
        // After our close frame, data is discarded (RFC 6455 §1.4).
        if (state_ == state::open) {
          if (ev.compressed) {
            if (!on_compressed(ev)) return;  // failed: inflate error
          } else {
            ctx_->count_received(ev.payload.size());
            if (behavior_->on_message) behavior_->on_message(*this, ev.payload, ev.op);
          }
        }
        if (reader_ != nullptr) reader_->shrink_buffer(k_keep_reader_buffer);
        break;
      case event_kind::message_part:
        clean = ev.last && input.empty();
        if (state_ == state::open) {
          if (ev.compressed) {
            on_compressed_part(ev);
          } else {
            ctx_->count_received(ev.payload.size(), ev.last);
            behavior_->on_fragment(*this, ev.payload, ev.op, ev.first, ev.last);
          }
        }
        break;
      case event_kind::ping:
        clean = single_control;
        // A ping is answered by a pong with the same payload (RFC 6455 §5.5.2),
        // but nothing follows our close frame (§5.5.1).
        if (state_ == state::open) {
          char frame[protocol::message_writer::max_frame_size(protocol::k_max_control_payload)];
          const std::size_t n = protocol::message_writer(protocol::role::server)
                                    .write_pong(frame, ev.payload);
          before_write();
          stream_.send(bytes_of(frame, n));
          if (behavior_->on_ping) behavior_->on_ping(*this, ev.payload);
        }
        break;
      case event_kind::pong:
        clean = single_control;
        if (state_ == state::open && behavior_->on_pong) behavior_->on_pong(*this, ev.payload);
        break;
      case event_kind::close:
        on_peer_close(ev.code, ev.payload);
        return;
      case event_kind::error:
        fail(ev.err);
        return;
    }
    // A callback may have closed or terminated the connection.
    if (state_ != state::open && state_ != state::closing) return;
  }
}

// --- permessage-deflate (RFC 7692) -------------------------------------------

detail::connection_codec& websocket::codec() {
  if (!codec_) {
    // Windows and takeover as agreed in the upgrade; zlib state comes later,
    // on each member's first message.
    const compression_options& c = behavior_->compression;
    protocol::deflate_options d;
    d.window_bits = deflate_window_;
    d.mem_level = c.mem_level;
    d.level = c.level;
    d.no_context_takeover = !deflate_takeover_;
    protocol::inflate_options i;
    i.window_bits = inflate_window_;
    i.no_context_takeover = !inflate_takeover_;
    i.max_message_size = ctx_->options().max_message_size;
    codec_ = std::make_unique<detail::connection_codec>(
        detail::connection_codec{protocol::deflater(d), protocol::inflater(i)});
  }
  return *codec_;
}

std::size_t websocket::compression_memory() const noexcept {
  if (!codec_) return 0;
  return sizeof(detail::connection_codec) + codec_->deflate.memory_bytes() +
         codec_->inflate.memory_bytes();
}

bool websocket::on_compressed(const protocol::reader_event& ev) {
  // The whole message is here: the loop's inflater serves it unless the
  // client keeps its context between messages (then only ours has it).
  protocol::inflater& inf = inflate_takeover_ ? codec().inflate : ctx_->shared_inflater();
  std::string& out = ctx_->inflate_buffer();
  out.clear();
  // The inflater stops at max_message_size + 1 bytes (bombs: 1009), and
  // checks UTF-8 of text as it inflates (1007); corrupt data is 1007 too.
  const protocol::error err =
      ev.op == opcode::text ? inf.inflate_text(ev.payload, out) : inf.inflate(ev.payload, out);
  if (err != protocol::error::none) {
    detail::loop_context::trim(out);
    fail(err);
    return false;
  }
  ctx_->count_received(out.size());
  if (behavior_->on_message) behavior_->on_message(*this, out, ev.op);
  detail::loop_context::trim(out);
  return true;
}

void websocket::on_compressed_part(const protocol::reader_event& ev) {
  // Pieces of one message arrive over several reads, interleaved with other
  // connections' messages: a shared inflater cannot hold it, so the message
  // gets the connection's own (freed at its end unless the context is kept).
  detail::connection_codec& c = codec();
  if (ev.first) c.inflate.begin_message(ev.op == opcode::text);
  std::string& out = ctx_->inflate_buffer();
  out.clear();
  protocol::error err = c.inflate.write(ev.payload, out);
  if (err == protocol::error::none && ev.last) err = c.inflate.finish(out);
  if (err != protocol::error::none) {
    detail::loop_context::trim(out);
    fail(err);
    return;
  }
  ctx_->count_received(out.size(), ev.last);
  behavior_->on_fragment(*this, out, ev.op, ev.first, ev.last);
  detail::loop_context::trim(out);
  if (ev.last && !inflate_takeover_) {
    if (deflate_takeover_) {
      codec_->inflate.release();
    } else {
      codec_.reset();  // shared mode: nothing per connection between messages
    }
  }
}

bool websocket::wants_compression(std::size_t size) const noexcept {
  return deflate_ && protocol::should_compress(size, behavior_->compression.threshold);
}

send_status websocket::send_compressed(opcode op, std::string_view payload) {
  if (state_ != state::open) return send_status::dropped;
  if (over_backpressure()) return send_status::dropped;
  const compression_options& c = behavior_->compression;
  protocol::deflater& d =
      deflate_takeover_ ? codec().deflate : ctx_->shared_deflater(deflate_window_, c.level);
  std::string& out = ctx_->deflate_buffer();
  out.clear();
  if (d.compress(payload, out) != protocol::error::none) {
    // zlib could not get memory. RSV1 is chosen per message (RFC 7692 §6),
    // so the message still goes out, uncompressed; the deflater was reset.
    detail::loop_context::trim(out);
    return send_frame(op, payload);
  }
  ctx_->count_compressed();
  char header[protocol::k_max_frame_header_size];
  protocol::frame_header h;
  h.op = op;
  h.rsv1 = true;  // the only (so first) frame of a compressed message (RFC 7692 §6.1)
  h.length = out.size();
  const std::size_t n = protocol::encode_frame_header(h, header);
  const auto status = stream_.send({bytes_of(header, n), bytes_of(out.data(), out.size())});
  detail::loop_context::trim(out);
  return from_net(status);
}

void websocket::on_peer_close(std::uint16_t code, std::string_view reason) {
  if (state_ == state::open) {
    // Echo the peer's code; an empty close (1005) is answered empty (RFC 6455 §5.5.1).
    char frame[protocol::message_writer::k_max_close_frame_size];
    const std::uint16_t echo = code == protocol::to_underlying(protocol::close_code::no_status) ? 0 : code;
    const std::size_t n = protocol::message_writer(protocol::role::server).write_close(frame, echo);
    before_write();
    stream_.send(bytes_of(frame, n));
    close_sent_ = echo == 0 ? code : echo;
  }
  state_ = state::lingering;
  notify_close(code, reason);
  if (state_ == state::closed) return;  // terminated from on_close
  linger(false);  // the exchange is complete: nothing more will arrive
}

void websocket::fail(protocol::error err) {
  // Fail the connection (RFC 6455 §7.1.7): the close code for the rule broken, then TCP.
  const std::uint16_t code = protocol::to_underlying(protocol::close_code_for(err));
  const std::string_view reason = protocol::describe(err);
  if (state_ == state::open) {
    char frame[protocol::message_writer::k_max_close_frame_size];
    const std::size_t n =
        protocol::message_writer(protocol::role::server).write_close(frame, code, reason);
    before_write();
    stream_.send(bytes_of(frame, n));
    close_sent_ = code;
  }
  state_ = state::lingering;
  notify_close(code, reason);
  if (state_ == state::closed) return;  // terminated from on_close
  linger(true);  // the peer may still be sending: read until its FIN
}

void websocket::notify_close(std::uint16_t code, std::string_view reason) {
  if (!close_pending_) return;
  close_pending_ = false;
  if (behavior_->on_close) behavior_->on_close(*this, code, reason);
}

send_status websocket::send(std::string_view payload, opcode op) {
  assert(op == opcode::text || op == opcode::binary);
  before_write();
  const send_status status = event_stream_                      ? send_chunk(payload)
                             : wants_compression(payload.size()) ? send_compressed(op, payload)
                                                                 : send_frame(op, payload);
  if (status != send_status::dropped) ctx_->count_sent(1, payload.size());
  return status;
}

send_status websocket::send_frame(opcode op, std::string_view payload) {
  if (state_ != state::open) return send_status::dropped;
  if (over_backpressure()) return send_status::dropped;
  char header[protocol::k_max_frame_header_size];
  protocol::frame_header h;
  h.op = op;
  h.length = payload.size();
  const std::size_t n = protocol::encode_frame_header(h, header);
  return from_net(stream_.send({bytes_of(header, n), bytes_of(payload.data(), payload.size())}));
}

void websocket::flush_topic_batch() { ctx_->flush_batch_for(*this); }

bool websocket::admit_send() { return state_ == state::open && !over_backpressure(); }

send_status websocket::write_admitted(std::span<const std::byte> framed) {
  return from_net(stream_.send(framed));
}

send_status websocket::write_admitted(const net::staged_bytes& framed) {
  return from_net(stream_.send(framed));
}

bool websocket::over_backpressure() {
  // Checked before queueing, so one message of any size always fits on top
  // of max_backpressure and memory stays bounded by the cap plus one message.
  if (stream_.buffered_bytes() <= ctx_->options().max_backpressure) {
    // The server-wide bound (outbound.cpp), asked only by connections that
    // already have a queue: readers that keep up never pay for it.
    return ctx_->options().max_outbound_memory != 0 && stream_.write_blocked() &&
           ctx_->outbound_over_limit(*this);
  }
  ctx_->count_backpressure_drop();
  if (ctx_->options().policy == backpressure_policy::close) {
    close(protocol::to_underlying(protocol::close_code::policy_violation), "backpressure limit");
  }
  return true;
}

send_status websocket::ping(std::string_view payload) {
  if (state_ != state::open) return send_status::dropped;
  if (event_stream_) {
    // An SSE comment line: ":" payload "\n\n" (ignored by EventSource).
    char comment[protocol::k_max_control_payload + 3];
    const std::size_t n = std::min(payload.size(), protocol::k_max_control_payload);
    comment[0] = ':';
    std::copy_n(payload.data(), n, comment + 1);
    comment[n + 1] = '\n';
    comment[n + 2] = '\n';
    before_write();
    return send_chunk({comment, n + 3});
  }
  char frame[protocol::message_writer::max_frame_size(protocol::k_max_control_payload)];
  const std::size_t n = protocol::message_writer(protocol::role::server).write_ping(frame, payload);
  before_write();
  return from_net(stream_.send(bytes_of(frame, n)));
}

void websocket::close(std::uint16_t code, std::string_view reason) {
  if (state_ != state::open) return;  // already closing or closed
  if (event_stream_) return close_event_stream(code, reason);
  char frame[protocol::message_writer::k_max_close_frame_size];
  const std::size_t n = protocol::message_writer(protocol::role::server).write_close(frame, code, reason);
  before_write();
  stream_.send(bytes_of(frame, n));
  close_sent_ = code == 0 ? protocol::to_underlying(protocol::close_code::no_status) : code;
  state_ = state::closing;
  // Wait for the peer's close (RFC 6455 §7.1.2), but not forever.
  if (ctx_->options().close_timeout.count() > 0) {
    ctx_->loop().timers().schedule(timer_, ctx_->options().close_timeout);
  } else {
    timer_.cancel();
  }
}

void websocket::terminate() noexcept {
  if (state_ == state::closed) return;
  state_ = state::closed;
  stream_.close();
  timer_.cancel();
  notify_close(protocol::to_underlying(protocol::close_code::abnormal), {});
  ctx_->retire(*this);
}

void websocket::on_close(net::transport&, std::error_code error) {
  // The stream has closed itself: peer FIN or close_notify, reset, write
  // error, or (TLS) a failed handshake — plain HTTP on the TLS port
  // included; the TLS context counts those and the hook logs them.
  const bool tls_failed = error && stream_.is_tls() && !stream_.handshake_complete();
  if (tls_failed) {
    const auto& hook = ctx_->options().on_tls_handshake_error;
    if (hook) hook(error, stream_.last_error_text());
  }
  // A keep-alive client that leaves between requests is no failure.
  if ((state_ == state::handshake && !http_idle()) || state_ == state::upgrading) {
    ctx_->count_handshake_failure(
        tls_failed ? handshake_failure::tls_handshake : handshake_failure::peer_closed, 0);
  }
  state_ = state::closed;
  timer_.cancel();
  notify_close(protocol::to_underlying(protocol::close_code::abnormal), {});
  ctx_->retire(*this);
}

void websocket::on_drained(net::transport&) {
  if (state_ == state::lingering) {
    if (!write_shut_) after_flush();
  } else if (state_ == state::open && behavior_ != nullptr && behavior_->on_drain) {
    behavior_->on_drain(*this);
  } else if (state_ == state::handshake && (has_handshake_ || parked_stream_)) {
    on_http_drained();
  }
}

void websocket::linger(bool wait_for_fin) {
  // The server closes TCP first (RFC 6455 §7.1.1), but only after our last
  // bytes left: act after this iteration's flush (a zero-delay timer fires
  // in the next iteration), or after on_drained if the socket was full.
  state_ = state::lingering;
  linger_armed_ = false;
  wait_for_fin_ = wait_for_fin;
  ctx_->loop().timers().schedule(timer_, std::chrono::milliseconds{0});
}

void websocket::after_flush() {
  if (!wait_for_fin_) {
    // Close handshake complete: nothing more may arrive, so closing now
    // cannot turn unread input into a reset. Over TLS the peer gets a
    // close_notify first (written at once: nothing is blocked here), so it
    // sees an orderly end rather than a truncation.
    if (stream_.is_tls()) {
      stream_.shutdown_write();
      if (stream_.write_blocked()) {
        // The kernel refused part of it: closing now would drop the rest.
        // Read until the peer ends (its close_notify or FIN); the linger
        // deadline bounds the wait.
        write_shut_ = true;
        return;
      }
    }
    terminate();
    return;
  }
  // Unread input at close() would make the kernel send a reset that can
  // destroy our last bytes in flight: half-close (TLS: close_notify first)
  // and read until the peer's FIN.
  write_shut_ = true;
  stream_.shutdown_write();
}

void websocket::on_timer() {
  const auto& opts = ctx_->options();
  switch (state_) {
    case state::handshake:
      // A keep-alive connection that waited long enough for a next request
      // that never came: closed quietly (it asked nothing).
      if (http_idle()) {
        terminate();
        return;
      }
      [[fallthrough]];
    case state::upgrading:
      // Handshake timeout: a slowloris client gets no answer.
      drop_handshake(handshake_failure::handshake_timeout);
      return;
    case state::closing:
      if (event_stream_) return on_event_stream_timer();
      terminate();  // the peer never answered our close frame
      return;
    case state::lingering:
      if (linger_armed_) {
        terminate();  // the peer never closed its side
        return;
      }
      linger_armed_ = true;
      if (!stream_.write_blocked()) {
        after_flush();  // else on_drained does it
        if (state_ == state::closed) return;
      }
      ctx_->loop().timers().schedule(
          timer_, opts.close_timeout.count() > 0 ? opts.close_timeout : k_default_linger);
      return;
    case state::closed:
      return;
    case state::open:
      if (event_stream_) return on_event_stream_timer();
      break;
  }
  const std::uint32_t now = now_ms();
  const auto idle = static_cast<std::uint32_t>(opts.idle_timeout.count());
  if (idle > 0 && now - last_receive_ >= idle) {
    close(protocol::to_underlying(protocol::close_code::going_away), "idle timeout");
    return;
  }
  const auto interval = static_cast<std::uint32_t>(opts.ping_interval.count());
  const auto pong = static_cast<std::uint32_t>(opts.pong_timeout.count());
  if (interval > 0) {
    if (awaiting_pong_) {
      if (pong > 0 && now - ping_sent_ >= pong) {
        close(protocol::to_underlying(protocol::close_code::policy_violation), "pong timeout");
        // A peer that let a ping go unanswered this long is most likely gone:
        // wait for its close frame no longer than it had for the pong, so the
        // application hears of a dead peer after ping_interval + 2 x pong_timeout.
        if (state_ == state::closing && pong < static_cast<std::uint32_t>(opts.close_timeout.count())) {
          ctx_->loop().timers().schedule(timer_, opts.pong_timeout);
        }
        return;
      }
    } else if (now - last_receive_ >= interval) {
      // Quiet for a while: drop our compression history (~262 KiB). The
      // next message starts afresh, which any peer decodes (a sender may
      // always stop referring to its history); the inflater must stay.
      if (codec_ && deflate_takeover_) codec_->deflate.release();
      ping();
      awaiting_pong_ = true;
      ping_sent_ = now;
    }
  }
  schedule_keepalive();
}

void websocket::schedule_keepalive() {
  // One timer for idle, ping and pong: the earliest of their deadlines.
  // Received bytes only move last_receive_, so an early wake-up just recomputes.
  const auto& opts = ctx_->options();
  const std::uint32_t now = now_ms();
  std::int64_t next = -1;
  auto consider = [&](std::uint32_t since, std::int64_t limit) {
    const std::int64_t left = limit - static_cast<std::int64_t>(now - since);
    const std::int64_t delay = std::max<std::int64_t>(left, 0);
    if (next < 0 || delay < next) next = delay;
  };
  if (opts.idle_timeout.count() > 0) consider(last_receive_, opts.idle_timeout.count());
  if (opts.ping_interval.count() > 0) {
    if (!awaiting_pong_) {
      consider(last_receive_, opts.ping_interval.count());
    } else if (opts.pong_timeout.count() > 0) {
      consider(ping_sent_, opts.pong_timeout.count());
    }
  }
  if (next < 0) {
    timer_.cancel();
  } else {
    ctx_->loop().timers().schedule(timer_, std::chrono::milliseconds{next});
  }
}

}  // namespace switchboard::server
