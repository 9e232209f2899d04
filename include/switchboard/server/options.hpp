// switchboard/server/options.hpp — the knobs of a switchboard::server, each
// with its default and the reason for it.
//
// A 0 duration disables the timeout it names. Durations are milliseconds; the
// loop's timer wheel rounds them up to its tick (100 ms by default).
//
// Thread-safety: plain values; a server copies them at construction.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <switchboard/net/tls_error.hpp>
#include <switchboard/protocol/close_code.hpp>
#include <switchboard/server/export.hpp>

namespace switchboard::net {
class tls_context;
}

namespace switchboard::server {

// What to do with a send to a connection whose unsent bytes already exceed
// server_options::max_backpressure.
enum class backpressure_policy : std::uint8_t {
  close,  // close the connection with 1008 (policy violation); the send is dropped
  drop,   // drop the new message (send returns dropped); the connection stays open
};

// Why the server itself turned a connection away before it became a
// WebSocket (or before a plain HTTP handler ran). Rejections the application
// makes (upgrade_request::reject, an HTTP handler's own status) are not
// handshake failures. Each reason has a stable token, handshake_failure_token():
// the enumerator's name. Counted per reason in server::statistics() and
// reported to server_options::on_handshake_failure with the HTTP status sent
// (0: dropped without an answer).
enum class handshake_failure : std::uint8_t {
  // The request head does not parse (RFC 9112); 431, 414 or 400. The tokens
  // are the names of the protocol::error that rejected it.
  head_too_large,           // 431: over max_head_size
  too_many_headers,         // 431
  header_line_too_long,     // 431
  request_line_too_long,    // 414
  bad_request_line,         // 400
  bad_http_version,         // 400
  bad_header_name,          // 400
  missing_header_colon,     // 400
  bad_header_value,         // 400
  obs_fold,                 // 400
  bare_lf,                  // 400
  whitespace_before_colon,  // 400
  // Not a valid opening handshake (RFC 6455 §4.2.1); the protocol::error's name.
  method_not_get,              // 405
  http_version_too_old,        // 505
  missing_host,                // 400
  duplicate_host,              // 400
  missing_upgrade,             // 426: a plain request to a WebSocket-only path
  missing_connection_upgrade,  // 400
  missing_version,             // 426
  unsupported_version,         // 426
  missing_key,                 // 400
  duplicate_key,               // 400
  bad_key,                     // 400
  bad_extension_header,        // 400
  bad_protocol_header,         // 400
  bad_request,                 // 400: any other malformed request
  unsupported_http_version,    // 505: not HTTP/1.0 or HTTP/1.1 (any route)
  // Routing and limits.
  not_found,            // 404: no route for the path
  method_not_allowed,   // 405: an HTTP-only path without a handler for the method
  max_connections,      // 503: max_connections reached
  bad_response_header,  // 500: on_upgrade's accept() passed a header with CR/LF
  // Request bodies of plain HTTP handlers (see max_http_body).
  body_too_large,      // 413: Content-Length over max_http_body
  bad_content_length,  // 400: not digits, or repeated with different values
  transfer_encoding,   // 411: Transfer-Encoding (chunked bodies are not supported)
  // Dropped without an answer (status 0).
  handshake_timeout,    // the head (or body, or deferred decision) took over handshake_timeout
  peer_closed,          // the client closed or reset the connection mid-handshake
  tls_handshake,        // the TLS handshake failed (see on_tls_handshake_error)
  pipelined_too_large,  // over max_head_size of frames sent while on_upgrade deferred
  shutdown,             // the server shut down mid-handshake
  open_failed,          // the accepted socket could not be set up (epoll, TLS state)
};

// Number of handshake_failure reasons (the size of the per-reason counters).
inline constexpr std::size_t k_handshake_failure_reasons =
    static_cast<std::size_t>(handshake_failure::open_failed) + 1;

// The stable token of a reason ("bad_key", "max_connections", ...), for
// metrics labels and logs.
constexpr std::string_view handshake_failure_token(handshake_failure reason) noexcept {
  constexpr std::string_view k_tokens[k_handshake_failure_reasons] = {
      "head_too_large",
      "too_many_headers",
      "header_line_too_long",
      "request_line_too_long",
      "bad_request_line",
      "bad_http_version",
      "bad_header_name",
      "missing_header_colon",
      "bad_header_value",
      "obs_fold",
      "bare_lf",
      "whitespace_before_colon",
      "method_not_get",
      "http_version_too_old",
      "missing_host",
      "duplicate_host",
      "missing_upgrade",
      "missing_connection_upgrade",
      "missing_version",
      "unsupported_version",
      "missing_key",
      "duplicate_key",
      "bad_key",
      "bad_extension_header",
      "bad_protocol_header",
      "bad_request",
      "unsupported_http_version",
      "not_found",
      "method_not_allowed",
      "max_connections",
      "bad_response_header",
      "body_too_large",
      "bad_content_length",
      "transfer_encoding",
      "handshake_timeout",
      "peer_closed",
      "tls_handshake",
      "pipelined_too_large",
      "shutdown",
      "open_failed",
  };
  const auto i = static_cast<std::size_t>(reason);
  return i < k_handshake_failure_reasons ? k_tokens[i] : std::string_view("unknown");
}

struct SWITCHBOARD_SERVER_EXPORT server_options {
  // Numeric address to listen on ("127.0.0.1", "::1", "0.0.0.0"); no host names.
  std::string host = "127.0.0.1";
  // 0 picks a free port; server::port() tells which.
  std::uint16_t port = 9001;
  // Event loops (one thread each, SO_REUSEPORT listeners when more than one).
  std::size_t threads = 1;

  // Largest data message accepted, in bytes. Larger fails with 1009 as soon as
  // a frame header announces it, before anything is buffered.
  std::uint64_t max_message_size = 16 * 1024 * 1024;
  // Largest request head (request line + headers). Larger is answered 431
  // (or 414 for a request line alone over the line limit).
  std::size_t max_head_size = 16 * 1024;
  // Largest request body a plain HTTP handler accepts (http_request::body()),
  // in bytes. The body is read whole before the handler runs, within
  // handshake_timeout like the head; a Content-Length over this is answered
  // 413 without reading the body. 1 MiB fits publish calls and form posts
  // and bounds what one connection can make the server hold.
  std::size_t max_http_body = 1024 * 1024;

  // The client must complete its request head within this time; slowloris
  // clients that trickle bytes are dropped without an answer. On a
  // keep-alive connection the clock restarts with each request's first byte
  // (and after each answer while requests are pending).
  std::chrono::milliseconds handshake_timeout{10'000};
  // Plain HTTP keep-alive (RFC 9112 §9.3): requests one connection may
  // carry. The answer to the last one says "Connection: close" and the
  // connection closes after it. 1: one request per connection.
  // 0: no limit.
  std::size_t max_http_requests = 1;
  // Plain HTTP keep-alive: how long a connection may wait, with every answer
  // sent, for the first byte of its next request before it is closed
  // (quietly: nothing was asked). 0: no limit.
  std::chrono::milliseconds http_idle_timeout{30'000};
  // Close (1001) a connection that received nothing for this long. Off by
  // default: keepalive pings cover dead peers and real apps have quiet users.
  std::chrono::milliseconds idle_timeout{0};
  // Send a ping after this long without receiving anything, so dead peers and
  // NATs that forgot the connection are noticed. 30 s is below most proxies'
  // idle cut-off (60 s).
  std::chrono::milliseconds ping_interval{30'000};
  // After a keepalive ping, anything received (a pong, usually) within this
  // time keeps the connection; otherwise it is closed with 1008, and its
  // close frame is awaited for at most pong_timeout more (not close_timeout):
  // on_close hears of a dead peer after ping_interval + 2 x pong_timeout.
  std::chrono::milliseconds pong_timeout{10'000};
  // After we send a close frame, wait this long for the peer's close frame,
  // then close TCP anyway. Also bounds the wait for the peer's FIN after we
  // have shut our side down.
  std::chrono::milliseconds close_timeout{5'000};

  // WebSocket connections open at once (upgraded or upgrading), server-wide.
  // One more upgrade request is answered 503. 0 means no limit.
  std::size_t max_connections = 0;
  // Bytes a connection may have queued (accepted by send, not yet taken by
  // the kernel) before `policy` applies to the next send. 1 MiB absorbs a burst
  // to a slow reader and bounds memory; one message always fits on top.
  std::size_t max_backpressure = 1024 * 1024;
  backpressure_policy policy = backpressure_policy::close;
  // Bytes queued for slow readers over all connections, server-wide: the
  // bytes every loop holds for peers whose socket is full
  // (net::event_loop::held_write_bytes()). Each queue
  // staying under max_backpressure does not bound their sum: ten thousand
  // readers that never read hold ten thousand queues. Past this total the
  // largest queues go first. With the close policy, the connections with the
  // largest queues are closed (on_close hears 1008; their queues are dropped
  // at once, as a close frame would wait behind them) until the total is
  // under 7/8 of the limit, later in the same loop iteration; a connection
  // with a queue that is sent to while the total is over 9/8 of the limit
  // loses that message and is closed with them. With the drop policy, while
  // the total is over the limit, every send to a connection that already has
  // a queue is dropped (send returns dropped); connections that keep up are
  // not touched. Counted in statistics().outbound_memory_drops. 256 MiB fits
  // a small machine. 0: no limit.
  std::size_t max_outbound_memory = 256 * 1024 * 1024;

  // Graceful shutdown: the close code every connection gets (1001 going away,
  // or 1012 service restart so clients reconnect at once), and how long the
  // peers' close frames are awaited before the remaining connections are dropped.
  protocol::close_code shutdown_code = protocol::close_code::going_away;
  std::chrono::milliseconds shutdown_timeout{5'000};
  // server::run() shuts down gracefully on SIGINT and SIGTERM.
  bool handle_signals = true;
  // Runs once when a graceful shutdown begins (a signal or shutdown()), on
  // the thread that began it (for a signal, a loop thread), before any
  // connection is closed: the application's last chance to write a final
  // message to its streams (http_stream: what is written before shutdown
  // is sent before the stream is finished). Must not block or throw.
  std::function<void()> on_shutdown;

  // Event-loop timer resolution. Tests use a finer tick for quick timeouts.
  std::chrono::milliseconds timer_tick{100};

  // TLS: when set, every connection is wss:// — the TLS handshake runs first
  // (bounded by handshake_timeout, like the request head), then the upgrade.
  // Plain HTTP or garbage on the port fails the TLS handshake and is dropped
  // (the context counts it: statistics().not_tls). Not owned: create it with
  // net::tls_context::server() and keep it alive until the server is gone.
  // Null (the default): plain ws://.
  net::tls_context* tls = nullptr;
  // With tls set and handle_signals, run() also watches SIGHUP and calls
  // tls->reload(): new connections get the re-read certificate and key, open
  // ones carry on; on failure the old configuration stays. This hook hears
  // each outcome (an empty error on success), on a loop thread. SIGHUP is
  // left alone without tls.
  std::function<void(const net::tls_error& result)> on_tls_reload;
  // Hears every TLS handshake that failed (plain HTTP or garbage on the TLS
  // port, no common protocol or cipher, a rejected client certificate, a
  // peer that hung up mid-handshake), with the error and OpenSSL's reason
  // text, on a loop thread — for logs. The context counts them too
  // (tls_context::statistics()).
  std::function<void(std::error_code error, std::string_view reason)> on_tls_handshake_error;

  // Hears every handshake failure the server itself answered or dropped (see
  // handshake_failure; not the application's own rejections), on the loop
  // thread, after it was counted in server::statistics(): `status` is the
  // HTTP status sent (0 when dropped without an answer: handshake timeout,
  // peer gone mid-handshake, TLS handshake failure, shutdown), `reason` the
  // stable token (handshake_failure_token). For logs; must not block. The
  // tokens: head_too_large, too_many_headers, header_line_too_long,
  // request_line_too_long, bad_request_line, bad_http_version,
  // bad_header_name, missing_header_colon, bad_header_value, obs_fold,
  // bare_lf, whitespace_before_colon, method_not_get, http_version_too_old,
  // missing_host, duplicate_host, missing_upgrade,
  // missing_connection_upgrade, missing_version, unsupported_version,
  // missing_key, duplicate_key, bad_key, bad_extension_header,
  // bad_protocol_header, bad_request, not_found, method_not_allowed,
  // max_connections, bad_response_header, body_too_large,
  // bad_content_length, transfer_encoding, handshake_timeout, peer_closed,
  // tls_handshake, pipelined_too_large, shutdown, open_failed.
  std::function<void(int status, std::string_view reason)> on_handshake_failure;
};

}  // namespace switchboard::server
