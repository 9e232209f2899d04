// switchboard/realtime/client.hpp — a C++ client for the `switchboard.v1`
// protocol of `switchboard serve` (docs/protocol.md; guide: docs/client.md).
//
// A realtime::client keeps one connection to a server's /ws endpoint up for
// as long as the application wants it:
//   * it sends `connect` first, with a token (a fixed one, or a fresh one from
//     a callback before every attempt) or anonymously, and nothing else before
//     its reply;
//   * it reconnects by itself with exponential backoff and full jitter
//     (switchboard/client/backoff.hpp), reset after every successful
//     `connect`; never after close(), nor after an authentication failure
//     (close code 4001, or error 401 to `connect`): the same credentials would
//     fail again;
//   * a subscription is state, not a command: the client keeps each channel's
//     epoch and the highest offset delivered, subscribes again with `since`
//     after every reconnect, delivers what it missed in offset order before
//     live publications, drops duplicates by offset, and reports when the gap
//     cannot be filled (subscribe_result::recovered false, with the server's
//     reason);
//   * publish, presence and history are requests whose outcome arrives
//     through a completion callback (one design for all of them, see
//     "Requests" below);
//   * an application-level heartbeat (`ping` command) finds a dead connection
//     that TCP does not report.
//
// Thread-safety. A client runs on one event loop: either its own, on a thread it
// starts and joins (the constructor without a loop), or one the application
// runs (the constructor taking a net::event_loop&). EVERY function may be
// called from any thread, including from the client's own callbacks: it
// queues its work to the loop (net::event_loop::post) and returns. Work
// queued by one thread runs in the order it was queued, so
// `c.subscribe(...); c.publish(...)` from one thread subscribes first.
// Nothing runs synchronously inside a call, so a call never calls back into
// the application before it returns.
//
// Callbacks (client_handlers and the completion callbacks) all run on the
// loop thread, one at a time, in the order the events happened. They may call
// any function of the client (that only queues work); they must not block
// the loop for long, must not throw, and must not destroy the client.
// Views and references passed to them are valid only during the call.
//
// Requests. subscribe, unsubscribe, publish, presence and history take an
// optional completion callback that runs exactly once (unless the client is
// destroyed first), with a result whose `error` is empty on success. A request
// made while the client is (re)connecting waits and is sent once `connect`
// succeeds; one in flight when the connection ends completes with
// k_error_no_reply (it may or may not have been executed: publish is not
// retried, so it is never duplicated); one made while the client is not
// started (before connect(), after close(), after giving up) completes at
// once with k_error_not_sent. Results carry the server's error codes (400,
// 403, 404, 405, 409, 413, 422, 429, 500; see docs/protocol.md) or the
// client's own k_error_* codes below.
//
// Lifetimes. The loop passed to the constructor must outlive the client.
// The destructor drops the connection at once (no close frame: call close()
// first for a polite one) and runs no callbacks. With its own thread the
// destructor may run on any thread but the client's own; with an application
// loop it must run on that loop's thread, or while the loop is not running.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "switchboard/client/websocket_client.hpp"
#include "switchboard/net/event_loop.hpp"
#include "switchboard/realtime/client_export.hpp"

namespace switchboard::realtime {

namespace detail {
class client_core;
}

// The connection ended before the reply came: the command may or may not
// have been executed. Also the code of requests still waiting when close() is
// called.
inline constexpr int k_error_no_reply = 0;
// The client did not send the command: it is not started (connect() was not
// called, or close() was, or it gave up reconnecting), or too many commands
// already wait for a connection (client_options::max_queued).
inline constexpr int k_error_not_sent = 1;
// publish(): `data` is not a JSON value, so it was not sent (a command the
// server cannot parse would get a reply it cannot match).
inline constexpr int k_error_bad_json = 2;
// The server ended a subscription (an `unsubscribe` push: a token refresh
// that dropped the channel, or the server API): reported by on_error with
// the channel and the server's reason; the subscription is gone.
inline constexpr int k_error_unsubscribed = 3;
// Authentication failed (close code 4001, or error 401 to `connect`): the
// client stopped and will not reconnect by itself.
inline constexpr int k_error_auth = 4001;
// The server disconnected this client on purpose (close code 4003, the
// server API's `disconnect`): the client stopped and will not reconnect by
// itself.
inline constexpr int k_error_disconnected = 4003;

struct request_error {
  int code = k_error_no_reply;  // a protocol error code or a k_error_* above
  std::string message;          // one line for humans, from the server or the client
};

// A channel's stream position: the epoch of its stream and an offset in it.
struct stream_position {
  std::string epoch;
  std::uint64_t offset = 0;
};

// One publication on a channel, as pushed or listed by subscribe/history.
struct publication {
  std::string channel;
  std::string epoch;
  std::uint64_t offset = 0;
  std::string data;    // the published JSON value, minified
  std::string client;  // the publisher's connection id; empty for the HTTP API
  std::string user;    // the publisher's user id; empty when anonymous or the HTTP API
};

// A connection subscribed to a channel, as presence shows it.
struct presence_entry {
  std::string client;  // connection id
  std::string user;    // user id; empty when anonymous
  std::string info;    // JSON object text from the token or `connect`; empty when none
};

// A change of a channel's presence. The server coalesces changes into one
// `presence` push per tick (docs/protocol.md, "Presence"); each join and
// leave in it is one event here, and a push with only a count (a channel past
// presence_max_members) is one `count` event.
struct presence_event {
  enum class kind : std::uint8_t { join, leave, count };
  kind what = kind::join;
  std::string channel;
  presence_entry who;         // join, leave
  std::uint64_t count = 0;    // members after the change; 0 if the server did not say
};

// The outcome of subscribing (the completion of subscribe(), and the
// on_subscribed event after every successful subscribe, first and after each
// reconnect).
struct subscribe_result {
  std::optional<request_error> error;  // completion only; never set in the event
  std::string channel;
  std::string epoch;         // the channel's stream now
  std::uint64_t offset = 0;  // the stream's last offset now (live pushes follow it)
  // `since` was sent: this subscription continues from a known position.
  bool resumed = false;
  // resumed and the server filled the gap: the publications missed were
  // delivered (on_message, in order) right after this event.
  bool recovered = false;
  // resumed but not recovered: why ("epoch changed", "too far behind",
  // "offset ahead of the stream"). What was missed is lost to this
  // subscription; it continues from `offset` (use history() to reload). Also
  // reported, with resumed and recovered false, when a live publication shows
  // that the channel's stream started over ("epoch changed").
  std::string reason;
  // The server subscribed this client (a `subscribe` push: the server API's
  // subscribe, or a connect hook's channels), not subscribe(). Such a
  // subscription delivers like any other but lasts for its connection: after
  // a reconnect the server decides again (a connect hook does at every
  // connect), so the client does not resubscribe it by itself -- unless the
  // application calls subscribe() for the channel, which takes it over.
  bool by_server = false;
};

struct unsubscribe_result {
  std::optional<request_error> error;
};

struct publish_result {
  std::optional<request_error> error;
  std::string epoch;
  std::uint64_t offset = 0;  // the offset the publication got
};

// The first page of a channel's members, in client-id order (the server's
// page size); `count` is every member. Past presence_max_members the server
// sends the count only and `clients` is empty.
struct presence_result {
  std::optional<request_error> error;
  std::string channel;
  std::uint64_t count = 0;
  std::vector<presence_entry> clients;
  std::string cursor;  // non-empty: more members after this page
};

struct history_result {
  std::optional<request_error> error;
  std::string channel;
  std::string epoch;
  std::uint64_t offset = 0;
  std::vector<publication> publications;  // oldest first
  // With history_options::since: whether the publications are the ones after
  // it (recovered) or, when it could not be honoured, the latest kept (reason).
  bool recovered = false;
  std::string reason;
};

struct subscribe_options {
  // Start from this position: what was published after it is delivered
  // first (or, when that is impossible, on_subscribed says recovered false).
  std::optional<stream_position> since;
  // Without `since`: deliver up to this many of the channel's latest kept
  // publications (oldest first) before live ones, without gap or duplicate.
  // 0: only what is published after subscribing.
  std::size_t history = 0;
};

struct history_options {
  // How many (at most the namespace's history_size); 0: the server's default.
  std::size_t limit = 0;
  // Only the publications after this position.
  std::optional<stream_position> since;
};

enum class connection_state : std::uint8_t {
  disconnected,  // not connected; see state_event::will_reconnect
  connecting,    // opening the WebSocket or waiting for the `connect` reply
  connected,     // `connect` succeeded; commands flow
};

// A short lowercase name: "disconnected", "connecting", "connected".
SWITCHBOARD_REALTIME_CLIENT_EXPORT std::string_view to_string(connection_state state) noexcept;

// Passed to on_state at every change.
struct state_event {
  connection_state state = connection_state::disconnected;
  // connecting: the 1-based attempt since the last successful connect.
  std::uint32_t attempt = 0;
  // connected: the server's id for this connection and the token's user id
  // (empty when anonymous).
  std::string client_id;
  std::string user;
  // disconnected: the close code (the server's, 1000 after close(), or 1006
  // when the connection or attempt ended without one) and a one-line reason:
  // the server's close reason, or what failed ("cannot connect to
  // 127.0.0.1:8080: Connection refused", "connect timeout", "heartbeat timeout").
  std::uint16_t code = 0;
  std::string reason;
  // disconnected: whether an attempt is scheduled, and after how long.
  bool will_reconnect = false;
  std::chrono::milliseconds delay{0};
};

// An error not tied to a request's completion: a subscription lost after a
// reconnect (channel set; the server refused the new subscribe, so it is
// removed), an authentication failure (k_error_auth: the client stopped), the
// reconnect attempts exhausted, a token callback that threw, a message from
// the server that is not the protocol.
struct error_event {
  std::string channel;  // empty when not about one channel
  request_error error;
};

// The application's callbacks; each may be left empty. See the top of the file
// for where they run and what they may do.
struct client_handlers {
  std::function<void(const state_event&)> on_state;
  // A publication on a subscribed channel: per channel in offset order, each
  // offset once.
  std::function<void(const publication&)> on_message;
  std::function<void(const presence_event&)> on_presence;
  std::function<void(const subscribe_result&)> on_subscribed;
  std::function<void(const error_event&)> on_error;
};

struct client_options {
  // The server's WebSocket endpoint: ws://host:port/ws or wss://...
  std::string url;
  // The token sent in `connect` (docs/protocol.md): an HS256 JWT.
  std::string token;
  // When set, called on the loop thread for every new connection (the first
  // and each reconnect), right before `connect` is sent, for a fresh token;
  // it replaces `token`. An empty
  // string connects anonymously. If it throws, the attempt is given up and
  // retried with backoff (on_error says why). Must not block for long.
  std::function<std::string()> token_provider;
  // Anonymous connections: a JSON object presence shows for this client
  // ({"name":"Alice"}); at most 1 KiB. Ignored when a token is sent.
  std::string info;

  // Reconnection: attempt n (0-based) waits uniformly in [0, min(cap, base·2^n)].
  std::chrono::milliseconds backoff_base{500};
  std::chrono::milliseconds backoff_cap{15000};
  // Consecutive failed attempts (connections that ended before `connect`
  // succeeded; a connection that was up and then dropped does not count)
  // after which the client gives up: on_error, then disconnected for good.
  // 1: one try only. 0: never give up.
  std::uint32_t max_attempts = 0;
  // From the start of an attempt to the `connect` reply; longer: the attempt
  // is dropped and retried.
  std::chrono::milliseconds connect_timeout{10000};
  // A `ping` command this often while connected; no reply by the next one:
  // the connection is dropped and a new one made. 0: no heartbeat.
  std::chrono::milliseconds heartbeat_interval{20000};
  // Commands that may wait for a connection; more complete with k_error_not_sent.
  std::size_t max_queued = 10000;
  // Ask for compact publication pushes (docs/protocol.md, "Compact pushes"):
  // the upgrade offers "switchboard.v1.compact" before "switchboard.v1". A
  // server without them picks switchboard.v1 and the client reads its full
  // pushes; what the handlers see is the same either way.
  bool compact_pushes = true;
  // The WebSocket settings: TLS context for wss://, extra headers, Origin,
  // permessage-deflate, timeouts, message size limit. `protocols` is replaced
  // (see compact_pushes) and `reconnect` is ignored (this client reconnects
  // by itself).
  ::switchboard::client::client_options websocket{};
  // Seed for the backoff jitter; 0: a random one.
  std::uint64_t random_seed = 0;
};

class SWITCHBOARD_REALTIME_CLIENT_EXPORT client {
 public:
  // A client with its own event loop on its own thread (started here).
  client(client_options options, client_handlers handlers);
  // A client on `loop`, which the application runs (and which must outlive it).
  client(net::event_loop& loop, client_options options, client_handlers handlers);
  // Drops the connection (no close frame) and stops; no callback runs after
  // it starts (see Lifetimes above).
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // Starts connecting, and keeps reconnecting until close(). Returns an error
  // at once for a URL that does not parse (client_error::bad_url,
  // unsupported_scheme, tls_not_supported) or an event loop that could not be
  // created; otherwise the outcome arrives through on_state. While waiting to
  // reconnect, tries again at once. Subscriptions made before are sent when
  // connected. After an authentication failure or close(), starts again.
  std::error_code connect();

  // Closes the connection politely (1000) and stops reconnecting. Requests
  // waiting or in flight complete with k_error_no_reply. Subscriptions and
  // their positions are kept: a later connect() resumes them with `since`.
  void close();

  // Drops the connection at once, as a network failure would (no close
  // frame), and connects again without waiting. For an application that knows
  // its network changed; tests use it to cut connections. Does nothing when
  // not started.
  void reconnect();

  // Subscribes to `channel` now (or when connected) and after every
  // reconnect. `done` runs after the first successful subscribe, or with the
  // error that ended the subscription (the server's 403, 404, 422, 429...;
  // 409 when this client already has it). Publications arrive in on_message.
  void subscribe(std::string channel, subscribe_options options = {},
                 std::function<void(const subscribe_result&)> done = {});

  // Stops the subscription and forgets its position. Succeeds when the server
  // no longer has it; 404 when this client had no such subscription.
  void unsubscribe(std::string channel, std::function<void(const unsubscribe_result&)> done = {});

  // Publishes `data`, a JSON value as text ("{\"text\":\"hi\"}", "42",
  // "\"a string\""); anything that does not parse completes with
  // k_error_bad_json without being sent.
  void publish(std::string channel, std::string data,
               std::function<void(const publish_result&)> done = {});

  void presence(std::string channel, std::function<void(const presence_result&)> done);

  void history(std::string channel, history_options options,
               std::function<void(const history_result&)> done);

  // The state as of the last on_state event (readable from any thread).
  [[nodiscard]] connection_state state() const noexcept;

 private:
  std::string url_;  // checked by connect()
  bool has_tls_ = false;
  std::unique_ptr<net::event_loop> own_loop_;  // the own-thread form only
  net::event_loop* loop_ = nullptr;
  std::error_code loop_error_;
  std::shared_ptr<detail::client_core> core_;
  std::thread thread_;
};

}  // namespace switchboard::realtime
