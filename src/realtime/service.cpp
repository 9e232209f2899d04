// service.cpp — `switchboard serve` put together: the server and its routes,
// the broker, the hub, the sessions of /ws, the HTTP API, metrics, the demo
// page, and the housekeeping thread (connect deadlines, history TTL, presence
// pushes, returning freed memory to the OS) that wakes every 200 ms. Each part lives in its own file:
//
//   session.cpp        the switchboard.v1 commands of a /ws connection
//   hub.cpp            this node's channels, fan-out to its connections
//   broker.hpp         what crosses nodes; memory_broker.cpp is the default,
//                      redis_broker.cpp shares channels between nodes
//   http_api.cpp       POST /api/publish, GET /api/channels
//   http_transports.cpp GET /sse and the HTTP sessions (/rt/session)
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

#include "assets.hpp"
#include "auth.hpp"
#include "http_api.hpp"
#include "http_transports.hpp"
#include "hub.hpp"
#include "memory_broker.hpp"
#include "memory_release.hpp"
#include "metrics.hpp"
#include "redis_broker.hpp"
#include "session.hpp"
#include "support.hpp"

namespace switchboard::realtime {

using namespace detail;

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
  std::unique_ptr<server::server> srv;
  std::unique_ptr<hub> hub_;
  std::unique_ptr<sessions> sessions_;
  std::unique_ptr<http_api> api;
  std::unique_ptr<http_transports> transports;
  counter_family* transport_opens = nullptr;  // by transport

  std::thread housekeeper;
  std::mutex housekeeping_mutex;
  std::condition_variable housekeeping_cv;
  bool housekeeping_stop = false;

  void say(log_level level, std::string_view message) {
    if (log) log(level, message);
  }

  void setup_metrics();
  void build_server();
  void housekeeping_loop();
  void stop_housekeeping();
};

void service::impl::setup_metrics() {
  auto* s = this;
  metrics.add_gauge("switchboard_connections", "WebSocket connections open",
                    [s] { return static_cast<double>(s->srv->connections()); });
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
                         "WebSocket messages sent (each delivery of a publication counts)",
                         [s] { return s->srv->statistics().messages_sent; });
  metrics.add_counter_fn("switchboard_bytes_received_total", "WebSocket payload bytes received",
                         [s] { return s->srv->statistics().bytes_received; });
  metrics.add_counter_fn("switchboard_bytes_sent_total", "WebSocket payload bytes sent",
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
}

void service::impl::build_server() {
  server::server_options o;
  o.host = config.host;
  o.port = config.port;
  o.threads = config.threads != 0 ? config.threads : net::usable_cpus();
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
  api = std::make_unique<http_api>(config, *hub_, *sessions_);
  transports = std::make_unique<http_transports>(config, *hub_, *sessions_, *transport_opens,
                                                 *http_errors);

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
  srv->http("GET", "/metrics", [this](const server::http_request& req,
                                      server::http_response& res) {
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
  });
  api->install(*srv, *http_errors);
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

void service::impl::housekeeping_loop() {
  std::unique_lock lock(housekeeping_mutex);
  memory_release release;  // malloc_trim every 2 s (memory_release.hpp)
  while (!housekeeping_stop) {
    housekeeping_cv.wait_for(lock, std::chrono::milliseconds(200));
    if (housekeeping_stop) break;
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
  return {};
}

std::uint16_t service::port() const noexcept { return impl_->srv ? impl_->srv->port() : 0; }

std::error_code service::run() {
  impl& s = *impl_;
  s.housekeeper = std::thread([&s] { s.housekeeping_loop(); });
  const std::error_code ec = s.srv->run();
  s.stop_housekeeping();
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
}

const std::string& service::error_message() const noexcept { return impl_->error; }

}  // namespace switchboard::realtime
