// http_api_methods.hpp — private: the server API's methods beside publish
// (docs/protocol.md, "Server API"): broadcast, batch, subscribe,
// unsubscribe, disconnect, presence, presence_stats, history,
// history_remove, channels, info — and publish again, so a batch can hold it.
//
// Each is reachable as POST /api/<method> with the parameters as the body,
// and as POST /api with {"method": "…", "params": {…}}; both behind the
// X-API-Key of /api/publish. A method answers 200 with its result object, or
// the error's status with {"error":{"code":N,"message":"…"}}; a parameter
// that is missing, misspelt or of the wrong type is a 400 naming it.
//
// Actions on connections (subscribe, unsubscribe, disconnect) go to every
// node through broker::send_control; each node acts on its own connections
// (session_control.cpp). `info` lists every node's statistics, which each
// node hands to the broker once a second (service.cpp).
//
// Thread-safety: call() and the handlers run on any thread, any number at
// once; completions run where the broker completes (maybe another thread).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <switchboard/realtime/config.hpp>
#include <switchboard/server/server.hpp>

#include "broker.hpp"
#include "hub.hpp"
#include "metrics.hpp"
#include "session.hpp"

namespace switchboard::realtime::detail {

class http_api;

// What a method answers: the HTTP status, and the result (status 200) or
// the failure.
struct api_reply {
  int status = 200;
  std::string result;   // a JSON object; set when status is 200
  std::string message;  // the error's message otherwise
};

class api_methods {
 public:
  // This node's statistics as one JSON object (info, the dashboard).
  using node_stats = std::function<std::string()>;

  // Every reference must outlive this object.
  api_methods(hub& h, sessions& s, std::string node_id, node_stats stats);

  // Adds POST /api and POST /api/<method> (every method but publish, which
  // http_api serves already). REQUIRES: before srv.listen().
  void install(server::server& srv, const http_api& api, counter_family& errors);

  // Runs `method` with `params` (the text of a JSON object). `done` runs
  // exactly once, maybe before this returns, maybe on another thread.
  void call(std::string_view method, std::string_view params, broker::completion<api_reply> done);

  // This node's statistics now (node_stats); the node id is in them.
  std::string stats() const { return stats_(); }
  const std::string& node_id() const noexcept { return node_id_; }

  // Commands in one batch, at most.
  static constexpr std::size_t k_max_batch = 1000;
  // Channels in one broadcast, at most.
  static constexpr std::size_t k_max_broadcast = 1000;

 private:
  using done_fn = broker::completion<api_reply>;
  void publish(simdjson::dom::object p, done_fn done);
  void broadcast(simdjson::dom::object p, done_fn done);
  void batch(simdjson::dom::object p, done_fn done);
  void control(std::string_view op, simdjson::dom::object p, done_fn done);
  void presence(simdjson::dom::object p, done_fn done);
  void presence_stats(simdjson::dom::object p, done_fn done);
  void history(simdjson::dom::object p, done_fn done);
  void history_remove(simdjson::dom::object p, done_fn done);
  void channels(simdjson::dom::object p, done_fn done);
  void info(simdjson::dom::object p, done_fn done);

  hub& hub_;
  sessions& sessions_;
  std::string node_id_;
  node_stats stats_;
};

}  // namespace switchboard::realtime::detail
