// session.cpp — the switchboard.v1 session of a /ws connection (see
// session.hpp).
//
// Commands that need the broker (subscribe, publish, presence, history) send
// their reply from the broker's completion, on the connection's loop
// (server::dispatch). With the memory broker that happens before the command
// returns; with a networked broker it happens later, and a connection that
// closed meanwhile gets nothing (a subscribe then undoes its join).
//
// Subscribe without gaps or duplicates: the node is subscribed in the broker
// (hub::join) before the stream is read, so every publication after the read
// reaches this loop's queue; the reply (history up to offset H) is sent, then
// the connection joins the topic with after = H. A publication already queued
// for this loop with an offset <= H is skipped for it, every later one is
// delivered after the reply.
#include "session.hpp"

#include <simdjson.h>
#include <switchboard/net/tcp_socket.hpp>

#include <algorithm>
#include <chrono>

#include "channel.hpp"
#include "http_peer.hpp"
#include "json.hpp"
#include "origin.hpp"
#include "sse_peer.hpp"
#include "support.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

namespace {

constexpr std::size_t k_max_anonymous_info = 1024;
// Presence entries per reply: by default, and at most (`limit`).
constexpr std::size_t k_presence_page = 100;
constexpr std::size_t k_max_presence_page = 1000;

// The completion of a broker call made for peer `p`: `then(peer*, result)`
// runs where the peer lives (its connection's loop, or under an HTTP peer's
// lock; at once if the broker answered before returning), with nullptr if
// the peer is gone or closing.
template <class T, class F>
broker::completion<T> on_loop(peer& p, F then) {
  return [ref = p.ref(), then = std::move(then)](T result) mutable {
    ref.run([then = std::move(then), r = std::move(result)](peer* w) mutable {
      then(w, std::move(r));
    });
  };
}

void send_text(peer& p, const std::string& message) { p.send(message); }

// The label of switchboard_closes_total: the codes this server or a
// well-behaved client uses, or "other" (a bounded set of series).
std::string_view close_label(std::uint16_t code) {
  switch (code) {
    case 1000: return "1000";
    case 1001: return "1001";
    case 1002: return "1002";
    case 1003: return "1003";
    case 1005: return "1005";
    case 1006: return "1006";
    case 1007: return "1007";
    case 1008: return "1008";
    case 1009: return "1009";
    case 1010: return "1010";
    case 1011: return "1011";
    case 1012: return "1012";
    case 1013: return "1013";
    case 1014: return "1014";
    case k_close_auth: return "4001";
    case k_close_token_expired: return "4002";
    case k_close_disconnected: return "4003";
    default: return "other";
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// The peer seam (peer.hpp)

void peer::reply_subscribed(std::string_view id, const local_channel& ch, const read_result& r) {
  thread_local std::string reply;
  reply_start(reply, id);
  reply.append("\"result\":{");
  append_stream(reply, ch.name, r.epoch, r.offset);
  if (r.recovered) {
    append_recovery(reply, *r.recovered, r.reason);
    reply.append(",\"publications\":[");
    append_publications(reply, r.publications, state().form);
    reply.push_back(']');
  }
  reply.append("}}");
  send(reply);
}

void peer::reply_error(std::string_view id, const failure& f) {
  thread_local std::string reply;
  detail::reply_error(reply, id, f);
  send(reply);
}

connection_state& ws_peer::state() { return ws_.data<connection_state>(); }
peer_ref ws_peer::ref() { return peer_ref::websocket(srv_, ws_.id(), hub_); }
void ws_peer::send(const std::string& text) { ws_.send(text, protocol::opcode::text); }
void ws_peer::close(std::uint16_t code, std::string_view reason) { ws_.close(code, reason); }
bool ws_peer::attach(local_channel& ch, std::string_view epoch) {
  return hub_.attach(ch, epoch, ws_.id()) != nullptr;
}
void ws_peer::start(local_channel& ch, std::uint64_t after) {
  ws_.subscribe(hub::topic_for(ch, state().form), after);
}
void ws_peer::detach(local_channel& ch, bool closing) {
  if (!closing) ws_.unsubscribe(hub::topic_for(ch, state().form));
  hub_.detach(ch, ws_.id());
}

void peer_ref::run(net::unique_function<void(peer*)> f) const {
  if (srv_) {
    srv_->dispatch(id_, [f = std::move(f), srv = srv_, h = hub_](server::websocket* w) mutable {
      if (!w) {
        f(nullptr);
        return;
      }
      if (w->event_stream()) {  // a one-channel GET /sse (sse_peer.hpp)
        sse_ws_peer p(*w, *srv, *h);
        f(&p);
        return;
      }
      ws_peer p(*w, *srv, *h);
      f(&p);
    });
    return;
  }
  if (auto p = http_.lock()) {
    p->run(std::move(f));
  } else {
    f(nullptr);
  }
}

// (all empty: what cold_view() reads for a connection that wrote none)
constinit const connection_cold connection_state::k_none_{};
// Why: 88 B keeps the server connection with this state in one 336 B chunk
// (docs/benchmarks.md, "Third pass"); a member added here costs 16 B per connection.
static_assert(sizeof(void*) != 8 || sizeof(connection_state) <= 88);

local_channel* connection_state::find_sub(std::string_view name) const noexcept {
  for (local_channel* ch : subs) {
    if (ch->name == name) return ch;
  }
  return nullptr;
}

const std::shared_ptr<const presence_entry>& connection_state::presence_of() {
  connection_cold& c = cold();  // (a presence subscribe: the entry is kept here)
  if (!c.presence) {
    c.presence = std::make_shared<const presence_entry>(presence_entry{
        client, presence_json(client, c.user, c.claims ? std::string_view(c.claims->info) : "")});
  }
  return c.presence;
}

sessions::sessions(const realtime_config& config, hub& h, const token_verifier* verifier,
                   session_metrics metrics, log_function log)
    : config_(config),
      hub_(h),
      verifier_(verifier),
      metrics_(metrics),
      log_(std::move(log)),
      trusted_proxies_(config.trusted_proxies) {}

void sessions::install(server::ws_behavior& b, server::server& srv) {
  srv_ = &srv;
  b.with_user_data<connection_state>();
  b.on_upgrade = [this](server::upgrade_request& req) { on_upgrade(req); };
  b.on_open = [this](server::websocket& ws) { on_open(ws); };
  b.on_message = [this](server::websocket& ws, std::string_view payload, protocol::opcode op) {
    on_message(ws, payload, op);
  };
  b.on_close = [this](server::websocket& ws, std::uint16_t code, std::string_view reason) {
    on_close(ws, code, reason);
  };
}

void sessions::tick() {
  const std::uint64_t now = mono_ms();
  // A client is its connection id, or an HTTP peer (connection_state::http).
  struct client_ref {
    server::connection_id id;
    std::weak_ptr<http_peer> http;
    bool is_http;
    explicit client_ref(const connection_state& c) : id(c.id), is_http(c.is_http) {
      if (c.http) http = c.http->weak_from_this();
    }
  };
  std::vector<client_ref> late;
  {
    std::lock_guard lock(deadlines_mutex_);
    for (auto it = connect_deadlines_.begin(); it != connect_deadlines_.end();) {
      if (it->second <= now) {
        late.emplace_back(*it->first);
        it = connect_deadlines_.erase(it);
      } else {
        ++it;
      }
    }
  }
  const auto close_client = [this](const client_ref& c, std::uint16_t code,
                                   std::string_view reason) {
    if (!c.is_http) {
      srv_->close(c.id, code, std::string(reason));
    } else if (auto h = c.http.lock()) {
      close_http_peer(*h, code, reason);
    }
  };
  for (const auto& c : late) {
    say(log_level::info, "connection closed: no connect within auth.connect_timeout");
    close_client(c, k_close_auth, "authentication timeout");
  }

  // Addresses with no connection whose bucket has had time to refill.
  {
    const double refill_s =
        config_.handshake_rate > 0 ? config_.handshake_burst / config_.handshake_rate : 0;
    const auto idle_ms = static_cast<std::uint64_t>(refill_s * 1000) + 1000;
    std::lock_guard lock(addresses_mutex_);
    for (auto it = addresses_.begin(); it != addresses_.end();) {
      if (it->second.open == 0 && it->second.last_ms + idle_ms < now) {
        it = addresses_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // Token lifetime: the earliest entries only, each handled once per event.
  const std::int64_t wall = wall_ms();
  std::vector<client_ref> expired;
  std::vector<std::pair<client_ref, std::int64_t>> refresh;  // client, exp (s)
  {
    std::lock_guard lock(deadlines_mutex_);
    while (!expiry_.empty() && expiry_.begin()->first <= wall) {
      connection_state* conn = expiry_.begin()->second;
      expiry_.erase(expiry_.begin());
      connection_cold& cold = *conn->cold_;  // in the index: allocated (watch_expiry)
      cold.expiry_due = 0;
      if (wall >= cold.expires_ms) {
        expired.emplace_back(*conn);
        continue;
      }
      // The refresh push is due; the next event is the expiry itself.
      cold.refresh_pushed = true;
      refresh.emplace_back(client_ref(*conn), cold.expires_ms / 1000);
      cold.expiry_due = cold.expires_ms;
      expiry_.emplace(cold.expiry_due, conn);
    }
  }
  thread_local std::string push;
  for (const auto& [c, exp] : refresh) {
    refresh_push(push, exp);
    if (!c.is_http) {
      // Through the peer: an SSE stream's push is an event, not the text.
      peer_ref::websocket(*srv_, c.id, hub_).run([push = push](peer* p) {
        if (p) p->send(push);
      });
    } else if (auto h = c.http.lock()) {
      send_http_peer(*h, push);
    }
  }
  for (const auto& c : expired) {
    say(log_level::info, "connection closed: token expired without refresh");
    close_client(c, k_close_token_expired, "token expired");
  }
}

std::string sessions::client_address(const server::upgrade_request& req) const {
  return client_address(req.remote_address(), req.head());
}

std::string sessions::client_address(std::string peer, const protocol::request_head& head) const {
  if (!trusted_proxies_.contains(peer)) {
    return peer;  // anyone else could write any X-Forwarded-For
  }
  // The rightmost entry that is not one of our proxies is the client: entries
  // to its left were written by the client itself and prove nothing.
  std::string client = peer;
  std::vector<std::string> hops;
  for (const auto& field : head.headers()) {
    if (!protocol::ascii_iequals(field.name, "X-Forwarded-For")) continue;
    protocol::list_cursor items(field.value);
    std::string_view item;
    while (items.next(item)) hops.emplace_back(item);
  }
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    // Something that is not an address is not a client we can count: the proxy is.
    if (!net::endpoint::parse(*it, 0)) break;
    client = *it;
    if (!trusted_proxies_.contains(*it)) break;
  }
  return client;
}

bool sessions::admit(const std::string& address, std::string& why) {
  const std::uint64_t now = mono_ms();
  std::lock_guard lock(addresses_mutex_);
  address_state& a = addresses_[address];
  a.last_ms = now;
  if (config_.handshake_rate > 0) {
    if (!a.bucket) a.bucket.emplace(config_.handshake_rate, config_.handshake_burst);
    if (!a.bucket->take(now)) {
      why = "too many connection attempts from this address (limits.handshake_rate)";
      return false;
    }
  }
  if (config_.max_connections_per_ip > 0 && a.open >= config_.max_connections_per_ip) {
    why = "too many connections from this address (limits.max_connections_per_ip)";
    return false;
  }
  ++a.open;
  return true;
}

void sessions::release(const std::string& address) {
  std::lock_guard lock(addresses_mutex_);
  const auto it = addresses_.find(address);
  if (it != addresses_.end() && it->second.open > 0) --it->second.open;
}

void sessions::watch_expiry(connection_state& conn, bool remove) {
  std::lock_guard lock(deadlines_mutex_);
  if (conn.cold_) {  // (a connection without its cold members is not in the index)
    if (conn.cold_->expiry_due != 0) expiry_.erase({conn.cold_->expiry_due, &conn});
    conn.cold_->expiry_due = 0;
  }
  if (remove || !conn.cold_view().claims) return;
  connection_cold& cold = conn.cold();
  // (exp far in the future is clamped: milliseconds must fit in 64 bits)
  cold.expires_ms = std::min<std::int64_t>(cold.claims->expires, 1'000'000'000'000) * 1000;
  cold.refresh_pushed = false;
  const std::int64_t lead = to_ms(config_.refresh_lead).count();
  // With no lead (or a token shorter than it) the first event is the push,
  // at once; then the expiry.
  cold.expiry_due = lead > 0 ? std::max<std::int64_t>(1, cold.expires_ms - lead) : cold.expires_ms;
  expiry_.emplace(cold.expiry_due, &conn);
}

token_result sessions::authenticate(std::string_view token, std::string_view what) {
  token_result r;
  if (verifier_) {
    r = verifier_->verify(token, wall_ms() / 1000);
  } else {
    r.error = "tokens are not accepted (no auth.jwt_secret)";
  }
  if (!r.claims) {
    metrics_.handshake_failures->with("auth").inc();
    say(log_level::warn, std::string(what) + " refused: " + r.error);
  }
  return r;
}

// ---------------------------------------------------------------------------
// Connection lifecycle

int sessions::admit_client(connection_state& conn, const protocol::request_head& head,
                           std::string_view origin, std::string_view host, bool secure,
                           std::string address, std::optional<std::string> token,
                           std::string& why) {
  // Origin is decided before the 101 (DESIGN: never after). Cross-site
  // WebSocket hijacking: a page of another site would ride on the cookie.
  if (!origin_allowed(config_.allowed_origins, origin, host, secure)) {
    metrics_.handshake_failures->with("origin").inc();
    say(log_level::warn, "upgrade refused: origin not allowed: " + std::string(origin));
    why = config_.allowed_origins.empty()
              ? "origin not allowed (only the server's own origin: see server.allowed_origins)"
              : "origin not allowed";
    return 403;
  }
  // Floods: per-address connection cap and upgrade rate, before the token costs a check.
  if (!address.empty() && (config_.max_connections_per_ip > 0 || config_.handshake_rate > 0)) {
    if (!admit(address, why)) {
      metrics_.handshake_failures->with("per_ip_limit").inc();
      say(log_level::warn, "upgrade refused: " + why + ": " + address);
      return 429;
    }
    conn.cold().address = std::move(address);
  }
  if (token) {
    token_result r = authenticate(*token, "upgrade");
    // A token in the request is checked before the 101: a bad one is a 401, not a close.
    if (!r.claims) {
      if (!conn.cold_view().address.empty()) release(conn.cold_view().address);
      if (conn.cold_) conn.cold_->address.clear();
      why = r.error;
      return 401;
    }
    conn.cold().user = r.claims->user;
    conn.cold().claims = std::make_unique<token_claims>(std::move(*r.claims));
    conn.connected = true;
  } else if (!config_.allow_anonymous) {
    conn.needs_connect = true;
  }
  if (hooks_) {
    conn.cold().hook = std::make_unique<hook_state>();
    for (const auto& field : head.headers()) {
      if (hooks_->forwards(field.name))
        conn.cold_view().hook->headers.emplace_back(field.name, field.value);
    }
  }
  conn.client = random_hex(8);
  conn.bucket = token_bucket(config_.command_rate, config_.command_burst);
  return 0;
}

void sessions::on_upgrade(server::upgrade_request& req) {
  auto& conn = req.data<connection_state>();
  std::string address;
  if (config_.max_connections_per_ip > 0 || config_.handshake_rate > 0) {
    address = client_address(req);
  }
  std::string why;
  const int status = admit_client(
      conn, req.head(), req.origin(), req.header("Host").value_or(""), req.secure(), std::move(address),
      find_token(req.head(), req.query(), config_.cookie_name, config_.allow_token_in_url), why);
  if (status != 0) {
    req.reject(status, why);
    return;
  }
  // The client's first choice of the two (it lists the one it prefers first).
  const std::string_view offered[] = {k_subprotocol, k_subprotocol_compact};
  if (const auto chosen = req.select_subprotocol(offered)) {
    if (*chosen == k_subprotocol_compact) conn.form = push_form::compact;
    req.accept(*chosen);
  } else {
    req.accept();
  }
}

int sessions::admit(connection_state& conn, const protocol::request_head& head,
                    std::string_view query, bool secure, std::string_view body_token,
                    std::string& why, std::string_view peer_address) {
  std::optional<std::string> token =
      find_token(head, query, config_.cookie_name, config_.allow_token_in_url);
  if (!token && !body_token.empty()) token.emplace(body_token);
  // The per-address limits of /ws count streams and sessions too: an SSE
  // reconnect loop must not get around limits.handshake_rate.
  std::string address;
  if (!peer_address.empty() && (config_.max_connections_per_ip > 0 || config_.handshake_rate > 0)) {
    address = client_address(std::string(peer_address), head);
  }
  return admit_client(conn, head, head.find("Origin").value_or(""), head.find("Host").value_or(""),
                      secure, std::move(address), std::move(token), why);
}

void sessions::unadmit(connection_state& conn) {
  if (!conn.cold_view().address.empty()) release(conn.cold_view().address);
  if (conn.cold_) conn.cold_->address.clear();
}

void sessions::open(peer& p, net::unique_function<void(const failure*)> decided) {
  auto& conn = p.state();
  // A token's presence is fixed at the upgrade (a refresh keeps it). Without
  // claims the entry is made on the first presence subscribe (presence_of):
  // most connections never join a presence channel, and the entry, its
  // client id and its JSON cost ~190 bytes each.
  if (conn.cold_view().claims) {
    conn.cold().presence = std::make_shared<const presence_entry>(presence_entry{
        conn.client,
        presence_json(conn.client, conn.cold_view().user, conn.cold_view().claims->info)});
  }
  if (conn.needs_connect) {
    std::lock_guard lock(deadlines_mutex_);
    connect_deadlines_[&conn] =
        mono_ms() + static_cast<std::uint64_t>(to_ms(config_.connect_timeout).count());
  }
  if (conn.cold_view().claims) watch_expiry(conn);
  index(conn);
  if (asks_connect_hook_at_open(conn)) hook_connect_on_open(p, conn, std::move(decided));
  if (!conn.needs_connect) announce(conn, "connect");
}

void sessions::closed(peer& p, int code, std::string_view reason) {
  auto& conn = p.state();
  {
    std::lock_guard lock(deadlines_mutex_);
    connect_deadlines_.erase(&conn);
  }
  watch_expiry(conn, true);
  unindex(conn);
  if (!conn.cold_view().address.empty()) release(conn.cold_view().address);
  if (conn.cold_) conn.cold_->address.clear();
  while (!conn.subs.empty()) leave(p, *conn.subs.back(), true);
  if (conn.cold_view().hook && conn.cold_view().hook->announced)
    announce(conn, "disconnect", {}, code, reason);
}

void sessions::on_open(server::websocket& ws) {
  ws.data<connection_state>().id = ws.id();
  ws_peer p(ws, *srv_, hub_);
  open(p);
}

void sessions::on_close(server::websocket& ws, std::uint16_t code, std::string_view reason) {
  // A close we sent counts as its code, answered or not (not as 1006); and a
  // client cannot mint labels: unknown codes are "other".
  const std::uint16_t counted = ws.close_code_sent() != 0 ? ws.close_code_sent() : code;
  if (counted == config_.shutdown_code) {
    metrics_.closes->with(std::to_string(counted)).inc();
  } else {
    metrics_.closes->with(close_label(counted)).inc();
  }
  ws_peer p(ws, *srv_, hub_);
  const bool ours = ws.close_code_sent() != 0;
  closed(p, ours ? ws.close_code_sent() : code, reason);
}

void sessions::leave(peer& p, local_channel& ch, bool closing) {
  auto& conn = p.state();
  p.detach(ch, closing);
  conn.subs.erase(std::find(conn.subs.begin(), conn.subs.end(), &ch));
  hub_.count_subscription(-1);
  // The leave push goes out before the node may unsubscribe (the stream's epoch names its topic).
  if (ch.ns->presence) hub_.backend().presence_remove(ch.name, conn.client);
  announce(conn, "unsubscribe", ch.name);
  if (ch.ns->presence) announce(conn, "presence.leave", ch.name);
  hub_.leave(ch, conn.form);
}

// ---------------------------------------------------------------------------
// Commands

void sessions::on_message(server::websocket& ws, std::string_view payload, protocol::opcode op) {
  // switchboard.v1 is JSON text only (docs/protocol.md, "Close codes").
  if (op != protocol::opcode::text) {
    ws.close(1003, "binary messages are not supported");
    return;
  }
  ws_peer p(ws, *srv_, hub_);
  handle(p, payload);
}

void sessions::handle(peer& ws, std::string_view payload) {
  auto& conn = ws.state();
  // Behind a hook call in flight: commands run in the order they came.
  if (conn.cold_view().hook && hook_queue(ws, conn, payload)) return;
  const auto started = std::chrono::steady_clock::now();
  thread_local simdjson::dom::parser parser;
  thread_local std::string reply;
  thread_local std::string result;
  reply.clear();
  result.clear();

  command c;
  bool close_after = false;
  bool replied = false;
  std::optional<failure> fail = parse_command(parser, payload, c);
  const std::string_view cmd = c.cmd;
  if (!fail) {
    if (!conn.bucket.take(mono_ms())) {
      metrics_.rate_limited->inc();
      if (++conn.refused >= config_.rate_limit_close) {
        say(log_level::warn, "connection " + conn.client + " closed: rate limit exceeded");
        ws.close(1008, "rate limit exceeded");
        return;
      }
      fail = make_failure(errors::rate_limited);
    } else {
      conn.refused = 0;
      fail = dispatch(ws, conn, c, result, close_after, replied);
    }
  }
  if (fail) {
    ws.reply_error(c.id, *fail);
  } else if (!replied) {
    reply_result(reply, c.id, result);
    send_text(ws, reply);
  }
  if (close_after) ws.close(k_close_auth, fail ? std::string_view(fail->message) : "");
  const std::string_view label =
      cmd == "connect" || cmd == "subscribe" || cmd == "unsubscribe" || cmd == "publish" ||
              cmd == "presence" || cmd == "history" || cmd == "ping" || cmd == "refresh" ||
              cmd == "rpc"
          ? cmd
          : std::string_view("invalid");
  metrics_.command_duration->observe(
      label, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
}

std::optional<failure> sessions::dispatch(peer& ws, connection_state& conn,
                                          const command& c, std::string& result,
                                          bool& close_after, bool& replied) {
  const std::string_view cmd = c.cmd;
  // Proxy hooks answer some commands (session_hooks.cpp).
  if (auto hooked = dispatch_hooked(ws, conn, c, close_after)) {
    if (!*hooked) replied = true;
    return *hooked;
  }
  if (cmd == "connect") return cmd_connect(conn, c, result, close_after);
  if (conn.needs_connect) return make_failure(errors::not_authenticated);
  if (cmd == "ping") return std::nullopt;
  if (cmd == "unsubscribe") return cmd_unsubscribe(ws, conn, c);
  if (cmd == "refresh") return cmd_refresh(ws, conn, c, result);
  // The rest answer from the broker's completion.
  std::optional<failure> f;
  if (cmd == "subscribe") {
    f = cmd_subscribe(ws, conn, c);
  } else if (cmd == "publish") {
    f = cmd_publish(ws, conn, c);
  } else if (cmd == "presence") {
    f = cmd_presence(ws, conn, c);
  } else if (cmd == "history") {
    f = cmd_history(ws, conn, c);
  } else {
    return make_failure(errors::unknown_command, cmd);
  }
  if (!f) replied = true;
  return f;
}

std::optional<failure> sessions::cmd_connect(connection_state& conn, const command& c,
                                             std::string& result, bool& close_after) {
  if (conn.connected) return make_failure(errors::already_connected);
  if (!conn.subs.empty()) return make_failure(errors::connect_after_subscribe);
  std::string info;
  if (c.has_token) {
    token_result r = authenticate(c.token, "connect");
    if (!r.claims) {
      close_after = true;
      return make_failure(errors::bad_token, r.error);
    }
    conn.cold().user = r.claims->user;
    info = r.claims->info;
    conn.cold().claims = std::make_unique<token_claims>(std::move(*r.claims));
  } else {
    if (!config_.allow_anonymous) {
      close_after = true;
      return make_failure(errors::token_required);
    }
    if (c.info_error) return c.info_error;
    if (c.has_info) {
      info = c.info;
      if (info.size() > k_max_anonymous_info) return make_failure(errors::info_too_large);
    }
  }
  conn.connected = true;
  conn.needs_connect = false;
  conn.cold().presence = std::make_shared<const presence_entry>(
      presence_entry{conn.client, presence_json(conn.client, conn.cold_view().user, info)});
  {
    std::lock_guard lock(deadlines_mutex_);
    connect_deadlines_.erase(&conn);
  }
  watch_expiry(conn);
  index(conn);
  announce(conn, "connect");
  result = "{\"client\":";
  append_json_string(result, conn.client);
  if (!conn.cold_view().user.empty()) {
    result.append(",\"user\":");
    append_json_string(result, conn.cold_view().user);
  }
  result.push_back('}');
  return std::nullopt;
}

std::optional<failure> sessions::cmd_refresh(peer& ws, connection_state& conn,
                                             const command& c, std::string& result) {
  // Only a token-authenticated connection has a lifetime to extend.
  if (!conn.cold_view().claims) return make_failure(errors::refresh_without_token);
  if (!c.has_token) return make_failure(errors::no_token);
  token_result r = authenticate(c.token, "refresh");
  // A refused token leaves the old one in force, until its exp.
  if (!r.claims) return make_failure(errors::bad_refresh_token, r.error);
  // The connection's identity (presence, publications) cannot change midway.
  if (r.claims->user != conn.cold_view().user) return make_failure(errors::refresh_other_user);
  conn.cold().claims = std::make_unique<token_claims>(std::move(*r.claims));
  watch_expiry(conn);
  // Grants are re-checked: channels the new token does not grant are left.
  thread_local std::string push;
  for (std::size_t i = conn.subs.size(); i-- > 0;) {
    local_channel* ch = conn.subs[i];
    if (conn.grants(ch->name)) continue;
    unsubscribe_push(push, ch->name, "channel no longer granted by the token");
    send_text(ws, push);
    leave(ws, *ch, false);
  }
  result = "{\"exp\":";
  append_uint(result, static_cast<std::uint64_t>(
                          std::max<std::int64_t>(0, conn.cold_view().claims->expires)));
  result.push_back('}');
  return std::nullopt;
}

std::optional<failure> sessions::check_channel(const connection_state* conn, const command& c,
                                               std::string_view& name,
                                               const namespace_options*& ns) const {
  if (!c.has_channel) return make_failure(errors::no_channel);
  name = c.channel;
  if (!valid_channel_name(name)) return make_failure(errors::invalid_channel);
  const auto it = config_.namespaces.find(namespace_of(name, k_default_namespace));
  if (it == config_.namespaces.end()) {
    return make_failure(errors::unknown_namespace, namespace_of(name, k_default_namespace));
  }
  ns = &it->second;
  if (conn && !conn->grants(name)) return make_failure(errors::channel_not_granted, name);
  return std::nullopt;
}

std::optional<failure> sessions::cmd_subscribe(peer& ws, connection_state& conn,
                                               const command& c) {
  std::string_view name;
  const namespace_options* ns = nullptr;
  if (auto f = check_channel(&conn, c, name, ns)) return f;
  if (c.since_error) return c.since_error;
  if (conn.find_sub(name)) return make_failure(errors::already_subscribed);
  if (conn.subs.size() >= config_.max_subscriptions) {
    return make_failure(errors::subscription_limit);
  }
  if (hooks_) {
    if (const hook_target* h = hooks_->subscribe(namespace_of(name, k_default_namespace))) {
      return hook_subscribe(ws, conn, c, *h, name, *ns);
    }
  }
  subscribe_now(ws, name, *ns, c.since, c.id, false);
  return std::nullopt;
}

void sessions::subscribe_now(peer& ws, std::string_view name, const namespace_options& ns,
                             std::optional<stream_position> since, std::string id,
                             bool server_side) {
  const push_form form = ws.state().form;
  local_channel& ch = hub_.join(name, ns, form);
  ws.prepare(ch);
  read_request request;
  request.since = std::move(since);
  hub_.backend().read(
      name, ns, std::move(request),
      on_loop<read_result>(ws, [this, &ch, id = std::move(id), server_side, form](peer* w,
                                                                                  read_result r) {
        if (!w) {  // closed meanwhile: nothing to attach to (closing cancelled prepare())
          hub_.leave(ch, form);
          return;
        }
        if (r.error) {
          w->cancel(ch);
          hub_.leave(ch, form);
          // A server-side subscription that failed is not the client's error to read.
          if (server_side) return;
          w->reply_error(id, *r.error);
          return;
        }
        auto& conn = w->state();
        if (server_side && conn.find_sub(ch.name)) {  // already there
          w->cancel(ch);
          hub_.leave(ch, form);
          return;
        }
        // The checks of cmd_subscribe again (not for a subscription the
        // server made): while the read was in flight (a networked broker
        // answers later) a `refresh` may have dropped the channel from the
        // token, or another subscribe may have landed.
        std::optional<failure> refused;
        if (!server_side) {
          if (!conn.grants(ch.name)) {
            refused = make_failure(errors::channel_not_granted, ch.name);
          } else if (conn.find_sub(ch.name)) {
            refused = make_failure(errors::already_subscribed);
          } else if (conn.subs.size() >= config_.max_subscriptions) {
            refused = make_failure(errors::subscription_limit);
          }
        }
        if (refused) {
          w->cancel(ch);
          hub_.leave(ch, form);
          w->reply_error(id, *refused);
          return;
        }
        if (!w->attach(ch, r.epoch)) {  // the stream was lost after this read (hub::on_stream_lost)
          w->cancel(ch);
          hub_.leave(ch, form);
          w->close(1012, "channel stream lost: reconnect and subscribe again");
          return;
        }
        if (server_side) {
          thread_local std::string push;
          subscribe_push(push, ch.name, r.epoch, r.offset);
          w->send(push);
        } else {
          w->reply_subscribed(id, ch, r);
        }
        w->start(ch, r.offset);
        conn.subs.push_back(&ch);
        hub_.count_subscription(1);
        if (ch.ns->presence) hub_.backend().presence_add(ch.name, conn.presence_of());
        announce(conn, "subscribe", ch.name);
        if (ch.ns->presence) announce(conn, "presence.join", ch.name);
      }));
}

std::optional<failure> sessions::cmd_unsubscribe(peer& ws, connection_state& conn,
                                                 const command& c) {
  if (!c.has_channel) return make_failure(errors::no_channel);
  const std::string_view name = c.channel;
  if (!valid_channel_name(name)) return make_failure(errors::invalid_channel);
  local_channel* ch = conn.find_sub(name);
  if (!ch) return make_failure(errors::not_subscribed);
  leave(ws, *ch, false);
  return std::nullopt;
}

std::optional<failure> sessions::cmd_publish(peer& ws, connection_state& conn,
                                             const command& c) {
  std::string_view name;
  const namespace_options* ns = nullptr;
  if (auto f = check_channel(&conn, c, name, ns)) return f;
  if (!c.has_data) return make_failure(errors::no_data);
  if (ns->publish == publish_policy::none) return make_failure(errors::publish_not_allowed);
  if (ns->publish == publish_policy::subscribers && !conn.find_sub(name)) {
    return make_failure(errors::subscribe_first);
  }
  if (hooks_) {
    if (const hook_target* h = hooks_->publish(namespace_of(name, k_default_namespace))) {
      return hook_publish(ws, conn, c, *h, name, *ns);
    }
  }
  publish_now(ws, conn, name, *ns, c.data, c.id);
  return std::nullopt;
}

void sessions::publish_now(peer& ws, connection_state& conn, std::string_view name,
                           const namespace_options& ns, std::string_view data, std::string id) {
  hub_.publish(name, ns, data, conn.client, conn.cold_view().user,
               on_loop<publish_result>(ws, [id = std::move(id)](peer* w,
                                                              publish_result r) {
                 if (!w) return;
                 thread_local std::string reply;
                 thread_local std::string result;
                 if (r.error) {
                   reply_error(reply, id, *r.error);
                 } else {
                   result.clear();
                   append_publish_result(result, r.epoch, r.offset);
                   reply_result(reply, id, result);
                 }
                 send_text(*w, reply);
               }));
}

std::optional<failure> sessions::cmd_presence(peer& ws, connection_state& conn,
                                              const command& c) {
  std::string_view name;
  const namespace_options* ns = nullptr;
  if (auto f = check_channel(&conn, c, name, ns)) return f;
  if (!ns->presence) return make_failure(errors::presence_off);
  if (c.limit_error) return c.limit_error;
  if (c.cursor_error) return c.cursor_error;
  // Replies page (docs/protocol.md, "presence"): one reply never carries more
  // than k_max_presence_page entries, whatever the channel holds.
  broker::presence_request request;
  request.cursor = c.cursor;
  request.limit = std::min<std::uint64_t>(c.limit.value_or(k_presence_page), k_max_presence_page);
  request.max_members = ns->presence_max_members;
  hub_.backend().presence(
      name, std::move(request),
      on_loop<broker::presence_result>(
          ws,
          [id = c.id, channel = std::string(name)](peer* w,
                                                   broker::presence_result r) {
            if (!w) return;
            thread_local std::string reply;
            thread_local std::string result;
            if (r.error) {
              reply_error(reply, id, *r.error);
            } else {
              result.clear();
              append_presence_result(result, channel, r.count, r.listed ? &r.entries : nullptr,
                                     r.next);
              reply_result(reply, id, result);
            }
            send_text(*w, reply);
          }));
  return std::nullopt;
}

std::optional<failure> sessions::cmd_history(peer& ws, connection_state& conn,
                                             const command& c) {
  std::string_view name;
  const namespace_options* ns = nullptr;
  if (auto f = check_channel(&conn, c, name, ns)) return f;
  if (ns->history_size == 0) return make_failure(errors::history_off);
  if (c.since_error) return c.since_error;
  if (c.limit_error) return c.limit_error;
  read_request request;
  request.since = c.since;
  request.limit = ns->history_size;
  if (c.limit) request.limit = std::min<std::size_t>(request.limit, *c.limit);
  request.latest_when_lost = true;
  hub_.backend().read(
      name, *ns, std::move(request),
      on_loop<read_result>(ws, [id = c.id, channel = std::string(name)](peer* w,
                                                                        read_result r) {
        if (!w) return;
        thread_local std::string reply;
        thread_local std::string result;
        if (r.error) {
          reply_error(reply, id, *r.error);
        } else {
          result.clear();
          result.push_back('{');
          append_stream(result, channel, r.epoch, r.offset);
          if (r.recovered) append_recovery(result, *r.recovered, r.reason);
          result.append(",\"publications\":[");
          append_publications(result, r.publications, w->state().form);
          result.append("]}");
          reply_result(reply, id, result);
        }
        send_text(*w, reply);
      }));
  return std::nullopt;
}

}  // namespace switchboard::realtime::detail
