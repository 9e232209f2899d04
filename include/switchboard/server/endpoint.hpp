// switchboard/server/endpoint.hpp — what the application plugs into a
// WebSocket path: the callbacks of one endpoint (ws_behavior), the upgrade
// decision it makes before the 101 (upgrade_request), and the handle that
// completes a decision later (upgrade_handle).
//
// Callbacks are std::function, called once per event (per message, never per
// byte). Reentrancy: every callback may send on, close or terminate its own
// connection or any other connection of the same loop, and subscribe or
// publish; the connection object stays valid until the callback returns.
//
// Thread-safety: callbacks run on the connection's loop thread.
// upgrade_handle::accept/reject may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <switchboard/protocol/frame.hpp>
#include <switchboard/protocol/handshake.hpp>
#include <switchboard/protocol/http_head.hpp>
#include <switchboard/server/compression.hpp>
#include <switchboard/server/export.hpp>
#include <switchboard/server/websocket.hpp>
#include <utility>
#include <vector>

namespace switchboard::server {

class upgrade_request;

// The behaviour of one WebSocket endpoint. Every callback is optional.
struct SWITCHBOARD_SERVER_EXPORT ws_behavior {
  // Decides before the 101 (RFC 6455 §4.2.2). Call req.accept(), req.reject(),
  // or req.defer() to decide later; returning without any of them accepts
  // with no subprotocol. Absent: every valid upgrade is accepted.
  std::function<void(upgrade_request& req)> on_upgrade;
  // The 101 is out; the connection is open.
  std::function<void(websocket& ws)> on_open;
  // A whole data message (text: validated UTF-8). The view is valid during the call.
  std::function<void(websocket& ws, std::string_view payload, protocol::opcode op)> on_message;
  // When set, data messages are not buffered: each piece is delivered as it
  // arrives (first/last mark the message's bounds) and on_message is not called.
  std::function<void(websocket& ws, std::string_view piece, protocol::opcode op, bool first,
                     bool last)>
      on_fragment;
  // A send had returned backpressure and everything queued has now been written.
  std::function<void(websocket& ws)> on_drain;
  // A ping arrived (the pong is already sent) / a pong arrived.
  std::function<void(websocket& ws, std::string_view payload)> on_ping;
  std::function<void(websocket& ws, std::string_view payload)> on_pong;
  // The connection is done: the peer's close code (1005 for an empty close),
  // ours if we failed it, 1006 if TCP went away without a close frame. Called
  // once for every connection that reached on_open. Sends are dropped here.
  std::function<void(websocket& ws, std::uint16_t code, std::string_view reason)> on_close;

  // Event-stream connections of this endpoint (http_response::
  // open_event_stream): a heartbeat comment chunk (what ping() sends on such
  // a connection) after this much time without a write. 0: none. WebSocket connections
  // ignore it (their keepalive is server_options::ping_interval).
  std::chrono::milliseconds event_stream_heartbeat{0};
  // The heartbeat's comment text: the chunk is ":" + this + "\n\n".
  std::string event_stream_comment;
  // Event-stream connections only: close() has begun (called by the
  // application, the server's shutdown, the backpressure policy, or bytes
  // from the client) and the last chunk is not written yet: what this sends
  // on `ws` goes out just before it (a final event). on_close follows as
  // usual. It may run inside a topic fan-out: it must only send.
  std::function<void(websocket& ws, std::uint16_t code, std::string_view reason)> on_closing;

  // permessage-deflate for this endpoint (compression.hpp): off by default.
  // Messages reach on_message / on_fragment inflated; send() compresses.
  compression_options compression;

  // Per-connection user data of type T, stored inline in the connection
  // (no extra allocation), default-constructed before on_upgrade, destroyed
  // after on_close. Access with websocket::data<T>() or upgrade_request::data<T>().
  template <class T>
  ws_behavior& with_user_data() {
    static_assert(alignof(T) <= alignof(std::max_align_t), "over-aligned user data");
    user_data_size = sizeof(T);
    user_data_align = alignof(T);
    construct_user_data = [](void* p) { ::new (p) T(); };
    destroy_user_data = [](void* p) { static_cast<T*>(p)->~T(); };
    return *this;
  }
  std::size_t user_data_size = 0;
  std::size_t user_data_align = 1;
  void (*construct_user_data)(void*) = nullptr;
  void (*destroy_user_data)(void*) = nullptr;
};

// Completes a deferred upgrade decision from any thread. If the connection
// is gone (the client left, the handshake timeout fired, the server shut
// down) the call does nothing. REQUIRES: the server outlives the handle.
class SWITCHBOARD_SERVER_EXPORT upgrade_handle {
 public:
  upgrade_handle() = default;
  // Answers 101 with `subprotocol` (empty: none) and extra headers.
  void accept(std::string subprotocol = {},
              std::vector<std::pair<std::string, std::string>> headers = {}) const;
  // Answers `status` (400-599) with `body` as text/plain.
  void reject(int status, std::string body = {}) const;
  connection_id id() const noexcept { return id_; }

 private:
  friend class upgrade_request;
  upgrade_handle(detail::loop_context* ctx, connection_id id) noexcept : ctx_(ctx), id_(id) {}
  detail::loop_context* ctx_ = nullptr;
  connection_id id_;
};

// A valid upgrade request, handed to on_upgrade. Views (path, headers) stay
// valid until the upgrade is answered, also when deferred.
class SWITCHBOARD_SERVER_EXPORT upgrade_request {
 public:
  std::string_view path() const noexcept { return info_.path; }
  std::string_view query() const noexcept { return info_.query; }
  std::string_view origin() const noexcept { return info_.origin; }
  std::optional<std::string_view> header(std::string_view name) const noexcept {
    return info_.head->find(name);
  }
  const protocol::request_head& head() const noexcept { return *info_.head; }
  // True if the request came over TLS (wss://).
  bool secure() const noexcept { return ws_->secure(); }
  // The peer's address without the port ("203.0.113.7", "::1"), read from the
  // socket (getpeername) when asked: nothing is stored per connection. "" if
  // the socket cannot say.
  std::string remote_address() const;
  // The first subprotocol of the client's list that `supported` holds.
  std::optional<std::string_view> select_subprotocol(
      std::span<const std::string_view> supported) const noexcept {
    return protocol::select_subprotocol(*info_.head, supported);
  }
  // The connection's user data (see ws_behavior::with_user_data).
  template <class T>
  T& data() noexcept {
    return ws_->data<T>();
  }

  // Answers 101 Switching Protocols, then on_open. `subprotocol` must be one
  // the client offered (or empty). A header that would break the head (CR/LF)
  // turns the answer into a 500.
  void accept(std::string_view subprotocol = {},
              std::span<const protocol::http_header> headers = {});
  // Answers `status` (e.g. 401, 403) with `body`; no on_open, no on_close.
  void reject(int status, std::string_view body = {});
  // Leaves the decision to the returned handle. The handshake timeout still
  // applies: an answer after it is ignored.
  upgrade_handle defer();

  bool decided() const noexcept { return decided_ || deferred_; }

 private:
  friend class websocket;
  upgrade_request(websocket& ws, const protocol::upgrade_request& info) noexcept
      : ws_(&ws), info_(info) {}
  websocket* ws_;
  protocol::upgrade_request info_;
  bool decided_ = false;
  bool deferred_ = false;
};

}  // namespace switchboard::server
