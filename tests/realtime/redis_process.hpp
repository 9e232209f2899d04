// redis_process.hpp — a redis-server of the test's own: 127.0.0.1, a port
// the kernel picked, a temporary directory, no persistence, a unix socket
// beside it; stopped (SIGKILL if need be) on destruction. Never the system
// service.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace switchboard::realtime::test {

class redis_process {
 public:
  // Starts one (extra arguments appended, e.g. {"--requirepass", "pw"}).
  // ok() is false if redis-server did not answer within 5 s.
  explicit redis_process(std::vector<std::string> extra = {});
  ~redis_process();
  redis_process(const redis_process&) = delete;
  redis_process& operator=(const redis_process&) = delete;

  bool ok() const noexcept { return pid_ > 0; }
  std::uint16_t port() const noexcept { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  const std::string& socket_path() const noexcept { return socket_; }

  // Stops it (SIGKILL: an abrupt loss) and starts it again on the same port,
  // empty.
  void kill();
  bool restart();

 private:
  bool spawn();
  std::vector<std::string> extra_;
  std::string dir_;
  std::string socket_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace switchboard::realtime::test
