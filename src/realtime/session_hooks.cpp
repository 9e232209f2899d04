// session_hooks.cpp — the commands of a /ws session that a proxy hook
// answers (docs/hooks.md): connect (no token, or every client with
// hooks.connect_always), refresh without a token, rpc, and subscribe and
// publish in namespaces with a hook.
//
// Order. While a hook call of a connection is out, its later commands wait in
// hook_state::queued (copies of the messages) and run, in order, once the
// answer has been applied; the connection's loop never waits. The answer
// comes back like a broker completion: the hook thread hands it to
// peer_ref::run, which runs it where the client lives (a /ws connection's
// loop, an HTTP session's or SSE stream's lock), or not at all if the client
// has closed meanwhile.
#include <simdjson.h>

#include <algorithm>

#include "channel.hpp"
#include "json.hpp"
#include "session.hpp"
#include "support.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

namespace {

// Commands a connection may send while a hook call is out; past it the
// client is not waiting for answers and is closed (1008).
constexpr std::size_t k_max_hook_queue = 64;
constexpr std::size_t k_max_method = 256;

void send_text(peer& p, const std::string& message) { p.send(message); }

// {"client":"…","transport":"websocket"|"sse"|"http_session"[,"user":"…"] — the start of every
// hook body; the caller adds its fields and the closing brace.
std::string body_start(peer& p, std::string_view user) {
  std::string body("{\"client\":");
  append_json_string(body, p.state().client);
  body.append(",\"transport\":");
  append_json_string(body, p.transport());
  if (!user.empty()) {
    body.append(",\"user\":");
    append_json_string(body, user);
  }
  return body;
}

void log_failure(const log_function& log, const hook_target& t, const hook_answer& a) {
  if (!log) return;
  log(log_level::warn, "hook " + std::string(hook_name(t.kind)) + " (" + t.url.origin + t.url.path +
                           ") failed: " + a.error + (t.allow_on_error ? "; allowed" : "; denied"));
}

}  // namespace

bool sessions::hook_queue(peer& ws, connection_state& conn, std::string_view payload) {
  if (!conn.cold_view().hook->waiting) return false;
  if (conn.cold_view().hook->queued.size() >= k_max_hook_queue) {
    ws.close(1008, "too many commands waiting for a hook's answer");
    return true;
  }
  conn.cold_view().hook->queued.emplace_back(payload);
  return true;
}

void sessions::hook_resume(peer& ws) {
  auto& conn = ws.state();
  // Each queued command may start another hook call: the rest wait again.
  while (conn.cold_view().hook && !conn.cold_view().hook->waiting &&
         !conn.cold_view().hook->queued.empty() && ws.is_open()) {
    std::string payload = std::move(conn.cold_view().hook->queued.front());
    conn.cold_view().hook->queued.pop_front();
    handle(ws, payload);
  }
}

void sessions::hook_call(peer& ws, connection_state& conn, const hook_target& target,
                         std::string body,
                         net::unique_function<void(peer&, hook_answer)> then) {
  conn.cold_view().hook->waiting = true;
  hooks_->call(target, std::move(body), &conn.cold_view().hook->headers,
               [this, ref = ws.ref(), &target,
                then = std::move(then)](hook_answer answer) mutable {
                 ref.run([this, &target, then = std::move(then),
                          answer = std::move(answer)](peer* w) mutable {
                   if (!w) return;  // closed meanwhile: nobody to answer
                   auto& c = w->state();
                   c.cold_view().hook->waiting = false;
                   if (answer.result == hook_answer::outcome::failed)
                     log_failure(log_, target, answer);
                   then(*w, std::move(answer));
                   hook_resume(*w);
                 });
               });
}

std::optional<std::optional<failure>> sessions::dispatch_hooked(peer& ws,
                                                                connection_state& conn,
                                                                const command& c,
                                                                bool& close_after) {
  const std::string_view cmd = c.cmd;
  if (cmd == "connect") {
    if (!hooks_ || !hooks_->connect() || conn.connected || !conn.subs.empty()) return std::nullopt;
    if (c.has_token && !hooks_->connect_always()) return std::nullopt;
    return hook_connect(ws, conn, c, close_after);
  }
  if (conn.needs_connect) return std::nullopt;  // dispatch says "not authenticated"
  if (cmd == "rpc") return cmd_rpc(ws, conn, c);
  if (cmd == "refresh" && hooks_ && hooks_->refresh() && !c.has_token && conn.cold_view().hook &&
      conn.cold_view().hook->hook_auth) {
    return hook_refresh(ws, conn, c);
  }
  return std::nullopt;
}

void sessions::hook_connected(connection_state& conn, std::string user, std::string info,
                              std::int64_t expire_at) {
  conn.cold().user = std::move(user);
  conn.connected = true;
  conn.needs_connect = false;
  conn.cold_view().hook->hook_auth = true;
  if (expire_at > 0) {
    // The refresh cycle of tokens (refresh push, 4002 at expiry) runs on
    // claims: the hook's answer stands in for a token granting every
    // channel (the namespaces' subscribe hooks decide those).
    auto claims = std::make_unique<token_claims>();
    claims->user = conn.cold_view().user;
    claims->expires = expire_at;
    claims->info = info;
    conn.cold().claims = std::move(claims);
  }
  conn.cold().presence = std::make_shared<const presence_entry>(
      presence_entry{conn.client, presence_json(conn.client, conn.cold_view().user, info)});
  {
    std::lock_guard lock(deadlines_mutex_);
    connect_deadlines_.erase(&conn);
  }
  watch_expiry(conn);
  index(conn);  // the hook may have named the user: the server API finds it by it
  announce(conn, "connect");
}

void sessions::announce(connection_state& conn, std::string_view type, std::string_view channel,
                        int code, std::string_view reason) {
  if (!events_ || !conn.cold_view().hook) return;
  if (type == "connect") {
    if (conn.cold_view().hook->announced) return;  // an anonymous client that sent connect later
    conn.cold_view().hook->announced = true;
  }
  lifecycle_event e;
  e.type = type;
  e.client = conn.client;
  e.user = conn.cold_view().user;
  e.channel = channel;
  e.code = code;
  e.reason = reason;
  events_->emit(e);
}

std::optional<failure> sessions::hook_connect(peer& ws, connection_state& conn,
                                              const command& c, bool& close_after) {
  std::string token_user;
  std::string token_info;
  std::optional<token_claims> claims;
  if (c.has_token) {  // connect_always: the token is checked first, as without a hook
    token_result r = authenticate(c.token, "connect");
    if (!r.claims) {
      close_after = true;
      return make_failure(errors::bad_token, r.error);
    }
    token_user = r.claims->user;
    token_info = r.claims->info;
    claims = std::move(r.claims);
  }
  if (c.info_error) return c.info_error;
  std::string body = body_start(ws, token_user);
  if (c.has_data) {
    body.append(",\"data\":");
    body.append(c.data);
  }
  if (c.has_info) {
    body.append(",\"info\":");
    body.append(c.info);
  }
  body.push_back('}');
  hook_call(ws, conn, *hooks_->connect(), std::move(body),
            [this, id = c.id, token_user, token_info, claims = std::move(claims)](
                peer& w, hook_answer a) mutable {
              auto& conn = w.state();
              thread_local std::string reply;
              if (a.result == hook_answer::outcome::deny) {
                w.reply_error(id, a.denial);
                w.close(k_close_auth, a.denial.message);
                return;
              }
              if (a.result == hook_answer::outcome::failed && !hooks_->connect()->allow_on_error) {
                w.reply_error(id, make_failure(errors::hook_unavailable));
                return;  // not connected: the client may try again (auth.connect_timeout runs)
              }
              // allow (or a failure that allows): the backend may name the user
              // only when no token did.
              std::string user = !token_user.empty() ? token_user : a.user.value_or("");
              std::string info = a.info ? *a.info : token_info;
              if (claims) {
                conn.cold().claims = std::make_unique<token_claims>(std::move(*claims));
              }
              hook_connected(conn, std::move(user), std::move(info),
                             claims ? std::int64_t{0} : a.expire_at);
              std::string result("{\"client\":");
              append_json_string(result, conn.client);
              if (!conn.cold_view().user.empty()) {
                result.append(",\"user\":");
                append_json_string(result, conn.cold_view().user);
              }
              result.push_back('}');
              reply_result(reply, id, result);
              send_text(w, reply);
              for (const std::string& channel : a.channels) {
                if (!w.takes_server_subscriptions()) break;  // GET /sse: its query's only
                if (conn.subs.size() >= config_.max_subscriptions) break;
                if (!valid_channel_name(channel)) continue;
                const auto it = config_.namespaces.find(namespace_of(channel, k_default_namespace));
                if (it == config_.namespaces.end()) continue;
                subscribe_now(w, channel, it->second, std::nullopt, {}, true);
              }
            });
  return std::nullopt;
}

bool sessions::asks_connect_hook_at_open(const connection_state& conn) const noexcept {
  return hooks_ && hooks_->connect() && hooks_->connect_always() && conn.connected;
}

void sessions::hook_connect_on_open(peer& ws, connection_state& conn,
                                    net::unique_function<void(const failure*)> decided) {
  std::string body = body_start(ws, conn.cold_view().user);
  body.push_back('}');
  hook_call(ws, conn, *hooks_->connect(), std::move(body),
            [this, decided = std::move(decided)](peer& w, hook_answer a) mutable {
              auto& conn = w.state();
              if (a.result == hook_answer::outcome::deny) {
                if (decided) decided(&a.denial);
                w.close(k_close_auth, a.denial.message);
                return;
              }
              if (a.result == hook_answer::outcome::failed && !hooks_->connect()->allow_on_error) {
                const failure unavailable{503, "connect hook unavailable"};
                if (decided) decided(&unavailable);
                w.close(k_close_auth, unavailable.message);
                return;
              }
              if (a.info) {
                conn.cold().presence = std::make_shared<const presence_entry>(presence_entry{
                    conn.client, presence_json(conn.client, conn.cold_view().user, *a.info)});
              }
              for (const std::string& channel : a.channels) {
                if (!w.takes_server_subscriptions()) break;  // GET /sse: its query's only
                if (conn.subs.size() >= config_.max_subscriptions) break;
                if (!valid_channel_name(channel)) continue;
                const auto it = config_.namespaces.find(namespace_of(channel, k_default_namespace));
                if (it == config_.namespaces.end()) continue;
                subscribe_now(w, channel, it->second, std::nullopt, {}, true);
              }
              if (decided) decided(nullptr);
            });
}

std::optional<failure> sessions::hook_refresh(peer& ws, connection_state& conn,
                                              const command& c) {
  std::string body = body_start(ws, conn.cold_view().user);
  if (c.has_data) {
    body.append(",\"data\":");
    body.append(c.data);
  }
  body.push_back('}');
  hook_call(ws, conn, *hooks_->refresh(), std::move(body),
            [this, id = c.id](peer& w, hook_answer a) {
              auto& conn = w.state();
              thread_local std::string reply;
              if (a.result == hook_answer::outcome::deny) {
                w.reply_error(id, a.denial);
                return;  // the connection keeps its expiry
              }
              if (a.result == hook_answer::outcome::failed && !hooks_->refresh()->allow_on_error) {
                w.reply_error(id, make_failure(errors::hook_unavailable));
                return;
              }
              if (a.info) {
                conn.cold().presence = std::make_shared<const presence_entry>(presence_entry{
                    conn.client, presence_json(conn.client, conn.cold_view().user, *a.info)});
              }
              std::string result("{");
              if (a.expire_at > 0) {
                if (!conn.cold_view().claims) {
                  conn.cold().claims = std::make_unique<token_claims>();
                  conn.cold_view().claims->user = conn.cold_view().user;
                }
                conn.cold_view().claims->expires = a.expire_at;
                watch_expiry(conn);
                result.append("\"exp\":");
                append_uint(result, static_cast<std::uint64_t>(a.expire_at));
              }
              result.push_back('}');
              reply_result(reply, id, result);
              send_text(w, reply);
            });
  return std::nullopt;
}

std::optional<failure> sessions::cmd_rpc(peer& ws, connection_state& conn,
                                         const command& c) {
  if (!hooks_ || !hooks_->rpc()) return make_failure(errors::rpc_not_configured);
  if (!c.has_method || c.method.empty() || c.method.size() > k_max_method) {
    return make_failure(errors::no_method);
  }
  std::string body = body_start(ws, conn.cold_view().user);
  body.append(",\"method\":");
  append_json_string(body, c.method);
  if (c.has_data) {
    body.append(",\"data\":");
    body.append(c.data);
  }
  body.push_back('}');
  hook_call(ws, conn, *hooks_->rpc(), std::move(body),
            [id = c.id](peer& w, hook_answer a) {
              if (a.result == hook_answer::outcome::deny) return w.reply_error(id, a.denial);
              if (a.result == hook_answer::outcome::failed) {
                return w.reply_error(id, make_failure(errors::hook_unavailable));
              }
              std::string result("{\"data\":");
              result.append(a.data ? std::string_view(*a.data) : std::string_view("null"));
              result.push_back('}');
              thread_local std::string reply;
              reply_result(reply, id, result);
              send_text(w, reply);
            });
  return std::nullopt;
}

void sessions::hook_channel(peer& ws, connection_state& conn, const command& c,
                            const hook_target& target, std::string_view name,
                            net::unique_function<void(peer&, hook_answer)> allowed) {
  std::string body = body_start(ws, conn.cold_view().user);
  body.append(",\"channel\":");
  append_json_string(body, name);
  if (c.has_data) {  // subscribe: if any; publish: always (checked before)
    body.append(",\"data\":");
    body.append(c.data);
  }
  body.push_back('}');
  hook_call(ws, conn, target, std::move(body),
            [&target, id = c.id, allowed = std::move(allowed)](peer& w, hook_answer a) mutable {
              if (a.result == hook_answer::outcome::allow ||
                  (a.result == hook_answer::outcome::failed && target.allow_on_error)) {
                allowed(w, std::move(a));
                return;
              }
              // The peer's own error form (GET /sse: an `event: error`).
              w.reply_error(id, a.result == hook_answer::outcome::deny
                                    ? a.denial
                                    : make_failure(errors::hook_unavailable));
            });
}

std::optional<failure> sessions::hook_subscribe(peer& ws, connection_state& conn,
                                                const command& c, const hook_target& target,
                                                std::string_view name,
                                                const namespace_options& ns) {
  hook_channel(ws, conn, c, target, name,
               [this, &ns, id = c.id, since = c.since, channel = std::string(name)](
                   peer& w, hook_answer) mutable {
                 subscribe_now(w, channel, ns, std::move(since), std::move(id), false);
               });
  return std::nullopt;
}

std::optional<failure> sessions::hook_publish(peer& ws, connection_state& conn,
                                              const command& c, const hook_target& target,
                                              std::string_view name, const namespace_options& ns) {
  hook_channel(ws, conn, c, target, name,
               [this, &ns, id = c.id, data = c.data, channel = std::string(name)](
                   peer& w, hook_answer a) mutable {
                 // The backend may rewrite the data (moderation, enrichment).
                 publish_now(w, w.state(), channel, ns,
                             a.data ? std::string_view(*a.data) : std::string_view(data),
                             std::move(id));
               });
  return std::nullopt;
}

}  // namespace switchboard::realtime::detail
