// event_loop.hpp — one epoll event loop per thread, shared-nothing.
//
// An event_loop owns an epoll instance, a timer wheel, one large receive buffer
// shared by all its connections, the write cork (write_cork.hpp), and a queue of
// tasks other threads post to it. Each run() iteration:
//
//   1. epoll_wait (timeout: 0 if work is waiting, else until the next timer
//      tick, else forever); then now() is read once and cached,
//   2. fires due timers,
//   3. dispatches I/O: one io_handler::on_events call per ready descriptor (the
//      loop's own eventfd among them: that runs posted tasks, in FIFO order),
//   4. runs the tasks defer()red before this phase began, then the posted
//      tasks if any are queued: those the loop posted to itself (no eventfd
//      write), and those of other threads whose eventfd was not reported in
//      this batch (a loop with more ready descriptors than max_events runs
//      its queue every iteration all the same),
//   5. runs the iteration hooks, in the order they were added,
//   6. flushes the write cork: one send per connection written to.
//
// Level-triggered epoll. Readiness is re-reported every iteration until it is
// consumed. This fits the shared receive buffer: a connection reads once per
// iteration into the buffer, is handled, and whatever the kernel still holds is
// reported again next time, so one busy peer cannot starve the others and no
// handler has to remember "still readable" itself. Write interest (EPOLLOUT) is
// armed only while a connection has bytes the kernel refused, so writable
// sockets do not wake the loop. The cost is an extra epoll_wait report for a
// socket with more than one buffer of data waiting, which is rare.
//
// Reentrancy: every callback (handler, task, timer, hook) may call any
// loop-thread function: post, defer, stop, add/modify/remove descriptors,
// schedule/cancel timers, add/remove hooks, and destroy handlers (a removed
// handler receives nothing more, even from the batch being dispatched). It may
// not call run() or destroy the loop.
//
// Backends: epoll (the default) or io_uring (event_loop_options::backend, see
// src/net/uring_engine.hpp). With io_uring the iteration is the same, with
// one submit-and-wait instead of epoll_wait; registered handlers get the same
// level-triggered readiness reports, and TCP and TLS streams switch to
// completions (completion_io()): a multishot receive into buffers the loop
// provides, and the cork's sends submitted together at the end of the
// iteration; listeners accept in batches, one submission per readiness report. A loop asked for io_uring that the kernel refuses it runs on
// epoll; backend() and backend_error() tell. With uring_single_thread (as
// loop_group sets) the loop belongs to the first thread that runs it.
//
// Thread-safety: post() and stop() may be called from any thread. Everything
// else may be called only from the thread running run(), or from any one thread
// while the loop is not running (set-up and tear-down). Callbacks (handlers,
// tasks, timers, hooks) run on the loop thread and must not throw.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "switchboard/net/export.hpp"
#include "switchboard/net/io_handler.hpp"
#include "switchboard/net/timer_wheel.hpp"
#include "switchboard/net/unique_function.hpp"
#include "switchboard/net/write_cork.hpp"

namespace switchboard::net {

namespace detail {
class uring_engine;
}

// What waits for I/O. See the file comment.
enum class io_backend : std::uint8_t { epoll, io_uring };
// "epoll" or "io_uring".
[[nodiscard]] SWITCHBOARD_NET_EXPORT std::string_view to_string(io_backend backend) noexcept;
// Parses "epoll" or "io_uring"; false (and `out` unchanged) for anything else.
[[nodiscard]] SWITCHBOARD_NET_EXPORT bool parse_io_backend(std::string_view text,
                                                           io_backend& out) noexcept;

struct event_loop_options {
  // The shared receive buffer. Large so that one read usually drains a socket;
  // shared so that an idle connection costs none of it.
  std::size_t recv_buffer_size = 512 * 1024;
  // Timer resolution. Connection timeouts are seconds long; 100 ms keeps them
  // precise enough while a loop with timers wakes at most 10 times a second.
  std::chrono::milliseconds timer_tick{100};
  // Slots in the wheel; tick × slots (here ~102 s) is one rotation. Longer
  // timers wrap, costing one skipped visit per rotation.
  std::size_t timer_slots = 1024;
  // Most events one epoll_wait returns.
  int max_events = 512;

  // The backend asked for; io_uring falls back to epoll if refused.
  io_backend backend = io_backend::epoll;
  // io_uring only: submission queue entries (the completion queue gets 4×).
  // Out of the kernel's range (0, or over 32768) the ring cannot be set up.
  unsigned uring_entries = 1024;
  // io_uring only: receive buffers the kernel fills, rounded up to a power
  // of two: 32 × 64 KiB = 2 MiB a loop. Since Linux 6.12 receives on all the
  // loop's sockets fill a buffer back to back; before, each receive takes a
  // whole buffer, so the same memory is cut into 4 KiB buffers instead.
  std::size_t uring_buffers = 32;
  std::size_t uring_buffer_size = 64 * 1024;
  // io_uring only: slots of the registered file table (one per descriptor
  // number, at most RLIMIT_NOFILE at set-up; 0: none). A stream whose
  // descriptor has a slot sends through it (no per-request file lookup);
  // the others use their descriptor. Kernel memory: 8 bytes a slot. Off by
  // default: it measured no better than plain descriptors here (see
  // docs/benchmarks.md, "Registered files").
  std::size_t uring_files = 0;
  // io_uring only: the loop is run by one thread for its life (the first
  // that calls run()). The ring is then set up with SINGLE_ISSUER and
  // DEFER_TASKRUN: the kernel's completion work (a multishot receive's
  // copy, ...) runs inside the loop's own wait instead of on every system
  // call's way out, one batch per iteration (docs/benchmarks.md, "io_uring,
  // round 3"). run() from another thread then fails with EEXIST, and what
  // other threads queue once it ran (closing a stream after the loop thread
  // ended) is dropped: such sockets are released with the ring. A kernel
  // that refuses the flags gets the ring without them. loop_group sets it
  // (each of its loops has its own thread).
  bool uring_single_thread = false;
};

class SWITCHBOARD_NET_EXPORT event_loop {
 public:
  using hook_id = std::uint64_t;

  // Creates a loop (epoll instance, eventfd, buffers). Returns nullptr and sets
  // `error` if the kernel refuses a descriptor (EMFILE, ENFILE, ENOMEM).
  [[nodiscard]] static std::unique_ptr<event_loop> create(std::error_code& error,
                                                          const event_loop_options& options = {});

  event_loop(const event_loop&) = delete;
  event_loop& operator=(const event_loop&) = delete;
  // Tasks still queued are destroyed without running.
  // REQUIRES: not running; every handler removed, every cork sink detached.
  ~event_loop();

  // Runs iterations on the calling thread until stop() is called. Returns an
  // empty code after stop(), or the error of a failed epoll_wait (not EINTR).
  // A stop() that happens before run() makes run() return after one iteration;
  // run() consumes the stop request, so the loop can be run again.
  // REQUIRES: not already running.
  std::error_code run();

  // The backend in use, and why it is not the one asked for (empty if it is).
  [[nodiscard]] io_backend backend() const noexcept {
    return uring_ ? io_backend::io_uring : io_backend::epoll;
  }
  [[nodiscard]] std::error_code backend_error() const noexcept { return backend_error_; }

  // Completion I/O, for net's TCP and TLS streams (true only with io_uring). A stream
  // registered with add() (interest 0 is fine) calls start_receive() once:
  // its handler's on_received() then gets the bytes as they arrive, in the
  // loop's buffers, and the end of stream or an error. queue_send() hands the
  // bytes of `data` to the kernel in the submission at the end of the cork's
  // flush (the bytes must stay valid until then; the iovec array is copied);
  // the handler's on_sent() gets the result within that flush.
  [[nodiscard]] bool completion_io() const noexcept { return uring_ != nullptr; }
  std::error_code start_receive(int fd);
  void queue_send(int fd, std::span<const iovec> data, std::size_t total, io_handler& handler);
  // Accept batches, for net's listeners (completion_io() only): a listening
  // `fd` registered with add() whose readiness is reported calls
  // start_accept(): the next submission accepts every queued connection, and
  // in the next iteration its handler's on_accepted() gets each one
  // (non-blocking, close-on-exec), then the error that ended the batch if it
  // was not an empty queue. The readiness poll waits for the batch to end.
  // `peer_length` (that of the listener's address family; 0: none) asks for
  // each peer's address too, fetched for the whole batch in one submission
  // (Linux 6.7's socket commands). ENOTSUP where the kernel cannot accept in
  // batches (before Linux 6.10): use accept4.
  std::error_code start_accept(int fd, socklen_t peer_length = 0);
  // io_uring only: streams whose requests use a registered file now (see
  // event_loop_options::uring_files); 0 on epoll.
  [[nodiscard]] std::size_t registered_files() const noexcept;

  // Asks run() to return after the current iteration (which completes, hooks
  // and cork flush included). Any thread; also from within callbacks.
  void stop() noexcept;

  // Queues `t` to run on the loop thread. Any thread. Tasks posted by one thread
  // run in the order posted; each runs exactly once (or is destroyed unrun if the
  // loop is destroyed first). Wakes the loop if it is waiting: one eventfd
  // write by the post that makes the queue non-empty (later ones ride on it).
  // Posted from the loop's own thread while it runs, no write: the queue is
  // run in this iteration, after the deferred tasks and before the hooks (one
  // posted from a hook runs in the next, which then does not block).
  void post(task t);
  // As post(), but the wake-up is the caller's: returns true if `t` made the
  // queue non-empty, and then the caller must call wake() (any thread; it may
  // first queue more, to this loop and others, and wake each once). Until
  // then the loop may not run `t`, nor what other threads post after it.
  [[nodiscard]] bool post_unwoken(task t);
  // Wakes the loop to run its posted tasks (one eventfd write). Any thread.
  void wake() noexcept;
  // Eventfd writes so far (post, wake, stop): the loop's cross-thread
  // wake-ups. Any thread (relaxed), for tests and metrics.
  [[nodiscard]] std::uint64_t wakeups() const noexcept {
    return wakeups_.load(std::memory_order_relaxed);
  }

  // Runs `t` on the loop thread later in this iteration, after the I/O callbacks
  // and timers and before the hooks. A task deferred by a deferred task or a
  // hook runs in the next iteration (which then does not block).
  void defer(task t);

  // Adds a hook that runs once per iteration after all I/O callbacks, timers
  // and deferred tasks (and before the cork flush, so what it sends goes out in
  // the same iteration). Hooks run in the order added. A hook may add or remove
  // hooks; an added one first runs in the next iteration.
  hook_id add_iteration_hook(task hook);
  // Removes a hook; it will not run again. Unknown ids are ignored.
  void remove_iteration_hook(hook_id id) noexcept;

  // Registers `fd` for `events` (EPOLLIN, EPOLLOUT, EPOLLRDHUP; EPOLLHUP and
  // EPOLLERR are always reported), delivered to `handler`. Errors from epoll_ctl.
  // REQUIRES: the handler outlives its registration; see io_handler.
  std::error_code add(int fd, std::uint32_t events, io_handler& handler);
  // Changes the interest set of a registered `fd`. Errors from epoll_ctl.
  std::error_code modify(int fd, std::uint32_t events, io_handler& handler);
  // Unregisters `fd`. `handler` gets no further events, including any already
  // collected for it in the current batch. Call before closing `fd`.
  void remove(int fd, io_handler& handler) noexcept;

  // The time at the start of the current iteration (steady clock, ms, rounded
  // down); timer delays count from it. Cached: reading it costs nothing.
  [[nodiscard]] steady_time now() const noexcept { return now_; }
  // Re-reads the clock into now() (it never moves back) without firing timers.
  // For code that schedules timers after a long computation, or during set-up
  // before run(), when the cached time would make them fire early.
  void update_now() noexcept;
  // The loop's timers; they are advanced at the start of every iteration.
  [[nodiscard]] timer_wheel& timers() noexcept { return wheel_; }
  // The receive buffer shared by all handlers of this loop. Its contents are
  // valid only until the callback that filled it returns.
  [[nodiscard]] std::span<std::byte> recv_buffer() noexcept {
    return {recv_buffer_.get(), recv_buffer_size_};
  }
  // The write cork, flushed at the end of every iteration.
  [[nodiscard]] write_cork& cork() noexcept { return cork_; }

  // Replies of the TCP stream being read (tcp_stream.cpp): small bytes a
  // stream is sent while its handler takes its input, with nothing corked or
  // refused before them, gather here and go out in one send() when the
  // handler returns, instead of through the cork (an echo or a request's
  // answer skips linking into the flush list and the flush). One stream owns
  // it at a time; anything that does not fit moves it into the cork first.
  struct reply_window {
    static constexpr std::size_t k_capacity = 4096;
    const void* owner = nullptr;  // the stream being read, or null
    std::size_t size = 0;
    std::byte bytes[k_capacity];
  };
  [[nodiscard]] reply_window& replies() noexcept { return replies_; }

  // Bytes the loop's streams hold for peers that do not take them fast
  // enough: what the kernel refused and is not yet written (a TCP stream's
  // backlog, a TLS stream's pending records). A server bounds its memory
  // with it. Any thread (relaxed: a gauge).
  [[nodiscard]] std::size_t held_write_bytes() const noexcept {
    return held_write_bytes_.load(std::memory_order_relaxed);
  }
  // Streams report such bytes as they queue (+) and leave (-). Loop thread
  // only, so a plain load and store do (no locked read-modify-write).
  void count_held_write_bytes(std::ptrdiff_t delta) noexcept {
    held_write_bytes_.store(
        held_write_bytes_.load(std::memory_order_relaxed) + static_cast<std::size_t>(delta),
        std::memory_order_relaxed);
  }

  // True on the thread running run(), and on any thread while not running.
  [[nodiscard]] bool in_loop_thread() const noexcept;
  // Completed iterations, for tests and metrics.
  [[nodiscard]] std::uint64_t iterations() const noexcept { return iterations_; }

 private:
  class SWITCHBOARD_NET_EXPORT waker final : public io_handler {
   public:
    explicit waker(event_loop& loop) noexcept : loop_(&loop) {}
    void on_events(std::uint32_t events) override;

   private:
    event_loop* loop_;
  };
  struct hook_entry {
    hook_id id;
    task fn;
  };

  event_loop(const event_loop_options& options, unique_fd epoll, unique_fd wake);
  std::error_code run_once_uring();
  std::error_code run_once();
  [[nodiscard]] int poll_timeout() const noexcept;
  void notify() noexcept;
  void run_posted();
  void run_pending_posted();
  void run_deferred();
  void run_hooks();

  unique_fd epoll_fd_;
  unique_fd wake_fd_;
  waker waker_{*this};
  std::vector<epoll_event> events_;
  int batch_size_ = 0;   // events of the batch being dispatched
  int batch_index_ = 0;  // the one being dispatched now (-1: timers run first)

  std::unique_ptr<std::byte[]> recv_buffer_;
  std::size_t recv_buffer_size_;
  steady_time now_;
  timer_wheel wheel_;
  write_cork cork_;

  std::mutex post_mutex_;
  std::vector<task> posted_;          // guarded by post_mutex_
  std::vector<task> running_posted_;  // loop thread only
  // posted_ is not empty (written under post_mutex_; read without it, as
  // a hint, once per iteration: run_pending_posted).
  std::atomic<bool> posted_pending_{false};
  std::atomic<std::uint64_t> wakeups_{0};
  std::vector<task> deferred_;
  std::vector<task> running_deferred_;
  std::vector<hook_entry> hooks_;
  std::vector<hook_entry> added_hooks_;  // added while hooks run
  hook_id next_hook_id_ = 1;
  bool running_hooks_ = false;

  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> running_{false};
  std::atomic<std::thread::id> owner_{};
  std::uint64_t iterations_ = 0;
  std::atomic<std::size_t> held_write_bytes_{0};
  std::size_t registered_ = 0;  // descriptors registered, for the destructor's check
  std::unique_ptr<detail::uring_engine> uring_;  // null: epoll
  std::error_code backend_error_;
  reply_window replies_;
};

}  // namespace switchboard::net
