// http_transports.hpp — private: the routes of the HTTP transports (GET /sse,
// /rt/session and /rt/session/<id>/{stream,poll,send}, DELETE
// /rt/session/<id>; docs/protocol.md, "HTTP transports") and the registry
// of their peers: admission (as /ws: Origin, token, max_connections),
// housekeeping (heartbeats, poll timeouts, idle sessions, peers to close)
// and drain.
//
// Thread-safety: handlers run on the server's loops; tick() on the
// housekeeping thread; drain() and the counts from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <switchboard/realtime/config.hpp>
#include <switchboard/server/server.hpp>

#include "hub.hpp"
#include "metrics.hpp"
#include "session.hpp"

namespace switchboard::realtime::detail {

class http_session;
class sse_stream;

class http_transports {
 public:
  // Every reference must outlive this object.
  http_transports(const realtime_config& config, hub& h, sessions& s, counter_family& opened,
                  counter_family& http_errors);
  ~http_transports();

  void install(server::server& srv);
  // Every 200 ms (the service's housekeeping).
  void tick();
  // Before the server shuts down: every stream gets `event: reconnect` and
  // ends, every session closes (as /ws with shutdown.code). New requests are
  // refused (503) from now on.
  void drain();

  std::size_t sse_streams() const;
  std::size_t http_sessions() const;

 private:
  void handle_sse(const server::http_request& req, server::http_response& res);
  void open_session(const server::http_request& req, server::http_response& res);
  void session_route(const server::http_request& req, server::http_response& res);
  // 503 when off, draining or full; the /ws status for a refused client.
  bool admit(const server::http_request& req, server::http_response& res, connection_state& conn,
             std::string_view body_token);
  std::shared_ptr<http_session> find(std::string_view id);

  const realtime_config& config_;
  hub& hub_;
  sessions& sessions_;
  counter_family& opened_;
  counter_family& http_errors_;
  server::server* srv_ = nullptr;
  std::atomic<bool> draining_{false};
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<http_session>> sessions_by_id_;
  std::vector<std::shared_ptr<sse_stream>> streams_;
};

}  // namespace switchboard::realtime::detail
