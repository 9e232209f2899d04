// service.cpp — `switchboard serve` put together: the server and its routes,
// the broker, the hub, the sessions of /ws, the HTTP API, metrics, the demo
// page, and the housekeeping thread (connect deadlines, history TTL, presence
// pushes, returning freed memory to the OS) that wakes every 200 ms. Each part lives in its own file:
//
//   session.cpp        the switchboard.v1 commands of a /ws connection
//   hub.cpp            this node's channels, fan-out to its connections
//   broker.hpp         what crosses nodes; memory_broker.cpp is the default,
//                      redis_broker*.cpp share channels between nodes
//   http_api.cpp       POST /api/publish, GET /api/channels
//   http_api_methods.cpp  the server API's other methods (broadcast, batch, …)
//   session_control.cpp   what those methods do to this node's connections
//   http_transports.cpp GET /sse and the HTTP sessions (/rt/session)
//   http_forward.cpp   their requests forwarded between nodes
//   wire.cpp           every reply, push and error on the wire
//   presence_batch.cpp presence joins and leaves coalesced per tick
//   snapshot.cpp       the memory broker's history file
//   config.cpp         check_config()
#include <switchboard/realtime/service.hpp>

#include <openssl/crypto.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include <switchboard/net/cpus.hpp>
#include <switchboard/net/tls_context.hpp>
#include <switchboard/server/server.hpp>

#include "admin.hpp"
#include "address_range.hpp"
#include "assets.hpp"
#include "auth.hpp"
#include "event_outbox.hpp"
#include "hooks.hpp"
#include "http_api.hpp"
#include "http_api_methods.hpp"
#include "http_transports.hpp"
#include "hub.hpp"
#include "json.hpp"
#include "memory_broker.hpp"
#include "memory_release.hpp"
#include "metrics.hpp"
#include "redis_broker.hpp"
#include "session.hpp"
#include "support.hpp"

namespace switchboard::realtime {

using namespace detail;

namespace {
// Channels a node lists in its statistics (info's top_channels).
constexpr std::size_t k_node_top_channels = 100;
// WebSocket connections: the server's, less the one-channel SSE streams it
// also holds (sse_peer.hpp). Two counters read apart: never below zero.
std::size_t websocket_connections(std::size_t server, std::size_t sse) {
  return server > sse ? server - sse : 0;
}
}  // namespace

struct service::impl {
  explicit impl(realtime_config c, log_function l) : config(std::move(c)), log(std::move(l)) {}

  realtime_config config;
  log_function log;
  std::string error;
  std::unique_ptr<net::tls_context> tls;
  std::optional<token_verifier> verifier;

  registry metrics;
  counter* publications = nullptr;
  counter_family* http_errors = nullptr;  // by status: plain HTTP requests refused
  session_metrics session_counters;

  // Construction order is dependency order; destruction runs backwards, and
  // the server goes first of all (its destructor runs on_close for the
  // connections it still has, which touch the hub and the broker).
  std::unique_ptr<broker> broker_;
  // Proxy hooks (null: none configured). Stopped before the server goes:
  // an answer in flight reaches the server through dispatch().
  std::unique_ptr<hook_caller> hooks;
  std::unique_ptr<event_outbox> events;  // lifecycle events; sent by the hook thread
  std::unique_ptr<server::server> srv;
  std::unique_ptr<hub> hub_;
  std::unique_ptr<sessions> sessions_;
  std::unique_ptr<http_api> api;
  std::unique_ptr<api_methods> methods;
  // This node in the server API's `info` (random at each start).
  std::string node_id = random_hex(8);
  std::uint64_t started_ms = mono_ms();
  // [admin]: the dashboard, on the main server or on its own (admin_srv,
  // destroyed before the dashboard it serves).
  std::unique_ptr<admin_console> admin;
  std::unique_ptr<server::server> admin_srv;
  // metrics.listen: a one-loop plain-HTTP server of its own for GET /metrics.
  std::unique_ptr<server::server> metrics_srv;
  std::unique_ptr<http_transports> transports;
  counter_family* transport_opens = nullptr;  // by transport
  counter_family* http_forwards = nullptr;    // by result (http_forward.cpp)

  std::thread housekeeper;
  std::mutex housekeeping_mutex;
  std::condition_variable housekeeping_cv;
  bool housekeeping_stop = false;

  void say(log_level level, std::string_view message) {
    if (log) log(level, message);
  }

  void setup_metrics();
  void setup_hook_metrics();
  void build_server();
  std::string node_json() const;
  void build_metrics_server();
  // GET /metrics (behind metrics.key when set), on whichever server has it.
  void serve_metrics(const server::http_request& req, server::http_response& res);
  void housekeeping_loop();
  void stop_housekeeping();
};

void service::impl::setup_metrics() {
  auto* s = this;
  metrics.add_gauge("switchboard_connections", "WebSocket connections open",
                    [s] {
                      // One-channel SSE streams are server connections too
                      // (sse_peer.hpp); they count in switchboard_sse_streams.
                      return static_cast<double>(
                          websocket_connections(s->srv->connections(), s->transports->server_streams()));
                    });
  metrics.add_gauge("switchboard_subscriptions", "Channel subscriptions",
                    [s] { return static_cast<double>(s->hub_->subscriptions()); });
  metrics.add_gauge("switchboard_channels", "Channels with state (subscribers or history)",
                    [s] { return static_cast<double>(s->broker_->channel_count()); });
  metrics.add_gauge("switchboard_history_bytes",
                    "Bytes of kept publications over every channel (limits.history_memory)",
                    [s] { return static_cast<double>(s->broker_->stats().history_bytes); });
  metrics.add_counter_fn("switchboard_history_evictions_total",
                         "Publications dropped from history to stay under limits.history_memory",
                         [s] { return s->broker_->stats().history_evictions; });
  metrics.add_counter_fn("switchboard_channels_refused_total",
                         "Commands refused because limits.max_channels were in use",
                         [s] { return s->broker_->stats().channels_refused; });
  metrics.add_counter_fn("switchboard_messages_received_total", "WebSocket messages received",
                         [s] { return s->srv->statistics().messages_received; });
  metrics.add_counter_fn("switchboard_messages_sent_total",
                         "WebSocket messages and one-channel SSE stream events sent (each delivery of a "
                         "publication counts)",
                         [s] { return s->srv->statistics().messages_sent; });
  metrics.add_counter_fn("switchboard_bytes_received_total", "WebSocket payload bytes received",
                         [s] { return s->srv->statistics().bytes_received; });
  metrics.add_counter_fn("switchboard_bytes_sent_total", "WebSocket payload and one-channel SSE event bytes sent",
                         [s] { return s->srv->statistics().bytes_sent; });
  metrics.add_gauge("switchboard_outbound_bytes",
                    "Bytes queued for slow readers over all connections (limits.max_outbound_memory)",
                    [s] { return static_cast<double>(s->srv->statistics().outbound_bytes); });
  metrics.add_counter_fn(
      "switchboard_outbound_memory_drops_total",
      "Messages dropped or connections closed because limits.max_outbound_memory was reached",
      [s] { return s->srv->statistics().outbound_memory_drops; });
  metrics.add_counter_fn("switchboard_presence_pushes_total",
                         "Presence pushes (one per channel per tick at most, whatever the "
                         "number of subscribers)",
                         [s] { return s->hub_->presence_pushes(); });
  metrics.add_counter_fn("switchboard_backpressure_drops_total",
                         "Messages dropped or connections closed for backpressure",
                         [s] { return s->srv->statistics().backpressure_drops; });
  metrics.add_counter_fn("switchboard_loop_wakeups_total",
                         "Wake-ups of one event loop by another thread (eventfd writes): at "
                         "most one per other loop per publication, one per batch under load",
                         [s] { return s->srv->statistics().loop_wakeups; });
  metrics.add_gauge("switchboard_sse_streams", "GET /sse streams open",
                    [s] { return static_cast<double>(s->transports->sse_streams()); });
  metrics.add_gauge("switchboard_http_sessions", "HTTP sessions (/rt/session) open",
                    [s] { return static_cast<double>(s->transports->http_sessions()); });
  metrics.add_gauge("switchboard_http_subscriptions",
                    "Channel subscriptions of HTTP sessions and SSE streams",
                    [s] { return static_cast<double>(s->hub_->http_subscriptions()); });
  transport_opens = &metrics.add_counter_family(
      "switchboard_transport_opens_total",
      "Clients opened over the HTTP transports, by transport (sse, http_session)", "transport");
  http_forwards = &metrics.add_counter_family(
      "switchboard_http_forwards_total",
      "HTTP session requests this node forwarded to the session's node, by result "
      "(answered, gone, timeout, unavailable)",
      "result");
  publications = &metrics.add_counter("switchboard_publications_total",
                                      "Publications accepted (WebSocket and HTTP API)");
  session_counters.rate_limited =
      &metrics.add_counter("switchboard_rate_limited_total", "Commands refused by the rate limit");
  session_counters.handshake_failures = &metrics.add_counter_family(
      "switchboard_handshake_failures_total", "Upgrades refused or abandoned, by reason", "reason");
  session_counters.closes = &metrics.add_counter_family(
      "switchboard_closes_total",
      "Connections ended, by close code: the one the server sent if it closed first, else the "
      "client's; codes outside the known set are \"other\"",
      "code");
  http_errors = &metrics.add_counter_family(
      "switchboard_http_errors_total",
      "Plain HTTP requests (API, /metrics, pages) answered with an error, by status", "status");
  session_counters.command_duration = &metrics.add_histogram_family(
      "switchboard_command_duration_seconds", "Time to handle a command, by command", "cmd",
      {0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1});
  setup_hook_metrics();
}

// Proxy hooks and lifecycle events (docs/hooks.md, "Metrics"): only when configured.
void service::impl::setup_hook_metrics() {
  if (hooks) {
    hook_metrics m;
    m.calls = &metrics.add_counter_family("switchboard_hook_calls_total",
                                          "Proxy hook calls answered or failed, by hook", "hook");
    m.denied = &metrics.add_counter_family("switchboard_hook_denials_total",
                                           "Proxy hook calls the backend denied, by hook", "hook");
    m.failed = &metrics.add_counter_family(
        "switchboard_hook_failures_total",
        "Proxy hook calls that failed (timeout, backend down, bad answer), by hook", "hook");
    m.duration = &metrics.add_histogram_family(
        "switchboard_hook_duration_seconds", "Time from a hook call to its answer, by hook", "hook",
        {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5});
    hooks->set_metrics(m);
  }
  if (!events) return;
  auto* e = events.get();
  metrics.add_counter_fn("switchboard_events_emitted_total",
                         "Lifecycle events recorded in the outbox since start",
                         [e] { return e->stats().emitted; });
  metrics.add_counter_fn("switchboard_events_acknowledged_total",
                         "Lifecycle events acknowledged since start (by the webhook; by Redis with the "
                         "event stream)",
                         [e] { return e->stats().acknowledged; });
  metrics.add_gauge("switchboard_events_pending",
                    "Lifecycle events recorded and not acknowledged yet",
                    [e] { return static_cast<double>(e->stats().pending); });
  metrics.add_counter_fn("switchboard_events_retries_total",
                         "Event batches sent again (not acknowledged)",
                         [e] { return e->stats().retries; });
  metrics.add_gauge("switchboard_events_outbox_bytes", "Bytes of the events outbox file",
                    [e] { return static_cast<double>(e->stats().outbox_bytes); });
  metrics.add_gauge("switchboard_events_in_memory",
                    "Unacknowledged events held in memory (events.memory_window at most)",
                    [e] { return static_cast<double>(e->stats().in_memory); });
  metrics.add_counter_fn("switchboard_events_orphaned_total",
                         "Disconnects this node emitted for clients of lost nodes (Redis broker)",
                         [e] { return e->stats().orphaned; });
  metrics.add_counter_fn("switchboard_events_delivered_total",
                         "Events this node sent from the Redis stream and the webhook acknowledged",
                         [e] { return e->stats().delivered; });
  metrics.add_counter_fn("switchboard_events_stream_retries_total",
                         "Batches of the Redis stream this node POSTed again",
                         [e] { return e->stats().stream_retries; });
  metrics.add_gauge("switchboard_events_sender",
                    "1 while this node sends the Redis event stream to the webhook",
                    [e] { return e->stats().sender ? 1.0 : 0.0; });
  metrics.add_gauge("switchboard_events_tracked_clients",
                    "Clients in this node's record in Redis (Redis broker)",
                    [e] { return static_cast<double>(e->stats().tracked); });
}

void service::impl::build_server() {
  server::server_options o;
  o.host = config.host;
  o.port = config.port;
  o.threads = config.threads != 0 ? config.threads : net::usable_cpus();
  (void)net::parse_io_backend(config.io_backend, o.io_backend);  // checked by the config
  o.max_message_size = config.max_message_size;
  o.max_connections = config.max_connections;
  o.ping_interval = to_ms(config.ping_interval);
  o.pong_timeout = to_ms(config.pong_timeout);
  o.max_backpressure = config.max_backpressure;
  o.max_outbound_memory = config.max_outbound_memory;
  o.policy = config.backpressure_policy == overflow_policy::drop ? server::backpressure_policy::drop
                                                                 : server::backpressure_policy::close;
  o.shutdown_code = static_cast<protocol::close_code>(config.shutdown_code);
  o.shutdown_timeout = to_ms(config.shutdown_timeout);
  o.max_http_body = config.max_message_size;
  o.http_idle_timeout = to_ms(config.http_idle_timeout);
  o.max_http_requests = config.http_max_requests;
  o.tls = tls.get();
  // Drain: SSE streams and HTTP sessions get their last event (reconnect)
  // before the server finishes their streams.
  o.on_shutdown = [this] {
    if (transports) transports->drain();
  };
  o.on_handshake_failure = [this](int status, std::string_view reason) {
    // Refusals of a plain HTTP request's method or body are not upgrades.
    if (reason == "body_too_large" || reason == "bad_content_length" ||
        reason == "transfer_encoding" || reason == "method_not_allowed") {
      http_errors->with(std::to_string(status)).inc();
      return;
    }
    session_counters.handshake_failures->with(reason).inc();
    if (status == 503) say(log_level::warn, "connection refused: max_connections reached");
  };
  if (tls) {
    o.on_tls_reload = [this](const net::tls_error& result) {
      if (result) {
        say(log_level::error, "SIGHUP: TLS reload failed: " + result.text);
      } else {
        say(log_level::info, "SIGHUP: TLS certificate and key reloaded");
      }
    };
    o.on_tls_handshake_error = [this](std::error_code, std::string_view reason) {
      say(log_level::debug, "TLS handshake failed: " + std::string(reason));
    };
  }
  srv = std::make_unique<server::server>(o);
  hub_ = std::make_unique<hub>(config, *srv, *broker_, *publications);
  sessions_ = std::make_unique<sessions>(config, *hub_, verifier ? &*verifier : nullptr,
                                         session_counters, log);
  sessions_->set_hooks(hooks.get());
  sessions_->set_events(events.get());
  api = std::make_unique<http_api>(config, *hub_, *sessions_);
  hub_->set_control_handler([this](std::string_view m) { sessions_->apply_control(m); });
  methods = std::make_unique<api_methods>(*hub_, *sessions_, node_id,
                                          [this] { return node_json(); });
  transports = std::make_unique<http_transports>(config, *hub_, *sessions_, *transport_opens,
                                                 *http_errors);
  // HTTP sessions across nodes: session ids name this node, and requests of
  // other nodes for them arrive as node messages (session_forward.hpp).
  transports->set_node_id(node_id);
  transports->set_forward_counter(*http_forwards);
  broker_->listen_node(node_id);
  hub_->set_node_message_handler([this](std::string_view m) { transports->on_node_message(m); },
                                 [this] { transports->node_messages_lost(); });

  server::ws_behavior b;
  switch (config.compression) {
    case compression_mode::off: b.compression.mode = server::compression_mode::off; break;
    case compression_mode::shared: b.compression.mode = server::compression_mode::shared; break;
    case compression_mode::dedicated: b.compression.mode = server::compression_mode::dedicated; break;
  }
  sessions_->install(b, *srv);
  srv->ws("/ws", std::move(b));

  srv->http("GET", "/healthz", [this](const server::http_request&, server::http_response& res) {
    // A broker that cannot serve (Redis unreachable) takes the node out of rotation.
    if (std::string why = broker_->health(); !why.empty()) {
      res.set_status(503);
      res.set_body("unavailable: " + why + "\n");
      return;
    }
    res.set_body("ok\n");
  });
  // With metrics.listen, /metrics is only there (build_metrics_server()).
  if (config.metrics_listen.empty()) {
    srv->http("GET", "/metrics",
              [this](const server::http_request& req, server::http_response& res) {
                serve_metrics(req, res);
              });
  }
  api->install(*srv, *http_errors);
  methods->install(*srv, *api, *http_errors);
  if (config.admin_enabled) {
    admin = std::make_unique<admin_console>(config, *hub_, *methods);
    if (config.admin_host.empty()) {
      admin->install(*srv, *http_errors);
    } else {
      server::server_options ao;
      ao.host = config.admin_host;
      ao.port = config.admin_port;
      ao.threads = 1;
      ao.handle_signals = false;  // the main server's run() handles them
      ao.tls = tls.get();
      admin_srv = std::make_unique<server::server>(ao);
      admin->install(*admin_srv, *http_errors);
    }
  }
  transports->install(*srv);
  if (config.demo) {
    for (const detail::asset& a : detail::embedded_assets()) {
      auto serve = [a](const server::http_request&, server::http_response& res) {
        res.set_content_type(detail::content_type_of(a.path));
        res.add_header("Cache-Control", "no-cache");
        res.set_body(std::string(a.body));
      };
      srv->http("GET", std::string(a.path), serve);
      if (a.path == "/index.html") srv->http("GET", "/", serve);
    }
  }
}

// This node's statistics for the server API's `info` (docs/protocol.md).
std::string service::impl::node_json() const {
  const server::server_statistics st = srv->statistics();
  std::string j = "{\"node\":";
  append_json_string(j, node_id);
  const auto field = [&j](std::string_view name, std::uint64_t v) {
    j.append(",\"");
    j.append(name);
    j.append("\":");
    append_uint(j, v);
  };
  field("uptime", (mono_ms() - started_ms) / 1000);
  field("time_ms", static_cast<std::uint64_t>(wall_ms()));
  field("connections", websocket_connections(srv->connections(), transports->server_streams()));
  field("users", sessions_->users());
  field("subscriptions", hub_->subscriptions());
  field("channels", broker_->channel_count());
  field("messages_in", st.messages_received);
  field("messages_out", st.messages_sent);
  field("publications", publications->value());
  field("backpressure_drops", st.backpressure_drops);
  field("outbound_memory_drops", st.outbound_memory_drops);
  field("publish_latency_us", hub_->publish_latency_us());
  field("publish_latency_count", hub_->publish_latency_count());
  // Bounded: the object goes to the broker once a second. The admin
  // dashboard adds these up over the nodes (docs/admin.md).
  j.append(",\"top_channels\":[");
  bool first = true;
  for (const auto& [name, n] : hub_->top_channels(k_node_top_channels)) {
    if (!first) j.push_back(',');
    first = false;
    j.append("{\"channel\":");
    append_json_string(j, name);
    j.append(",\"subscribers\":");
    append_uint(j, n);
    j.push_back('}');
  }
  j.append("]}");
  return j;
}

void service::impl::serve_metrics(const server::http_request& req, server::http_response& res) {
  if (!config.metrics_key.empty()) {
    const std::string_view auth = req.header("Authorization").value_or("");
    constexpr std::string_view k_bearer = "Bearer ";
    const std::string_view given =
        auth.size() > k_bearer.size() && protocol::ascii_iequals(auth.substr(0, 7), k_bearer)
            ? auth.substr(k_bearer.size())
            : std::string_view();
    // Constant time: the comparison must not tell how much of a guess was right.
    if (given.size() != config.metrics_key.size() ||
        CRYPTO_memcmp(given.data(), config.metrics_key.data(), given.size()) != 0) {
      res.set_status(401);
      res.add_header("WWW-Authenticate", "Bearer realm=\"metrics\"");
      res.set_body(given.empty() ? "metrics.key is set: send Authorization: Bearer KEY\n"
                                 : "bad metrics key\n");
      http_errors->with("401").inc();
      return;
    }
  }
  res.set_content_type("text/plain; version=0.0.4; charset=utf-8");
  res.set_body(metrics.render());
}

void service::impl::build_metrics_server() {
  std::string why;
  const auto where = detail::parse_host_port(config.metrics_listen, why);  // checked already
  server::server_options o;
  o.host = where ? where->host : std::string();
  o.port = where ? where->port : 0;
  o.threads = 1;
  o.handle_signals = false;  // the main server's run() watches the signals
  o.max_connections = 64;    // a scraper or two, not clients
  o.shutdown_timeout = std::chrono::milliseconds(500);
  o.max_http_body = 0;
  metrics_srv = std::make_unique<server::server>(o);
  metrics_srv->http("GET", "/metrics",
                    [this](const server::http_request& req, server::http_response& res) {
                      serve_metrics(req, res);
                    });
}

void service::impl::housekeeping_loop() {
  std::unique_lock lock(housekeeping_mutex);
  memory_release release;  // malloc_trim every 2 s (memory_release.hpp)
  std::uint64_t next_node_ms = 0;
  while (!housekeeping_stop) {
    housekeeping_cv.wait_for(lock, std::chrono::milliseconds(200));
    if (housekeeping_stop) break;
    if (const std::uint64_t now = mono_ms(); now >= next_node_ms) {
      next_node_ms = now + 1000;  // `info` of other nodes is at most this old
      broker_->publish_node(node_id, node_json());
      if (admin) admin->tick();
    }
    sessions_->tick();
    broker_->tick();
    release.tick(mono_ms());
    hub_->tick_presence(mono_ms());
    transports->tick();
  }
}

void service::impl::stop_housekeeping() {
  {
    std::lock_guard lock(housekeeping_mutex);
    housekeeping_stop = true;
  }
  housekeeping_cv.notify_all();
  if (housekeeper.joinable()) housekeeper.join();
}

// The broker the configuration names: memory (the default) or Redis.
std::unique_ptr<broker> make_broker(const realtime_config& config, const log_function& log) {
  const auto& urls = config.broker_urls;
  if (!urls.empty() && !(urls.size() == 1 && urls.front() == "memory")) {
    redis_broker_options ro;
    ro.urls = urls;
    ro.key_prefix = config.broker_key_prefix;
    ro.presence_lease = config.presence_lease;
    ro.presence_refresh = config.presence_refresh;
    ro.packed_publish = config.broker_packed_publish;
    ro.log = log;
    return std::make_unique<redis_broker>(config, std::move(ro));
  }
  memory_broker_options mo;
  mo.snapshot_file = config.snapshot_file;
  mo.journal_file = config.journal_file;
  mo.journal_fsync = config.journal_fsync;
  mo.log = log;
  return std::make_unique<memory_broker>(config, std::move(mo));
}

// ---------------------------------------------------------------------------
// service

service::service(realtime_config config, log_function log)
    : impl_(std::make_unique<impl>(std::move(config), std::move(log))) {}

service::~service() {
  impl_->stop_housekeeping();
  if (impl_->events) impl_->events->stop();
  if (impl_->hooks) impl_->hooks->stop();
  impl_->admin_srv.reset();
  impl_->metrics_srv.reset();  // its handler reads gauges of everything below
  // The server's destructor runs on_close for the connections it still has,
  // which touch the hub and the broker: destroy it while they are alive.
  impl_->srv.reset();
}

std::error_code service::listen() {
  impl& s = *impl_;
  if (std::string e = check_config(s.config); !e.empty()) {
    s.error = std::move(e);
    return std::make_error_code(std::errc::invalid_argument);
  }
  if (std::string e = resolve_host(s.config); !e.empty()) {
    s.error = std::move(e);
    return std::make_error_code(std::errc::invalid_argument);
  }
  if (!s.config.jwt_secret.empty()) s.verifier.emplace(s.config.jwt_secret);
  if (!s.config.tls_cert.empty()) {
    net::tls_server_options t;
    t.certificate_chain_file = s.config.tls_cert;
    t.private_key_file = s.config.tls_key;
    net::tls_error err;
    s.tls = net::tls_context::server(t, err);
    if (!s.tls) {
      s.error = "tls: " + err.text;
      return std::make_error_code(std::errc::invalid_argument);
    }
  }
  s.broker_ = make_broker(s.config, s.log);
  if (hook_caller::wanted(s.config)) {
    s.hooks = std::make_unique<hook_caller>(s.config, s.log);
    if (std::string e = s.hooks->start(); !e.empty()) {
      s.error = std::move(e);
      return std::make_error_code(std::errc::invalid_argument);
    }
    if (!s.config.events_url.empty()) {
      s.events = std::make_unique<event_outbox>(s.config, *s.hooks, s.log);
      if (std::string e = s.events->start(); !e.empty()) {
        s.error = std::move(e);
        return std::make_error_code(std::errc::invalid_argument);
      }
    }
  }
  s.setup_metrics();
  s.build_server();
  if (std::string e = s.broker_->start(*s.hub_); !e.empty()) {
    s.error = std::move(e);
    return std::make_error_code(std::errc::invalid_argument);
  }
  if (auto ec = s.srv->listen()) {
    s.error = "listen on " + s.config.host + ":" + std::to_string(s.config.port) + ": " + ec.message();
    return ec;
  }
  if (s.admin_srv) {
    if (auto ec = s.admin_srv->listen()) {
      s.error = "admin: listen on " + s.config.admin_host + ":" +
                std::to_string(s.config.admin_port) + ": " + ec.message();
      return ec;
    }
    s.say(log_level::info, "admin dashboard on " + s.config.admin_host + ":" +
                               std::to_string(s.admin_srv->port()) + "/admin");
  }
  if (!s.config.metrics_listen.empty()) {
    s.build_metrics_server();
    if (auto ec = s.metrics_srv->listen()) {
      s.error = "metrics: listen on " + s.config.metrics_listen + ": " + ec.message();
      return ec;
    }
  }
  if (s.config.io_backend == "io_uring" && s.srv->io_backend() != net::io_backend::io_uring) {
    s.say(log_level::warn,
          "io_uring unavailable (" + s.srv->io_backend_error().message() + "), using epoll");
  }
  return {};
}

std::uint16_t service::port() const noexcept { return impl_->srv ? impl_->srv->port() : 0; }

std::error_code service::run() {
  impl& s = *impl_;
  s.housekeeper = std::thread([&s] { s.housekeeping_loop(); });
  if (s.admin_srv) {
    if (auto ec = s.admin_srv->start()) {
      s.error = "admin: " + ec.message();
      s.stop_housekeeping();
      s.broker_->stop();
      return ec;
    }
  }
  if (s.metrics_srv) {
    if (auto mec = s.metrics_srv->start()) {
      if (s.admin_srv) {
        s.admin_srv->shutdown();
        (void)s.admin_srv->wait();
      }
      s.stop_housekeeping();
      s.broker_->stop();
      s.error = "metrics: " + mec.message();
      return mec;
    }
  }
  const std::error_code ec = s.srv->run();
  if (s.admin_srv) {
    s.admin_srv->shutdown();
    (void)s.admin_srv->wait();
  }
  if (s.metrics_srv) {
    s.metrics_srv->shutdown();
    (void)s.metrics_srv->wait();
  }
  s.stop_housekeeping();
  if (s.events) s.events->stop();
  if (s.hooks) s.hooks->stop();
  s.broker_->stop();
  // Why: history that could not be saved is lost; the exit status must say so
  // (issue 14, finding 6), not only a log line.
  if (std::string why = s.broker_->health(); !ec && !why.empty()) {
    s.error = std::move(why);
    return std::make_error_code(std::errc::io_error);
  }
  return ec;
}

void service::shutdown() {
  if (impl_->srv) impl_->srv->shutdown();
  if (impl_->metrics_srv) impl_->metrics_srv->shutdown();
}

const std::string& service::error_message() const noexcept { return impl_->error; }

}  // namespace switchboard::realtime
