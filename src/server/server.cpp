// server.cpp — the server object: routes, loops and listeners, start/stop,
// signals, and the cross-thread entry points (send, close, publish, shutdown).
#include <switchboard/server/server.hpp>

#include <sys/socket.h>

#include <cassert>
#include <cerrno>
#include <utility>

#include <switchboard/net/tcp_socket.hpp>
#include <switchboard/net/tls_context.hpp>

#include "loop_context.hpp"

namespace switchboard::server {

namespace detail {

server_core::server_core(server_options opts) : options(std::move(opts)) {
  limits.max_head_size = options.max_head_size;
}

const route* server_core::find_route(std::string_view path) const noexcept {
  if (auto it = routes.find(path); it != routes.end()) return &it->second;
  if (auto it = routes.find(std::string_view("*")); it != routes.end()) return &it->second;
  return nullptr;
}

bool server_core::try_count_connection() noexcept {
  const std::size_t limit = options.max_connections;
  std::size_t current = connections.load(std::memory_order_relaxed);
  do {
    if (limit != 0 && current >= limit) return false;  // max_connections reached
  } while (!connections.compare_exchange_weak(current, current + 1, std::memory_order_relaxed));
  return true;
}

void server_core::loop_done() noexcept {
  if (loops_running.fetch_sub(1) == 1 && group) group->stop();
}

}  // namespace detail

server::server(server_options options)
    : core_(std::make_unique<detail::server_core>(std::move(options))) {}

server::~server() {
  detail::server_core& core = *core_;
  if (core.group) {
    core.group->stop();
    (void)core.group->join();
  }
  core.signals.reset();
  core.contexts.clear();  // loops stopped: connections dropped without callbacks
  core.group.reset();
}

server& server::ws(std::string path, ws_behavior behavior) {
  assert(!core_->group && "routes are fixed once listening");
  auto& r = core_->routes[std::move(path)];
  assert(!r.ws && "one WebSocket endpoint per path");
  if (behavior.user_data_size > core_->user_data_size) core_->user_data_size = behavior.user_data_size;
  r.ws = std::make_unique<ws_behavior>(std::move(behavior));
  return *this;
}

server& server::http(std::string method, std::string path, http_handler handler) {
  assert(!core_->group && "routes are fixed once listening");
  core_->routes[std::move(path)].http.emplace_back(std::move(method), std::move(handler));
  return *this;
}

const ws_behavior& server::event_stream_endpoint(ws_behavior behavior) {
  assert(!core_->group && "endpoints are fixed once listening");
  if (behavior.user_data_size > core_->user_data_size) core_->user_data_size = behavior.user_data_size;
  core_->event_stream_endpoints.push_back(std::make_unique<ws_behavior>(std::move(behavior)));
  return *core_->event_stream_endpoints.back();
}

std::error_code server::listen() {
  detail::server_core& core = *core_;
  if (core.group) return {};
  auto local = net::endpoint::parse(core.options.host, core.options.port);
  if (!local) return std::make_error_code(std::errc::invalid_argument);  // numeric hosts only
  net::loop_group_options group_options;
  group_options.threads = core.options.threads == 0 ? 1 : core.options.threads;
  group_options.loop.timer_tick = core.options.timer_tick;
  group_options.loop.backend = core.options.io_backend;
  std::error_code error;
  auto group = net::loop_group::create(group_options, error);
  if (!group) return error;
  std::vector<std::unique_ptr<detail::loop_context>> contexts;
  const bool reuse_port = group->size() > 1;
  // SO_REUSEPORT lets any process of the same user join a listening port, so
  // a second server on a port in use would start and silently take half of
  // its connections. A plain bind first makes "address in use" an error again.
  if (reuse_port && local->port() != 0) {
    net::unique_fd probe = net::open_tcp_socket(local->family(), error);
    if (!probe) return error;
    if ((error = net::set_socket_option(probe.get(), SOL_SOCKET, SO_REUSEADDR, 1))) return error;
    if (::bind(probe.get(), local->data(), local->size()) != 0) {
      return std::error_code(errno, std::system_category());
    }
  }
  for (std::size_t i = 0; i < group->size(); ++i) {
    auto ctx = std::make_unique<detail::loop_context>(core, group->loop(i), static_cast<std::uint32_t>(i));
    // Every loop binds the port the first one got (port 0 picks it once).
    const auto port = contexts.empty() ? local->port() : contexts.front()->port();
    if ((error = ctx->listen(local->with_port(port), reuse_port))) return error;
    contexts.push_back(std::move(ctx));
  }
  core.contexts = std::move(contexts);
  core.group = std::move(group);
  return {};
}

std::uint16_t server::port() const noexcept {
  return core_->contexts.empty() ? 0 : core_->contexts.front()->port();
}

net::io_backend server::io_backend() const noexcept {
  return core_->group ? core_->group->loop(0).backend() : core_->options.io_backend;
}

std::error_code server::io_backend_error() const noexcept {
  return core_->group ? core_->group->loop(0).backend_error() : std::error_code{};
}

std::error_code server::start() {
  detail::server_core& core = *core_;
  assert(core.group && !core.started);
  core.loops_running = core.group->size();
  for (auto& ctx : core.contexts) {
    detail::loop_context* c = ctx.get();
    c->loop().post([c] { detail::current_context = c; });
  }
  if (auto error = core.group->start()) return error;
  core.started = true;
  // A shutdown requested before the threads ran still reaches every loop.
  if (core.shutdown_requested.load()) {
    for (auto& ctx : core.contexts) {
      detail::loop_context* c = ctx.get();
      c->loop().post([c] { c->begin_shutdown(true); });
    }
  }
  return {};
}

std::error_code server::wait() {
  if (!core_->group) return {};
  return core_->group->join();
}

std::error_code server::run() {
  if (auto error = listen()) return error;
  detail::server_core& core = *core_;
  if (core.options.handle_signals && !core.signals) {
    std::error_code error;
    // Created here, before the loop threads: it blocks the signals in this
    // thread and the threads inherit the mask, so only the signalfd sees them.
    // SIGHUP reloads the certificates, and only when there are some: without
    // TLS its default action (or the application's own use) stays.
    auto on_signal = [this](int signal_number) {
      if (signal_number != SIGHUP) return shutdown();
      const net::tls_error result = reload_tls();
      if (core_->options.on_tls_reload) core_->options.on_tls_reload(result);
    };
    core.signals =
        core.options.tls != nullptr
            ? net::signal_watcher::create(core.group->loop(0), on_signal, error,
                                          {SIGINT, SIGTERM, SIGHUP})
            : net::signal_watcher::create(core.group->loop(0), on_signal, error, {SIGINT, SIGTERM});
    if (!core.signals) return error;
  }
  if (auto error = start()) return error;
  return wait();
}

net::tls_error server::reload_tls() {
  net::tls_context* tls = core_->options.tls;
  if (tls == nullptr) {
    return {std::make_error_code(std::errc::operation_not_supported), "the server has no TLS"};
  }
  return tls->reload();
}

void server::shutdown() {
  detail::server_core& core = *core_;
  if (core.shutdown_requested.exchange(true)) return;  // idempotent
  // The layer above writes its last words first (e.g. a final SSE event and
  // end() on its streams): posted from this thread before begin_shutdown,
  // they run on each loop before it (tasks of one thread run in order).
  if (core.options.on_shutdown) core.options.on_shutdown();
  if (!core.started) return;  // start() forwards it
  for (auto& ctx : core.contexts) {
    detail::loop_context* c = ctx.get();
    c->loop().post([c] { c->begin_shutdown(true); });
  }
}

bool server::send(connection_id id, std::string_view payload, protocol::opcode op) {
  if (id.loop >= core_->contexts.size()) return false;
  detail::loop_context* c = core_->contexts[id.loop].get();
  if (detail::current_context == c) {
    if (websocket* ws = c->find(id)) ws->send(payload, op);
    return true;
  }
  c->loop().post([c, id, op, text = std::string(payload)] {
    if (websocket* ws = c->find(id)) ws->send(text, op);
  });
  return true;
}

bool server::close(connection_id id, std::uint16_t code, std::string reason) {
  if (id.loop >= core_->contexts.size()) return false;
  detail::loop_context* c = core_->contexts[id.loop].get();
  c->loop().post([c, id, code, text = std::move(reason)] {
    if (websocket* ws = c->find(id)) ws->close(code, text);
  });
  return true;
}

bool server::dispatch(connection_id id, net::unique_function<void(websocket*)> fn) {
  if (id.loop >= core_->contexts.size()) return false;
  detail::loop_context* c = core_->contexts[id.loop].get();
  const auto run = [c, id](net::unique_function<void(websocket*)>& f) {
    websocket* ws = c->find(id);
    f(ws && ws->is_open() ? ws : nullptr);
  };
  if (detail::current_context == c) {
    run(fn);
    return true;
  }
  c->loop().post([run, f = std::move(fn)]() mutable { run(f); });
  return true;
}

std::size_t server::publish(std::string_view topic, std::string_view payload, protocol::opcode op,
                            std::uint64_t sequence, publish_delivery delivery) {
  return detail::publish_to_loops(*core_, topic, payload, op, sequence,
                                  delivery == publish_delivery::queued);
}

std::uint64_t server::compressed_messages() const noexcept {
  std::uint64_t total = 0;
  for (const auto& ctx : core_->contexts) total += ctx->compressed_messages();
  return total;
}

server_statistics server::statistics() const noexcept {
  using detail::loop_counters;
  server_statistics total;
  for (const auto& ctx : core_->contexts) {
    const loop_counters& c = ctx->counters();
    total.messages_received += loop_counters::read(c.messages_received);
    total.bytes_received += loop_counters::read(c.bytes_received);
    total.messages_sent += loop_counters::read(c.messages_sent);
    total.bytes_sent += loop_counters::read(c.bytes_sent);
    total.backpressure_drops += loop_counters::read(c.backpressure_drops);
    total.outbound_memory_drops += loop_counters::read(c.outbound_memory_drops);
    total.compressed_messages += loop_counters::read(c.compressed_messages);
    total.loop_wakeups += ctx->loop().wakeups();
    for (std::size_t i = 0; i < k_handshake_failure_reasons; ++i) {
      total.handshake_failures[i] += loop_counters::read(c.handshake_failures[i]);
    }
  }
  total.connections = core_->connections.load(std::memory_order_relaxed);
  total.outbound_bytes = core_->outbound_bytes();
  return total;
}

std::size_t server::connections() const noexcept {
  return core_->connections.load(std::memory_order_relaxed);
}

const server_options& server::options() const noexcept { return core_->options; }

}  // namespace switchboard::server
