// tcp_stream.hpp — a connected TCP socket on an event loop: reads into the
// loop's shared receive buffer, writes through the loop's write cork, and keeps
// only what the kernel refuses (backpressure).
//
// Reading. Level-triggered: on each readiness report the stream does one recv
// into the loop's receive buffer and passes the bytes to on_data(). The bytes
// are mutable (a protocol may unmask in place) and valid only during the call.
//
// Writing. send() copies small writes into the loop's cork; the loop flushes
// every stream it was used for once per iteration, one sendmsg each (see
// write_cork.hpp for how interleaved writes to many streams stay ordered).
// Writes of k_direct_write_min bytes or more skip the copy: they go to the kernel
// at once, preceded by whatever the stream had corked. Replies (epoll): small
// writes a stream is sent while its own on_data() runs gather in the loop's
// reply window instead and are written with one send() as soon as on_data()
// returns (an echo, a request's answer: one write per read as through the
// cork, without the flush list) — when nothing else went through the cork
// in this iteration, before or during on_data(), and nothing was refused;
// otherwise they join the cork, in order, as any write would. Whatever the kernel does
// not take is copied into the stream's own buffer, EPOLLOUT is armed, and it is
// written as the socket drains; send() then returns send_status::backpressure,
// later sends queue behind it, and on_drained() fires when it is all written.
// buffered_bytes() counts every byte accepted by send() and not yet handed to
// the kernel; a server enforces its cap by checking it. The buffer's memory is
// released once drained, so an idle stream owns no buffer. The loop sums the
// refused bytes of all its streams (event_loop::held_write_bytes()).
//
// Memory. The refused bytes and their bookkeeping are one heap block that
// exists only while write_blocked(); a pending write error is kept as its errno
// value. An open, idle stream is 80 bytes and owns no heap memory.
//
// Errors. A write error (EPIPE, ECONNRESET, ...) never calls back from inside
// send() or the cork flush: the stream records it, drops its buffered bytes,
// shuts the socket down — which makes epoll report it — and on the next
// iteration closes and calls on_close(error). Reads report end of stream as
// on_close({}) and errors as on_close(error), after closing; bytes still
// buffered for a peer that closed are dropped.
//
// Thread-safety: none; a stream is used on its loop's thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <system_error>

#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/export.hpp"
#include "switchboard/net/io_handler.hpp"
#include "switchboard/net/write_cork.hpp"

namespace switchboard::net {

class tcp_stream;

// What a stream tells its owner. Reentrancy: each callback may send, close()
// the stream, or destroy it (and other streams of the loop).
class SWITCHBOARD_NET_EXPORT stream_handler {
 public:
  // `data` arrived; it lives in the loop's receive buffer until the call returns.
  virtual void on_data(tcp_stream& stream, std::span<std::byte> data) = 0;
  // The kernel had refused bytes (write_blocked() was true: after a send() that
  // returned send_status::backpressure, or an end-of-iteration flush that met a
  // full socket) and has now taken all of them.
  virtual void on_drained(tcp_stream& stream);
  // The stream closed itself: `error` is empty after an orderly end of stream
  // from the peer, else what went wrong. Not called after the owner's close().
  virtual void on_close(tcp_stream& stream, std::error_code error) = 0;

 protected:
  stream_handler() noexcept = default;
  stream_handler(const stream_handler&) = default;
  stream_handler& operator=(const stream_handler&) = default;
  ~stream_handler() = default;
};

enum class send_status {
  ok,            // accepted (corked or written); the stream is not write-blocked. The
                 // end-of-iteration flush may still meet a full socket: see on_drained().
  backpressure,  // accepted, but bytes are waiting for the socket to drain
  dropped,       // not accepted: the stream is closed or has failed
};

class SWITCHBOARD_NET_EXPORT tcp_stream final : private io_handler, private cork_sink {
 public:
  // Writes at least this large bypass the cork (no copy of the payload).
  static constexpr std::size_t k_direct_write_min = 16 * 1024;

  // A closed stream bound to `loop`, reporting to `handler`.
  tcp_stream(event_loop& loop, stream_handler& handler) noexcept;
  // Closes the stream (no on_close). Safe from within this stream's callbacks.
  ~tcp_stream();

  // Takes ownership of a connected, non-blocking socket and starts reading.
  // Errors: from epoll_ctl; the socket is closed then.
  // REQUIRES: !is_open().
  std::error_code open(unique_fd socket);

  [[nodiscard]] bool is_open() const noexcept { return fd_.get() >= 0; }
  [[nodiscard]] int native_handle() const noexcept { return fd_.get(); }
  [[nodiscard]] event_loop& loop() const noexcept { return *loop_; }

  // Sends `data` (or the concatenation of `parts`) after everything sent before.
  // The bytes are copied or written before returning; the caller keeps its buffer.
  send_status send(std::span<const std::byte> data);
  send_status send(std::initializer_list<std::span<const std::byte>> parts);
  // Sends bytes staged in this loop's cork in this iteration (write_cork::stage)
  // after everything sent before, by reference: no copy unless the stream is
  // write-blocked (then they are copied behind the refused bytes). Whatever
  // their size, they leave with the end-of-iteration flush.
  send_status send(const staged_bytes& bytes);

  // Bytes accepted by send() and not yet taken by the kernel (corked + refused).
  [[nodiscard]] std::size_t buffered_bytes() const noexcept;
  // True while bytes refused by the kernel wait for EPOLLOUT.
  [[nodiscard]] bool write_blocked() const noexcept { return backlog_ != nullptr; }

  // Closes the socket now; buffered bytes are dropped; no on_close. Idempotent.
  void close() noexcept;

 private:
  // What the kernel refused, in one allocation that exists only while bytes
  // wait for EPOLLOUT (defined in tcp_stream.cpp).
  struct backlog;
  struct SWITCHBOARD_NET_EXPORT backlog_deleter {
    void operator()(backlog* b) const noexcept;
  };

  void on_events(std::uint32_t events) override;
  void on_received(std::span<std::byte> data, int error) override;
  void on_sent(std::span<const iovec> data, std::size_t total, int result) override;
  void flush_corked(std::span<const iovec> data, std::size_t total) override;

  send_status send_parts(std::span<const std::span<const std::byte>> parts);
  void write_or_buffer(std::span<const iovec> data, std::size_t total);
  void keep_unwritten(std::span<const iovec> data, std::size_t written, std::size_t total);
  std::byte* backlog_append_space(std::size_t size);  // room for `size` more bytes, to fill
  void drop_backlog() noexcept;  // frees the backlog, uncounting its bytes from the loop
  // The loop's reply window (event_loop::replies), if this stream owns it:
  // moves its bytes into the cork (before any that follow) / drops them.
  void spill_replies();
  void drop_replies() noexcept;
  void write_replies();  // REQUIRES: owns the window; writes it, gives it up
  [[nodiscard]] bool write_pending();  // false if the stream closed and notified
  void set_write_interest(bool on);
  void fail(std::error_code error) noexcept;
  void close_and_notify(std::error_code error);
  [[nodiscard]] send_status status_after_write() const noexcept;
  [[nodiscard]] bool failed() const noexcept { return failure_ != 0; }

  // An idle stream is 80 bytes: the two vtable pointers, the cork links, these
  // fields and no buffer. Backpressure state lives behind backlog_.
  event_loop* loop_;
  stream_handler* handler_;
  unique_fd fd_;
  // Packed into the word after fd_: a write error waiting to be reported (its
  // errno value, 0 for none; every error here comes from a system call) and
  // whether EPOLLOUT is in the interest set (EPOLLIN | EPOLLRDHUP always are).
  std::uint32_t failure_ : 31 = 0;
  std::uint32_t want_write_ : 1 = 0;
  std::unique_ptr<backlog, backlog_deleter> backlog_;  // non-null iff write_blocked()
  detail::lifetime_flag lifetime_;
};

}  // namespace switchboard::net
