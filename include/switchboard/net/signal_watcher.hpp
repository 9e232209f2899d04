// signal_watcher.hpp — process signals (SIGINT, SIGTERM, SIGHUP by default)
// delivered as ordinary callbacks on an event loop, through a signalfd.
//
// A signal reaches a signalfd only while it is blocked; otherwise its default
// action (terminate) or a handler runs instead. create() blocks the signals in
// the calling thread; threads started afterwards inherit the mask, and
// loop_group blocks them in its own threads. So: create the watcher — or call
// block() — in main() before starting any other thread. A signal sent to the
// process is then pending until the loop reads it.
//
// Standard signals do not queue: two SIGHUPs arriving before the loop reads
// them are reported once. The signals stay blocked after the watcher is
// destroyed (unblocking them could terminate the process at once).
//
// Thread-safety: none; a watcher is used on its loop's thread only. block() is
// per-thread by nature (pthread_sigmask).
#pragma once

#include <signal.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <system_error>

#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/export.hpp"
#include "switchboard/net/io_handler.hpp"
#include "switchboard/net/unique_function.hpp"

namespace switchboard::net {

class SWITCHBOARD_NET_EXPORT signal_watcher final : private io_handler {
 public:
  // Receives the signal number. Reentrancy: may stop the loop or destroy the watcher.
  using signal_handler = unique_function<void(int signal_number)>;

  // Blocks `signals` in the calling thread and watches them on `loop`.
  // On failure returns nullptr and sets `error` (EMFILE, ENOMEM, EINVAL).
  [[nodiscard]] static std::unique_ptr<signal_watcher> create(
      event_loop& loop, signal_handler on_signal, std::error_code& error,
      std::initializer_list<int> signals = {SIGINT, SIGTERM, SIGHUP});

  ~signal_watcher();
  signal_watcher(const signal_watcher&) = delete;
  signal_watcher& operator=(const signal_watcher&) = delete;

  // Blocks `signals` in the calling thread (threads it starts inherit that).
  // Errors: EINVAL for an invalid signal number.
  static std::error_code block(std::initializer_list<int> signals) noexcept;

 private:
  signal_watcher(event_loop& loop, unique_fd fd, signal_handler on_signal) noexcept;
  void on_events(std::uint32_t events) override;

  event_loop* loop_;
  unique_fd fd_;
  signal_handler on_signal_;
  detail::lifetime_flag lifetime_;
};

}  // namespace switchboard::net
