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
#include <string_view>
#include <string>

#include <switchboard/net/tls_error.hpp>
#include <switchboard/protocol/close_code.hpp>

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

struct server_options {
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

  // The client must complete its request head within this time; slowloris
  // clients that trickle bytes are dropped without an answer.
  std::chrono::milliseconds handshake_timeout{10'000};
  // Close (1001) a connection that received nothing for this long. Off by
  // default: keepalive pings cover dead peers and real apps have quiet users.
  std::chrono::milliseconds idle_timeout{0};
  // Send a ping after this long without receiving anything, so dead peers and
  // NATs that forgot the connection are noticed. 30 s is below most proxies'
  // idle cut-off (60 s).
  std::chrono::milliseconds ping_interval{30'000};
  // After a keepalive ping, anything received (a pong, usually) within this
  // time keeps the connection; otherwise it is closed with 1008.
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

  // Graceful shutdown: the close code every connection gets (1001 going away,
  // or 1012 service restart so clients reconnect at once), and how long the
  // peers' close frames are awaited before the remaining connections are dropped.
  protocol::close_code shutdown_code = protocol::close_code::going_away;
  std::chrono::milliseconds shutdown_timeout{5'000};
  // server::run() shuts down gracefully on SIGINT and SIGTERM.
  bool handle_signals = true;

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
};

}  // namespace switchboard::server
