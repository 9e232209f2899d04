// transport.cpp — forwarding to the stream of the transport's mode, the TLS
// block, and the TCP half-close after the cork flush (see transport.hpp).
#include "switchboard/net/transport.hpp"

#include <sys/socket.h>

#include <cassert>
#include <memory>
#include <new>

namespace switchboard::net {

// The TLS mode's heap block: the stream, and the relay that turns its
// callbacks into the owner's (tls_stream reports to a tls_stream_handler; the
// transport itself is a stream_handler only, which keeps a plain transport
// one vtable pointer smaller).
struct transport::tls_block final : tls_stream_handler {
  tls_block(transport& owner_transport, event_loop& loop, tls_context& context) noexcept
      : owner(&owner_transport), stream(loop, *this, context) {}

  // Each forwards as its last act: the owner may destroy the transport, and
  // this block with it, inside the call.
  void on_handshake(tls_stream& /*stream*/) override { owner->handler_->on_handshake(*owner); }
  void on_data(tls_stream& /*stream*/, std::span<std::byte> data) override {
    owner->handler_->on_data(*owner, data);
  }
  void on_drained(tls_stream& /*stream*/) override { owner->handler_->on_drained(*owner); }
  void on_close(tls_stream& /*stream*/, std::error_code error) override {
    owner->handler_->on_close(*owner, error);
  }

  transport* owner;
  tls_stream stream;
};

void transport::tls_block_deleter::operator()(tls_block* block) const noexcept {
  delete block;
}

// A zero-delay timer: it fires at the start of the next iteration, after the
// end-of-iteration cork flush that hands this iteration's bytes to the kernel.
struct transport::flush_wait {
  explicit flush_wait(transport& owner_transport) noexcept : owner(&owner_transport) {
    timer.bind<&flush_wait::fire>(this);
  }
  void fire() { owner->after_flush(); }  // destroys *this (allowed from a timer callback)

  transport* owner;
  timer_node timer;  // cancelled by its destructor if the transport goes first
};

void transport::flush_wait_deleter::operator()(flush_wait* wait) const noexcept {
  delete wait;
}

void transport_handler::on_handshake(transport& /*t*/) {}
void transport_handler::on_drained(transport& /*t*/) {}

transport::transport(event_loop& loop, transport_handler& handler, tls_context* tls) noexcept
    : handler_(&handler) {
  construct(loop, tls);
}

transport::~transport() {
  destroy();
}

void transport::construct(event_loop& loop, tls_context* tls) noexcept {
  tls_mode_ = tls != nullptr;
  if (tls_mode_) {
    std::construct_at(&tls_, tls_state{nullptr, &loop, tls});
  } else {
    std::construct_at(&tcp_, loop, static_cast<stream_handler&>(*this));
  }
}

void transport::destroy() noexcept {
  flush_wait_.reset();
  write_shut_ = shut_on_drain_ = false;
  if (tls_mode_) {
    std::destroy_at(&tls_);
  } else {
    std::destroy_at(&tcp_);
  }
}

void transport::set_tls(tls_context* tls) noexcept {
  assert(!is_open() && "transport::set_tls on an open transport");
  if (tls_mode_ ? tls == tls_.context : tls == nullptr) return;
  // Destroying the stream inside its own on_close is safe (the streams
  // guarantee it), and so is building the next one in the same storage: the
  // old stream touches nothing of itself once its callback returns.
  event_loop& on = loop();
  destroy();
  construct(on, tls);
}

std::error_code transport::open(unique_fd socket, std::string_view server_name) {
  if (!tls_mode_) {
    assert(!tcp_.is_open() && "transport::open on an open transport");
    flush_wait_.reset();
    write_shut_ = shut_on_drain_ = false;
    return tcp_.open(std::move(socket));
  }
  if (!tls_.block) {
    // Allocated once, on first use, and kept across reopening: the stream
    // keeps last_error_text() after a close, for the owner's log.
    tls_.block.reset(new (std::nothrow) tls_block(*this, *tls_.loop, *tls_.context));
    if (!tls_.block) return std::make_error_code(std::errc::not_enough_memory);
  }
  return tls_.block->stream.open(std::move(socket), server_name);
}

bool transport::is_open() const noexcept {
  if (!tls_mode_) return tcp_.is_open();
  return tls_.block && tls_.block->stream.is_open();
}

int transport::native_handle() const noexcept {
  if (!tls_mode_) return tcp_.native_handle();
  return tls_.block ? tls_.block->stream.native_handle() : -1;
}

event_loop& transport::loop() const noexcept {
  return tls_mode_ ? *tls_.loop : tcp_.loop();
}

send_status transport::send(std::span<const std::byte> data) {
  if (tls_mode_) return tls_.block ? tls_.block->stream.send(data) : send_status::dropped;
  if (write_shut_) return send_status::dropped;  // the write side is (being) shut
  return tcp_.send(data);
}

send_status transport::send(const staged_bytes& bytes) {
  if (tls_mode_) {
    if (!tls_.block) return send_status::dropped;
    return tls_.block->stream.send(tls_.loop->cork().view(bytes));
  }
  if (write_shut_) return send_status::dropped;
  return tcp_.send(bytes);
}

send_status transport::send(std::initializer_list<std::span<const std::byte>> parts) {
  if (tls_mode_) return tls_.block ? tls_.block->stream.send(parts) : send_status::dropped;
  if (write_shut_) return send_status::dropped;
  return tcp_.send(parts);
}

std::size_t transport::buffered_bytes() const noexcept {
  if (!tls_mode_) return tcp_.buffered_bytes();
  return tls_.block ? tls_.block->stream.buffered_bytes() : 0;
}

bool transport::write_blocked() const noexcept {
  if (!tls_mode_) return tcp_.write_blocked();
  return tls_.block && tls_.block->stream.write_blocked();
}

void transport::shutdown_write() {
  if (tls_mode_) {
    if (tls_.block) tls_.block->stream.shutdown_write();
    return;
  }
  if (!tcp_.is_open() || write_shut_) return;
  write_shut_ = true;
  if (tcp_.write_blocked()) {
    shut_on_drain_ = true;  // on_drained half-closes once the kernel took the rest
  } else if (tcp_.buffered_bytes() == 0) {
    half_close_tcp();
  } else {
    // Bytes are corked: tcp_stream hands them to the kernel in the loop's
    // end-of-iteration flush, and has no way to flush them earlier.
    flush_wait_.reset(new flush_wait(*this));
    tcp_.loop().timers().schedule(flush_wait_->timer, std::chrono::milliseconds{0});
  }
}

void transport::after_flush() {
  flush_wait_.reset();
  if (!tcp_.is_open()) return;
  // Sends were dropped since shutdown_write(), so the flush emptied the cork:
  // what is left, if anything, was refused by the kernel.
  assert(tcp_.write_blocked() || tcp_.buffered_bytes() == 0);
  if (tcp_.write_blocked()) {
    shut_on_drain_ = true;
  } else {
    half_close_tcp();
  }
}

void transport::half_close_tcp() noexcept {
  // The peer sees end of stream after our last byte. A failure (ENOTCONN
  // after a reset) needs no handling here: reading reports the reset.
  ::shutdown(tcp_.native_handle(), SHUT_WR);
}

void transport::close() noexcept {
  if (tls_mode_) {
    if (tls_.block) tls_.block->stream.close();
    return;
  }
  flush_wait_.reset();
  write_shut_ = shut_on_drain_ = false;
  tcp_.close();
}

bool transport::handshake_complete() const noexcept {
  if (!tls_mode_) return tcp_.is_open();
  return tls_.block && tls_.block->stream.handshake_complete();
}

std::string_view transport::alpn_protocol() const noexcept {
  return tls_mode_ && tls_.block ? tls_.block->stream.alpn_protocol() : std::string_view{};
}

std::string_view transport::protocol_version() const noexcept {
  return tls_mode_ && tls_.block ? tls_.block->stream.protocol_version() : std::string_view{};
}

std::string_view transport::server_name() const noexcept {
  return tls_mode_ && tls_.block ? tls_.block->stream.server_name() : std::string_view{};
}

std::string transport::peer_subject() const {
  return tls_mode_ && tls_.block ? tls_.block->stream.peer_subject() : std::string{};
}

std::string_view transport::last_error_text() const noexcept {
  return tls_mode_ && tls_.block ? std::string_view(tls_.block->stream.last_error_text())
                                 : std::string_view{};
}

tls_stream* transport::tls() const noexcept {
  return tls_mode_ && tls_.block ? &tls_.block->stream : nullptr;
}

void transport::on_data(tcp_stream& /*stream*/, std::span<std::byte> data) {
  handler_->on_data(*this, data);
}

void transport::on_drained(tcp_stream& /*stream*/) {
  if (shut_on_drain_) {
    shut_on_drain_ = false;
    half_close_tcp();
  }
  handler_->on_drained(*this);
}

void transport::on_close(tcp_stream& /*stream*/, std::error_code error) {
  flush_wait_.reset();  // the socket is gone: nothing left to half-close
  shut_on_drain_ = false;
  handler_->on_close(*this, error);
}

// A plain transport: the tcp_stream, the vtable pointer that makes it the
// stream's handler, the owner, the half-close wait and the flags.
static_assert(sizeof(transport) <= sizeof(tcp_stream) + 4 * sizeof(void*),
              "a plain transport should add at most 32 bytes to its tcp_stream");

}  // namespace switchboard::net
