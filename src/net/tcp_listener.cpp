// tcp_listener.cpp — bind/listen, the accept loop, and the pause that keeps a
// level-triggered loop from spinning when descriptors run out.
#include "switchboard/net/tcp_listener.hpp"

#include <cerrno>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cassert>

#include "switchboard/net/tcp_socket.hpp"

namespace switchboard::net {

std::unique_ptr<tcp_listener> tcp_listener::listen(event_loop& loop, const endpoint& local,
                                                   const listener_options& options,
                                                   accept_handler on_accept,
                                                   std::error_code& error) {
  assert(loop.in_loop_thread());
  assert(on_accept && "tcp_listener::listen needs an accept handler");
  unique_fd fd = open_tcp_socket(local.family(), error);
  if (!fd) return nullptr;
  // SO_REUSEADDR: a restarted server can bind while old connections linger in TIME_WAIT.
  error = set_socket_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
  if (!error && options.reuse_port) {
    error = set_socket_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1);
  }
  if (!error && local.family() == AF_INET6) {
    error = set_socket_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, options.v6_only ? 1 : 0);
  }
  if (error) return nullptr;
  if (::bind(fd.get(), local.data(), local.size()) != 0 ||
      ::listen(fd.get(), options.backlog) != 0) {
    error = errno_code();
    return nullptr;
  }
  const endpoint bound = net::local_endpoint(fd.get(), error);
  if (error) return nullptr;

  const int raw_fd = fd.get();
  // Completion accepts never pass through accept4's caller: accepted sockets
  // inherit TCP_NODELAY from the listening socket instead (one call, not one
  // per connection).
  if (loop.completion_io() && options.no_delay && (error = set_no_delay(raw_fd))) return nullptr;
  std::unique_ptr<tcp_listener> listener(
      new tcp_listener(loop, std::move(fd), bound, options, std::move(on_accept)));
  listener->completion_ = loop.completion_io();
  if ((error = loop.add(raw_fd, EPOLLIN, *listener))) {
    listener->fd_.reset();  // not registered: the destructor must not remove it
    return nullptr;
  }
  return listener;
}

tcp_listener::tcp_listener(event_loop& loop, unique_fd fd, const endpoint& local,
                           const listener_options& options, accept_handler on_accept) noexcept
    : loop_(&loop),
      fd_(std::move(fd)),
      local_(local),
      options_(options),
      on_accept_(std::move(on_accept)) {
  resume_timer_.bind<&tcp_listener::on_resource_timer>(this);
  if (options_.reserve_descriptor) reserve_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

void tcp_listener::shed_with_reserve() {
  reserve_.reset();  // one descriptor free: each queued connection borrows it in turn
  for (std::size_t i = 0; i < k_max_accepts_per_wake; ++i) {
    const int socket = ::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (socket < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      break;  // EAGAIN: the queue is empty; anything else: stop for now
    }
    unique_fd accepted(socket);
    const std::string& answer = options_.overload_response;
    // Best effort: a fresh socket's send buffer takes a short answer at once.
    if (!answer.empty()) (void)::send(socket, answer.data(), answer.size(), MSG_NOSIGNAL);
    // FIN after the answer, and read what the client already sent: closing
    // with unread bytes sends a reset, which may destroy the answer in flight.
    (void)::shutdown(socket, SHUT_WR);
    char discard[4096];
    while (::recv(socket, discard, sizeof discard, MSG_DONTWAIT) > 0) {
    }
    ++stats_.shed;
  }
  reserve_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

tcp_listener::~tcp_listener() {
  if (fd_) loop_->remove(fd_.get(), *this);
}

void tcp_listener::pause() noexcept {
  paused_ = true;
  update_interest();
}

void tcp_listener::resume() noexcept {
  paused_ = false;
  update_interest();
}

void tcp_listener::update_interest() noexcept {
  const bool wanted = accepting();
  schedule_drain();  // if accepting: what a batch took while paused
  if (wanted == watching_ || !fd_) return;
  // Interest 0 keeps the registration but reports nothing for a listening socket.
  if (!loop_->modify(fd_.get(), wanted ? std::uint32_t{EPOLLIN} : 0U, *this)) watching_ = wanted;
}

void tcp_listener::pause_for_resources() {
  resource_paused_ = true;
  update_interest();
  loop_->timers().schedule(resume_timer_, options_.resource_pause);
}

void tcp_listener::on_resource_timer() {
  resource_paused_ = false;
  update_interest();  // if the descriptors are still short, accept4 pauses us again
}

namespace {

// Out of descriptors or kernel memory: the connection stays queued.
bool is_resource_error(int error) noexcept {
  return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
}

}  // namespace

bool tcp_listener::accept_failed(int error) {
  if (is_resource_error(error)) {
    // The connection stays queued and the socket readable: stop watching it
    // for a while instead of spinning; with a reserve descriptor, the queue
    // is answered first (a health check gets 503, not a timeout).
    ++stats_.resource_pauses;
    if (reserve_ && (error == EMFILE || error == ENFILE)) shed_with_reserve();
    pause_for_resources();
    return false;
  }
  switch (error) {
    // The connection died while queued, or a network error was passed on
    // from it (accept(2) says to treat these like EAGAIN, then retry): it
    // concerns that connection only.
    case ECONNABORTED:
    case EPERM:
    case EPROTO:
    case ENOPROTOOPT:
    case ENETDOWN:
    case ENETUNREACH:
    case EHOSTDOWN:
    case EHOSTUNREACH:
    case ENONET:
    case EOPNOTSUPP:
    case ETIMEDOUT:
      ++stats_.aborted;
      return true;
    default:
      // Unexpected (EBADF, EINVAL, ...): back off like for resources rather
      // than spin on a socket that keeps failing.
      ++stats_.failures;
      pause_for_resources();
      return false;
  }
}

void tcp_listener::on_events(std::uint32_t /*events*/) {
  // Completion I/O: the kernel takes the queue in the next submission.
  if (completion_ && accepting()) {
    batch_accepted_ = 0;
    if (!loop_->start_accept(fd_.get(), local_.size())) return;
    completion_ = false;  // not on this kernel: accept4 from now on
  }
  detail::lifetime_flag::scope alive(lifetime_);
  for (std::size_t i = 0; i < k_max_accepts_per_wake && accepting(); ++i) {
    sockaddr_storage peer{};
    socklen_t peer_length = sizeof peer;
    const int socket = ::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&peer), &peer_length,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (socket < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      if (error == EAGAIN) return;  // the queue is empty
      if (accept_failed(error)) continue;
      return;
    }
    if (options_.no_delay) (void)set_no_delay(socket);
    deliver({unique_fd(socket),
             endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&peer), peer_length)
                 .value_or(endpoint{})});
    if (alive.destroyed()) return;
  }
}

}  // namespace switchboard::net

namespace switchboard::net {

bool tcp_listener::burst_full() noexcept {
  if (loop_->iterations() != burst_iteration_) {
    burst_iteration_ = loop_->iterations();
    burst_count_ = 0;
  }
  return burst_count_ >= k_max_accepts_per_wake;
}

void tcp_listener::on_accepted(int socket, int error, const sockaddr* peer,
                               socklen_t peer_length) {
  if (socket < 0) return on_accept_error(error);
  ++batch_accepted_;
  unique_fd accepted(socket);
  sockaddr_storage asked{};
  if (peer == nullptr) {
    // The loop could not fetch it (a kernel without socket commands).
    peer_length = sizeof asked;
    // Why drop: getpeername fails only for a connection already reset
    // (ENOTCONN), which accept4 would have skipped too (ECONNABORTED).
    if (::getpeername(socket, reinterpret_cast<sockaddr*>(&asked), &peer_length) != 0) {
      ++stats_.aborted;
      return;
    }
    peer = reinterpret_cast<const sockaddr*>(&asked);
  }
  held_connection connection{std::move(accepted),
                             endpoint::from_sockaddr(peer, peer_length).value_or(endpoint{})};
  // Why hold: a paused listener hands over nothing, and a storm must not
  // starve the loop's other connections; order is kept (held ones first).
  if (!accepting() || !held_.empty() || burst_full()) {
    held_.push_back(std::move(connection));
    return schedule_drain();
  }
  deliver(std::move(connection));
}

void tcp_listener::on_accept_error(int error) {
  // A batch that took connections before running out goes on next
  // iteration: the handler may have closed them since (accept4 would have
  // seen each one closed before the next).
  if (batch_accepted_ != 0 && is_resource_error(error)) return;
  (void)accept_failed(error);
}

void tcp_listener::deliver(held_connection connection) {
  ++burst_count_;
  ++stats_.accepted;
  on_accept_(std::move(connection.socket), connection.peer);
}

void tcp_listener::schedule_drain() {
  if (drain_scheduled_ || held_.empty() || !accepting()) return;
  drain_scheduled_ = true;
  if (!self_) self_ = std::make_shared<tcp_listener*>(this);
  loop_->defer([self = std::weak_ptr<tcp_listener*>(self_)] {
    if (auto alive = self.lock()) (*alive)->drain_held();
  });
}

void tcp_listener::drain_held() {
  drain_scheduled_ = false;
  detail::lifetime_flag::scope alive(lifetime_);
  while (!held_.empty() && accepting() && !burst_full()) {
    held_connection connection = std::move(held_.front());
    held_.pop_front();
    deliver(std::move(connection));
    if (alive.destroyed()) return;
  }
  // Over the burst: a task deferred from a deferred task runs next iteration.
  schedule_drain();
}

}  // namespace switchboard::net
