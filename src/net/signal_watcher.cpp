// signal_watcher.cpp — signalfd plumbing.
#include "switchboard/net/signal_watcher.hpp"

#include <pthread.h>
#include <sys/signalfd.h>

#include <cassert>

namespace switchboard::net {
namespace {

std::error_code make_set(std::initializer_list<int> signals, sigset_t& set) noexcept {
  sigemptyset(&set);
  for (const int signal_number : signals) {
    if (sigaddset(&set, signal_number) != 0) return errno_code();
  }
  return {};
}

}  // namespace

std::error_code signal_watcher::block(std::initializer_list<int> signals) noexcept {
  sigset_t set;
  if (auto error = make_set(signals, set)) return error;
  // pthread_sigmask returns the error instead of setting errno.
  if (const int error = ::pthread_sigmask(SIG_BLOCK, &set, nullptr); error != 0) {
    return errno_code(error);
  }
  return {};
}

std::unique_ptr<signal_watcher> signal_watcher::create(event_loop& loop, signal_handler on_signal,
                                                       std::error_code& error,
                                                       std::initializer_list<int> signals) {
  assert(loop.in_loop_thread());
  sigset_t set;
  if ((error = make_set(signals, set))) return nullptr;
  if ((error = block(signals))) return nullptr;
  unique_fd fd(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!fd) {
    error = errno_code();
    return nullptr;
  }
  const int raw_fd = fd.get();
  std::unique_ptr<signal_watcher> watcher(
      new signal_watcher(loop, std::move(fd), std::move(on_signal)));
  if ((error = loop.add(raw_fd, EPOLLIN, *watcher))) {
    watcher->fd_.reset();  // not registered: the destructor must not remove it
    return nullptr;
  }
  return watcher;
}

signal_watcher::signal_watcher(event_loop& loop, unique_fd fd, signal_handler on_signal) noexcept
    : loop_(&loop), fd_(std::move(fd)), on_signal_(std::move(on_signal)) {}

signal_watcher::~signal_watcher() {
  if (fd_) loop_->remove(fd_.get(), *this);
}

void signal_watcher::on_events(std::uint32_t /*events*/) {
  detail::lifetime_flag::scope alive(lifetime_);
  for (;;) {
    signalfd_siginfo info{};
    const ssize_t n = ::read(fd_.get(), &info, sizeof info);
    if (n < 0 && errno == EINTR) continue;
    // EAGAIN: all read. A short read cannot happen with a full-size buffer.
    if (n != static_cast<ssize_t>(sizeof info)) return;
    on_signal_(static_cast<int>(info.ssi_signo));
    if (alive.destroyed()) return;
  }
}

}  // namespace switchboard::net
