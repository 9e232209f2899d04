// test_support.hpp — helpers shared by the switchboard::net tests: descriptor
// counting (every fixture fails a test that leaks one), a watchdog that bounds
// how long a loop may run (a bug fails the test instead of hanging it), and
// plain blocking sockets for the far end of a connection.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <utility>

#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/io_handler.hpp"
#include "switchboard/net/tcp_socket.hpp"

namespace switchboard::net::test {

using namespace std::chrono_literals;

// Number of open descriptors of this process (entries of /proc/self/fd).
std::size_t open_fd_count();

// Fails the test if it leaves more (or fewer) descriptors open than it found.
class net_test : public ::testing::Test {
 protected:
  void SetUp() override { fds_before_ = open_fd_count(); }
  void TearDown() override {
    EXPECT_EQ(open_fd_count(), fds_before_) << "the test leaked file descriptors";
  }

 private:
  std::size_t fds_before_ = 0;
};

// Options for test loops: a fine timer tick so timeouts are quick.
event_loop_options test_loop_options();

// Creates a loop or fails the test (check the result for nullptr).
std::unique_ptr<event_loop> make_loop(const event_loop_options& options = test_loop_options());

// Stops `loop` from another thread once `limit` has passed, unless destroyed first.
class watchdog {
 public:
  watchdog(event_loop& loop, std::chrono::milliseconds limit);
  ~watchdog();
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;
  [[nodiscard]] bool fired() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable done_;
  bool cancelled_ = false;
  bool fired_ = false;
  std::thread thread_;
};

// A timer that stops `loop` when it fires, and remembers that it did.
struct stop_timer {
  explicit stop_timer(event_loop& loop) : loop(&loop) { node.bind<&stop_timer::fire>(this); }
  void fire() {
    fired = true;
    loop->stop();
  }
  event_loop* loop;
  bool fired = false;
  timer_node node;
};

// Runs `loop` until it is stopped; returns false (and the test should fail) if
// the watchdog had to stop it after `limit`.
[[nodiscard]] bool run_for_at_most(event_loop& loop, std::chrono::milliseconds limit = 5s);

// A connected pair of loopback TCP sockets, both non-blocking and close-on-exec.
// `first` is the connecting side, `second` the accepted one.
std::pair<unique_fd, unique_fd> tcp_pair();

// A blocking client connected to `remote`, with 5 s send/receive timeouts.
unique_fd connect_blocking(const endpoint& remote);

// Reads exactly `size` bytes from a blocking or non-blocking socket, waiting
// with poll up to `limit` overall. Returns what it got (less on EOF or timeout).
std::string read_exactly(int fd, std::size_t size, std::chrono::milliseconds limit = 5s);

// `size` bytes of a recognisable pattern starting at stream offset `offset`.
std::string pattern(std::size_t offset, std::size_t size);

inline std::span<const std::byte> as_bytes(const std::string& text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}
inline std::string as_string(std::span<const std::byte> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace switchboard::net::test
