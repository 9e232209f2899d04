// http_transports.hpp — private: the routes of the HTTP transports (GET /sse,
// /rt/session and /rt/session/<id>/{stream,poll,send}, DELETE
// /rt/session/<id>; docs/protocol.md, "HTTP transports") and the registry
// of their peers: admission (as /ws: Origin, token, max_connections),
// housekeeping (heartbeats, poll timeouts, idle sessions, peers to close),
// drain, and the forwarding of session requests to the node that holds the
// session (session_forward.hpp).
//
// Thread-safety: handlers run on the server's loops; tick() on the
// housekeeping thread; drain() and the counts from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <switchboard/realtime/config.hpp>
#include <switchboard/server/server.hpp>

#include "event_id.hpp"
#include "hub.hpp"
#include "metrics.hpp"
#include "session.hpp"
#include "session_forward.hpp"

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
  // The GET /sse streams of one channel that run on server connections
  // (sse_peer.hpp): counted in sse_streams(), and by the server as
  // connections (server::connections() includes them).
  std::size_t server_streams() const noexcept {
    return server_streams_.load(std::memory_order_relaxed);
  }

  // Sessions across nodes (session_forward.hpp, session_forward.cpp). This
  // node's id, which its session ids name, and the broker listens under;
  // set before install(). Empty: session ids name no node (nothing is
  // forwarded).
  void set_node_id(std::string id) { node_id_ = std::move(id); }
  // Requests forwarded to other nodes, by result (answered, gone, timeout,
  // unavailable); set before install().
  void set_forward_counter(counter_family& forwards) { forwards_counter_ = &forwards; }
  // A message of another node (broker::send_node), on the broker's thread.
  void on_node_message(std::string_view message);
  // Messages to this node may have been lost: every stream relayed from
  // another node ends (its client resumes with Last-Event-ID, exactly).
  void node_messages_lost();

 private:
  void handle_sse(const server::http_request& req, server::http_response& res);
  // GET /sse of one channel on a server connection (sse_peer.hpp), `conn`
  // admitted: true if opened (`conn` moved into the connection); false: the
  // request cannot become one (the connect hook at open, HEAD, HTTP/1.0, a
  // request pipelined behind): `conn` is left for the sse_stream path.
  bool open_server_stream(server::http_response& res, connection_state& conn,
                          std::string& channel, const channel_position& since);
  // The event-stream endpoint's callbacks.
  void server_stream_opened(server::websocket& ws);
  void server_stream_closing(server::websocket& ws, std::uint16_t code, std::string_view reason);
  void server_stream_closed(server::websocket& ws, std::uint16_t code);
  std::size_t legacy_streams() const;
  void open_session(const server::http_request& req, server::http_response& res);
  void session_route(const server::http_request& req, server::http_response& res);
  // 503 when off, draining or full; the /ws status for a refused client.
  bool admit(const server::http_request& req, server::http_response& res, connection_state& conn,
             std::string_view body_token);
  std::shared_ptr<http_session> find(std::string_view id);

  // One request to a session, wherever it arrived.
  struct session_call {
    std::string_view verb;  // send, poll, stream, delete
    std::string_view body;  // send: the command batch
    std::uint64_t after = 0;                 // poll
    std::optional<std::uint64_t> last_seen;  // stream
  };
  // Runs `call` on `s`, held here. Answers in `res`, through the responder
  // `defer` makes (poll) or on the stream `open` opens (stream; `open` sets
  // the headers).
  void run_call(const std::shared_ptr<http_session>& s, const session_call& call,
                server::http_response& res,
                const std::function<server::http_responder()>& defer,
                const std::function<server::http_stream(std::function<void()>)>& open);
  // --- session_forward.cpp ---
  // `call` for the session `id` of the node `home`, which is not this one.
  void forward(std::string_view home, std::string_view id, const session_call& call,
               server::http_response& res);
  void serve_forwarded(const node_message& m);    // q, on the home node
  void answer_forwarded(const node_message& m);   // a, where the request came
  void relay_in(const node_message& m);           // w, e, where the request came
  void reader_gone(const node_message& m);        // c, on the home node
  void send_node(std::string_view node, std::string message);
  // Sends forwards_[rid]'s message to its home node (again).
  void send_forward(std::uint64_t rid, const std::string& home, std::string message);
  void tick_forwards(std::uint64_t now_ms);
  void drain_forwards();

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
  const server::ws_behavior* stream_endpoint_ = nullptr;  // set by install()
  std::atomic<std::size_t> server_streams_{0};

  std::string node_id_;
  counter_family* forwards_counter_ = nullptr;
  void count_forward(std::string_view result) {
    if (forwards_counter_) forwards_counter_->with(std::string(result)).inc();
  }
  // Forwarding state; a leaf lock (no session is called with it held).
  std::mutex forward_mutex_;
  std::uint64_t next_rid_ = 1;
  struct pending_forward {
    server::http_responder responder;
    std::uint64_t deadline_ms = 0;
    bool stream = false;
    // Sent while no node listened under `home`: sent again at the next tick
    // until gone_ms (the home node's pub/sub connection may be coming back).
    std::string home, message;
    std::uint64_t gone_ms = 0;
    bool resend = false;
  };
  std::unordered_map<std::uint64_t, pending_forward> forwards_;  // rid → request sent home
  struct relayed_stream {
    server::http_stream stream;
    std::string home;
    std::uint64_t last_ms = 0;  // mono ms of the last message from home
  };
  std::unordered_map<std::uint64_t, relayed_stream> relayed_;  // rid → stream written from home
  // On the home node: "<reader node> <rid>" → the sink of a relayed stream.
  std::unordered_map<std::string, std::weak_ptr<relay_sink>> sinks_;
};

}  // namespace switchboard::realtime::detail
