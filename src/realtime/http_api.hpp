// http_api.hpp — private: the HTTP API of `switchboard serve` (docs/protocol.md,
// "HTTP API"): POST /api/publish and GET /api/channels, behind X-API-Key.
// Publishing goes through the hub like a WebSocket publish: the same size
// limit, offsets, history and metrics.
//
// Thread-safety: the handlers run on loop threads, any number at once.
#pragma once

#include <switchboard/realtime/config.hpp>
#include <switchboard/server/http.hpp>
#include <switchboard/server/server.hpp>

#include "hub.hpp"
#include "metrics.hpp"
#include "session.hpp"

namespace switchboard::realtime::detail {

class http_api {
 public:
  // Every reference must outlive this object.
  http_api(const realtime_config& config, hub& h, const sessions& s);

  // Adds the API's routes to `srv`; every answer of 400 or more counts in
  // `errors` by status. REQUIRES: before srv.listen().
  void install(server::server& srv, counter_family& errors);

 private:
  friend class api_methods;  // the other methods share the key check
  // False (and `res` holds the 401/403) unless the request has the API key.
  bool check_api_key(const server::http_request& req, server::http_response& res) const;
  void publish(const server::http_request& req, server::http_response& res);
  void channels(const server::http_request& req, server::http_response& res);
  void list_channels(broker::channels_result& r, server::http_response& res) const;

  const realtime_config& config_;
  hub& hub_;
  const sessions& sessions_;
};

// {"channels":[{"channel","subscribers","epoch","offset"},…]} sorted by name,
// with this node's subscriber counts: GET /api/channels and the server API's
// `channels` method.
std::string channels_json(std::vector<channel_info>& channels, hub& h);

}  // namespace switchboard::realtime::detail
