// loop_group.hpp — N event loops on N threads, shared-nothing.
//
// Each thread runs one event_loop. Work reaches a loop only through
// post(i, task) (its MPSC queue + eventfd); typically each loop owns its own
// SO_REUSEPORT listener on the same port, so the kernel spreads connections
// between loops and no connection ever changes threads.
//
// Lifecycle: create() makes the loops (not running). Set them up — from this
// thread before start(), or with post() after — then start(); stop() asks
// every loop to finish its current iteration; join() waits for the threads.
// The destructor does stop() and join().
//
// The loop threads block SIGINT, SIGTERM and SIGHUP, so that those signals go
// to a signal_watcher (or to the thread that left them unblocked) and never
// interrupt a loop thread.
//
// Thread-safety: post() and stop() may be called from any thread, loop threads
// included. create/start/join/destruction from one controlling thread that is
// not a loop thread of the group. Objects bound to loop i (listeners, streams)
// are used on loop i's thread while it runs, from any one thread when not.
#pragma once

#include <cstddef>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/export.hpp"
#include "switchboard/net/unique_function.hpp"

namespace switchboard::net {

struct loop_group_options {
  std::size_t threads = 1;  // at least 1
  event_loop_options loop;
  // Sets loop.uring_single_thread: each loop is run by its thread only. A
  // group whose start() is called again after join() (new threads) needs
  // false.
  bool single_thread_loops = true;
};

class SWITCHBOARD_NET_EXPORT loop_group {
 public:
  // Creates options.threads loops. On failure returns nullptr and sets `error`.
  [[nodiscard]] static std::unique_ptr<loop_group> create(const loop_group_options& options,
                                                          std::error_code& error);

  // stop() and join().
  ~loop_group();
  loop_group(const loop_group&) = delete;
  loop_group& operator=(const loop_group&) = delete;

  [[nodiscard]] std::size_t size() const noexcept { return loops_.size(); }
  // REQUIRES: index < size().
  [[nodiscard]] event_loop& loop(std::size_t index) noexcept { return *loops_[index]; }

  // Runs `t` on loop `index`'s thread (FIFO per posting thread).
  // REQUIRES: index < size().
  void post(std::size_t index, task t) { loops_[index]->post(std::move(t)); }

  // Starts one thread per loop, named "switchboard-N". Errors: the thread could
  // not be created (EAGAIN); the threads already started are stopped and joined.
  // REQUIRES: not started (or joined since).
  std::error_code start();

  // Asks every loop to return from run() after its current iteration. Any thread.
  void stop() noexcept;

  // Waits for every loop thread to finish. Returns the first error a loop's
  // run() returned, if any. REQUIRES: not called from a loop thread of this group.
  std::error_code join();

 private:
  loop_group() = default;

  std::vector<std::unique_ptr<event_loop>> loops_;
  std::vector<std::thread> threads_;
  std::vector<std::error_code> errors_;  // errors_[i] written by thread i only
};

}  // namespace switchboard::net
