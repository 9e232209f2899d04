// tcp_stream.cpp — reading into the loop buffer, writing through the cork,
// backpressure, and deferred error reporting (see tcp_stream.hpp).
#include "switchboard/net/tcp_stream.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <new>
#include <utility>

#include "switchboard/net/tcp_socket.hpp"

namespace switchboard::net {

// The bytes the kernel refused, from `head` (the first one not yet written) to
// `size`, in the `capacity` bytes that follow this header in the same block.
// It exists only while write_blocked(): created when a write comes up short,
// freed as soon as the socket has taken the last byte (or on failure, close).
struct tcp_stream::backlog {
  std::size_t head;
  std::size_t size;
  std::size_t capacity;

  [[nodiscard]] std::byte* bytes() noexcept { return reinterpret_cast<std::byte*>(this + 1); }
  [[nodiscard]] std::size_t unwritten() const noexcept { return size - head; }

  // Header and room for `capacity` bytes (none written yet).
  static backlog* allocate(std::size_t capacity) {
    void* memory = ::operator new(sizeof(backlog) + capacity);
    return ::new (memory) backlog{0, 0, capacity};
  }
};

void tcp_stream::backlog_deleter::operator()(backlog* b) const noexcept {
  b->~backlog();
  ::operator delete(static_cast<void*>(b));
}

void stream_handler::on_drained(tcp_stream& /*stream*/) {}

tcp_stream::tcp_stream(event_loop& loop, stream_handler& handler) noexcept
    : loop_(&loop), handler_(&handler) {}

tcp_stream::~tcp_stream() {
  close();
}

std::error_code tcp_stream::open(unique_fd socket) {
  assert(!is_open() && "tcp_stream::open on an open stream");
  assert(loop_->in_loop_thread());
  failure_ = 0;
  want_write_ = 0;
  if (loop_->completion_io()) {
    // io_uring: bytes arrive as completions (on_received); readiness is
    // watched only for EPOLLOUT while write-blocked.
    if (auto error = loop_->add(socket.get(), 0, *this)) return error;
    if (auto error = loop_->start_receive(socket.get())) {
      loop_->remove(socket.get(), *this);
      return error;
    }
    fd_ = std::move(socket);
    return {};
  }
  if (auto error = loop_->add(socket.get(), EPOLLIN | EPOLLRDHUP, *this)) return error;
  fd_ = std::move(socket);
  return {};
}

void tcp_stream::close() noexcept {
  if (!is_open()) return;
  loop_->remove(fd_.get(), *this);
  loop_->cork().discard(*this);
  drop_replies();
  drop_backlog();
  failure_ = 0;
  want_write_ = 0;
  fd_.reset();
}

std::size_t tcp_stream::buffered_bytes() const noexcept {
  const event_loop::reply_window& replies = loop_->replies();
  return write_cork::corked_bytes(*this) + (backlog_ ? backlog_->unwritten() : 0) +
         (replies.owner == this ? replies.size : 0);
}

void tcp_stream::spill_replies() {
  event_loop::reply_window& replies = loop_->replies();
  if (replies.owner != this) return;
  replies.owner = nullptr;
  const std::size_t size = std::exchange(replies.size, 0);
  if (size != 0) loop_->cork().append(*this, std::span<const std::byte>(replies.bytes, size));
}

void tcp_stream::drop_replies() noexcept {
  event_loop::reply_window& replies = loop_->replies();
  if (replies.owner != this) return;
  replies.owner = nullptr;
  replies.size = 0;
}

send_status tcp_stream::send(std::span<const std::byte> data) {
  const std::span<const std::byte> parts[] = {data};
  return send_parts(parts);
}

send_status tcp_stream::send(std::initializer_list<std::span<const std::byte>> parts) {
  return send_parts({parts.begin(), parts.size()});
}

send_status tcp_stream::send(const staged_bytes& bytes) {
  assert(loop_->in_loop_thread() && "tcp_stream::send called from another thread");
  if (!is_open() || failed()) return send_status::dropped;
  if (write_blocked()) {
    // Queued behind the refused bytes, like any other send.
    const std::span<const std::byte> view = loop_->cork().view(bytes);
    if (!view.empty()) std::memcpy(backlog_append_space(view.size()), view.data(), view.size());
    return send_status::backpressure;
  }
  spill_replies();  // they came first
  loop_->cork().append(*this, bytes);
  return send_status::ok;
}

send_status tcp_stream::status_after_write() const noexcept {
  if (failed()) return send_status::dropped;
  return write_blocked() ? send_status::backpressure : send_status::ok;
}

send_status tcp_stream::send_parts(std::span<const std::span<const std::byte>> parts) {
  assert(loop_->in_loop_thread() && "tcp_stream::send called from another thread");
  if (!is_open() || failed()) return send_status::dropped;
  std::size_t total = 0;
  for (const auto& part : parts) total += part.size();
  if (write_blocked()) {
    // The kernel has not taken earlier bytes yet: these queue behind them.
    std::byte* out = backlog_append_space(total);
    for (const auto& part : parts) {
      if (part.empty()) continue;
      std::memcpy(out, part.data(), part.size());
      out += part.size();
    }
    return send_status::backpressure;
  }
  event_loop::reply_window& replies = loop_->replies();
  if (replies.owner == this) {
    if (total <= event_loop::reply_window::k_capacity - replies.size) {
      std::byte* out = replies.bytes + replies.size;
      for (const auto& part : parts) {
        if (part.empty()) continue;
        std::memcpy(out, part.data(), part.size());
        out += part.size();
      }
      replies.size += total;
      return send_status::ok;
    }
    spill_replies();  // full: from here on the cork takes them, in order
  }
  if (total >= k_direct_write_min) {
    // Large: write it now, behind what this stream corked earlier in the
    // iteration, instead of copying it into the arena.
    const std::size_t corked = write_cork::corked_bytes(*this);
    const std::span<const iovec> data = loop_->cork().take(*this, parts);
    write_or_buffer(data, corked + total);
    return status_after_write();
  }
  for (const auto& part : parts) loop_->cork().append(*this, part);
  return send_status::ok;
}

void tcp_stream::drop_backlog() noexcept {
  if (!backlog_) return;
  loop_->count_held_write_bytes(-static_cast<std::ptrdiff_t>(backlog_->unwritten()));
  backlog_.reset();
}

std::byte* tcp_stream::backlog_append_space(std::size_t size) {
  backlog* b = backlog_.get();
  assert(b != nullptr);
  if (b->capacity - b->size < size) {
    const std::size_t live = b->unwritten();
    if (live + size <= b->capacity && b->head >= live) {
      // Enough room once the written prefix is dropped, and moving the live
      // bytes costs no more than what was written since they last moved.
      std::memmove(b->bytes(), b->bytes() + b->head, live);
    } else {
      backlog* grown = backlog::allocate(std::max(live + size, 2 * b->capacity));
      std::memcpy(grown->bytes(), b->bytes() + b->head, live);
      backlog_.reset(grown);
      b = grown;
    }
    b->head = 0;
    b->size = live;
  }
  std::byte* out = b->bytes() + b->size;
  b->size += size;
  loop_->count_held_write_bytes(static_cast<std::ptrdiff_t>(size));
  return out;
}

void tcp_stream::flush_corked(std::span<const iovec> data, std::size_t total) {
  if (failed()) return;  // already failed: the bytes are dropped
  if (loop_->completion_io() && data.size() <= k_max_iov) {
    // Submitted with every other stream's at the end of the flush; the
    // result comes back in on_sent, still within the flush.
    return loop_->queue_send(fd_.get(), data, total, *this);
  }
  write_or_buffer(data, total);
}

void tcp_stream::on_sent(std::span<const iovec> data, std::size_t total, int result) {
  if (result < 0 && result != -EAGAIN && result != -EWOULDBLOCK) return fail(errno_code(-result));
  const auto written = static_cast<std::size_t>(std::max(result, 0));
  if (written < total) {
    keep_unwritten(data, written, total);
    set_write_interest(true);
  }
}

void tcp_stream::on_received(std::span<std::byte> data, int error) {
  if (failed()) return close_and_notify(errno_code(static_cast<int>(failure_)));
  if (!data.empty()) return handler_->on_data(*this, data);
  close_and_notify(error != 0 ? errno_code(error) : std::error_code{});  // end of stream or error
}

void tcp_stream::write_or_buffer(std::span<const iovec> data, std::size_t total) {
  assert(!write_blocked() && "bytes would overtake ones the kernel refused");
  std::size_t written = 0;
  std::size_t index = 0;
  while (index < data.size()) {
    const auto chunk = data.subspan(index, std::min(data.size() - index, k_max_iov));
    std::size_t chunk_bytes = 0;
    for (const iovec& v : chunk) chunk_bytes += v.iov_len;
    const io_result result = write_some(fd_.get(), chunk);
    if (result.error) {
      if (!result.would_block()) return fail(result.error);
      break;
    }
    written += result.bytes;
    if (result.bytes < chunk_bytes) break;  // the socket buffer is full
    index += chunk.size();
  }
  if (written < total) {
    keep_unwritten(data, written, total);
    set_write_interest(true);
  }
}

void tcp_stream::keep_unwritten(std::span<const iovec> data, std::size_t written,
                                std::size_t total) {
  backlog_.reset(backlog::allocate(total - written));
  std::byte* out = backlog_->bytes();
  std::size_t skip = written;
  for (const iovec& v : data) {
    if (skip >= v.iov_len) {
      skip -= v.iov_len;
      continue;
    }
    const std::size_t n = v.iov_len - skip;
    std::memcpy(out, static_cast<const std::byte*>(v.iov_base) + skip, n);
    out += n;
    skip = 0;
  }
  backlog_->size = static_cast<std::size_t>(out - backlog_->bytes());
  assert(backlog_->size == total - written);
  loop_->count_held_write_bytes(static_cast<std::ptrdiff_t>(backlog_->size));
}

void tcp_stream::set_write_interest(bool on) {
  if (want_write_ == (on ? 1u : 0u)) return;
  const std::uint32_t read_events = loop_->completion_io() ? 0 : EPOLLIN | EPOLLRDHUP;
  const std::uint32_t events = read_events | (on ? std::uint32_t{EPOLLOUT} : 0);
  if (auto error = loop_->modify(fd_.get(), events, *this)) return fail(error);
  want_write_ = on ? 1 : 0;
}

void tcp_stream::fail(std::error_code error) noexcept {
  if (failed()) return;
  // Every error recorded here is an errno from a system call: it is kept as
  // the number and rebuilt with errno_code() when reported.
  assert(error.category() == std::system_category() && error.value() > 0);
  failure_ = static_cast<std::uint32_t>(error.value()) & 0x7fff'ffffu;
  loop_->cork().discard(*this);
  drop_replies();
  drop_backlog();
  // Do not call back from here (we are inside send() or the cork flush).
  // Shutting the socket down makes epoll report EPOLLHUP for it on the next
  // iteration, whatever the interest set; on_events then reports `error`.
  ::shutdown(fd_.get(), SHUT_RDWR);
}

bool tcp_stream::write_pending() {
  backlog& b = *backlog_;
  const io_result result = write_some(fd_.get(), std::span<const std::byte>(b.bytes() + b.head,
                                                                           b.unwritten()));
  if (result.error) {
    if (result.would_block()) return true;
    close_and_notify(result.error);
    return false;
  }
  b.head += result.bytes;
  loop_->count_held_write_bytes(-static_cast<std::ptrdiff_t>(result.bytes));
  if (b.head == b.size) {
    backlog_.reset();  // an idle stream keeps no buffer
    set_write_interest(false);
  }
  return true;
}

void tcp_stream::close_and_notify(std::error_code error) {
  stream_handler* handler = handler_;
  close();
  handler->on_close(*this, error);  // may destroy *this
}

void tcp_stream::on_events(std::uint32_t events) {
  if (failed()) return close_and_notify(errno_code(static_cast<int>(failure_)));
  detail::lifetime_flag::scope alive(lifetime_);

  // With completion I/O only write readiness is polled, and a hang-up or an
  // error there is found by the write (reads report theirs as completions).
  const std::uint32_t write_events =
      loop_->completion_io() ? std::uint32_t{EPOLLOUT | EPOLLERR | EPOLLHUP} : EPOLLOUT;
  if ((events & write_events) != 0 && write_blocked()) {
    if (!write_pending()) return;
    if (!write_blocked()) {
      handler_->on_drained(*this);
      if (alive.destroyed() || !is_open()) return;
    }
  }
  if (loop_->completion_io()) return;
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0) return;
  // A send from on_drained may have failed; reading a shut-down socket would
  // report a clean end of stream instead of the error.
  if (failed()) return close_and_notify(errno_code(static_cast<int>(failure_)));

  const std::span<std::byte> buffer = loop_->recv_buffer();
  const io_result result = read_some(fd_.get(), buffer);
  if (result.bytes > 0) {
    // Nothing written through the cork this iteration (so nothing for this
    // stream either) and nothing refused: what on_data answers may skip the
    // cork, if the handler writes nothing to anyone else meanwhile.
    event_loop::reply_window& replies = loop_->replies();
    assert(replies.owner == nullptr && replies.size == 0);
    const bool own = loop_->cork().idle() && !write_blocked();
    if (own) replies.owner = this;
    handler_->on_data(*this, buffer.first(result.bytes));
    // Destroyed or closed: close() dropped the replies and gave the window up.
    if (own && !alive.destroyed() && replies.owner == this) write_replies();
    return;
  }
  if (!result.error) return close_and_notify({});  // orderly end of stream
  if (!result.would_block()) close_and_notify(result.error);
}

void tcp_stream::write_replies() {
  if (!loop_->cork().idle()) {
    // The handler wrote to other streams too (a publication, a fan-out): the
    // replies go with those bytes in the flush, after them, as they always
    // did; an answer never overtakes what was sent before it to others.
    return spill_replies();
  }
  event_loop::reply_window& replies = loop_->replies();
  replies.owner = nullptr;
  const std::size_t size = std::exchange(replies.size, 0);
  if (size == 0 || failed()) return;
  // Nothing was corked for this stream meanwhile (that spills the window
  // first), so these bytes are the next the peer gets.
  const io_result result = write_some(fd_.get(), std::span<const std::byte>(replies.bytes, size));
  if (result.error && !result.would_block()) return fail(result.error);
  if (result.bytes < size) {
    const iovec data{replies.bytes, size};
    keep_unwritten({&data, 1}, result.bytes, size);
    set_write_interest(true);
  }
}

static_assert(sizeof(tcp_stream) <= 80, "an idle tcp_stream should stay within 80 bytes");

}  // namespace switchboard::net
