// switchboard/client/websocket_client.hpp — a WebSocket client connection
// (RFC 6455) on a switchboard::net::event_loop, with optional automatic
// reconnection.
//
// One websocket_client drives one connection at a time through
//   connecting → handshaking → open → closing → closed
// and, when reconnection is enabled and the connection ended without the
// application asking, reconnect_wait → connecting again, with exponential
// backoff and full jitter (backoff.hpp). Every state change is reported to
// on_state, so an application can show "reconnecting in 1200 ms".
//
// Wire behaviour: TCP connect with a timeout (net::tcp_connector); for wss://
// the TLS handshake (client_options::tls; the URL's host is the name the
// certificate must carry and the SNI sent), bounded by handshake_timeout; the upgrade
// request from protocol::write_upgrade_request; the response head parsed with a
// bounded protocol::response_parser and checked by protocol::validate_response
// (each failure its own error; a non-101 reports its status); then frames via
// message_reader / message_writer in the client role (every frame masked with a
// CSPRNG key). Bytes that arrive in the same read as the end of the 101 head are
// frames and are fed to the reader at once. Pings are answered with a pong
// automatically. close() runs the close handshake: our close frame, then the
// server's, then the server closes TCP (RFC 6455 §7.1.1); if that does not
// happen within close_timeout we close TCP ourselves.
//
// Errors never throw: connect() returns what it can tell at once (bad URL,
// wss:// without a TLS context, name lookup); everything later reaches
// on_error with a std::error_code — system errors (connection refused, timed
// out, reset), TLS failures (net::tls_category(); compare with
// net::tls_failure::certificate_rejected and the like), protocol::error (the
// handshake or frame rule broken) or client_error — and a one-line text (for
// TLS, OpenSSL's reason: "... certificate has expired ...").
//
// Thread-safety: none. A client, and all its functions, belong to the thread
// running its loop (or to any one thread while the loop is not running). To act
// from another thread, post to the loop: `client.loop().post([&] { client.send_text(s); });`
// — the client must outlive the posted task. Callbacks run on the loop thread.
//
// Reentrancy: every callback may call any function of the client, including
// close(), terminate(), connect() (from on_state/on_close once closed) and the
// destructor.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "switchboard/client/backoff.hpp"
#include "switchboard/client/error.hpp"
#include "switchboard/client/export.hpp"
#include "switchboard/client/url.hpp"
#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/io_handler.hpp"
#include "switchboard/net/tcp_connector.hpp"
#include "switchboard/net/timer_wheel.hpp"
#include "switchboard/net/transport.hpp"
#include "switchboard/net/unique_function.hpp"
#include "switchboard/protocol/frame.hpp"
#include "switchboard/protocol/http_head.hpp"
#include "switchboard/protocol/message_reader.hpp"
#include "switchboard/protocol/message_writer.hpp"
#include "switchboard/protocol/permessage_deflate.hpp"

namespace switchboard::client {

// What send(), send_text(), send_binary() and ping() return.
//   ok            accepted; nothing is waiting for the socket to drain
//   backpressure  accepted, but bytes wait for the socket (wait for on_drained)
//   dropped       not accepted: not open, closing, over max_buffered_bytes,
//                 or (send_text) not valid UTF-8
using send_status = net::send_status;

enum class client_state : std::uint8_t {
  idle,            // constructed, connect() not called yet
  connecting,      // TCP connect in progress
  handshaking,     // upgrade request sent, waiting for the 101
  open,            // messages flow
  closing,         // a close frame was sent; waiting for the server to finish
  closed,          // the connection is gone (and no reconnect is scheduled)
  reconnect_wait,  // closed; a reconnect attempt is scheduled
};

// A short lowercase name: "connecting", "reconnect_wait", ...
SWITCHBOARD_CLIENT_EXPORT std::string_view to_string(client_state state) noexcept;

// Passed to on_state at every change.
struct state_change {
  client_state state = client_state::idle;
  // closed / reconnect_wait: the close code of the connection that ended, as
  // received from the server, or 1006 (abnormal: no close frame, failed connect).
  std::uint16_t code = 0;
  // reconnect_wait: how long until the next attempt.
  std::chrono::milliseconds delay{0};
  // connecting, reconnect_wait: the 1-based number of the attempt being made or
  // scheduled since the last open (1 for the first connect).
  std::uint32_t attempt = 0;
};

struct client_options {
  // Offered subprotocols, preferred first (Sec-WebSocket-Protocol; tokens).
  std::vector<std::string> protocols;
  // Origin header; empty for none (non-browser clients usually send none).
  std::string origin;
  // Extra request headers (Authorization, Cookie, ...): name, value.
  std::vector<std::pair<std::string, std::string>> headers;

  std::chrono::milliseconds connect_timeout{10000};
  // From the TCP connection to the complete response head.
  std::chrono::milliseconds handshake_timeout{10000};
  // From our close frame to the server closing TCP.
  std::chrono::milliseconds close_timeout{5000};

  // Largest message accepted from the server; larger fails with 1009.
  std::uint64_t max_message_size = 16 * 1024 * 1024;
  // Bounds on the server's response head.
  protocol::http_limits response_limits{};
  // send() returns dropped instead of queueing once this many bytes wait for
  // the socket: a client that cannot keep up must not grow without bound.
  std::size_t max_buffered_bytes = 64 * 1024 * 1024;

  // permessage-deflate (RFC 7692). When true the upgrade offers it as
  // `deflate_offer` describes (write_deflate_offer; by default context
  // takeover both ways and a bare client_max_window_bits); if the server
  // accepts, its compressed messages are inflated before on_message (bounded
  // by max_message_size while inflating) and our messages of at least
  // compress_threshold bytes are compressed. An answer that breaks RFC 7692
  // (a parameter we did not offer, a missing confirmation, a window of 8 for
  // us) fails the connection with that protocol::error. Memory while
  // connected with context takeover: ~262 KiB deflater + ~40 KiB inflater
  // (window 15), allocated on the first message each way.
  bool deflate = false;
  protocol::deflate_client_options deflate_offer{};
  std::size_t compress_threshold = protocol::k_default_compress_threshold;

  // TLS for wss:// URLs: a client context (net::tls_context::client) with
  // the trust store and verification settings. Not owned; must outlive the
  // client. Null: wss:// URLs are refused (client_error::tls_not_supported).
  // ws:// URLs never use it.
  net::tls_context* tls = nullptr;

  reconnect_policy reconnect{};
  // Seed for the backoff jitter; 0 picks a random one. Tests fix it.
  std::uint64_t random_seed = 0;
};

// The application's callbacks; each may be left empty. Views are valid only
// during the call.
struct SWITCHBOARD_CLIENT_EXPORT client_handlers {
  // The handshake succeeded; `subprotocol` is the server's choice or empty.
  net::unique_function<void(std::string_view subprotocol)> on_open;
  // A whole data message; `op` is opcode::text (valid UTF-8) or opcode::binary.
  net::unique_function<void(std::string_view payload, protocol::opcode op)> on_message;
  // A ping arrived (already answered with a pong), or a pong arrived.
  net::unique_function<void(std::string_view payload)> on_ping;
  net::unique_function<void(std::string_view payload)> on_pong;
  // An open connection ended. code: the server's close code (1005 if its close
  // frame had none), or 1006 when the connection ended without one.
  net::unique_function<void(std::uint16_t code, std::string_view reason)> on_close;
  // Something failed: connect, handshake (never opened), protocol, I/O.
  // `text` is one line for humans: "handshake failed: server answered 404 Not Found".
  net::unique_function<void(std::error_code error, std::string_view text)> on_error;
  // Every state change.
  net::unique_function<void(const state_change& change)> on_state;
  // After send() returned backpressure, everything has been written.
  net::unique_function<void()> on_drained;
};

class SWITCHBOARD_CLIENT_EXPORT websocket_client final : private net::transport_handler {
 public:
  // A client on `loop` (which must outlive it), in state idle.
  websocket_client(net::event_loop& loop, client_options options, client_handlers handlers);
  // Closes the socket at once, without callbacks.
  ~websocket_client();
  websocket_client(const websocket_client&) = delete;
  websocket_client& operator=(const websocket_client&) = delete;

  // Parses `ws_url`, resolves its host (getaddrinfo for names: this BLOCKS the
  // calling thread; numeric addresses and localhost do not) and starts
  // connecting; the outcome arrives through the callbacks, never from inside
  // this call. Returns an error and changes nothing for: bad_url,
  // unsupported_scheme, tls_not_supported (wss:// without options.tls), resolve_failed,
  // bad_request (a protocol or header that cannot be sent), already_connecting
  // (state is not idle or closed).
  std::error_code connect(std::string_view ws_url);

  // Sends one message: `op` is text or binary. See send_status. A text
  // payload must be valid UTF-8 (else dropped: RFC 6455 §8.1 obliges the
  // server to fail the connection). Empty payloads are fine.
  send_status send(std::string_view payload, protocol::opcode op);
  send_status send_text(std::string_view text) { return send(text, protocol::opcode::text); }
  send_status send_binary(std::string_view bytes) { return send(bytes, protocol::opcode::binary); }

  // Sends a ping; payloads over 125 bytes are cut to 125 (RFC 6455 §5.5).
  send_status ping(std::string_view payload = {});

  // Starts the close handshake (RFC 6455 §7.1.2): sends a close frame with
  // `code` and `reason` and waits for the server's close and for it to close
  // TCP, at most close_timeout. No reconnect follows. In any state but open it
  // stops what is going on: a pending connect or reconnect is cancelled and
  // the state becomes closed. code: 1000-1003, 1007-1014 or 3000-4999, or 1005
  // for "no code"; other values are sent as 1000. reason: UTF-8, cut at 123 bytes.
  void close(std::uint16_t code = 1000, std::string_view reason = {});

  // Drops the connection at once without a close frame (and cancels any
  // reconnect). State becomes closed with code 1006; on_close runs if the
  // connection was open.
  void terminate();

  [[nodiscard]] client_state state() const noexcept { return state_; }
  // The subprotocol the server chose for the current connection ("" if none).
  [[nodiscard]] const std::string& subprotocol() const noexcept { return subprotocol_; }
  // What permessage-deflate parameters the current connection agreed to, or
  // nullopt when it is not compressed.
  [[nodiscard]] const std::optional<protocol::deflate_params>& deflate_params() const noexcept {
    return deflate_params_;
  }
  // Bytes accepted by send() but not yet written to the kernel.
  [[nodiscard]] std::size_t buffered_bytes() const noexcept { return stream_.buffered_bytes(); }
  // Connection attempts since the last successful open (or since connect()).
  [[nodiscard]] std::uint32_t attempts() const noexcept { return attempt_; }
  [[nodiscard]] net::event_loop& loop() const noexcept { return *loop_; }
  [[nodiscard]] const client_options& options() const noexcept { return options_; }

 private:
  // net::transport_handler (for TLS, on_data starts after the TLS handshake)
  void on_handshake(net::transport& stream) override;
  void on_data(net::transport& stream, std::span<std::byte> data) override;
  void on_drained(net::transport& stream) override;
  void on_close(net::transport& stream, std::error_code error) override;

  void start_attempt();
  void try_endpoint();
  void on_connected(std::error_code error, net::unique_fd socket);
  void on_handshake_data(std::span<std::byte> data);
  bool finish_handshake(std::size_t head_size);
  void read_frames(std::span<char> input);
  // Fails the connection for a broken rule: our close frame, then on_error.
  void fail_protocol(protocol::error error, net::detail::lifetime_flag::scope& alive);
  bool accept_deflate();
  protocol::error inflate_message(const protocol::reader_event& event);
  void on_server_close(std::uint16_t code, std::string_view reason);
  void send_close_frame(std::uint16_t code, std::string_view reason);
  void on_phase_timeout();
  void on_reconnect_timer();

  // Tears the connection down and reports: on_error (if `error`), on_close (if
  // it was open), then closed or reconnect_wait. `allow_reconnect` is false
  // when the application ended it.
  void finish(std::error_code error, std::string_view text, std::uint16_t code,
              std::string_view reason, bool allow_reconnect);
  void set_state(client_state state, std::uint16_t code = 0,
                 std::chrono::milliseconds delay = std::chrono::milliseconds{0});
  void release_connection() noexcept;
  // `error` as one line: OpenSSL's account for TLS failures, else message().
  [[nodiscard]] std::string describe(std::error_code error) const;

  net::event_loop* loop_;
  client_options options_;
  client_handlers handlers_;
  backoff backoff_;

  net::tcp_connector connector_;
  net::transport stream_;            // plain or TLS, per URL (set_tls in connect())
  net::timer_node phase_timer_;      // handshake or close timeout
  net::timer_node reconnect_timer_;  // the backoff delay

  url url_;
  std::vector<net::endpoint> endpoints_;
  std::size_t endpoint_index_ = 0;
  std::vector<std::string_view> protocol_views_;  // into options_.protocols
  std::vector<protocol::http_header> header_views_;  // into options_.headers

  client_state state_ = client_state::idle;
  std::uint32_t attempt_ = 0;
  std::array<char, 24> key_{};
  std::string head_buffer_;  // the response head as it arrives
  protocol::response_parser parser_;
  protocol::message_reader reader_;
  protocol::message_writer writer_{protocol::role::client};
  std::string frame_buffer_;  // reused for every frame we send
  // permessage-deflate: the offer we send, what the server agreed to (reset
  // per connection), the codecs (zlib state allocated on first use) and
  // their output buffers.
  protocol::deflate_header deflate_offer_;
  std::optional<protocol::deflate_params> deflate_params_;
  std::optional<protocol::deflater> deflater_;
  std::optional<protocol::inflater> inflater_;
  std::string deflate_buffer_;
  std::string inflate_buffer_;
  std::string subprotocol_;
  bool was_open_ = false;      // the current connection reached open
  bool tls_established_ = false;  // wss://: the TLS handshake of this connection completed
  bool close_sent_ = false;
  bool close_received_ = false;
  bool user_closed_ = false;   // close() or terminate(): no reconnect
  std::uint16_t server_code_ = 0;
  std::string server_reason_;
  net::detail::lifetime_flag lifetime_;
};

}  // namespace switchboard::client
