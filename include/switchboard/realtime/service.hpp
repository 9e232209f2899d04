// switchboard/realtime/service.hpp — the realtime server behind
// `switchboard serve`: channels, presence, history and recovery, JWT auth,
// limits, the HTTP API, metrics and the demo page, on a switchboard::server
// with the embedded in-memory broker. docs/protocol.md is its wire contract.
//
// Usage:
//   realtime::service svc(config, log);
//   if (auto ec = svc.listen()) { print(svc.error_message()); return 1; }
//   print("listening on http://127.0.0.1:" + svc.port());
//   return svc.run() ? 1 : 0;   // until SIGTERM/SIGINT, then drains and saves
//
// Thread-safety: construct, listen(), run() from the main thread (run()
// installs the signal watcher, so call it before starting other threads);
// shutdown() and the statistics from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <switchboard/realtime/config.hpp>
#include <switchboard/realtime/export.hpp>
#include <system_error>

namespace switchboard::realtime {

enum class log_level : std::uint8_t { debug, info, warn, error };
// One line per event worth knowing (start, auth failures, limits hit,
// shutdown). Called from loop threads; must be thread-safe.
using log_function = std::function<void(log_level level, std::string_view message)>;

class SWITCHBOARD_REALTIME_EXPORT service {
 public:
  explicit service(realtime_config config, log_function log = {});
  ~service();
  service(const service&) = delete;
  service& operator=(const service&) = delete;

  // Validates the configuration, loads the snapshot file (if any), creates
  // the TLS context (if configured) and binds. On error, error_message()
  // says what and where.
  std::error_code listen();
  std::uint16_t port() const noexcept;
  // Runs until SIGTERM/SIGINT or shutdown(): then closes every connection
  // with shutdown_code, drains within shutdown_timeout, writes the snapshot.
  std::error_code run();
  void shutdown();
  const std::string& error_message() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace switchboard::realtime
