// tcp_listener.hpp — a listening TCP socket on an event loop that accepts
// connections and hands each one to a callback as a non-blocking socket.
//
// Accepting. On readiness the listener calls accept4(SOCK_NONBLOCK |
// SOCK_CLOEXEC) until the queue is empty (EAGAIN), or until
// k_max_accepts_per_wake connections were taken: epoll is level-triggered, so
// the rest are reported again next iteration, after the loop has served the
// connections it already has — a connection storm cannot starve them.
//
// Running out of descriptors. When accept4 fails for lack of resources
// (EMFILE, ENFILE, ENOBUFS, ENOMEM) the pending connection stays in the kernel
// queue and the socket stays readable; with level-triggered epoll the loop would
// spin. So the listener stops watching its socket for options.resource_pause
// and then tries again. Connections wait in the backlog meanwhile (the kernel
// drops SYNs once it is full, and clients retry).
//
// On a loop with completion I/O (io_uring, Linux 6.10) the kernel accepts
// instead: a readiness report asks for an accept batch (see
// event_loop::start_accept), which takes the whole queue within the loop's
// next submission, a completion per connection: no accept4 per connection,
// no EAGAIN to end the loop. The loop fetches the peers' addresses for the
// whole batch in one more submission (getpeername where the kernel cannot),
// and TCP_NODELAY is set once on the listening socket, which accepted
// sockets inherit. Connections of a batch that arrive after pause()
// are held, unseen, until resume(); at most k_max_accepts_per_wake reach the
// handler per iteration, the rest the next. A batch that runs out of
// descriptors ends with EMFILE (the connection stays queued); if it took
// none, the listener pauses as above, else the next batch tries again.
//
// Several loops can each own a listener on the same port with
// options.reuse_port; the kernel then spreads connections between them.
//
// Thread-safety: none; a listener is used on its loop's thread only.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <system_error>

#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/export.hpp"
#include "switchboard/net/io_handler.hpp"
#include "switchboard/net/tcp_socket.hpp"
#include "switchboard/net/timer_wheel.hpp"
#include "switchboard/net/unique_function.hpp"

namespace switchboard::net {

struct listener_options {
  // Length of the kernel's accept queue (capped by net.core.somaxconn).
  int backlog = 1024;
  // SO_REUSEPORT: several sockets (one per loop) may listen on one port.
  bool reuse_port = false;
  // For IPv6 addresses: accept IPv6 only (true) or IPv4-mapped too (false).
  bool v6_only = true;
  // TCP_NODELAY on accepted sockets (the cork already batches small writes).
  bool no_delay = true;
  // How long to stop accepting after running out of descriptors or memory.
  std::chrono::milliseconds resource_pause{100};
  // Keep one descriptor in reserve (/dev/null). When accept4 fails for lack
  // of descriptors (EMFILE, ENFILE), the reserve is freed to accept each
  // queued connection in turn, write `overload_response` to it (best effort,
  // non-blocking; empty: nothing) and close it, so clients get a quick answer
  // instead of waiting in the queue until descriptors come back.
  bool reserve_descriptor = false;
  std::string overload_response;
};

class SWITCHBOARD_NET_EXPORT tcp_listener final : private io_handler {
 public:
  // Receives each accepted socket (non-blocking, close-on-exec) and its peer.
  // Reentrancy: may pause(), resume() or destroy the listener.
  using accept_handler = unique_function<void(unique_fd socket, const endpoint& peer)>;

  struct stats {
    std::uint64_t accepted = 0;
    std::uint64_t resource_pauses = 0;  // times accepting paused for EMFILE and kin
    std::uint64_t aborted = 0;          // connections that died before accept4 returned
    std::uint64_t failures = 0;         // unexpected accept4 errors (also pause)
    std::uint64_t shed = 0;  // accepted with the reserve descriptor, answered and closed
  };

  // Maximum connections accepted per readiness report.
  static constexpr std::size_t k_max_accepts_per_wake = 256;

  // Binds `local` (SO_REUSEADDR always; port 0 picks a free port), listens and
  // starts accepting on `loop`. On failure returns nullptr and sets `error`
  // (EADDRINUSE, EACCES, EADDRNOTAVAIL, EMFILE, ...).
  [[nodiscard]] static std::unique_ptr<tcp_listener> listen(event_loop& loop, const endpoint& local,
                                                            const listener_options& options,
                                                            accept_handler on_accept,
                                                            std::error_code& error);

  // Stops listening and closes the socket; queued connections are reset.
  ~tcp_listener();

  // The bound address, with the actual port when 0 was asked for.
  [[nodiscard]] const endpoint& local_endpoint() const noexcept { return local_; }
  [[nodiscard]] std::uint16_t port() const noexcept { return local_.port(); }
  // The listening socket, for socket options and statistics (TCP_INFO).
  [[nodiscard]] int native_handle() const noexcept { return fd_.get(); }

  // Stops / restarts accepting, e.g. during a graceful shutdown. The kernel
  // keeps queueing connections up to the backlog meanwhile.
  void pause() noexcept;
  void resume() noexcept;
  // True unless paused by pause() or for lack of resources.
  [[nodiscard]] bool accepting() const noexcept { return !paused_ && !resource_paused_; }

  [[nodiscard]] const stats& statistics() const noexcept { return stats_; }

 private:
  tcp_listener(event_loop& loop, unique_fd fd, const endpoint& local,
               const listener_options& options, accept_handler on_accept) noexcept;
  void on_events(std::uint32_t events) override;
  // Completion accepts (see the file comment).
  void on_accepted(int socket, int error, const sockaddr* peer, socklen_t peer_length) override;
  void on_accept_error(int error);
  // A failed accept (accept4's errno or a batch's error), counted: true if
  // it concerned that connection only and accepting goes on, false after
  // pausing the listener (resources, or an unexpected error).
  bool accept_failed(int error);
  struct held_connection {
    unique_fd socket;
    endpoint peer;
  };
  // Hands the connection to on_accept_. May destroy the listener.
  void deliver(held_connection connection);
  [[nodiscard]] bool burst_full() noexcept;
  void schedule_drain();
  void drain_held();
  void on_resource_timer();
  void pause_for_resources();
  // Out of descriptors: answers the queue with the reserve (see options).
  void shed_with_reserve();
  void update_interest() noexcept;

  event_loop* loop_;
  unique_fd fd_;
  unique_fd reserve_;  // /dev/null, freed only while shedding
  endpoint local_;
  listener_options options_;
  accept_handler on_accept_;
  timer_node resume_timer_;
  bool paused_ = false;
  bool resource_paused_ = false;
  bool watching_ = true;  // EPOLLIN in the interest set
  bool completion_ = false;  // accepts in batches (event_loop::start_accept)
  bool drain_scheduled_ = false;
  std::deque<held_connection> held_;  // of a batch, while paused or over the burst
  std::uint64_t burst_iteration_ = 0;
  std::size_t burst_count_ = 0;  // delivered in the loop iteration burst_iteration_
  std::size_t batch_accepted_ = 0;  // connections of the running accept batch
  std::shared_ptr<tcp_listener*> self_;  // lets a deferred drain see the listener is gone
  stats stats_;
  detail::lifetime_flag lifetime_;
};

}  // namespace switchboard::net
