// test_support.cpp — see test_support.hpp.
#include "test_support.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cstdlib>

#include "switchboard/net/tcp_socket.hpp"

namespace switchboard::net::test {

std::size_t open_fd_count() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  std::size_t count = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count;  // includes the directory's own descriptor, every time alike
}

event_loop_options test_loop_options() {
  event_loop_options options;
  options.timer_tick = 10ms;
  options.timer_slots = 256;
  // The same tests run on each backend: ctest registers them twice (see
  // CMakeLists.txt), the second time with this set to io_uring.
  if (const char* backend = std::getenv("SWITCHBOARD_TEST_IO_BACKEND")) {
    EXPECT_TRUE(parse_io_backend(backend, options.backend)) << backend;
  }
  return options;
}

std::unique_ptr<event_loop> make_loop(const event_loop_options& options) {
  std::error_code error;
  auto loop = event_loop::create(error, options);
  EXPECT_TRUE(loop) << "event_loop::create: " << error.message();
  // A backend asked for by the test run must be the one tested, not a fallback.
  if (loop) {
    EXPECT_EQ(loop->backend(), options.backend) << loop->backend_error().message();
  }
  return loop;
}

watchdog::watchdog(event_loop& loop, std::chrono::milliseconds limit)
    : thread_([this, &loop, limit] {
        std::unique_lock lock(mutex_);
        if (!done_.wait_for(lock, limit, [this] { return cancelled_; })) {
          fired_ = true;
          loop.stop();
        }
      }) {}

watchdog::~watchdog() {
  {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
  }
  done_.notify_all();
  thread_.join();
}

bool watchdog::fired() const {
  std::lock_guard lock(mutex_);
  return fired_;
}

bool run_for_at_most(event_loop& loop, std::chrono::milliseconds limit) {
  watchdog dog(loop, limit);
  const std::error_code error = loop.run();
  EXPECT_FALSE(error) << error.message();
  return !dog.fired();
}

std::pair<unique_fd, unique_fd> tcp_pair() {
  std::error_code error;
  unique_fd listener = open_tcp_socket(AF_INET, error);
  const endpoint any = endpoint::loopback_v4(0);
  EXPECT_EQ(::bind(listener.get(), any.data(), any.size()), 0);
  EXPECT_EQ(::listen(listener.get(), 1), 0);
  const endpoint bound = local_endpoint(listener.get(), error);
  unique_fd client = connect_blocking(bound);
  // The connection is queued already; poll in case the kernel is slow to say so.
  pollfd ready{listener.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&ready, 1, 5000), 1);
  unique_fd server(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  EXPECT_TRUE(server) << errno_code().message();
  ::fcntl(client.get(), F_SETFL, ::fcntl(client.get(), F_GETFL) | O_NONBLOCK);
  return {std::move(client), std::move(server)};
}

unique_fd connect_blocking(const endpoint& remote) {
  unique_fd fd(::socket(remote.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(fd) << errno_code().message();
  const timeval timeout{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  int result = ::connect(fd.get(), remote.data(), remote.size());
  if (result != 0 && errno == EINTR) {
    // An io_uring in this thread posting a completion (a listener's poll
    // reporting this very connection) interrupts a connect that has a
    // timeout; the handshake goes on: wait for it.
    pollfd writable{fd.get(), POLLOUT, 0};
    int error = 0;
    socklen_t length = sizeof error;
    if (::poll(&writable, 1, 5000) == 1 &&
        ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0) {
      result = 0;
    }
  }
  EXPECT_EQ(result, 0) << errno_code().message();
  return fd;
}

std::string read_exactly(int fd, std::size_t size, std::chrono::milliseconds limit) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  char buffer[64 * 1024];
  while (out.size() < size) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd ready{fd, POLLIN, 0};
    if (::poll(&ready, 1, static_cast<int>(left.count())) <= 0) break;
    const std::size_t want = std::min(sizeof buffer, size - out.size());
    const ssize_t n = ::recv(fd, buffer, want, MSG_DONTWAIT);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      break;
    }
    out.append(buffer, static_cast<std::size_t>(n));
  }
  return out;
}

std::string pattern(std::size_t offset, std::size_t size) {
  std::string out(size, '\0');
  // A period of 251 (prime) so that shifted or repeated chunks show.
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>('!' + (offset + i) % 251 % 90);
  return out;
}

}  // namespace switchboard::net::test
