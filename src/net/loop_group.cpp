// loop_group.cpp — thread start-up with signals blocked, stop and join.
#include "switchboard/net/loop_group.hpp"

#include <pthread.h>
#include <signal.h>

#include <cassert>
#include <string>
#include <system_error>

namespace switchboard::net {

std::unique_ptr<loop_group> loop_group::create(const loop_group_options& options,
                                               std::error_code& error) {
  error.clear();
  std::unique_ptr<loop_group> group(new loop_group());
  const std::size_t count = options.threads == 0 ? 1 : options.threads;
  // Each loop is run by its own thread, one for the group's life (unless
  // start() is called again after join(): see loop_group_options).
  event_loop_options loop_options = options.loop;
  loop_options.uring_single_thread = options.single_thread_loops;
  for (std::size_t i = 0; i < count; ++i) {
    auto loop = event_loop::create(error, loop_options);
    if (!loop) return nullptr;
    group->loops_.push_back(std::move(loop));
  }
  group->errors_.resize(count);
  return group;
}

loop_group::~loop_group() {
  stop();
  (void)join();
}

std::error_code loop_group::start() {
  assert(threads_.empty() && "loop_group::start called twice");
  // Threads inherit the creating thread's signal mask: block the shutdown
  // signals for the duration of the spawn so that no loop thread takes them.
  sigset_t blocked;
  sigset_t previous;
  sigemptyset(&blocked);
  for (const int signal_number : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&blocked, signal_number);
  ::pthread_sigmask(SIG_BLOCK, &blocked, &previous);

  std::error_code error;
  threads_.reserve(loops_.size());
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    errors_[i].clear();
    try {
      threads_.emplace_back([this, i] {
        // Thread names are limited to 15 characters; the index may be cut.
        const std::string name = "switchboard-" + std::to_string(i);
        ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
        errors_[i] = loops_[i]->run();
      });
    } catch (const std::system_error& e) {  // std::thread reports EAGAIN this way
      error = e.code();
      break;
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (error) {
    stop();
    (void)join();
  }
  return error;
}

void loop_group::stop() noexcept {
  for (auto& loop : loops_) loop->stop();
}

std::error_code loop_group::join() {
  std::error_code first;
  for (std::size_t i = 0; i < threads_.size(); ++i) {
    assert(threads_[i].get_id() != std::this_thread::get_id() &&
           "loop_group::join called from one of its own loop threads");
    if (threads_[i].joinable()) threads_[i].join();
    if (!first && errors_[i]) first = errors_[i];
  }
  threads_.clear();
  return first;
}

}  // namespace switchboard::net
