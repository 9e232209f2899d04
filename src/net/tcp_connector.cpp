// tcp_connector.cpp — connect(2) returns EINPROGRESS; the socket becomes
// writable when the handshake completes or fails, and SO_ERROR says which.
#include "switchboard/net/tcp_connector.hpp"

#include <sys/socket.h>

#include <cassert>
#include <utility>

#include "switchboard/net/tcp_socket.hpp"

namespace switchboard::net {

tcp_connector::tcp_connector(event_loop& loop) noexcept : loop_(&loop) {
  timer_.bind<&tcp_connector::on_timer>(this);
}

tcp_connector::~tcp_connector() {
  cancel();
}

void tcp_connector::connect(const endpoint& remote, std::chrono::milliseconds timeout,
                            connect_handler on_done) {
  assert(loop_->in_loop_thread());
  assert(!in_progress() && "tcp_connector::connect while a connect is in progress");
  assert(on_done && "tcp_connector::connect needs a callback");
  on_done_ = std::move(on_done);
  early_error_.clear();

  std::error_code error;
  unique_fd fd = open_tcp_socket(remote.family(), error);
  if (fd) {
    (void)set_no_delay(fd.get());
    if (::connect(fd.get(), remote.data(), remote.size()) != 0 && errno != EINPROGRESS &&
        errno != EINTR) {  // after EINTR the connect carries on in the background
      error = errno_code();
    }
  }
  if (!error) error = loop_->add(fd.get(), EPOLLOUT, *this);
  if (error) {
    // Report from the loop, not from inside connect(): a zero-delay timer
    // fires on the next iteration.
    early_error_ = error;
    loop_->timers().schedule(timer_, std::chrono::milliseconds{0});
    return;  // `fd` closes here
  }
  fd_ = std::move(fd);
  if (timeout.count() > 0) loop_->timers().schedule(timer_, timeout);
}

void tcp_connector::release_socket() noexcept {
  if (fd_) {
    loop_->remove(fd_.get(), *this);
    fd_.reset();
  }
}

void tcp_connector::cancel() noexcept {
  timer_.cancel();
  release_socket();
  on_done_ = nullptr;
}

void tcp_connector::finish(std::error_code error, unique_fd socket) {
  timer_.cancel();
  connect_handler on_done = std::move(on_done_);
  on_done_ = nullptr;  // idle from here: the callback may connect() again
  on_done(error, std::move(socket));
}

void tcp_connector::on_timer() {
  const std::error_code error =
      early_error_ ? early_error_ : std::make_error_code(std::errc::timed_out);
  release_socket();
  finish(error, unique_fd{});
}

void tcp_connector::on_events(std::uint32_t events) {
  std::error_code error = socket_error(fd_.get());
  if (!error && (events & (EPOLLERR | EPOLLHUP)) != 0) {
    // Hung up without a pending error: the handshake did not complete.
    error = std::make_error_code(std::errc::connection_aborted);
  }
  if (!error && (events & EPOLLOUT) == 0) return;  // nothing decided yet
  loop_->remove(fd_.get(), *this);
  unique_fd socket = std::move(fd_);
  if (error) socket.reset();
  finish(error, std::move(socket));
}

}  // namespace switchboard::net
