// io_handler.hpp — what an event_loop dispatches to, and the small ownership
// primitives every file-descriptor owner in switchboard::net is built from:
//
//   errno_code()          errno → std::error_code (system category)
//   unique_fd             sole owner of a file descriptor, closed on destruction
//   io_handler            the callback interface: one virtual call per ready fd
//   detail::lifetime_flag lets a function that invokes user callbacks learn
//                         whether its object was destroyed inside the callback
//
// Thread-safety: these are plain values. A unique_fd or lifetime_flag is used by
// one thread at a time; io_handler::on_events runs on its loop's thread only.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>

#include "switchboard/net/export.hpp"

namespace switchboard::net {

// Returns `error` (an errno value, by default the current errno) as a
// std::error_code in the system category. It compares equal to the matching
// std::errc, e.g. `errno_code(ECONNREFUSED) == std::errc::connection_refused`.
[[nodiscard]] inline std::error_code errno_code(int error = errno) noexcept {
  return {error, std::system_category()};
}

// Owns one file descriptor; closes it on destruction or reset(). Move-only.
class unique_fd {
 public:
  unique_fd() noexcept = default;
  // Takes ownership of `fd` (-1 means "none").
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] explicit operator bool() const noexcept { return fd_ >= 0; }

  // Gives up ownership without closing; returns the descriptor (or -1).
  [[nodiscard]] int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

  // Closes the owned descriptor (if any) and takes ownership of `fd`.
  // close() is not retried on EINTR: Linux releases the descriptor even then,
  // and a retry could close a descriptor another thread has just been given.
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// The receiver of readiness events for one registered file descriptor.
//
// The loop stores a pointer to the handler in the epoll registration, so
// dispatch costs one virtual call per ready descriptor per iteration — never per
// byte, never an allocation.
//
// Reentrancy: on_events may call any loop-thread function of the loop,
// including remove() of its own or another descriptor. After remove(fd, h)
// returns, `h` receives no further events — not even ones already collected in
// the current batch — so it may be destroyed at once.
// REQUIRES: a handler is registered for at most one descriptor at a time.
class SWITCHBOARD_NET_EXPORT io_handler {
 public:
  // `events` is the epoll mask: EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP, EPOLLERR.
  virtual void on_events(std::uint32_t events) = 0;

  // Completion I/O (event_loop::completion_io(); only handlers that asked for
  // it get these). Received bytes (valid during the call), or the end of the
  // stream (empty, error 0), or an error (an errno value).
  virtual void on_received(std::span<std::byte> data, int error);
  // The result of a queue_send(): bytes written, or -errno. `data` and
  // `total` are what was queued. Runs inside the cork's flush: no user
  // callbacks, no sends (see write_cork.hpp).
  virtual void on_sent(std::span<const iovec> data, std::size_t total, int result);
  // A connection accepted by event_loop::start_accept() (`socket` >= 0, now
  // owned by the handler; error 0) with its peer's address when the kernel
  // gave it (else `peer` null: ask getpeername), or the error that ended the
  // batch (`socket` -1, `error` an errno value such as EMFILE).
  virtual void on_accepted(int socket, int error, const sockaddr* peer, socklen_t peer_length);

  io_handler(const io_handler&) = delete;
  io_handler& operator=(const io_handler&) = delete;

 protected:
  io_handler() noexcept = default;
  ~io_handler() = default;
};

namespace detail {

// Embedded as a member of an object that calls out to user code which may
// destroy that object. The caller opens a scope before the callback and asks
// destroyed() afterwards; if true it must not touch `this` again.
//
//   detail::lifetime_flag::scope alive(lifetime_);
//   handler_(...);
//   if (alive.destroyed()) return;
//
// Scopes nest: destruction is reported to every open scope.
class lifetime_flag {
 public:
  lifetime_flag() noexcept = default;
  lifetime_flag(const lifetime_flag&) = delete;
  lifetime_flag& operator=(const lifetime_flag&) = delete;
  ~lifetime_flag() {
    if (innermost_ != nullptr) *innermost_ = true;
  }

  class scope {
   public:
// GCC 12 sees the address of this scope stored in a longer-lived object and,
// not following that the destructor takes it back (or that the object is gone),
// warns about a dangling pointer. It cannot dangle: see ~scope().
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
    explicit scope(lifetime_flag& flag) noexcept : flag_(&flag), outer_(flag.innermost_) {
      flag.innermost_ = &destroyed_;
    }
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic pop
#endif
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;
    ~scope() {
      if (!destroyed_) {
        flag_->innermost_ = outer_;
      } else if (outer_ != nullptr) {
        *outer_ = true;  // the object is gone for the enclosing scopes too
      }
    }
    [[nodiscard]] bool destroyed() const noexcept {
      return destroyed_;
    }

   private:
    lifetime_flag* flag_;
    bool* outer_;
    bool destroyed_ = false;
  };

 private:
  bool* innermost_ = nullptr;
};

}  // namespace detail
}  // namespace switchboard::net
