// client_core.hpp — private: the loop-side state of a realtime::client
// (client.hpp). The public object is a thin handle: every call posts a task
// to the loop, where client_core does the work. Tasks hold a weak_ptr to the
// core, so one queued when the client is destroyed finds nothing to do.
//
// One connection at a time goes through
//   idle → opening (WebSocket) → authenticating (`connect` sent) → connected
// and back to idle, or to waiting (a reconnect timer) when the application
// still wants a connection. The core owns the reconnect schedule rather than
// websocket_client's, because a connection only counts as made when
// `connect` succeeded, the token must be fetched before each attempt, and an
// authentication failure must stop it.
//
// Reentrancy: websocket_client calls back synchronously from terminate() and
// close() (and may from send()), so after any call into ws_ the connection
// may be gone; `connection_` counts connections to tell a stale one apart.
// Application callbacks only post tasks, so they never re-enter the core.
//
// Thread-safety: none; everything but state() runs on the loop thread.
// Lifecycle and commands are in client.cpp, subscriptions and requests in
// client_subscriptions.cpp.
#pragma once

#include <simdjson.h>

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "switchboard/client/backoff.hpp"
#include "switchboard/client/websocket_client.hpp"
#include "switchboard/realtime/client.hpp"

namespace switchboard::realtime::detail {

namespace ws = ::switchboard::client;

inline request_error make_error(int code, std::string message) {
  return request_error{code, std::move(message)};
}

class client_core {
 public:
  client_core(net::event_loop& loop, client_options options, client_handlers handlers);
  ~client_core();
  client_core(const client_core&) = delete;
  client_core& operator=(const client_core&) = delete;

  void start();
  void stop();
  void reconnect_now();
  void subscribe(std::string channel, subscribe_options options,
                 std::function<void(const subscribe_result&)> done);
  void unsubscribe(std::string channel, std::function<void(const unsubscribe_result&)> done);
  void publish(std::string channel, std::string data,
               std::function<void(const publish_result&)> done);
  void presence(std::string channel, std::function<void(const presence_result&)> done);
  void history(std::string channel, history_options options,
               std::function<void(const history_result&)> done);

  [[nodiscard]] connection_state state() const noexcept {
    return state_.load(std::memory_order_acquire);
  }

 private:
  enum class phase : std::uint8_t { idle, opening, authenticating, connected, closing, waiting };

  // What a reply is handed to: the error (null on success) and `result`.
  using reply_fn = std::function<void(const request_error* error, simdjson::dom::element result)>;
  struct queued_command {
    std::string body;  // the command's fields without "id", braces excluded
    reply_fn done;
  };

  struct subscription {
    std::string channel;
    subscribe_options options;
    std::function<void(const subscribe_result&)> first_done;  // until settled once
    bool has_position = false;
    std::string epoch;
    std::uint64_t offset = 0;      // the highest delivered, or the stream position
    bool subscribed = false;       // pushes are delivered only then
    bool want_history = false;     // the first subscribe starts with `history`
    std::uint64_t generation = 0;  // bumped per (re)subscribe: stale replies are ignored
    bool by_server = false;        // made by a `subscribe` push: ends with its connection
  };

  // --- connection lifecycle
  void open_attempt();
  void on_open();
  void on_connected(simdjson::dom::element result);
  void on_ws_closed(std::uint16_t code);
  void lost(std::uint16_t code, std::string reason);
  void schedule_reconnect(bool now);
  void on_reconnect_timer();
  void on_phase_timer();
  void drop(std::string reason);
  void set_state(state_event event);
  void report(std::string channel, request_error error);

  // --- commands
  void request(std::string body, reply_fn done);
  void send_command(std::string_view body, reply_fn done);
  void fail_queue(const request_error& error);
  void on_text(std::string_view text);
  void on_push(simdjson::dom::element message);
  void on_compact_push(simdjson::dom::element message);
  bool valid_json(std::string_view text, std::string& minified);

  // --- subscriptions
  void send_subscribe(subscription& sub);
  void send_subscribe_command(subscription& sub);
  void on_subscribe_reply(const std::string& channel, std::uint64_t generation, bool resumed,
                          const request_error* error, simdjson::dom::element result);
  void end_subscription(const std::string& channel, const request_error& error);
  void deliver(subscription& sub, publication pub);
  subscription* find(std::string_view channel);

  net::event_loop& loop_;
  client_options options_;
  client_handlers handlers_;
  ws::backoff backoff_;
  std::unique_ptr<ws::websocket_client> ws_;
  net::timer_node reconnect_timer_;
  net::timer_node phase_timer_;  // connect deadline while opening, heartbeat once connected

  phase phase_ = phase::idle;
  bool wanted_ = false;            // connect() called and not close() since
  bool auth_failed_ = false;       // `connect` got 401: the coming close is final
  bool ping_outstanding_ = false;  // heartbeat sent, no reply yet
  bool retry_now_ = false;         // reconnect(): the next attempt without delay
  std::uint32_t attempt_ = 0;      // attempts since the last successful connect (backoff index)
  std::uint32_t failures_ = 0;     // attempts since then that never got to connected
  std::uint64_t connection_ = 0;   // bumped when a connection ends
  std::uint64_t next_id_ = 1;
  std::uint16_t close_code_ = 0;  // of the current connection, from on_close
  std::string close_reason_;      // from on_close, on_error or drop()
  std::unordered_map<std::uint64_t, reply_fn> pending_;
  std::deque<queued_command> queue_;
  std::map<std::string, subscription, std::less<>> subs_;
  std::atomic<connection_state> state_{connection_state::disconnected};
  simdjson::dom::parser parser_;       // messages from the server
  simdjson::dom::parser data_parser_;  // `data` and `info` from the application
  std::string frame_;                  // reused for each command sent
};

}  // namespace switchboard::realtime::detail
