// http_transports.cpp — routes and registry of the HTTP transports (see
// http_transports.hpp).
#include "http_transports.hpp"

#include <simdjson.h>

#include <algorithm>
#include <random>
#include <unordered_map>

#include "command_batch.hpp"
#include "event_id.hpp"
#include "http_session.hpp"
#include "json.hpp"
#include "sse_peer.hpp"
#include "sse_stream.hpp"
#include "sse_wire.hpp"
#include "support.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

namespace {

constexpr std::string_view k_session_prefix = "/rt/session/";

void json_error(server::http_response& res, int status, std::string_view message) {
  res.set_status(status);
  res.set_content_type("application/json");
  res.set_body(http_error_body(status, message));
}

// The retry hint: sse.retry with jitter, uniform in [retry, 2 retry), so the
// clients of a restarted server do not all come back at once.
std::uint64_t jittered_retry_ms(double retry_s) {
  thread_local std::minstd_rand rng{std::random_device{}()};
  const auto base = static_cast<std::uint64_t>(to_ms(retry_s).count());
  if (base == 0) return 0;
  return base + std::uniform_int_distribution<std::uint64_t>(0, base - 1)(rng);
}

void sse_headers(server::http_response& res) {
  res.set_content_type("text/event-stream");
  res.add_header("Cache-Control", "no-cache");
  // nginx: do not buffer this response (proxy_buffering would hold events).
  res.add_header("X-Accel-Buffering", "no");
}

// The answer to a request that opens a session or stream while the connect
// hook asked at open (hooks.connect_always) decides. Why wait: /ws can only
// close with 4001 after its 101, but an HTTP request can still be refused
// with a status. Answered once; 503 if the decision never comes (the peer
// closed meanwhile, or the hooks stopped: server shutdown).
class pending_open {
 public:
  pending_open(server::http_responder responder, counter_family& http_errors)
      : responder_(std::move(responder)), http_errors_(http_errors) {}
  ~pending_open() {
    if (!answered_) refuse(failure{503, "closed before the connect hook answered; try again"});
  }
  pending_open(const pending_open&) = delete;
  pending_open& operator=(const pending_open&) = delete;

  // The backend's denial: its code as the status when it is an HTTP one
  // (400-599), else 401, what /ws's close 4001 is before an upgrade (the
  // SDK takes either as an authentication failure); the body carries its
  // code and message as the /ws reply would.
  void refuse(const failure& f) {
    server::http_response res;
    res.set_status(f.code >= 400 && f.code <= 599 ? f.code : 401);
    http_errors_.with(std::to_string(res.status())).inc();
    res.set_content_type("application/json");
    res.set_body(http_error_body(f.code, f.message));
    respond(std::move(res));
  }
  void respond(server::http_response res) {
    answered_ = true;
    responder_.respond(std::move(res));
  }
  server::http_stream stream(server::http_response head, std::function<void()> on_close) {
    answered_ = true;
    return responder_.stream(std::move(head), std::move(on_close));
  }

 private:
  server::http_responder responder_;
  counter_family& http_errors_;
  bool answered_ = false;
};

}  // namespace

http_transports::http_transports(const realtime_config& config, hub& h, sessions& s,
                                 counter_family& opened, counter_family& http_errors)
    : config_(config), hub_(h), sessions_(s), opened_(opened), http_errors_(http_errors) {}

http_transports::~http_transports() = default;

void http_transports::install(server::server& srv) {
  srv_ = &srv;
  const auto counted = [this](auto handler) {
    return [this, handler](const server::http_request& req, server::http_response& res) {
      (this->*handler)(req, res);
      if (res.status() >= 400) http_errors_.with(std::to_string(res.status())).inc();
    };
  };
  // One-channel streams run on server connections (sse_peer.hpp): the
  // session state lives in the connection's user data, as for /ws.
  server::ws_behavior b;
  b.with_user_data<connection_state>();
  b.event_stream_heartbeat = to_ms(config_.sse_heartbeat);
  b.event_stream_comment.assign(k_sse_heartbeat.substr(1, k_sse_heartbeat.size() - 3));
  b.on_open = [this](server::websocket& ws) { server_stream_opened(ws); };
  b.on_closing = [this](server::websocket& ws, std::uint16_t code, std::string_view reason) {
    server_stream_closing(ws, code, reason);
  };
  b.on_close = [this](server::websocket& ws, std::uint16_t code, std::string_view) {
    server_stream_closed(ws, code);
  };
  stream_endpoint_ = &srv.event_stream_endpoint(std::move(b));
  srv.http("GET", "/sse", counted(&http_transports::handle_sse));
  srv.http("POST", "/rt/session", counted(&http_transports::open_session));
  // The session's own paths carry its id: the router matches exact paths,
  // so they come through the catch-all, which answers 404 for the rest.
  for (const char* method : {"GET", "POST", "DELETE"}) {
    srv.http(method, "*", counted(&http_transports::session_route));
  }
}

bool http_transports::admit(const server::http_request& req, server::http_response& res,
                            connection_state& conn, std::string_view body_token) {
  if (!config_.sse_enabled) {
    json_error(res, 503, "the HTTP transports are off (sse.enabled = false)");
    return false;
  }
  if (draining_.load(std::memory_order_acquire)) {
    json_error(res, 503, "server shutting down");
    return false;
  }
  // max_connections counts streams and sessions like WebSocket connections
  // (the server itself counts only upgraded ones).
  if (config_.max_connections > 0 &&
      srv_->connections() + legacy_streams() + http_sessions() >= config_.max_connections) {
    json_error(res, 503, "too many connections (server.max_connections)");
    return false;
  }
  std::string why;
  const int status = sessions_.admit(conn, req.head(), req.query(), !config_.tls_cert.empty(),
                                     body_token, why,
                                     config_.max_connections_per_ip > 0 || config_.handshake_rate > 0
                                         ? req.remote_address()
                                         : std::string());
  if (status != 0) {
    json_error(res, status, why);
    return false;
  }
  return true;
}

std::size_t http_transports::sse_streams() const { return legacy_streams() + server_streams(); }

std::size_t http_transports::legacy_streams() const {
  std::lock_guard lock(mutex_);
  return streams_.size();
}

std::size_t http_transports::http_sessions() const {
  std::lock_guard lock(mutex_);
  return sessions_by_id_.size();
}

std::shared_ptr<http_session> http_transports::find(std::string_view id) {
  std::lock_guard lock(mutex_);
  const auto it = sessions_by_id_.find(std::string(id));
  return it == sessions_by_id_.end() ? nullptr : it->second;
}

void http_transports::handle_sse(const server::http_request& req, server::http_response& res) {
  transport_query q;
  if (std::string e = parse_transport_query(req.query(), config_.max_subscriptions, q);
      !e.empty()) {
    json_error(res, 400, e);
    return;
  }
  if (q.channels.empty()) {
    json_error(res, 400, "no channel: GET /sse?channel=NAME[&channel=NAME...]");
    return;
  }
  std::vector<channel_position> since;
  const std::optional<std::string_view> header = req.header("Last-Event-ID");
  if (header || q.last_event_id) {
    const std::string_view id = header ? *header : std::string_view(*q.last_event_id);
    if (std::string e = parse_sse_id(id, q.channels.size(), since); !e.empty()) {
      json_error(res, 400, e);
      return;
    }
  }
  // A stream of one channel runs on a server connection (sse_peer.hpp) when
  // the request can become one; admitted once, whichever path takes it.
  connection_state admitted;
  const bool one = q.channels.size() == 1 && stream_endpoint_ != nullptr;
  if (one) {
    if (!admit(req, res, admitted, {})) return;
    // A stream cannot send `connect`: without a token in the request it is
    // anonymous or nothing.
    if (admitted.needs_connect) {
      sessions_.unadmit(admitted);
      json_error(res, 401, make_failure(errors::token_required).message);
      return;
    }
    if (open_server_stream(res, admitted, q.channels[0],
                           since.empty() ? channel_position{} : since[0])) {
      return;
    }
  }
  auto peer = std::make_shared<sse_stream>(sessions_, hub_, config_, std::move(q.channels),
                                           std::move(since));
  if (one) {
    peer->state() = std::move(admitted);
    peer->state().is_http = true;  // as http_peer's constructor made it
  } else {
    if (!admit(req, res, peer->state(), {})) return;
    if (peer->state().needs_connect) {
      sessions_.unadmit(peer->state());
      json_error(res, 401, make_failure(errors::token_required).message);
      return;
    }
  }
  opened_.with("sse").inc();
  std::weak_ptr<sse_stream> weak = peer;
  {
    std::lock_guard lock(mutex_);
    streams_.push_back(peer);
  }
  if (sessions_.asks_connect_hook_at_open(peer->state())) {
    // The stream starts once the connect hook allowed it (pending_open).
    auto pending = std::make_shared<pending_open>(res.defer(), http_errors_);
    peer->opened([this, weak, pending](const failure* denied) {
      if (denied) return pending->refuse(*denied);
      auto p = weak.lock();
      if (!p) return;
      server::http_response head;
      sse_headers(head);
      p->begin(pending->stream(std::move(head), {}), jittered_retry_ms(config_.sse_retry));
    });
    return;
  }
  peer->opened();
  sse_headers(res);
  // No on_close: the peer's tick() sees the stream end (is_open()).
  peer->begin(res.stream(), jittered_retry_ms(config_.sse_retry));
}

namespace {

// What handle_sse hands to the stream's on_open: the server runs on_open on
// the handler's thread right after the handler returns, with nothing in
// between (server::http_response::open_event_stream), so one slot per
// thread carries it and no stream holds the channel name or `since` after.
struct pending_server_stream {
  std::string channel;
  channel_position since;
  std::uint64_t retry_ms = 0;
};
thread_local pending_server_stream t_pending_stream;

// The reason close() gave, from on_closing to on_close (later, on the same
// loop thread), by connection: the disconnect hook and event carry it.
thread_local std::unordered_map<std::uint64_t, std::string> t_close_reasons;

std::uint64_t key_of(server::connection_id id) {
  return (static_cast<std::uint64_t>(id.slot) << 32) | id.generation;
}

}  // namespace

bool http_transports::open_server_stream(server::http_response& res, connection_state& conn,
                                         std::string& channel, const channel_position& since) {
  // The connect hook at open answers later: a deferred answer, which only
  // the sse_stream path gives.
  if (sessions_.asks_connect_hook_at_open(conn)) return false;
  server::websocket* ws = res.open_event_stream(*stream_endpoint_);
  if (ws == nullptr) return false;
  conn.form = push_form::sse;
  ws->data<connection_state>() = std::move(conn);
  t_pending_stream.channel = std::move(channel);
  t_pending_stream.since = since;
  t_pending_stream.retry_ms = jittered_retry_ms(config_.sse_retry);
  opened_.with("sse").inc();
  sse_headers(res);
  return true;
}

void http_transports::server_stream_opened(server::websocket& ws) {
  pending_server_stream o = std::move(t_pending_stream);
  t_pending_stream = {};
  auto& conn = ws.data<connection_state>();
  conn.id = ws.id();
  server_streams_.fetch_add(1, std::memory_order_relaxed);
  sse_ws_peer p(ws, *srv_, hub_);
  sessions_.open(p);
  std::string retry = "retry: ";
  append_uint(retry, o.retry_ms);
  retry.append("\n\n");
  ws.send(retry, protocol::opcode::text);
  if (!ws.is_open()) return;
  sessions_.handle(p, sse_ws_peer::subscribe_command(o.channel, o.since));
}

void http_transports::server_stream_closing(server::websocket& ws, std::uint16_t code,
                                            std::string_view reason) {
  std::string event;
  if (draining_.load(std::memory_order_acquire)) {
    // As sse_stream::drain(): the client comes back (elsewhere).
    append_sse_event(event, "reconnect", {}, "{\"reason\":\"server shutting down\"}");
  } else {
    std::string data;
    close_push(data, code, reason);
    append_sse_event(event, "close", {}, data);
  }
  ws.send(event, protocol::opcode::text);
  t_close_reasons[key_of(ws.id())].assign(reason);
}

void http_transports::server_stream_closed(server::websocket& ws, std::uint16_t code) {
  std::string reason;
  if (const auto it = t_close_reasons.find(key_of(ws.id())); it != t_close_reasons.end()) {
    reason = std::move(it->second);
    t_close_reasons.erase(it);
  }
  if (code == 1006) {
    // The client went away (as sse_stream::tick() reports it).
    code = 1001;
    reason.assign("the client closed the stream");
  }
  sse_ws_peer p(ws, *srv_, hub_);
  sessions_.closed(p, code, reason);
  server_streams_.fetch_sub(1, std::memory_order_relaxed);
}

void http_transports::open_session(const server::http_request& req, server::http_response& res) {
  std::string body_token;
  if (!req.body().empty()) {
    thread_local simdjson::dom::parser parser;
    simdjson::dom::element root;
    simdjson::dom::object obj;
    if (parser.parse(req.body().data(), req.body().size()).get(root) || root.get(obj)) {
      json_error(res, 400, "the body must be a JSON object: {\"token\": \"…\"} or nothing");
      return;
    }
    for (auto field : obj) {
      std::string_view token;
      if (field.key != "token") {
        json_error(res, 400, "unknown field in the body (only \"token\")");
        return;
      }
      if (field.value.get_string().get(token)) {
        json_error(res, 400, "token must be a string");
        return;
      }
      body_token.assign(token);
    }
  }
  // The id names this node (session_forward.hpp): any node can find it.
  std::string sid;
  if (!node_id_.empty()) {
    sid.append(node_id_);
    sid.push_back('.');
  }
  sid.append(random_hex(16));
  auto s = std::make_shared<http_session>(sessions_, hub_, config_, std::move(sid));
  if (!admit(req, res, s->state(), body_token)) return;
  opened_.with("http_session").inc();
  {
    std::lock_guard lock(mutex_);
    sessions_by_id_.emplace(s->id(), s);
  }
  std::string body = "{\"session\":";
  append_json_string(body, s->id());
  body.append(",\"idle_timeout\":");
  append_uint(body, static_cast<std::uint64_t>(config_.sse_session_idle_timeout));
  body.append(",\"poll_timeout\":");
  append_uint(body, static_cast<std::uint64_t>(config_.sse_poll_timeout));
  body.push_back('}');
  if (sessions_.asks_connect_hook_at_open(s->state())) {
    // 201 once the connect hook allowed the session (pending_open); a
    // denied one is closed and the registry's tick() forgets it.
    auto pending = std::make_shared<pending_open>(res.defer(), http_errors_);
    s->opened([pending, body = std::move(body)](const failure* denied) mutable {
      if (denied) return pending->refuse(*denied);
      server::http_response created;
      created.set_status(201);
      created.set_content_type("application/json");
      created.set_body(std::move(body));
      pending->respond(std::move(created));
    });
    return;
  }
  s->opened();
  res.set_status(201);
  res.set_content_type("application/json");
  res.set_body(std::move(body));
}

void http_transports::session_route(const server::http_request& req,
                                    server::http_response& res) {
  std::string_view path = req.path();
  if (path.substr(0, k_session_prefix.size()) != k_session_prefix) {
    json_error(res, 404, "not found");
    return;
  }
  path.remove_prefix(k_session_prefix.size());
  const auto slash = path.find('/');
  const std::string_view id = path.substr(0, slash);
  const std::string_view action =
      slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
  const std::string_view method = req.method();
  const bool known = (method == "DELETE" && slash == std::string_view::npos) ||
                     (method == "GET" && (action == "stream" || action == "poll")) ||
                     (method == "POST" && action == "send");
  if (!known) {
    json_error(res, 404, "not found");
    return;
  }
  transport_query q;
  if (std::string e = parse_transport_query(req.query(), 0, q); !e.empty()) {
    json_error(res, 400, e);
    return;
  }
  session_call call;
  call.verb = method == "DELETE" ? std::string_view("delete") : action;
  call.body = req.body();
  call.after = q.after.value_or(0);
  if (action == "stream") {
    const std::optional<std::string_view> header = req.header("Last-Event-ID");
    if (header) {
      call.last_seen = parse_seq(*header);
      if (!call.last_seen) {
        json_error(res, 400, "Last-Event-ID must be a sequence number");
        return;
      }
    } else if (q.last_event_id) {
      call.last_seen = parse_seq(*q.last_event_id);
      if (!call.last_seen) {
        json_error(res, 400, "last_event_id must be a sequence number");
        return;
      }
    }
  }
  std::shared_ptr<http_session> s = find(id);
  if (!s) {
    // The id names its home node: another one is asked through the broker.
    const std::string_view home = session_home(id);
    if (!home.empty() && !node_id_.empty() && home != node_id_) {
      forward(home, id, call, res);
      return;
    }
  }
  // Unknown, expired or closed (docs/protocol.md); a closed session's last
  // messages may still be polled (http_session::answers()).
  if (!s || !s->answers(call.verb, mono_ms())) {
    json_error(res, 404, "session_not_found");
    return;
  }
  run_call(
      s, call, res, [&res] { return res.defer(); },
      [&res](std::function<void()> on_close) {
        sse_headers(res);
        return res.stream(std::move(on_close));
      });
}

void http_transports::run_call(
    const std::shared_ptr<http_session>& s, const session_call& call, server::http_response& res,
    const std::function<server::http_responder()>& defer,
    const std::function<server::http_stream(std::function<void()>)>& open) {
  if (call.verb == "delete") {
    {
      std::lock_guard lock(mutex_);
      sessions_by_id_.erase(s->id());
    }
    s->close(1000, "session closed by the client");
    res.set_status(204);
    return;
  }
  if (call.verb == "send") {
    thread_local std::vector<batch_line> lines;
    split_command_batch(call.body, config_.max_message_size, lines);
    for (const batch_line& line : lines) {
      if (line.too_large) {
        s->refuse_line();
      } else {
        s->command(line.text);
      }
    }
    res.set_status(202);
    res.set_content_type("application/json");
    std::string body = "{\"accepted\":";
    append_uint(body, lines.size());
    body.push_back('}');
    res.set_body(std::move(body));
    return;
  }
  if (call.verb == "poll") {
    s->poll(call.after, defer());
    return;
  }
  // stream
  auto number = std::make_shared<std::atomic<std::uint64_t>>(0);
  std::weak_ptr<http_session> weak = s;
  server::http_stream stream = open([weak, number] {
    if (auto p = weak.lock()) p->stream_closed(number->load());
  });
  std::string retry = "retry: ";
  append_uint(retry, jittered_retry_ms(config_.sse_retry));
  retry.append("\n\n");
  stream.write(std::move(retry));
  const std::uint64_t n = s->attach_stream(stream, call.last_seen);
  if (n == 0) {
    // Why: resuming would skip messages; the client must open a new session
    // (and subscribe with `since`), not believe it has everything.
    std::string last;
    close_push(last, 1008, "messages after Last-Event-ID are no longer kept");
    std::string event = "event: close\ndata: ";
    event.append(last);
    event.append("\n\n");
    stream.write(std::move(event));
    stream.end();
    s->close(1008, "messages after Last-Event-ID are no longer kept");
    return;
  }
  number->store(n);
}

void http_transports::tick() {
  const std::uint64_t now = mono_ms();
  tick_forwards(now);
  std::vector<std::shared_ptr<http_session>> sessions;
  std::vector<std::shared_ptr<sse_stream>> streams;
  {
    std::lock_guard lock(mutex_);
    sessions.reserve(sessions_by_id_.size());
    for (const auto& [id, s] : sessions_by_id_) sessions.push_back(s);
    streams = streams_;
  }
  std::string reason;
  std::vector<const http_peer*> gone;
  for (const auto& s : sessions) {
    reason.clear();
    if (const std::uint16_t code = s->tick(now, reason)) s->close(code, reason);
    if (s->is_closed() && !s->lingering(now)) gone.push_back(s.get());
  }
  for (const auto& p : streams) {
    reason.clear();
    if (const std::uint16_t code = p->tick(now, reason)) p->close(code, reason);
    if (p->is_closed()) gone.push_back(p.get());
  }
  if (gone.empty()) return;
  std::lock_guard lock(mutex_);
  for (auto it = sessions_by_id_.begin(); it != sessions_by_id_.end();) {
    if (std::find(gone.begin(), gone.end(), it->second.get()) != gone.end()) {
      it = sessions_by_id_.erase(it);
    } else {
      ++it;
    }
  }
  std::erase_if(streams_, [&](const std::shared_ptr<sse_stream>& p) {
    return std::find(gone.begin(), gone.end(), p.get()) != gone.end();
  });
}

void http_transports::drain() {
  draining_.store(true, std::memory_order_release);
  std::vector<std::shared_ptr<http_session>> sessions;
  std::vector<std::shared_ptr<sse_stream>> streams;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, s] : sessions_by_id_) sessions.push_back(std::move(s));
    sessions_by_id_.clear();
    streams.swap(streams_);
  }
  for (const auto& p : streams) p->drain();
  for (const auto& s : sessions) s->drain();
  drain_forwards();
}

}  // namespace switchboard::realtime::detail
