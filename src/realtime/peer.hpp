// peer.hpp — private: one switchboard.v1 client as the session logic
// (session.cpp) sees it, whatever carries it. A /ws connection (ws_peer: a
// view of a server::websocket made for one call) and an HTTP session or SSE
// stream (http_peer.hpp) run the same commands, limits, replies and pushes
// through this seam, so session logic is written once.
//
// The seam is on the command path only (a virtual call per command, per
// reply): the fan-out of publications to WebSocket subscribers does not pass
// here (server topics, hub.hpp), and HTTP subscribers have their own list in
// the hub.
//
// Subscribing (sessions::cmd_subscribe): prepare() before the broker read;
// after it, attach() (false: the read is stale, the channel's stream moved
// on), the reply (reply_subscribed()), then start() with the read's offset:
// the peer gets every later publication once. cancel() undoes prepare()
// when the subscribe fails; detach() ends a subscription.
//
// Thread-safety: a peer is used by one thread at a time — a ws_peer on its
// connection's loop, an http_peer under its own command lock. peer_ref::run()
// may be called from any thread (broker completions).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <switchboard/net/unique_function.hpp>
#include <switchboard/server/server.hpp>
#include <switchboard/server/websocket.hpp>

#include "broker.hpp"
#include "hub.hpp"

namespace switchboard::realtime::detail {

struct connection_state;
class peer;
class http_peer;

// Where a peer's later work (a broker completion) runs: on its connection's
// loop, or under an HTTP peer's lock. Cheap to copy; holds no peer alive.
class peer_ref {
 public:
  static peer_ref websocket(server::server& srv, server::connection_id id, hub& h) {
    peer_ref r;
    r.srv_ = &srv;
    r.id_ = id;
    r.hub_ = &h;
    return r;
  }
  static peer_ref http(std::weak_ptr<http_peer> p) {
    peer_ref r;
    r.http_ = std::move(p);
    return r;
  }
  // Runs `f` with the peer, or with nullptr if it is gone or closing.
  void run(net::unique_function<void(peer*)> f) const;

 private:
  server::server* srv_ = nullptr;
  server::connection_id id_{};
  hub* hub_ = nullptr;
  std::weak_ptr<http_peer> http_;
};

class peer {
 public:
  virtual connection_state& state() = 0;
  virtual peer_ref ref() = 0;
  // One switchboard.v1 text message (a reply or a push).
  virtual void send(const std::string& text) = 0;
  // Ends the client with a /ws close code and reason.
  virtual void close(std::uint16_t code, std::string_view reason) = 0;
  // False once the client is closing (queued commands stop running).
  virtual bool is_open() = 0;
  // The "transport" a hook body names (docs/hooks.md).
  virtual std::string_view transport() const = 0;
  // False for a client whose channels are fixed (GET /sse: its events carry
  // the position of the query's channels): the server API and a connect
  // hook's `channels` do not subscribe it.
  virtual bool takes_server_subscriptions() const { return true; }

  // The reply of a subscribe that read `r` (the /ws reply by default).
  virtual void reply_subscribed(std::string_view id, const local_channel& ch, const read_result& r);
  // An error reply to command `id`.
  virtual void reply_error(std::string_view id, const failure& f);

  virtual void prepare(local_channel& ch) { (void)ch; }
  virtual void cancel(local_channel& ch) { (void)ch; }
  virtual bool attach(local_channel& ch, std::string_view epoch) = 0;
  virtual void start(local_channel& ch, std::uint64_t after) = 0;
  // `closing`: the client is going away (no need to stop a live delivery).
  virtual void detach(local_channel& ch, bool closing) = 0;

 protected:
  ~peer() = default;
};

// A /ws connection, for the duration of one call on its loop.
class ws_peer final : public peer {
 public:
  ws_peer(server::websocket& ws, server::server& srv, hub& h) : ws_(ws), srv_(srv), hub_(h) {}
  connection_state& state() override;
  peer_ref ref() override;
  void send(const std::string& text) override;
  void close(std::uint16_t code, std::string_view reason) override;
  bool is_open() override { return ws_.is_open(); }
  std::string_view transport() const override { return "websocket"; }
  bool attach(local_channel& ch, std::string_view epoch) override;
  void start(local_channel& ch, std::uint64_t after) override;
  void detach(local_channel& ch, bool closing) override;

 private:
  server::websocket& ws_;
  server::server& srv_;
  hub& hub_;
};

}  // namespace switchboard::realtime::detail
