// tcp_stream.cpp — reading into the loop buffer, writing through the cork,
// backpressure, and deferred error reporting (see tcp_stream.hpp).
#include "switchboard/net/tcp_stream.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cassert>

#include "switchboard/net/tcp_socket.hpp"

namespace switchboard::net {
namespace {

// Under sustained backpressure the written prefix of the pending buffer is
// dropped once it is both this large and more than half the buffer.
constexpr std::size_t k_compact_min = std::size_t{64} * 1024;

}  // namespace

void stream_handler::on_drained(tcp_stream& /*stream*/) {}

tcp_stream::tcp_stream(event_loop& loop, stream_handler& handler) noexcept
    : loop_(&loop), handler_(&handler) {}

tcp_stream::~tcp_stream() {
  close();
}

std::error_code tcp_stream::open(unique_fd socket) {
  assert(!is_open() && "tcp_stream::open on an open stream");
  assert(loop_->in_loop_thread());
  failure_.clear();
  interest_ = EPOLLIN | EPOLLRDHUP;
  if (auto error = loop_->add(socket.get(), interest_, *this)) return error;
  fd_ = std::move(socket);
  return {};
}

void tcp_stream::close() noexcept {
  if (!is_open()) return;
  loop_->remove(fd_.get(), *this);
  loop_->cork().discard(*this);
  std::vector<std::byte>().swap(pending_);
  pending_head_ = 0;
  failure_.clear();
  fd_.reset();
}

std::size_t tcp_stream::buffered_bytes() const noexcept {
  return write_cork::corked_bytes(*this) + (pending_.size() - pending_head_);
}

send_status tcp_stream::send(std::span<const std::byte> data) {
  const std::span<const std::byte> parts[] = {data};
  return send_parts(parts);
}

send_status tcp_stream::send(std::initializer_list<std::span<const std::byte>> parts) {
  return send_parts({parts.begin(), parts.size()});
}

send_status tcp_stream::status_after_write() const noexcept {
  if (failure_) return send_status::dropped;
  return write_blocked() ? send_status::backpressure : send_status::ok;
}

send_status tcp_stream::send_parts(std::span<const std::span<const std::byte>> parts) {
  assert(loop_->in_loop_thread() && "tcp_stream::send called from another thread");
  if (!is_open() || failure_) return send_status::dropped;
  if (write_blocked()) {
    // The kernel has not taken earlier bytes yet: these queue behind them.
    for (const auto& part : parts) pending_.insert(pending_.end(), part.begin(), part.end());
    return send_status::backpressure;
  }
  std::size_t total = 0;
  for (const auto& part : parts) total += part.size();
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

void tcp_stream::flush_corked(std::span<const iovec> data, std::size_t total) {
  if (failure_) return;  // already failed: the bytes are dropped
  write_or_buffer(data, total);
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
    pending_.reserve(total - written);
    keep_unwritten(data, written);
    set_write_interest(true);
  }
}

void tcp_stream::keep_unwritten(std::span<const iovec> data, std::size_t written) {
  std::size_t skip = written;
  for (const iovec& v : data) {
    if (skip >= v.iov_len) {
      skip -= v.iov_len;
      continue;
    }
    const auto* base = static_cast<const std::byte*>(v.iov_base);
    pending_.insert(pending_.end(), base + skip, base + v.iov_len);
    skip = 0;
  }
}

void tcp_stream::set_write_interest(bool on) {
  const std::uint32_t wanted = on ? (interest_ | EPOLLOUT) : (interest_ & ~std::uint32_t{EPOLLOUT});
  if (wanted == interest_) return;
  if (auto error = loop_->modify(fd_.get(), wanted, *this)) return fail(error);
  interest_ = wanted;
}

void tcp_stream::fail(std::error_code error) noexcept {
  if (failure_) return;
  failure_ = error;
  loop_->cork().discard(*this);
  std::vector<std::byte>().swap(pending_);
  pending_head_ = 0;
  // Do not call back from here (we are inside send() or the cork flush).
  // Shutting the socket down makes epoll report EPOLLHUP for it on the next
  // iteration, whatever the interest set; on_events then reports `error`.
  ::shutdown(fd_.get(), SHUT_RDWR);
}

bool tcp_stream::write_pending() {
  const std::span<const std::byte> rest(pending_.data() + pending_head_,
                                        pending_.size() - pending_head_);
  const io_result result = write_some(fd_.get(), rest);
  if (result.error) {
    if (result.would_block()) return true;
    close_and_notify(result.error);
    return false;
  }
  pending_head_ += result.bytes;
  if (pending_head_ == pending_.size()) {
    std::vector<std::byte>().swap(pending_);  // an idle stream keeps no buffer
    pending_head_ = 0;
    set_write_interest(false);
  } else if (pending_head_ >= k_compact_min && pending_head_ > pending_.size() / 2) {
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(pending_head_));
    pending_head_ = 0;
  }
  return true;
}

void tcp_stream::close_and_notify(std::error_code error) {
  stream_handler* handler = handler_;
  close();
  handler->on_close(*this, error);  // may destroy *this
}

void tcp_stream::on_events(std::uint32_t events) {
  if (failure_) return close_and_notify(failure_);
  detail::lifetime_flag::scope alive(lifetime_);

  if ((events & EPOLLOUT) != 0 && write_blocked()) {
    if (!write_pending()) return;
    if (!write_blocked()) {
      handler_->on_drained(*this);
      if (alive.destroyed() || !is_open()) return;
    }
  }
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0) return;
  // A send from on_drained may have failed; reading a shut-down socket would
  // report a clean end of stream instead of the error.
  if (failure_) return close_and_notify(failure_);

  const std::span<std::byte> buffer = loop_->recv_buffer();
  const io_result result = read_some(fd_.get(), buffer);
  if (result.bytes > 0) return handler_->on_data(*this, buffer.first(result.bytes));
  if (!result.error) return close_and_notify({});  // orderly end of stream
  if (!result.would_block()) close_and_notify(result.error);
}

}  // namespace switchboard::net
