// session_control.cpp — the server API's actions on this node's connections
// (see session.hpp, "the server API's actions"): the client/user index, and
// the control messages every node runs (disconnect, subscribe, unsubscribe).
//
// A control message reaches every node (broker::send_control); each one
// looks the user or client up in its own index and acts on the connections
// it finds where they live (peer_ref::run: a /ws connection's loop, an
// HTTP session's or SSE stream's lock). A node without them does
// nothing: that is how "wherever the user is connected" works without a
// registry of who is where.
#include <simdjson.h>

#include <algorithm>

#include "channel.hpp"
#include "http_peer.hpp"
#include "session.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

void sessions::index(const connection_state& conn) {
  std::lock_guard lock(index_mutex_);
  auto [it, inserted] = by_client_.try_emplace(conn.client);
  if (!inserted && it->second.user == conn.cold_view().user) return;
  if (!inserted && !it->second.user.empty()) {
    auto& clients = by_user_[it->second.user];
    std::erase(clients, conn.client);
    if (clients.empty()) by_user_.erase(it->second.user);
  }
  it->second.id = conn.id;
  it->second.http = conn.http ? conn.http->weak_from_this() : std::weak_ptr<http_peer>();
  it->second.is_http = conn.is_http;
  it->second.user = conn.cold_view().user;
  if (!conn.cold_view().user.empty()) by_user_[conn.cold_view().user].push_back(conn.client);
}

void sessions::unindex(const connection_state& conn) {
  std::lock_guard lock(index_mutex_);
  const auto it = by_client_.find(conn.client);
  if (it == by_client_.end() || it->second.is_http != conn.is_http) return;
  // An HTTP peer by owner: its weak_from_this() names it even while it is
  // being released.
  const std::weak_ptr<http_peer> self =
      conn.http ? conn.http->weak_from_this() : std::weak_ptr<http_peer>();
  if (conn.is_http ? (it->second.http.owner_before(self) || self.owner_before(it->second.http))
                   : it->second.id != conn.id) {
    return;
  }
  if (!it->second.user.empty()) {
    const auto u = by_user_.find(it->second.user);
    if (u != by_user_.end()) {
      std::erase(u->second, conn.client);
      if (u->second.empty()) by_user_.erase(u);
    }
  }
  by_client_.erase(it);
}

std::size_t sessions::users() const {
  std::lock_guard lock(index_mutex_);
  return by_user_.size();
}

void sessions::apply_control(std::string_view message) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::object obj;
  // Only this server writes control messages (http_api_methods.cpp); one
  // that does not parse came from another version or a stranger on Redis.
  if (parser.parse(message.data(), message.size()).get(obj)) {
    say(log_level::warn, "server API: ignored a control message that is not a JSON object");
    return;
  }
  std::string_view op, user, client, channel, reason;
  std::uint64_t code = k_close_disconnected;
  // Fields a message does not carry keep their defaults.
  const auto read = [&obj](std::string_view key, auto& out) {
    if (obj[key].get(out) != simdjson::SUCCESS) return;
  };
  read("op", op);
  read("user", user);
  read("client", client);
  read("channel", channel);
  read("reason", reason);
  read("code", code);

  // Where each client lives: a /ws connection's loop or an HTTP peer.
  std::vector<peer_ref> targets;
  const auto target = [this](const indexed& x) {
    return x.is_http ? peer_ref::http(x.http) : peer_ref::websocket(*srv_, x.id, hub_);
  };
  {
    std::lock_guard lock(index_mutex_);
    if (!client.empty()) {
      const auto it = by_client_.find(std::string(client));
      // A client and a user: only that client, and only if it is that user's.
      if (it != by_client_.end() && (user.empty() || it->second.user == user)) {
        targets.push_back(target(it->second));
      }
    } else if (!user.empty()) {
      const auto u = by_user_.find(std::string(user));
      if (u != by_user_.end()) {
        for (const std::string& c : u->second) targets.push_back(target(by_client_.at(c)));
      }
    }
  }
  if (targets.empty()) return;
  if (op == "disconnect") {
    for (const auto& t : targets) {
      t.run([code = static_cast<std::uint16_t>(code), reason = std::string(reason)](peer* p) {
        if (p) p->close(code, reason);
      });
    }
    return;
  }
  const bool subscribe = op == "subscribe";
  if (!subscribe && op != "unsubscribe") {
    say(log_level::warn, "server API: ignored a control message with an unknown op");
    return;
  }
  for (const auto& t : targets) {
    t.run([this, subscribe, ch = std::string(channel)](peer* p) {
      if (!p) return;  // gone or closing
      if (subscribe) {
        server_subscribe(*p, ch);
      } else {
        server_unsubscribe(*p, ch);
      }
    });
  }
}

// Like cmd_subscribe (session.cpp) without `since`, answered by a push: the
// token's grants are not checked (the backend decided), the subscription
// limit is.
void sessions::server_subscribe(peer& ws, const std::string& channel) {
  auto& conn = ws.state();
  // A connection that has not sent `connect` cannot have subscriptions yet
  // (connect must come first, docs/protocol.md); a GET /sse stream has the
  // channels of its query only (its event ids name their positions).
  if (conn.needs_connect || conn.find_sub(channel) || !ws.takes_server_subscriptions()) return;
  command c;
  c.has_channel = true;
  c.channel = channel;
  std::string_view name;
  const namespace_options* ns = nullptr;
  if (auto f = check_channel(nullptr, c, name, ns)) return;  // checked by the API already
  if (conn.subs.size() >= config_.max_subscriptions) {
    say(log_level::info, "server API: subscribe of " + conn.client + " to " + channel +
                             " refused: limits.max_subscriptions");
    return;
  }
  // As a connect hook's channels: the client learns it from a subscribe push.
  subscribe_now(ws, name, *ns, std::nullopt, {}, true);
}

void sessions::server_unsubscribe(peer& ws, const std::string& channel) {
  auto& conn = ws.state();
  local_channel* ch = conn.find_sub(channel);
  if (!ch || !ws.takes_server_subscriptions()) return;
  thread_local std::string push;
  unsubscribe_push(push, ch->name, "unsubscribed by the server");
  ws.send(push);
  leave(ws, *ch, false);
}

}  // namespace switchboard::realtime::detail
