// tcp_connector.hpp — an outgoing, non-blocking TCP connect on an event loop,
// bounded by a timeout on the loop's timer wheel.
//
// A connector is embedded in its owner (a client connection), holds one
// connect attempt at a time and reports its outcome exactly once through a
// callback: a connected socket, or an error — ECONNREFUSED, ETIMEDOUT (the
// timeout elapsed; precision is the wheel's tick), ENETUNREACH, EMFILE, ...
// The callback never runs from inside connect(): even a failure known at once
// is reported from the loop, on its next iteration.
//
// Thread-safety: none; a connector is used on its loop's thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <system_error>

#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/export.hpp"
#include "switchboard/net/io_handler.hpp"
#include "switchboard/net/tcp_socket.hpp"
#include "switchboard/net/timer_wheel.hpp"
#include "switchboard/net/unique_function.hpp"

namespace switchboard::net {

class SWITCHBOARD_NET_EXPORT tcp_connector final : private io_handler {
 public:
  // Receives either an empty error and the connected socket (non-blocking,
  // close-on-exec, TCP_NODELAY set) or an error and an empty unique_fd.
  // Reentrancy: may start another connect() or destroy the connector.
  using connect_handler = unique_function<void(std::error_code error, unique_fd socket)>;

  explicit tcp_connector(event_loop& loop) noexcept;
  // Cancels an attempt in progress (its callback is not called).
  ~tcp_connector();
  tcp_connector(const tcp_connector&) = delete;
  tcp_connector& operator=(const tcp_connector&) = delete;

  // Starts connecting to `remote`; `on_done` is called exactly once on the
  // loop thread, unless cancel() comes first. A timeout of zero or less means
  // none (the kernel's own SYN retries give up after about two minutes).
  // REQUIRES: !in_progress().
  void connect(const endpoint& remote, std::chrono::milliseconds timeout, connect_handler on_done);

  // Abandons the attempt in progress: closes its socket, drops the callback
  // unrun. Does nothing when idle.
  void cancel() noexcept;

  [[nodiscard]] bool in_progress() const noexcept { return static_cast<bool>(on_done_); }

 private:
  void on_events(std::uint32_t events) override;
  void on_timer();
  void finish(std::error_code error, unique_fd socket);
  void release_socket() noexcept;

  event_loop* loop_;
  unique_fd fd_;
  connect_handler on_done_;
  timer_node timer_;
  std::error_code early_error_;  // known before the loop could report it
};

}  // namespace switchboard::net
