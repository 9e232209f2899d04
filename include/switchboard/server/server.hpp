// switchboard/server/server.hpp — a WebSocket + HTTP server on N event loops:
// routing by path, the upgrade, connection lifecycle, keepalive and timeouts,
// limits, topic fan-out, and graceful shutdown.
//
// Usage:
//   server srv({.port = 0});
//   srv.ws("/chat", behavior);                  // a WebSocket endpoint
//   srv.http("GET", "/healthz", handler);       // a plain HTTP handler
//   if (auto ec = srv.listen()) ...;            // binds; srv.port() is known now
//   return srv.run() ? 1 : 0;                   // until SIGTERM/SIGINT or shutdown()
//
// TLS: with options.tls set, the same server speaks wss:// on its port (see
// server_options::tls).
//
// Routing: exact path match; the path "*" matches any path no other route
// has. An unknown path is answered 404; a request that is not an upgrade on
// a WebSocket path 426 (405 for a method other than GET) unless an HTTP
// handler for that method and path exists; an HTTP path without a handler
// for the method 405. A handler sees the request's body (Content-Length, up
// to options.max_http_body; http.hpp).
//
// Metrics: statistics() sums each loop's counters (messages and bytes both
// ways, backpressure drops, handshakes turned away by reason), and
// options.on_handshake_failure hears each handshake failure as it happens.
//
// Thread-safety: ws(), http(), listen(), start(), run() and wait() from one
// controlling thread (not a loop thread). send(), close(), publish(),
// statistics() and shutdown() from any thread, loop threads included.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <switchboard/net/unique_function.hpp>
#include <switchboard/protocol/frame.hpp>
#include <switchboard/server/endpoint.hpp>
#include <switchboard/server/export.hpp>
#include <switchboard/server/http.hpp>
#include <switchboard/server/options.hpp>
#include <switchboard/server/websocket.hpp>
#include <system_error>

namespace switchboard::server {

namespace detail {
class server_core;
}

// Server-wide counters since listen(), for metrics (server::statistics()).
// Each loop counts its own connections without atomic read-modify-writes;
// the sum is read counter by counter, so it is not one atomic snapshot, but
// every counter only grows.
struct server_statistics {
  // Data messages handed to on_message (or completed through on_fragment),
  // and their payload bytes after inflating. Control frames are not counted.
  std::uint64_t messages_received = 0;
  std::uint64_t bytes_received = 0;
  // Data messages accepted for sending (send() not dropped; each topic
  // delivery counts once per subscriber), and their payload bytes before
  // compression.
  std::uint64_t messages_sent = 0;
  std::uint64_t bytes_sent = 0;
  // Sends refused for max_backpressure: with the drop policy each lost
  // message, with the close policy each connection it closed (1008).
  std::uint64_t backpressure_drops = 0;
  // Bytes queued for slow readers now, over all connections (the gauge that
  // max_outbound_memory bounds), and the sends dropped plus connections
  // closed because it was reached.
  std::size_t outbound_bytes = 0;
  std::uint64_t outbound_memory_drops = 0;
  // As server::compressed_messages().
  std::uint64_t compressed_messages = 0;
  // Times one thread woke a loop to run work it handed over (eventfd writes,
  // net::event_loop::wakeups()): a publication costs at most one per other
  // loop, and a batch of them published in one iteration of a loop one.
  std::uint64_t loop_wakeups = 0;
  // WebSocket connections open now (upgraded or upgrading), as connections().
  std::size_t connections = 0;
  // Handshakes the server itself turned away, by reason (options.hpp:
  // handshake_failure; index with static_cast<std::size_t>(reason)).
  std::array<std::uint64_t, k_handshake_failure_reasons> handshake_failures{};

  std::uint64_t handshake_failures_for(handshake_failure reason) const noexcept {
    return handshake_failures[static_cast<std::size_t>(reason)];
  }
  std::uint64_t handshake_failures_total() const noexcept {
    std::uint64_t total = 0;
    for (const std::uint64_t n : handshake_failures) total += n;
    return total;
  }
};

// How server::publish() reaches the publisher's own loop.
enum class publish_delivery : std::uint8_t { immediate, queued };

class SWITCHBOARD_SERVER_EXPORT server {
 public:
  explicit server(server_options options = {});
  // Shuts down without waiting for peers (terminates connections), joins.
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Adds a WebSocket endpoint at `path` ("*": every otherwise unrouted path).
  // REQUIRES: before listen(); the path is not yet a WebSocket endpoint.
  server& ws(std::string path, ws_behavior behavior);
  // Adds a plain HTTP handler for `method` (case-sensitive, "GET") at `path`.
  // REQUIRES: before listen().
  server& http(std::string method, std::string path, http_handler handler);
  // Registers the behaviour of event-stream connections: plain HTTP GETs a
  // handler turns into long-lived connections of this server
  // (http_response::open_event_stream). The endpoint is at no path; the
  // returned reference lives as long as the server, and its user data is
  // counted in the connections' inline space as a WebSocket endpoint's is.
  // REQUIRES: before listen().
  const ws_behavior& event_stream_endpoint(ws_behavior behavior);

  // Creates the loops and binds one listener per loop (SO_REUSEPORT when
  // threads > 1). Errors: a bad host (invalid_argument), bind/listen errors
  // (EADDRINUSE, EACCES), descriptor exhaustion.
  std::error_code listen();
  // The bound port (after listen()).
  std::uint16_t port() const noexcept;
  // After listen(): the backend the loops run on, and why it is not the one
  // asked for in options.io_backend (empty if it is; the server does not log).
  [[nodiscard]] net::io_backend io_backend() const noexcept;
  [[nodiscard]] std::error_code io_backend_error() const noexcept;

  // Starts the loop threads. REQUIRES: listen() succeeded.
  std::error_code start();
  // Waits until every loop has stopped (after shutdown()). Returns the first
  // loop error, if any.
  std::error_code wait();
  // listen() if not done, installs the SIGINT/SIGTERM watcher (when
  // options.handle_signals; call from main() before other threads start) —
  // and SIGHUP for reload_tls() when options.tls is set — start(), wait().
  std::error_code run();

  // Re-reads the certificate, key and CA files of options.tls (see
  // net::tls_context::reload): new connections use them, open ones keep
  // theirs. On failure the old configuration stays and the error's text says
  // why. Errors: operation_not_supported without TLS. Any thread.
  net::tls_error reload_tls();

  // Graceful shutdown: stop accepting, close every connection with
  // options.shutdown_code, wait for the peers' close frames up to
  // options.shutdown_timeout, terminate the rest, stop the loops. Idempotent.
  void shutdown();

  // Sends to / closes the connection `id` on its loop. Returns false only if
  // the id names no loop; a connection gone by then is skipped silently.
  bool send(connection_id id, std::string_view payload,
            protocol::opcode op = protocol::opcode::binary);
  bool close(connection_id id, std::uint16_t code = 1000, std::string reason = {});
  // Runs `fn` on the loop of connection `id` with its websocket, or with
  // nullptr if by then the connection is gone or no longer open (so `fn` can
  // undo what it was going to attach to it). Called on that loop (from one
  // of its callbacks), `fn` runs before dispatch() returns; from any other
  // thread it is posted. Returns false only if the id names no loop (then
  // `fn` never runs).
  bool dispatch(connection_id id, net::unique_function<void(websocket*)> fn);

  // Publishes to every subscriber of `topic` on every loop. The message is
  // framed once and the same bytes are written to each subscriber; for
  // subscribers that negotiated permessage-deflate it is compressed once per
  // loop (per window size in use) and those bytes are shared. Messages
  // one thread publishes arrive at each subscriber in order. Returns the
  // number of loops it was handed to.
  // `sequence` 0 is unsequenced: every subscriber gets it. Otherwise a
  // subscriber that subscribed with `after` (websocket::subscribe) gets it
  // only if sequence > after; the check runs on the subscriber's loop when
  // the message is delivered, so a publication that was already queued for
  // that loop when the subscription was made is filtered too. The server
  // neither assigns nor orders sequences: that is the caller's business.
  // `delivery` immediate (the default): on the publisher's own loop thread
  // the publication takes its place among the subscribers' messages at
  // once, so it keeps its order with that thread's direct sends. queued: the
  // own loop gets it through its queue like every other loop, so
  // publications made by several threads in one order (under one lock)
  // reach every loop in that order; the publisher's direct sends of the same
  // callback then go first.
  // Batching: a loop holds the publications to one topic that follow each
  // other within an iteration and writes them to each subscriber as one span
  // (one copy per loop, one write per subscriber per iteration). They are
  // written before anything else reaches one of the topic's subscribers,
  // before a subscription to the topic changes and before the loop's flush,
  // and each one's `after` filter and the backpressure cap are applied to
  // each publication as if it had been written alone; only a subscriber's
  // buffered_amount() and the sent counters see them at the batch's write.
  // Hand-off: one queue entry per loop (the framed message is shared, not
  // copied); published from a loop thread, the other loops are woken once
  // for everything that thread publishes in one iteration, at the end of
  // its callbacks, and the own loop is not woken (statistics().loop_wakeups).
  std::size_t publish(std::string_view topic, std::string_view payload,
                      protocol::opcode op = protocol::opcode::binary, std::uint64_t sequence = 0,
                      publish_delivery delivery = publish_delivery::immediate);

  // Messages compressed so far (permessage-deflate), server-wide: each
  // compressed send counts one, each publish one per loop and window size.
  std::uint64_t compressed_messages() const noexcept;

  // The counters of every loop, summed (see server_statistics). Any thread;
  // all zero before listen().
  server_statistics statistics() const noexcept;

  // WebSocket connections open now (upgraded or upgrading), server-wide,
  // event-stream connections (http_response::open_event_stream) included.
  std::size_t connections() const noexcept;
  const server_options& options() const noexcept;

 private:
  std::unique_ptr<detail::server_core> core_;
};

}  // namespace switchboard::server
