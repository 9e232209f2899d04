// session.hpp — private: the switchboard.v1 session of one /ws connection:
// the upgrade (Origin, token), the commands (connect, subscribe, unsubscribe,
// publish, presence, history, ping), the per-connection limits (rate,
// subscriptions) and what a connection leaves behind when it closes.
// docs/protocol.md is the contract; wire.hpp builds every byte it sends.
//
// Thread-safety: the ws_behavior callbacks run on the connection's loop, as
// the server calls them; tick() runs on any thread (the service's
// housekeeping thread). Connections of different loops share the hub and the
// broker, which are thread-safe.
#pragma once

#include <cstdint>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <switchboard/realtime/config.hpp>
#include <switchboard/realtime/service.hpp>
#include <switchboard/server/server.hpp>
#include <switchboard/server/websocket.hpp>

#include "address_range.hpp"
#include "auth.hpp"
#include "compact_strings.hpp"
#include "event_outbox.hpp"
#include "hooks.hpp"
#include "hub.hpp"
#include "metrics.hpp"
#include "peer.hpp"
#include "rate_limit.hpp"

namespace switchboard::realtime::detail {

// The metrics a session moves; owned by the service's registry.
struct session_metrics {
  counter* rate_limited = nullptr;
  counter_family* handshake_failures = nullptr;  // by reason
  counter_family* closes = nullptr;              // by close code
  histogram_family* command_duration = nullptr;  // by command
};

// A connection's proxy-hook state (session_hooks.cpp), allocated at the
// upgrade only when hooks are configured.
struct hook_state {
  forwarded_headers headers;         // the upgrade's hooks.forward_headers
  std::deque<std::string> queued;    // commands that arrived while `waiting`
  bool waiting = false;              // a hook call of this connection is out
  bool hook_auth = false;            // connected by the connect hook: refresh asks the hook
  bool announced = false;            // its `connect` lifecycle event was emitted
};

// The channels a connection is subscribed to, in subscription order. Most
// connections have one: it is held inline, and only a second one allocates
// a list (a std::vector of one is a 32-byte heap block per connection).
// One word: the channel itself, or the list's address with its low bit set
// (a local_channel is pointer-aligned, so a channel's low bit is clear).
// The part of std::vector's interface the sessions use.
class channel_list {
 public:
  channel_list() = default;
  channel_list(const channel_list&) = delete;
  channel_list& operator=(const channel_list&) = delete;
  // Moves (a GET /sse stream's state admitted before it has a connection:
  // http_transports.cpp) take the list; the source is left empty.
  channel_list(channel_list&& o) noexcept : one_(o.one_) { o.one_ = nullptr; }
  channel_list& operator=(channel_list&& o) noexcept {
    if (this != &o) {
      delete many();
      one_ = o.one_;
      o.one_ = nullptr;
    }
    return *this;
  }
  ~channel_list() { delete many(); }

  bool empty() const noexcept { return one_ == nullptr; }
  std::size_t size() const noexcept {
    if (const auto* m = many()) return m->size();
    return one_ ? 1 : 0;
  }
  local_channel* const* begin() const noexcept {
    if (const auto* m = many()) return m->data();
    return &one_;
  }
  local_channel* const* end() const noexcept { return begin() + size(); }
  local_channel* operator[](std::size_t i) const noexcept { return begin()[i]; }
  local_channel* back() const noexcept { return end()[-1]; }
  void push_back(local_channel* ch) {
    if (auto* m = many()) {
      m->push_back(ch);
    } else if (!one_) {
      one_ = ch;
    } else {
      auto* list = new std::vector<local_channel*>{one_, ch};
      one_ = reinterpret_cast<local_channel*>(reinterpret_cast<std::uintptr_t>(list) | k_many);
    }
  }
  // REQUIRES: `at` is in [begin(), end()).
  void erase(local_channel* const* at) {
    auto* m = many();
    if (!m) {
      one_ = nullptr;
      return;
    }
    m->erase(m->begin() + (at - m->data()));
    if (m->size() == 1) {  // back to one inline: the list's memory goes
      one_ = m->front();
      delete m;
    }
  }

 private:
  static_assert(alignof(std::vector<local_channel*>) > 1 && alignof(local_channel) > 1);
  static constexpr std::uintptr_t k_many = 1;
  std::vector<local_channel*>* many() const noexcept {
    const auto bits = reinterpret_cast<std::uintptr_t>(one_);
    return (bits & k_many) ? reinterpret_cast<std::vector<local_channel*>*>(bits & ~k_many)
                           : nullptr;
  }
  // The channel while there is one; with two or more, the list (tagged).
  local_channel* one_ = nullptr;
};

// The members of a connection's state that only some connections use: a
// token's user and claims, presence, the token-expiry entry, the counted
// client address, proxy hooks. Kept behind one pointer in connection_state,
// allocated on the first write (connection_state::cold()) and freed with the
// connection, so an anonymous connection's state is 88 B instead of 152 B
// (and the server connection with it one 336 B chunk instead of 400 B: see
// docs/benchmarks.md, "Third pass"). Nothing here is read per delivery.
struct connection_cold {
  rare_string user;    // token "sub"; empty (8 bytes, no block) for anonymous clients
  // How presence shows this client (shared with the broker's presence lists).
  // Null until needed (presence_of()), unless a token or connect set it.
  std::shared_ptr<const presence_entry> presence;
  std::unique_ptr<token_claims> claims;  // null: anonymous (every channel)
  // The expiry index's entry of this connection (sessions::expiry_), written
  // only under deadlines_mutex_: when the next event is due (wall ms; 0: not
  // in the index), the token's exp (wall ms), and whether `refresh` was pushed.
  // Why it is safe to read from tick(): a connection is in the index only
  // after cold() was allocated (watch_expiry, under the same mutex), and the
  // pointer does not change until the connection is gone.
  std::int64_t expiry_due = 0;
  std::int64_t expires_ms = 0;
  // The client address this connection counts against (limits.*_per_ip);
  // empty (8 bytes, no block) when not counted.
  rare_string address;
  // Proxy hooks; null when none is configured.
  std::unique_ptr<hook_state> hook;
  bool refresh_pushed = false;  // (expiry index, above) `refresh` was pushed
};

// Per-connection state, stored inline in the server's connection object
// (ws_behavior::with_user_data): no allocation beyond the strings, and the
// rarely used members (connection_cold) only when written. 88 B: with the
// server's websocket (240 B with its padding) one 336 B malloc chunk.
struct connection_state {
  server::connection_id id{};
  bool is_http = false;  // (here, in id's padding: see `http` below)
  // The envelope of its publications: compact when the upgrade chose
  // k_subprotocol_compact (HTTP transports: always full). Also in id's padding.
  push_form form = push_form::full;
  inline_id client;            // 16 hex digits, unique in the server; inline (no heap block)
  bool needs_connect = false;  // no token yet and anonymous access is off (client's padding)
  bool connected = false;      // a `connect` succeeded (or a token came with the upgrade)
  token_bucket bucket{0, 0};   // set at admission (limits.command_*); until then refuses
  channel_list subs;
  std::uint32_t refused = 0;  // commands refused by the rate limit in a row
  // The rarely used members; null until one is written (cold()).
  std::unique_ptr<connection_cold> cold_;
  // Set for an HTTP session or SSE stream (http_peer.hpp): the peer this
  // state is part of, where tick() sends and closes instead of the server
  // connection `id`. A plain pointer (the peer's weak_from_this() is taken
  // where it must outlive a lock): the peer is alive while the indexes that
  // reach this state hold it (closed() takes it out of them).
  http_peer* http = nullptr;

  // The rarely used members, to write: allocated on the first call.
  connection_cold& cold() {
    if (!cold_) cold_ = std::make_unique<connection_cold>();
    return *cold_;
  }
  // To read: the members, or all-empty defaults when none was written (no
  // allocation).
  const connection_cold& cold_view() const noexcept { return cold_ ? *cold_ : k_none_; }
  static const connection_cold k_none_;
  bool grants(std::string_view channel) const noexcept {
    return !cold_ || !cold_->claims || cold_->claims->grants(channel);
  }
  local_channel* find_sub(std::string_view name) const noexcept;
  // `presence`, made from the client id, user and the token's info on the
  // first call (a connection without claims or connect gets it lazily).
  const std::shared_ptr<const presence_entry>& presence_of();
};

class sessions {
 public:
  // Every reference must outlive this object; `verifier` is null when tokens
  // are not accepted.
  sessions(const realtime_config& config, hub& h, const token_verifier* verifier,
           session_metrics metrics, log_function log);

  // Makes `b` run sessions: user data, on_upgrade, on_open, on_message,
  // on_close. `srv` is where tick() closes late connections.
  void install(server::ws_behavior& b, server::server& srv);

  // Closes connections that did not `connect` within auth.connect_timeout;
  // pushes `refresh` auth.refresh_lead seconds before a token's exp, and
  // closes with 4002 at exp. Cost: O(due events · log n) over an index
  // ordered by time, not a scan of every connection.
  void tick();

  // Proxy hooks (hooks.hpp); null: none. Set before install().
  void set_hooks(hook_caller* hooks) noexcept { hooks_ = hooks; }
  // Lifecycle events (event_outbox.hpp); null: none. Needs set_hooks().
  void set_events(event_outbox* events) noexcept { events_ = events; }
  // The HTTP transports (http_peer.hpp) share the /ws session through these.
  // admit(): the checks of an upgrade (Origin, per-address limits, token)
  // for a request; 0 and `conn` set up, or the HTTP status /ws would refuse
  // with and why. `peer_address`: the socket's peer (http_request::
  // remote_address()), "" to skip the per-address limits.
  int admit(connection_state& conn, const protocol::request_head& head, std::string_view query,
            bool secure, std::string_view body_token, std::string& why,
            std::string_view peer_address = {});
  // After admit() when the peer is not opened after all: gives back what
  // admit() counted against the client's address.
  void unadmit(connection_state& conn);
  // After admit(): the peer exists (presence entry, connect deadline, expiry).
  // When the connect hook is asked at open (asks_connect_hook_at_open()),
  // `decided` runs once it answered, where the peer lives: with nullptr if
  // the client may stay, else with the denial the peer is then closed for.
  // It is destroyed unrun if the peer closes (or the hooks stop) first.
  void open(peer& p, net::unique_function<void(const failure*)> decided = {});
  // True if open() will ask the connect hook about `conn` (a client whose
  // token came with the request, and hooks.connect_always).
  bool asks_connect_hook_at_open(const connection_state& conn) const noexcept;
  // One text message from the client, as /ws on_message runs it.
  void handle(peer& p, std::string_view payload);
  // The client went away (with close `code` and `reason`, for the
  // disconnect event): leaves every channel, forgets its deadlines.
  void closed(peer& p, int code, std::string_view reason);

  // Checks a command's "channel": present, valid, in a configured namespace,
  // and (when `conn` is set) granted by its token. Shared with the HTTP API.
  std::optional<failure> check_channel(const connection_state* conn, const command& c,
                                       std::string_view& name, const namespace_options*& ns) const;

  // --- the server API's actions on this node's connections
  // (session_control.cpp; docs/protocol.md, "Server API").
  //
  // Runs a control message of broker::send_control on the connections of
  // this node it names: {"op":"disconnect"|"subscribe"|"unsubscribe",
  // "user"|"client":…, …} (control_message() builds them). Any thread.
  void apply_control(std::string_view message);
  // Distinct users with a connection on this node.
  std::size_t users() const;
  // Keeps the client/user index of `conn` current (on_open, after connect) /
  // takes it out (on_close).
  void index(const connection_state& conn);
  void unindex(const connection_state& conn);

 private:
  void say(log_level level, std::string_view message) const {
    if (log_) log_(level, message);
  }
  // The one place a token becomes claims: checked against the secret and
  // the clock; a refusal is counted and logged (`what` says where).
  token_result authenticate(std::string_view token, std::string_view what);

  void on_upgrade(server::upgrade_request& req);
  void on_open(server::websocket& ws);
  void on_message(server::websocket& ws, std::string_view payload, protocol::opcode op);
  void on_close(server::websocket& ws, std::uint16_t code, std::string_view reason = {});

  // Runs one command. A command answered at once puts its result in
  // `result`; one that answers from a broker completion sets `replied`.
  std::optional<failure> dispatch(peer& ws, connection_state& conn,
                                  const command& c, std::string& result, bool& close_after,
                                  bool& replied);
  std::optional<failure> cmd_connect(connection_state& conn, const command& c,
                                     std::string& result, bool& close_after);
  // These four answer from the broker's completion (on_loop in session.cpp).
  std::optional<failure> cmd_subscribe(peer& ws, connection_state& conn,
                                       const command& c);
  std::optional<failure> cmd_publish(peer& ws, connection_state& conn,
                                     const command& c);
  std::optional<failure> cmd_presence(peer& ws, connection_state& conn,
                                      const command& c);
  std::optional<failure> cmd_history(peer& ws, connection_state& conn,
                                     const command& c);
  std::optional<failure> cmd_unsubscribe(peer& ws, connection_state& conn,
                                         const command& c);
  // The client's address: the peer, or from X-Forwarded-For when the peer is
  // a trusted proxy.
  std::string client_address(const server::upgrade_request& req) const;
  // The same from the socket's peer and the request's headers.
  std::string client_address(std::string peer, const protocol::request_head& head) const;
  // Counts an upgrade from `address` against the per-address limits; false
  // (and `why`) when it must be refused.
  bool admit(const std::string& address, std::string& why);
  void release(const std::string& address);

  std::optional<failure> cmd_refresh(peer& ws, connection_state& conn,
                                     const command& c, std::string& result);
  // Puts `conn` (with claims) in the expiry index for its token's exp, or
  // takes it out (`remove`).
  void watch_expiry(connection_state& conn, bool remove = false);
  // Leaves one channel: delivery, presence, hub.
  void leave(peer& p, local_channel& ch, bool closing);
  // What an upgrade or a transport request must pass; see admit().
  // `head`: the request's headers (hooks.forward_headers).
  int admit_client(connection_state& conn, const protocol::request_head& head,
                   std::string_view origin, std::string_view host, bool secure,
                   std::string address, std::optional<std::string> token, std::string& why);

  // Proxy hooks (session_hooks.cpp). hook_queue(): true if the command was
  // queued behind a hook call in flight (command order per connection).
  bool hook_queue(peer& ws, connection_state& conn, std::string_view payload);
  // Commands that a hook answers; nullopt: not this one, dispatch as usual.
  std::optional<std::optional<failure>> dispatch_hooked(peer& ws,
                                                        connection_state& conn, const command& c,
                                                        bool& close_after);
  std::optional<failure> hook_connect(peer& ws, connection_state& conn,
                                      const command& c, bool& close_after);
  std::optional<failure> hook_refresh(peer& ws, connection_state& conn,
                                      const command& c);
  std::optional<failure> cmd_rpc(peer& ws, connection_state& conn, const command& c);
  std::optional<failure> hook_subscribe(peer& ws, connection_state& conn,
                                        const command& c, const hook_target& target,
                                        std::string_view name, const namespace_options& ns);
  std::optional<failure> hook_publish(peer& ws, connection_state& conn,
                                      const command& c, const hook_target& target,
                                      std::string_view name, const namespace_options& ns);
  // Both of them: asks `target` about `c` on channel `name`; `allowed` runs
  // with the answer when the command may go on, else it gets the denial (or
  // 503 for a failed call).
  void hook_channel(peer& ws, connection_state& conn, const command& c,
                    const hook_target& target, std::string_view name,
                    net::unique_function<void(peer&, hook_answer)> allowed);
  // The connect hook of a client whose token came with the upgrade
  // (hooks.connect_always).
  void hook_connect_on_open(peer& ws, connection_state& conn,
                            net::unique_function<void(const failure*)> decided);
  // Sends `body` to `target` for `ws`; `then(peer&, hook_answer)` runs where
  // the peer lives (peer_ref::run) if it is still open, after which queued
  // commands run.
  void hook_call(peer& ws, connection_state& conn, const hook_target& target,
                 std::string body,
                 net::unique_function<void(peer&, hook_answer)> then);
  void hook_resume(peer& ws);
  // Emits a lifecycle event of `conn` (no-op without [events]).
  void announce(connection_state& conn, std::string_view type, std::string_view channel = {},
                int code = -1, std::string_view reason = {});
  // The connection is connected as `user` with presence `info` (a connect
  // hook's answer); `expire_at` (Unix s, 0: none) starts the refresh cycle.
  void hook_connected(connection_state& conn, std::string user, std::string info,
                      std::int64_t expire_at);
  // Subscribes `ws` to `name` (after the checks and hooks): the reply to
  // command `id`, or a subscribe push when `server_side`.
  void subscribe_now(peer& ws, std::string_view name, const namespace_options& ns,
                     std::optional<stream_position> since, std::string id, bool server_side);
  void publish_now(peer& ws, connection_state& conn, std::string_view name,
                   const namespace_options& ns, std::string_view data, std::string id);

  const realtime_config& config_;
  hook_caller* hooks_ = nullptr;
  event_outbox* events_ = nullptr;
  hub& hub_;
  const token_verifier* verifier_;
  session_metrics metrics_;
  log_function log_;
  server::server* srv_ = nullptr;
  std::mutex deadlines_mutex_;
  std::unordered_map<connection_state*, std::uint64_t> connect_deadlines_;  // mono ms
  // Per client address: open connections and the upgrade-rate bucket.
  struct address_state {
    std::size_t open = 0;
    std::optional<token_bucket> bucket;
    std::uint64_t last_ms = 0;  // last upgrade (mono ms), for pruning
  };
  // server.trusted_proxies, parsed once (addresses and CIDR ranges).
  address_set trusted_proxies_;
  std::mutex addresses_mutex_;
  std::unordered_map<std::string, address_state> addresses_;
  // Token expiry: {due (wall ms), connection}, earliest first.
  std::set<std::pair<std::int64_t, connection_state*>> expiry_;

  // The server API's subscribe / unsubscribe of one client, where it lives
  // (a /ws connection's loop, an HTTP peer's lock).
  void server_subscribe(peer& ws, const std::string& channel);
  void server_unsubscribe(peer& ws, const std::string& channel);
  // Connections by client id and by user (session_control.cpp).
  // A /ws connection by `id`, an HTTP session or SSE stream by `http`.
  struct indexed {
    server::connection_id id{};
    bool is_http = false;  // here: in id's padding
    std::weak_ptr<http_peer> http;
    rare_string user;  // 8 bytes, no block for an anonymous client
  };
  // A client id as by_client_ keys it: its 16 characters inline (the ids
  // this node makes are 16 hex digits), so an entry needs no heap block of
  // its own for the key. Any other length becomes the all-zero key, which
  // no connection has: a lookup of it finds nothing.
  struct client_key {
    client_key(std::string_view id) noexcept {  // NOLINT: converts like the id
      if (id.size() == sizeof(chars)) std::memcpy(chars, id.data(), sizeof(chars));
    }
    client_key(const std::string& id) noexcept : client_key(std::string_view(id)) {}  // NOLINT
    client_key(const inline_id& id) noexcept : client_key(id.view()) {}  // NOLINT
    friend bool operator==(const client_key&, const client_key&) = default;
    char chars[16] = {};
  };
  struct client_key_hash {
    std::size_t operator()(const client_key& k) const noexcept {
      return std::hash<std::string_view>{}(std::string_view(k.chars, sizeof(k.chars)));
    }
  };
  mutable std::mutex index_mutex_;
  std::unordered_map<client_key, indexed, client_key_hash> by_client_;
  std::unordered_map<std::string, std::vector<std::string>> by_user_;  // user → client ids
};

}  // namespace switchboard::realtime::detail
