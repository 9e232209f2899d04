// event_loop.cpp — the run loop, the cross-thread task queue and registration.
#include "switchboard/net/event_loop.hpp"

#include <sys/eventfd.h>

#include <algorithm>
#include <cassert>
#include <climits>

#include "uring_engine.hpp"

namespace switchboard::net {
namespace {

steady_time clock_now() noexcept {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now());
}

}  // namespace

std::string_view to_string(io_backend backend) noexcept {
  return backend == io_backend::io_uring ? "io_uring" : "epoll";
}

bool parse_io_backend(std::string_view text, io_backend& out) noexcept {
  if (text == "epoll") {
    out = io_backend::epoll;
  } else if (text == "io_uring") {
    out = io_backend::io_uring;
  } else {
    return false;
  }
  return true;
}

void io_handler::on_received(std::span<std::byte> /*data*/, int /*error*/) {
  assert(false && "on_received for a handler that did not start a receive");
}

void io_handler::on_sent(std::span<const iovec> /*data*/, std::size_t /*total*/, int /*result*/) {
  assert(false && "on_sent for a handler that queued no send");
}

void io_handler::on_accepted(int /*socket*/, int /*error*/, const sockaddr* /*peer*/,
                             socklen_t /*peer_length*/) {
  assert(false && "on_accepted for a handler that started no accept");
}

std::unique_ptr<event_loop> event_loop::create(std::error_code& error,
                                               const event_loop_options& options) {
  error.clear();
  unique_fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) {
    error = errno_code();
    return nullptr;
  }
  unique_fd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake) {
    error = errno_code();
    return nullptr;
  }
  const int wake_fd = wake.get();
  std::unique_ptr<event_loop> loop(new event_loop(options, std::move(epoll), std::move(wake)));
  if (options.backend == io_backend::io_uring) {
    // Why keep the epoll instance: it is the fallback, decided here once; a
    // loop that got its ring never touches it (one idle descriptor).
    loop->uring_ = detail::uring_engine::create(options, loop->backend_error_);
    if (loop->uring_) {
      loop->cork_.set_flush_barrier(
          [](void* engine) { static_cast<detail::uring_engine*>(engine)->complete_sends(); },
          loop->uring_.get());
    }
  }
  if (auto ec = loop->add(wake_fd, EPOLLIN, loop->waker_)) {
    error = ec;
    return nullptr;
  }
  return loop;
}

event_loop::event_loop(const event_loop_options& options, unique_fd epoll, unique_fd wake)
    : epoll_fd_(std::move(epoll)),
      wake_fd_(std::move(wake)),
      events_(static_cast<std::size_t>(std::max(options.max_events, 1))),
      recv_buffer_(std::make_unique_for_overwrite<std::byte[]>(options.recv_buffer_size)),
      recv_buffer_size_(options.recv_buffer_size),
      now_(clock_now()),
      wheel_(options.timer_tick, options.timer_slots, now_) {}

event_loop::~event_loop() {
  assert(!running_.load() && "event_loop destroyed while running");
  // Only the loop's own eventfd may still be registered; anything else is a
  // handler that would later touch a dead loop.
  assert(registered_ <= 1 && "event_loop destroyed with handlers still registered");
}

void event_loop::update_now() noexcept {
  assert(in_loop_thread() && "event_loop::update_now called from another thread");
  now_ = std::max(now_, clock_now());
  wheel_.update_time(now_);
}

bool event_loop::in_loop_thread() const noexcept {
  return !running_.load(std::memory_order_relaxed) ||
         owner_.load(std::memory_order_relaxed) == std::this_thread::get_id();
}

std::error_code event_loop::run() {
  assert(!running_.load() && "event_loop::run is not reentrant");
  owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  running_.store(true, std::memory_order_relaxed);
  std::error_code error;
  do {
    error = run_once();
  } while (!error && !stop_requested_.load(std::memory_order_acquire));
  stop_requested_.store(false, std::memory_order_relaxed);  // consumed
  running_.store(false, std::memory_order_relaxed);
  owner_.store(std::thread::id{}, std::memory_order_relaxed);
  return error;
}

void event_loop::stop() noexcept {
  stop_requested_.store(true, std::memory_order_release);
  notify();
}

void event_loop::wake() noexcept { notify(); }

void event_loop::notify() noexcept {
  wakeups_.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t one = 1;
  // Cannot fail short of a counter overflow (2^64 - 2 wake-ups), and EAGAIN
  // then would still leave the eventfd readable: nothing to handle.
  [[maybe_unused]] const auto written = ::write(wake_fd_.get(), &one, sizeof one);
}

int event_loop::poll_timeout() const noexcept {
  if (!deferred_.empty() || !cork_.empty() || posted_pending_.load(std::memory_order_relaxed)) {
    return 0;
  }
  const auto next = wheel_.next_expiry();
  if (!next) return -1;
  const auto now = clock_now();
  if (*next <= now) return 0;
  // `next` lies on the millisecond grid and epoll_wait never returns early
  // (only late), so on wake-up clock_now() >= *next and the timer is due.
  return static_cast<int>(std::min<std::int64_t>((*next - now).count(), INT_MAX));
}

std::error_code event_loop::run_once() {
  if (uring_) return run_once_uring();
  const int ready = ::epoll_wait(epoll_fd_.get(), events_.data(), static_cast<int>(events_.size()),
                                 poll_timeout());
  if (ready < 0 && errno != EINTR) return errno_code();
  ++iterations_;
  now_ = clock_now();

  // The batch is live from here: a timer that removes a handler must also
  // cancel its collected events. batch_index_ -1: none dispatched yet.
  batch_size_ = std::max(ready, 0);
  batch_index_ = -1;
  wheel_.advance(now_);
  for (batch_index_ = 0; batch_index_ < batch_size_; ++batch_index_) {
    const epoll_event& event = events_[static_cast<std::size_t>(batch_index_)];
    // Null when its handler was removed earlier in this batch.
    if (auto* handler = static_cast<io_handler*>(event.data.ptr)) handler->on_events(event.events);
  }
  batch_size_ = 0;
  batch_index_ = 0;

  run_deferred();
  run_pending_posted();
  run_hooks();
  cork_.flush();
  return {};
}

std::error_code event_loop::run_once_uring() {
  if (auto error = uring_->wait(poll_timeout())) return error;
  ++iterations_;
  now_ = clock_now();
  // Removed handlers' completions are recognised as stale by the engine, so
  // no batch bookkeeping is needed here.
  wheel_.advance(now_);
  uring_->dispatch();
  run_deferred();
  run_pending_posted();
  run_hooks();
  cork_.flush();  // its barrier submits the sends
  return {};
}

std::error_code event_loop::start_receive(int fd) {
  assert(in_loop_thread() && "event_loop::start_receive called from another thread");
  assert(uring_ && "start_receive needs completion_io()");
  return uring_->start_receive(fd);
}

std::error_code event_loop::start_accept(int fd, socklen_t peer_length) {
  assert(in_loop_thread() && "event_loop::start_accept called from another thread");
  assert(uring_ && "start_accept needs completion_io()");
  return uring_->start_accept(fd, peer_length);
}

std::size_t event_loop::registered_files() const noexcept {
  return uring_ ? uring_->fixed_files() : 0;
}

void event_loop::queue_send(int fd, std::span<const iovec> data, std::size_t total,
                            io_handler& handler) {
  assert(uring_ && "queue_send needs completion_io()");
  uring_->queue_send(fd, data, total, handler);
}

void event_loop::waker::on_events(std::uint32_t /*events*/) {
  std::uint64_t count = 0;
  // Reset the counter before taking the queue: a post() racing with us either
  // lands in this batch or writes the eventfd again and wakes the next iteration.
  [[maybe_unused]] const auto got = ::read(loop_->wake_fd_.get(), &count, sizeof count);
  loop_->run_posted();
}

void event_loop::post(task t) {
  // Only the producer that makes the queue non-empty wakes the loop: later ones
  // ride on that wake-up, so a burst of posts costs one eventfd write.
  if (!post_unwoken(std::move(t))) return;
  // The loop thread itself needs no eventfd: it runs the queue before its
  // hooks (run_pending_posted), and what others post meanwhile rides along.
  if (running_.load(std::memory_order_relaxed) &&
      owner_.load(std::memory_order_relaxed) == std::this_thread::get_id()) {
    return;
  }
  notify();
}

bool event_loop::post_unwoken(task t) {
  std::lock_guard lock(post_mutex_);
  const bool was_empty = posted_.empty();
  posted_.push_back(std::move(t));
  if (was_empty) posted_pending_.store(true, std::memory_order_relaxed);
  return was_empty;
}

void event_loop::run_pending_posted() {
  // Why every iteration and not only when the eventfd is reported: epoll
  // hands out at most max_events ready descriptors per wait, and a loop
  // busy with more (thousands of subscribers' sockets writable again after
  // backpressure) could otherwise leave the queue - publications for all
  // its subscribers - waiting behind several batches of them.
  if (posted_pending_.load(std::memory_order_relaxed)) run_posted();
}

void event_loop::run_posted() {
  assert(running_posted_.empty());
  {
    std::lock_guard lock(post_mutex_);
    running_posted_.swap(posted_);  // posted_ inherits the spare capacity
    posted_pending_.store(false, std::memory_order_relaxed);
  }
  for (task& t : running_posted_) t();
  running_posted_.clear();
}

void event_loop::defer(task t) {
  assert(in_loop_thread() && "event_loop::defer called from another thread");
  deferred_.push_back(std::move(t));
}

void event_loop::run_deferred() {
  if (deferred_.empty()) return;
  running_deferred_.swap(deferred_);  // tasks deferred from here on wait for the next iteration
  for (task& t : running_deferred_) t();
  running_deferred_.clear();
}

event_loop::hook_id event_loop::add_iteration_hook(task hook) {
  assert(in_loop_thread() && "event_loop::add_iteration_hook called from another thread");
  const hook_id id = next_hook_id_++;
  // While hooks run, hooks_ must not reallocate: a running hook lives in it.
  (running_hooks_ ? added_hooks_ : hooks_).push_back(hook_entry{id, std::move(hook)});
  return id;
}

void event_loop::remove_iteration_hook(hook_id id) noexcept {
  assert(in_loop_thread() && "event_loop::remove_iteration_hook called from another thread");
  auto matches = [id](const hook_entry& entry) { return entry.id == id; };
  std::erase_if(added_hooks_, matches);
  auto it = std::find_if(hooks_.begin(), hooks_.end(), matches);
  if (it == hooks_.end()) return;
  if (running_hooks_) {
    it->id = 0;  // the hook may be the one running: erase it after the phase
  } else {
    hooks_.erase(it);
  }
}

void event_loop::run_hooks() {
  running_hooks_ = true;
  for (std::size_t i = 0; i < hooks_.size(); ++i) {
    if (hooks_[i].id != 0) hooks_[i].fn();
  }
  running_hooks_ = false;
  std::erase_if(hooks_, [](const hook_entry& entry) { return entry.id == 0; });
  for (hook_entry& entry : added_hooks_) hooks_.push_back(std::move(entry));
  added_hooks_.clear();
}

std::error_code event_loop::add(int fd, std::uint32_t events, io_handler& handler) {
  assert(in_loop_thread() && "event_loop::add called from another thread");
  if (uring_) {
    if (auto error = uring_->add(fd, events, handler)) return error;
    ++registered_;
    return {};
  }
  epoll_event event{};
  event.events = events;
  event.data.ptr = &handler;
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &event) != 0) return errno_code();
  ++registered_;
  return {};
}

std::error_code event_loop::modify(int fd, std::uint32_t events, io_handler& handler) {
  assert(in_loop_thread() && "event_loop::modify called from another thread");
  if (uring_) return uring_->modify(fd, events, handler);
  epoll_event event{};
  event.events = events;
  event.data.ptr = &handler;
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, fd, &event) != 0) return errno_code();
  return {};
}

void event_loop::remove(int fd, io_handler& handler) noexcept {
  assert(in_loop_thread() && "event_loop::remove called from another thread");
  if (uring_) {
    if (uring_->remove(fd, handler)) {
      assert(registered_ > 0);
      --registered_;
    }
    return;
  }
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr) == 0) {
    assert(registered_ > 0);
    --registered_;
  }
  // The current batch may still hold events for this handler, which may be
  // destroyed as soon as we return: forget them.
  for (int i = batch_index_ + 1; i < batch_size_; ++i) {
    auto& event = events_[static_cast<std::size_t>(i)];
    if (event.data.ptr == &handler) event.data.ptr = nullptr;
  }
}

}  // namespace switchboard::net
