// admin.hpp — private: the live dashboard at /admin ([admin] enabled;
// docs/admin.md). The page (web/admin/, embedded) draws its charts from a
// WebSocket stats stream and acts through the server API.
//
//   GET  /admin, /admin/           the page            (HTTP Basic)
//   GET  /admin/<file>             its script and style (HTTP Basic)
//   GET  /admin/ticket             a one-use ticket for the stream (HTTP Basic)
//   POST /admin/api/<method>       the server API's methods (HTTP Basic)
//   WS   /admin/ws?ticket=…        the stats stream: one frame a second
//
// Never anonymous: every route but the stream needs HTTP Basic with
// admin.password (any user name; the api.key when no password is set) and
// answers 401 with WWW-Authenticate otherwise. The stream cannot use Basic
// (a browser's WebSocket sends no Authorization it was not given), so the
// page first fetches a ticket — random, one use, valid 30 s — through
// Basic, and opens the stream with it.
//
// Thread-safety: the handlers run on loop threads, tick() on the service's
// housekeeping thread; the ticket table has its own lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <switchboard/realtime/config.hpp>
#include <switchboard/server/server.hpp>

#include "http_api_methods.hpp"
#include "hub.hpp"
#include "metrics.hpp"

namespace switchboard::realtime::detail {

class admin_console {
 public:
  // Every reference must outlive this object.
  admin_console(const realtime_config& config, hub& h, api_methods& methods);

  // Adds the routes above to `srv` (the main server or the dashboard's own);
  // refusals count in `errors` by status. REQUIRES: before srv.listen().
  void install(server::server& srv, counter_family& errors);

  // Sends a stats frame to every open stream (nothing when none is open):
  // every node's counters (api `info`) and the channels with the most
  // subscribers. About once a second, from any thread.
  void tick();

  // Open streams now.
  std::size_t viewers() const noexcept { return viewers_.load(std::memory_order_relaxed); }

  static constexpr std::string_view k_topic = "#admin";  // no channel name starts with '#'
  static constexpr std::uint64_t k_ticket_ms = 30'000;
  static constexpr std::size_t k_max_tickets = 1024;
  static constexpr std::size_t k_stream_channels = 200;  // per frame, most subscribers first

 private:
  // False (and `res` holds the 401) unless the request carries the password.
  bool authorized(const server::http_request& req, server::http_response& res) const;
  std::string issue_ticket();
  bool redeem_ticket(std::string_view ticket);
  static std::unordered_map<std::string, std::size_t> cluster_subscribers(std::string_view info);

  const realtime_config& config_;
  hub& hub_;
  api_methods& methods_;
  server::server* srv_ = nullptr;
  std::mutex mutex_;
  std::map<std::string, std::uint64_t, std::less<>> tickets_;  // ticket → expiry (mono ms)
  std::atomic<std::size_t> viewers_{0};
};

}  // namespace switchboard::realtime::detail
