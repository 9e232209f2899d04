// service.cpp — `switchboard serve`: the switchboard.v1 protocol on /ws, the
// HTTP API, metrics and the demo page, on the embedded in-memory broker.
//
// Concurrency: one hub (channels, their history and members) behind one
// mutex. A publication takes its offset, enters the history and is handed to
// server::publish() (queued delivery: through every loop's FIFO queue, the
// publisher's own loop included) under that mutex, so every loop receives a
// channel's publications in offset order whichever loops published them, and
// a publisher gets its reply before its own publication. A subscribe reads the history, sends the
// reply and subscribes to the server topic under the same mutex, with the
// topic's `after` set to the channel's last offset: a publication already on
// its way to this loop (posted before the subscribe ran) is skipped for the
// new subscriber, and every later one reaches it — no duplicates, no gaps.
// The mutex is recursive only as a guard: no path re-enters it today.
//
// Timers that are not per-connection (connect deadlines, history TTL) run on
// one housekeeping thread that wakes every 200 ms.
#include <switchboard/realtime/service.hpp>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <switchboard/net/tls_context.hpp>
#include <switchboard/realtime/auth.hpp>
#include <switchboard/realtime/channel.hpp>
#include <switchboard/realtime/metrics.hpp>
#include <switchboard/realtime/rate_limit.hpp>
#include <switchboard/server/server.hpp>

#include "assets.hpp"
#include "command.hpp"
#include "json.hpp"

namespace switchboard::realtime {

namespace {

using detail::append_json_string;
using detail::append_uint;
using detail::command;
using detail::failure;
using detail::parse_command;
using detail::stream_position;

constexpr std::string_view k_subprotocol = "switchboard.v1";
constexpr std::size_t k_max_anonymous_info = 1024;
constexpr std::uint16_t k_close_auth = 4001;

std::uint64_t mono_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}
std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string random_hex(std::size_t bytes) {
  static constexpr char hex[] = "0123456789abcdef";
  unsigned char raw[16] = {};
  bytes = std::min(bytes, sizeof raw);
  if (RAND_bytes(raw, static_cast<int>(bytes)) != 1) {
    // The CSPRNG failing is not recoverable in any useful way; ids only need
    // to be unique, so fall back to the clock rather than crash.
    const auto t = static_cast<std::uint64_t>(wall_ms()) ^ mono_ms() << 20;
    for (std::size_t i = 0; i < bytes; ++i) raw[i] = static_cast<unsigned char>(t >> (8 * (i % 8)));
  }
  std::string out;
  out.reserve(2 * bytes);
  for (std::size_t i = 0; i < bytes; ++i) {
    out.push_back(hex[raw[i] >> 4]);
    out.push_back(hex[raw[i] & 15]);
  }
  return out;
}

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000.0 + 0.5));
}

struct channel_state;

// Per-connection state, stored inline in the server's connection object
// (ws_behavior::with_user_data): no allocation beyond the strings.
struct connection_state {
  server::connection_id id{};
  std::string client;  // 16 hex digits, unique in the server
  std::string user;    // token "sub"; empty for anonymous clients
  // {"client":"…","user":"…","info":{…}}: how presence shows this client.
  std::string presence_json;
  std::unique_ptr<token_claims> claims;  // null: anonymous (every channel)
  std::optional<token_bucket> bucket;
  std::vector<channel_state*> subs;
  std::uint32_t refused = 0;     // commands refused by the rate limit in a row
  bool needs_connect = false;    // no token yet and anonymous access is off
  bool connected = false;        // a `connect` succeeded (or a token came with the upgrade)
  bool rejected = false;         // on_upgrade refused it (no on_open follows)

  bool grants(std::string_view channel) const noexcept {
    return !claims || claims->grants(channel);
  }
  channel_state* find_sub(std::string_view name) const noexcept;
};

struct publication {
  std::uint64_t offset;
  std::int64_t time_ms;  // wall clock, so a snapshot keeps TTLs across restarts
  std::string json;      // {"offset":N,"data":…,"client":"…","user":"…"}
};

// A channel's kept publications, oldest first. libstdc++'s deque allocates
// its map and first block (~550 B) even when empty, and most channels (one
// per user, say) keep nothing most of the time: the deque exists only while
// it holds something.
class history_buffer {
 public:
  bool empty() const noexcept { return !q_; }
  std::size_t size() const noexcept { return q_ ? q_->size() : 0; }
  const publication& front() const { return q_->front(); }
  const publication& operator[](std::size_t i) const { return (*q_)[i]; }
  void push_back(publication p) {
    if (!q_) q_ = std::make_unique<std::deque<publication>>();
    q_->push_back(std::move(p));
  }
  void pop_front() {
    q_->pop_front();
    if (q_->empty()) q_.reset();
  }
  template <class F>
  void for_each(F&& f) const {
    if (q_) {
      for (const publication& p : *q_) f(p);
    }
  }

 private:
  std::unique_ptr<std::deque<publication>> q_;  // null when empty
};

struct channel_state {
  std::string name;
  std::string epoch;
  std::string topic;  // the server topic: name + '#' + epoch
  const namespace_options* ns = nullptr;
  std::uint64_t top = 0;  // the last offset given out
  history_buffer history;
  std::unordered_set<connection_state*> members;
};

channel_state* connection_state::find_sub(std::string_view name) const noexcept {
  for (channel_state* ch : subs) {
    if (ch->name == name) return ch;
  }
  return nullptr;
}

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

}  // namespace

struct service::impl {
  explicit impl(realtime_config c, log_function l) : config(std::move(c)), log(std::move(l)) {}

  realtime_config config;
  log_function log;
  std::string error;
  std::unique_ptr<net::tls_context> tls;
  std::unique_ptr<server::server> srv;
  std::optional<token_verifier> verifier;

  // The hub.
  std::recursive_mutex mutex;
  std::unordered_map<std::string, std::unique_ptr<channel_state>, string_hash, std::equal_to<>>
      channels;
  std::unordered_map<connection_state*, std::uint64_t> connect_deadlines;  // mono ms
  std::atomic<std::size_t> subscription_count{0};
  std::atomic<std::size_t> channel_count{0};

  // Metrics.
  registry metrics;
  counter* publications = nullptr;
  counter* rate_limited = nullptr;
  counter_family* handshake_failures = nullptr;
  counter_family* closes = nullptr;
  histogram_family* command_duration = nullptr;

  // Housekeeping.
  std::thread housekeeper;
  std::mutex housekeeping_mutex;
  std::condition_variable housekeeping_cv;
  bool housekeeping_stop = false;

  void say(log_level level, std::string_view message) {
    if (log) log(level, message);
  }

  // --- setup -------------------------------------------------------------
  bool validate();
  void setup_metrics();
  void build_server();
  void housekeeping_loop();

  // --- snapshot ------------------------------------------------------------
  bool load_snapshot();
  void save_snapshot();

  // --- hub (callers hold `mutex`) --------------------------------------------
  const namespace_options* find_namespace(std::string_view channel) const {
    const auto it = config.namespaces.find(namespace_of(channel, k_default_namespace));
    return it == config.namespaces.end() ? nullptr : &it->second;
  }
  channel_state& channel(std::string_view name, const namespace_options* ns);
  void prune(channel_state& ch, std::int64_t now_wall);
  void maybe_drop(channel_state& ch);
  // Appends "channel":…,"epoch":…,"offset":… (the channel's stream now).
  static void append_stream(const channel_state& ch, std::string& out);
  // The part of a publication the WebSocket and HTTP paths share: the size
  // limit, then publish_locked() under the hub's lock.
  std::optional<failure> publish(std::string_view name, const namespace_options* ns,
                                 std::string_view data, const connection_state* from,
                                 std::string& result);
  void publish_locked(channel_state& ch, std::string_view data, const connection_state* from,
                      std::string& result);
  void leave_locked(connection_state& conn, channel_state& ch, server::websocket* ws);
  // Sends a join or leave push about `conn` to the channel's subscribers.
  void push_presence(std::string_view kind, const channel_state& ch, const connection_state& conn);
  // Appends ,"recovered":…[,"reason":…],"publications":[…]: what came after
  // `since` (at most `limit`, oldest first), or when that cannot be told and
  // `latest_when_lost`, the last `limit` kept publications.
  void append_recovery(const channel_state& ch, const stream_position& since, std::size_t limit,
                       bool latest_when_lost, std::string& out);
  // Appends the last `limit` kept publications, oldest first, comma-separated.
  void append_latest(const channel_state& ch, std::size_t limit, std::string& out);

  // --- the protocol --------------------------------------------------------------
  void on_upgrade(server::upgrade_request& req);
  void on_open(server::websocket& ws);
  void on_message(server::websocket& ws, std::string_view payload, protocol::opcode op);
  void on_close(server::websocket& ws, std::uint16_t code, std::string_view reason);
  // Runs one command. Its result goes to `result`; subscribe sends its own
  // reply (under the hub's lock, before any live push) and sets `replied`.
  std::optional<failure> dispatch(server::websocket& ws, connection_state& conn,
                                  const command& c, std::string& result, bool& close_after,
                                  bool& replied);
  std::optional<failure> cmd_connect(connection_state& conn, const command& c,
                                     std::string& result, bool& close_after);
  std::optional<failure> cmd_subscribe(server::websocket& ws, connection_state& conn,
                                       const command& c, bool& replied);
  std::optional<failure> cmd_unsubscribe(server::websocket& ws, connection_state& conn,
                                         const command& c, std::string& result);
  std::optional<failure> cmd_publish(connection_state& conn, const command& c,
                                     std::string& result);
  std::optional<failure> cmd_presence(connection_state& conn, const command& c,
                                      std::string& result);
  std::optional<failure> cmd_history(connection_state& conn, const command& c,
                                     std::string& result);
  // Common checks of a command's "channel": name, namespace, token grant.
  std::optional<failure> check_channel(const connection_state* conn, const command& c,
                                       std::string_view& name, const namespace_options*& ns);

  // --- HTTP ------------------------------------------------------------------
  bool check_api_key(const server::http_request& req, server::http_response& res);
  void api_publish(const server::http_request& req, server::http_response& res);
  void api_channels(const server::http_request& req, server::http_response& res);
};

namespace {

void json_error(server::http_response& res, int status, std::string_view message) {
  res.set_status(status);
  res.set_content_type("application/json");
  std::string body = "{\"error\":{\"code\":" + std::to_string(status) + ",\"message\":";
  append_json_string(body, message);
  body.append("}}");
  res.set_body(std::move(body));
}

void append_reply_start(std::string& out, std::string_view id) {
  out.assign("{");
  if (!id.empty()) {
    out.append("\"id\":");
    out.append(id);
    out.push_back(',');
  }
}

void append_failure(std::string& out, std::string_view id, const failure& f) {
  append_reply_start(out, id);
  out.append("\"error\":{\"code\":");
  out.append(std::to_string(f.code));
  out.append(",\"message\":");
  append_json_string(out, f.message);
  out.append("}}");
}

}  // namespace

// ---------------------------------------------------------------------------
// Setup

bool service::impl::validate() {
  if (config.jwt_secret.empty() && !config.allow_anonymous) {
    error = "auth: set auth.jwt_secret or auth.allow_anonymous (nobody could connect)";
    return false;
  }
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    error = "server: tls_cert and tls_key go together";
    return false;
  }
  for (const auto& [name, ns] : config.namespaces) {
    if (name != k_default_namespace && !valid_namespace_name(name)) {
      error = "namespaces: invalid namespace name '" + name + "'";
      return false;
    }
    (void)ns;
  }
  if (config.max_publication_size > config.max_message_size) {
    error = "limits: max_publication_size is over max_message_size";
    return false;
  }
  if (!config.jwt_secret.empty()) verifier.emplace(config.jwt_secret);
  return true;
}

void service::impl::setup_metrics() {
  auto* s = this;
  metrics.add_gauge("switchboard_connections", "WebSocket connections open",
                    [s] { return static_cast<double>(s->srv->connections()); });
  metrics.add_gauge("switchboard_subscriptions", "Channel subscriptions", [s] {
    return static_cast<double>(s->subscription_count.load(std::memory_order_relaxed));
  });
  metrics.add_gauge("switchboard_channels", "Channels with state (subscribers or history)", [s] {
    return static_cast<double>(s->channel_count.load(std::memory_order_relaxed));
  });
  metrics.add_counter_fn("switchboard_messages_received_total", "WebSocket messages received",
                         [s] { return s->srv->statistics().messages_received; });
  metrics.add_counter_fn("switchboard_messages_sent_total",
                         "WebSocket messages sent (each delivery of a publication counts)",
                         [s] { return s->srv->statistics().messages_sent; });
  metrics.add_counter_fn("switchboard_bytes_received_total", "WebSocket payload bytes received",
                         [s] { return s->srv->statistics().bytes_received; });
  metrics.add_counter_fn("switchboard_bytes_sent_total", "WebSocket payload bytes sent",
                         [s] { return s->srv->statistics().bytes_sent; });
  metrics.add_counter_fn("switchboard_backpressure_drops_total",
                         "Messages dropped or connections closed for backpressure",
                         [s] { return s->srv->statistics().backpressure_drops; });
  publications = &metrics.add_counter("switchboard_publications_total",
                                      "Publications accepted (WebSocket and HTTP API)");
  rate_limited =
      &metrics.add_counter("switchboard_rate_limited_total", "Commands refused by the rate limit");
  handshake_failures = &metrics.add_counter_family(
      "switchboard_handshake_failures_total", "Upgrades refused or abandoned, by reason", "reason");
  closes = &metrics.add_counter_family("switchboard_closes_total", "Connections ended, by close code",
                                       "code");
  command_duration = &metrics.add_histogram_family(
      "switchboard_command_duration_seconds", "Time to handle a command, by command", "cmd",
      {0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1});
}

void service::impl::build_server() {
  server::server_options o;
  o.host = config.host;
  o.port = config.port;
  o.threads = config.threads;
  o.max_message_size = config.max_message_size;
  o.max_connections = config.max_connections;
  o.ping_interval = to_ms(config.ping_interval);
  o.pong_timeout = to_ms(config.pong_timeout);
  o.max_backpressure = config.max_backpressure;
  o.policy = config.backpressure_policy == overflow_policy::drop ? server::backpressure_policy::drop
                                                                 : server::backpressure_policy::close;
  o.shutdown_code = static_cast<protocol::close_code>(config.shutdown_code);
  o.shutdown_timeout = to_ms(config.shutdown_timeout);
  o.max_http_body = config.max_message_size;
  o.tls = tls.get();
  o.on_handshake_failure = [this](int status, std::string_view reason) {
    handshake_failures->with(reason).inc();
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

  server::ws_behavior b;
  b.with_user_data<connection_state>();
  switch (config.compression) {
    case compression_mode::off: b.compression.mode = server::compression_mode::off; break;
    case compression_mode::shared: b.compression.mode = server::compression_mode::shared; break;
    case compression_mode::dedicated: b.compression.mode = server::compression_mode::dedicated; break;
  }
  b.on_upgrade = [this](server::upgrade_request& req) { on_upgrade(req); };
  b.on_open = [this](server::websocket& ws) { on_open(ws); };
  b.on_message = [this](server::websocket& ws, std::string_view payload, protocol::opcode op) {
    on_message(ws, payload, op);
  };
  b.on_close = [this](server::websocket& ws, std::uint16_t code, std::string_view reason) {
    on_close(ws, code, reason);
  };
  srv->ws("/ws", std::move(b));

  srv->http("GET", "/healthz", [](const server::http_request&, server::http_response& res) {
    res.set_body("ok\n");
  });
  srv->http("GET", "/metrics", [this](const server::http_request&, server::http_response& res) {
    res.set_content_type("text/plain; version=0.0.4; charset=utf-8");
    res.set_body(metrics.render());
  });
  srv->http("POST", "/api/publish", [this](const server::http_request& req,
                                           server::http_response& res) { api_publish(req, res); });
  srv->http("GET", "/api/channels", [this](const server::http_request& req,
                                           server::http_response& res) { api_channels(req, res); });
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
  while (!housekeeping_stop) {
    housekeeping_cv.wait_for(lock, std::chrono::milliseconds(200));
    if (housekeeping_stop) break;
    const std::uint64_t now = mono_ms();
    const std::int64_t now_wall = wall_ms();
    std::vector<server::connection_id> late;
    {
      std::lock_guard hub(mutex);
      for (auto it = connect_deadlines.begin(); it != connect_deadlines.end();) {
        if (it->second <= now) {
          late.push_back(it->first->id);
          it = connect_deadlines.erase(it);
        } else {
          ++it;
        }
      }
      std::vector<channel_state*> all;
      all.reserve(channels.size());
      for (auto& [name, ch] : channels) all.push_back(ch.get());
      for (channel_state* ch : all) {
        prune(*ch, now_wall);
        maybe_drop(*ch);
      }
    }
    for (const auto& id : late) {
      say(log_level::info, "connection closed: no connect within auth.connect_timeout");
      srv->close(id, k_close_auth, "authentication timeout");
    }
  }
}

// ---------------------------------------------------------------------------
// The hub

channel_state& service::impl::channel(std::string_view name, const namespace_options* ns) {
  auto it = channels.find(name);
  if (it != channels.end()) return *it->second;
  auto ch = std::make_unique<channel_state>();
  ch->name.assign(name);
  ch->epoch = random_hex(8);
  ch->topic = ch->name + "#" + ch->epoch;
  ch->ns = ns;
  channel_state& ref = *ch;
  channels.emplace(ch->name, std::move(ch));
  channel_count.store(channels.size(), std::memory_order_relaxed);
  return ref;
}

void service::impl::prune(channel_state& ch, std::int64_t now_wall) {
  if (ch.ns->history_ttl <= 0) return;
  const auto ttl = static_cast<std::int64_t>(ch.ns->history_ttl * 1000.0);
  while (!ch.history.empty() && ch.history.front().time_ms + ttl <= now_wall) {
    ch.history.pop_front();
  }
}

void service::impl::maybe_drop(channel_state& ch) {
  if (!ch.members.empty() || !ch.history.empty()) return;
  channels.erase(ch.name);
  channel_count.store(channels.size(), std::memory_order_relaxed);
}

void service::impl::append_stream(const channel_state& ch, std::string& out) {
  out.append("\"channel\":");
  append_json_string(out, ch.name);
  out.append(",\"epoch\":");
  append_json_string(out, ch.epoch);
  out.append(",\"offset\":");
  append_uint(out, ch.top);
}

std::optional<failure> service::impl::publish(std::string_view name, const namespace_options* ns,
                                              std::string_view data,
                                              const connection_state* from, std::string& result) {
  if (data.size() > config.max_publication_size) {
    return failure{413, "publication over limits.max_publication_size"};
  }
  std::lock_guard lock(mutex);
  publish_locked(channel(name, ns), data, from, result);
  return std::nullopt;
}

void service::impl::publish_locked(channel_state& ch, std::string_view data,
                                   const connection_state* from, std::string& result) {
  prune(ch, wall_ms());
  const std::uint64_t offset = ++ch.top;
  std::string element = "{\"offset\":";
  append_uint(element, offset);
  element.append(",\"data\":");
  element.append(data);
  if (from) {
    element.append(",\"client\":");
    append_json_string(element, from->client);
    if (!from->user.empty()) {
      element.append(",\"user\":");
      append_json_string(element, from->user);
    }
  }
  element.push_back('}');
  // The push is the history element with the channel and epoch in front.
  std::string push = "{\"push\":\"message\",\"channel\":";
  append_json_string(push, ch.name);
  push.append(",\"epoch\":");
  append_json_string(push, ch.epoch);
  push.push_back(',');
  push.append(std::string_view(element).substr(1));
  srv->publish(ch.topic, push, protocol::opcode::text, offset,
               server::publish_delivery::queued);
  publications->inc();
  result.append("{\"epoch\":");
  append_json_string(result, ch.epoch);
  result.append(",\"offset\":");
  append_uint(result, offset);
  result.push_back('}');
  if (ch.ns->history_size > 0) {
    ch.history.push_back(publication{offset, wall_ms(), std::move(element)});
    while (ch.history.size() > ch.ns->history_size) ch.history.pop_front();
  }
  maybe_drop(ch);
}

void service::impl::push_presence(std::string_view kind, const channel_state& ch,
                                  const connection_state& conn) {
  std::string push = "{\"push\":";
  append_json_string(push, kind);
  push.append(",\"channel\":");
  append_json_string(push, ch.name);
  push.append(",\"info\":");
  push.append(conn.presence_json);
  push.push_back('}');
  // Unsequenced: a presence change is not part of the channel's history.
  srv->publish(ch.topic, push, protocol::opcode::text, 0, server::publish_delivery::queued);
}

void service::impl::leave_locked(connection_state& conn, channel_state& ch,
                                 server::websocket* ws) {
  if (ws) ws->unsubscribe(ch.topic);
  ch.members.erase(&conn);
  conn.subs.erase(std::find(conn.subs.begin(), conn.subs.end(), &ch));
  subscription_count.fetch_sub(1, std::memory_order_relaxed);
  if (ch.ns->presence) push_presence("leave", ch, conn);
  maybe_drop(ch);
}

void service::impl::append_recovery(const channel_state& ch, const stream_position& since,
                                    std::size_t limit, bool latest_when_lost, std::string& out) {
  const char* reason = nullptr;
  const std::uint64_t first_kept = ch.history.empty() ? ch.top + 1 : ch.history.front().offset;
  if (since.epoch != ch.epoch) {
    reason = "epoch changed";
  } else if (since.offset > ch.top) {
    reason = "offset ahead of the stream";
  } else if (since.offset + 1 < first_kept) {
    reason = "too far behind";
  }
  out.append(",\"recovered\":");
  out.append(reason ? "false" : "true");
  if (reason) {
    out.append(",\"reason\":");
    append_json_string(out, reason);
  }
  out.append(",\"publications\":[");
  if (!reason) {
    bool first = true;
    std::size_t n = 0;
    ch.history.for_each([&](const publication& p) {
      if (p.offset <= since.offset || n >= limit) return;
      ++n;
      if (!first) out.push_back(',');
      first = false;
      out.append(p.json);
    });
  } else if (latest_when_lost) {
    append_latest(ch, limit, out);
  }
  out.push_back(']');
}

void service::impl::append_latest(const channel_state& ch, std::size_t limit, std::string& out) {
  const std::size_t skip = ch.history.size() > limit ? ch.history.size() - limit : 0;
  for (std::size_t i = skip; i < ch.history.size(); ++i) {
    if (i != skip) out.push_back(',');
    out.append(ch.history[i].json);
  }
}

// ---------------------------------------------------------------------------
// Connections

void service::impl::on_upgrade(server::upgrade_request& req) {
  auto& conn = req.data<connection_state>();
  const std::string_view origin = req.origin();
  if (!config.allowed_origins.empty() && !origin.empty() &&
      std::find(config.allowed_origins.begin(), config.allowed_origins.end(), origin) ==
          config.allowed_origins.end()) {
    conn.rejected = true;
    handshake_failures->with("origin").inc();
    say(log_level::warn, "upgrade refused: origin not allowed: " + std::string(origin));
    req.reject(403, "origin not allowed");
    return;
  }
  if (auto token = find_token(req.head(), req.query(), config.cookie_name,
                              config.allow_token_in_url)) {
    token_result r;
    if (verifier) {
      r = verifier->verify(*token, wall_ms() / 1000);
    } else {
      r.error = "tokens are not accepted (no auth.jwt_secret)";
    }
    if (!r.claims) {
      conn.rejected = true;
      handshake_failures->with("auth").inc();
      say(log_level::warn, "upgrade refused: " + r.error);
      req.reject(401, r.error);
      return;
    }
    conn.user = r.claims->user;
    conn.claims = std::make_unique<token_claims>(std::move(*r.claims));
    conn.connected = true;
  } else if (!config.allow_anonymous) {
    conn.needs_connect = true;
  }
  conn.client = random_hex(8);
  conn.bucket.emplace(config.command_rate, config.command_burst);
  const std::string_view offered[] = {k_subprotocol};
  if (req.select_subprotocol(offered)) {
    req.accept(k_subprotocol);
  } else {
    req.accept();
  }
}

namespace {
void build_presence_json(connection_state& conn, std::string_view info) {
  std::string& p = conn.presence_json;
  p = "{\"client\":";
  append_json_string(p, conn.client);
  if (!conn.user.empty()) {
    p.append(",\"user\":");
    append_json_string(p, conn.user);
  }
  if (!info.empty()) {
    p.append(",\"info\":");
    p.append(info);
  }
  p.push_back('}');
}
}  // namespace

void service::impl::on_open(server::websocket& ws) {
  auto& conn = ws.data<connection_state>();
  conn.id = ws.id();
  build_presence_json(conn, conn.claims ? std::string_view(conn.claims->info) : std::string_view());
  if (conn.needs_connect) {
    std::lock_guard lock(mutex);
    connect_deadlines[&conn] = mono_ms() + static_cast<std::uint64_t>(to_ms(config.connect_timeout).count());
  }
}

void service::impl::on_close(server::websocket& ws, std::uint16_t code, std::string_view) {
  auto& conn = ws.data<connection_state>();
  closes->with(std::to_string(code)).inc();
  std::lock_guard lock(mutex);
  connect_deadlines.erase(&conn);
  while (!conn.subs.empty()) leave_locked(conn, *conn.subs.back(), nullptr);
}

void service::impl::on_message(server::websocket& ws, std::string_view payload,
                               protocol::opcode op) {
  auto& conn = ws.data<connection_state>();
  if (op != protocol::opcode::text) {
    ws.close(1003, "binary messages are not supported");
    return;
  }
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
  const std::string_view id = c.id;
  const std::string_view cmd = c.cmd;
  if (!fail) {
    if (!conn.bucket->take(mono_ms())) {
      rate_limited->inc();
      if (++conn.refused >= config.rate_limit_close) {
        say(log_level::warn, "connection " + conn.client + " closed: rate limit exceeded");
        ws.close(1008, "rate limit exceeded");
        return;
      }
      fail = failure{429, "rate limit exceeded"};
    } else {
      conn.refused = 0;
      fail = dispatch(ws, conn, c, result, close_after, replied);
    }
  }
  if (fail) {
    append_failure(reply, id, *fail);
  } else if (!replied) {
    append_reply_start(reply, id);
    reply.append("\"result\":");
    reply.append(result.empty() ? std::string_view("{}") : std::string_view(result));
    reply.push_back('}');
  }
  if (!replied) ws.send(reply, protocol::opcode::text);
  if (close_after) ws.close(k_close_auth, fail ? std::string_view(fail->message) : "");
  const std::string_view label =
      cmd == "connect" || cmd == "subscribe" || cmd == "unsubscribe" || cmd == "publish" ||
              cmd == "presence" || cmd == "history" || cmd == "ping"
          ? cmd
          : std::string_view("invalid");
  command_duration->observe(
      label, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
}

std::optional<failure> service::impl::dispatch(server::websocket& ws, connection_state& conn,
                                               const command& c, std::string& result,
                                               bool& close_after, bool& replied) {
  const std::string_view cmd = c.cmd;
  if (cmd == "connect") return cmd_connect(conn, c, result, close_after);
  if (conn.needs_connect) return failure{401, "not authenticated: send connect first"};
  if (cmd == "ping") return std::nullopt;
  if (cmd == "subscribe") return cmd_subscribe(ws, conn, c, replied);
  if (cmd == "unsubscribe") return cmd_unsubscribe(ws, conn, c, result);
  if (cmd == "publish") return cmd_publish(conn, c, result);
  if (cmd == "presence") return cmd_presence(conn, c, result);
  if (cmd == "history") return cmd_history(conn, c, result);
  return failure{400, "unknown command: " + std::string(cmd)};
}

std::optional<failure> service::impl::cmd_connect(connection_state& conn, const command& c,
                                                  std::string& result, bool& close_after) {
  if (conn.connected) return failure{409, "already connected"};
  if (!conn.subs.empty()) return failure{409, "connect must come before subscribe"};
  std::string info;
  if (c.has_token) {
    token_result r;
    if (verifier) {
      r = verifier->verify(c.token, wall_ms() / 1000);
    } else {
      r.error = "tokens are not accepted (no auth.jwt_secret)";
    }
    if (!r.claims) {
      handshake_failures->with("auth").inc();
      say(log_level::warn, "connect refused: " + r.error);
      close_after = true;
      return failure{401, r.error};
    }
    conn.user = r.claims->user;
    info = r.claims->info;
    conn.claims = std::make_unique<token_claims>(std::move(*r.claims));
  } else {
    if (!config.allow_anonymous) {
      close_after = true;
      return failure{401, "token required"};
    }
    if (c.info_error) return c.info_error;
    if (c.has_info) {
      info = c.info;
      if (info.size() > k_max_anonymous_info) return failure{413, "info is over 1 KiB"};
    }
  }
  conn.connected = true;
  conn.needs_connect = false;
  build_presence_json(conn, info);
  {
    std::lock_guard lock(mutex);
    connect_deadlines.erase(&conn);
  }
  result = "{\"client\":";
  append_json_string(result, conn.client);
  if (!conn.user.empty()) {
    result.append(",\"user\":");
    append_json_string(result, conn.user);
  }
  result.push_back('}');
  return std::nullopt;
}

std::optional<failure> service::impl::check_channel(const connection_state* conn,
                                                    const command& c, std::string_view& name,
                                                    const namespace_options*& ns) {
  if (!c.has_channel) return failure{400, "bad request: no channel"};
  name = c.channel;
  if (!valid_channel_name(name)) return failure{422, "invalid channel name"};
  ns = find_namespace(name);
  if (!ns) {
    return failure{404, "unknown namespace: " + std::string(namespace_of(name, k_default_namespace))};
  }
  if (conn && !conn->grants(name)) {
    return failure{403, "channel not granted by the token: " + std::string(name)};
  }
  return std::nullopt;
}

std::optional<failure> service::impl::cmd_subscribe(server::websocket& ws, connection_state& conn,
                                                    const command& c, bool& replied) {
  std::string_view name;
  const namespace_options* ns = nullptr;
  if (auto f = check_channel(&conn, c, name, ns)) return f;
  if (c.since_error) return c.since_error;
  const std::optional<stream_position>& since = c.since;
  if (conn.find_sub(name)) return failure{409, "already subscribed"};
  if (conn.subs.size() >= config.max_subscriptions) {
    return failure{429, "subscription limit reached (limits.max_subscriptions)"};
  }
  std::string reply;
  append_reply_start(reply, c.id);
  std::lock_guard lock(mutex);
  channel_state& ch = channel(name, ns);
  prune(ch, wall_ms());
  reply.append("\"result\":{");
  append_stream(ch, reply);
  if (since) append_recovery(ch, *since, SIZE_MAX, false, reply);
  reply.append("}}");
  ws.send(reply, protocol::opcode::text);
  replied = true;
  ws.subscribe(ch.topic, ch.top);
  ch.members.insert(&conn);
  conn.subs.push_back(&ch);
  subscription_count.fetch_add(1, std::memory_order_relaxed);
  if (ns->presence) push_presence("join", ch, conn);
  return std::nullopt;
}

std::optional<failure> service::impl::cmd_unsubscribe(server::websocket& ws,
                                                      connection_state& conn, const command& c,
                                                      std::string&) {
  if (!c.has_channel) return failure{400, "bad request: no channel"};
  const std::string_view name = c.channel;
  if (!valid_channel_name(name)) return failure{422, "invalid channel name"};
  std::lock_guard lock(mutex);
  channel_state* ch = conn.find_sub(name);
  if (!ch) return failure{404, "not subscribed"};
  leave_locked(conn, *ch, &ws);
  return std::nullopt;
}

std::optional<failure> service::impl::cmd_publish(connection_state& conn, const command& c,
                                                  std::string& result) {
  std::string_view name;
  const namespace_options* ns = nullptr;
  if (auto f = check_channel(&conn, c, name, ns)) return f;
  if (!c.has_data) return failure{400, "bad request: no data"};
  if (ns->publish == publish_policy::none) {
    return failure{403, "publishing is not allowed in this namespace"};
  }
  if (ns->publish == publish_policy::subscribers && !conn.find_sub(name)) {
    return failure{403, "subscribe before publishing"};
  }
  return publish(name, ns, c.data, &conn, result);
}

std::optional<failure> service::impl::cmd_presence(connection_state& conn, const command& c,
                                                   std::string& result) {
  std::string_view name;
  const namespace_options* ns = nullptr;
  if (auto f = check_channel(&conn, c, name, ns)) return f;
  if (!ns->presence) return failure{405, "presence is off in this namespace"};
  result = "{\"channel\":";
  append_json_string(result, name);
  result.append(",\"clients\":[");
  std::lock_guard lock(mutex);
  if (auto it = channels.find(name); it != channels.end()) {
    bool first = true;
    for (const connection_state* m : it->second->members) {
      if (!first) result.push_back(',');
      first = false;
      result.append(m->presence_json);
    }
  }
  result.append("]}");
  return std::nullopt;
}

std::optional<failure> service::impl::cmd_history(connection_state& conn, const command& c,
                                                  std::string& result) {
  std::string_view name;
  const namespace_options* ns = nullptr;
  if (auto f = check_channel(&conn, c, name, ns)) return f;
  if (ns->history_size == 0) return failure{405, "history is off in this namespace"};
  if (c.since_error) return c.since_error;
  const std::optional<stream_position>& since = c.since;
  if (c.limit_error) return c.limit_error;
  std::size_t limit = ns->history_size;
  if (c.limit) limit = std::min<std::size_t>(limit, *c.limit);
  std::lock_guard lock(mutex);
  channel_state& ch = channel(name, ns);
  prune(ch, wall_ms());
  result = "{";
  append_stream(ch, result);
  if (since) {
    append_recovery(ch, *since, limit, true, result);
  } else {
    result.append(",\"publications\":[");
    append_latest(ch, limit, result);
    result.push_back(']');
  }
  result.push_back('}');
  maybe_drop(ch);
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// HTTP API

bool service::impl::check_api_key(const server::http_request& req, server::http_response& res) {
  if (config.api_key.empty()) {
    json_error(res, 403, "the HTTP API is off: no api.key configured");
    return false;
  }
  const auto key = req.header("X-API-Key");
  if (!key || key->size() != config.api_key.size() ||
      CRYPTO_memcmp(key->data(), config.api_key.data(), key->size()) != 0) {
    json_error(res, 401, key ? "bad API key" : "missing X-API-Key");
    return false;
  }
  return true;
}

void service::impl::api_publish(const server::http_request& req, server::http_response& res) {
  if (!check_api_key(req, res)) return;
  thread_local simdjson::dom::parser parser;
  const std::string_view body = req.body();
  simdjson::dom::element root;
  simdjson::dom::object obj;
  if (parser.parse(body.data(), body.size()).get(root) || root.get(obj)) {
    json_error(res, 400, "the body must be a JSON object");
    return;
  }
  command c;
  detail::read_command_fields(obj, c);
  std::string_view name;
  const namespace_options* ns = nullptr;
  if (auto f = check_channel(nullptr, c, name, ns)) {
    json_error(res, f->code, f->message);
    return;
  }
  if (!c.has_data) {
    json_error(res, 400, "no data");
    return;
  }
  std::string result;
  if (auto f = publish(name, ns, c.data, nullptr, result)) {
    json_error(res, f->code, f->message);
    return;
  }
  res.set_content_type("application/json");
  res.set_body(std::move(result));
}

void service::impl::api_channels(const server::http_request& req, server::http_response& res) {
  if (!check_api_key(req, res)) return;
  std::vector<const channel_state*> list;
  std::string body = "{\"channels\":[";
  {
    std::lock_guard lock(mutex);
    for (const auto& [name, ch] : channels) list.push_back(ch.get());
    std::sort(list.begin(), list.end(),
              [](const channel_state* a, const channel_state* b) { return a->name < b->name; });
    bool first = true;
    for (const channel_state* ch : list) {
      if (!first) body.push_back(',');
      first = false;
      body.append("{\"channel\":");
      append_json_string(body, ch->name);
      body.append(",\"subscribers\":");
      append_uint(body, ch->members.size());
      body.append(",\"epoch\":");
      append_json_string(body, ch->epoch);
      body.append(",\"offset\":");
      append_uint(body, ch->top);
      body.push_back('}');
    }
  }
  body.append("]}");
  res.set_content_type("application/json");
  res.set_body(std::move(body));
}

// ---------------------------------------------------------------------------
// Snapshot: one JSON object per line per channel, written at shutdown.
//   {"channel":"chat:a","epoch":"…","offset":42,"history":[[41,time_ms,{…}],…]}

bool service::impl::load_snapshot() {
  if (config.snapshot_file.empty()) return true;
  std::ifstream in(config.snapshot_file);
  if (!in) return true;  // first start: nothing saved yet
  simdjson::dom::parser parser;
  std::string line;
  std::size_t line_number = 0;
  std::size_t loaded = 0;
  const std::int64_t now_wall = wall_ms();
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty()) continue;
    const std::string where = config.snapshot_file + ":" + std::to_string(line_number) + ": ";
    simdjson::dom::object obj;
    std::string_view name, epoch;
    std::uint64_t top = 0;
    simdjson::dom::array history;
    if (parser.parse(line).get(obj) || obj["channel"].get(name) || obj["epoch"].get(epoch) ||
        obj["offset"].get(top) || obj["history"].get(history)) {
      error = where + "not a snapshot line";
      return false;
    }
    if (!valid_channel_name(name)) {
      error = where + "invalid channel name";
      return false;
    }
    const namespace_options* ns = find_namespace(name);
    if (!ns) continue;  // the namespace was removed from the configuration
    auto ch = std::make_unique<channel_state>();
    ch->name.assign(name);
    ch->epoch.assign(epoch);
    ch->topic = ch->name + "#" + ch->epoch;
    ch->ns = ns;
    ch->top = top;
    for (simdjson::dom::element e : history) {
      simdjson::dom::array entry;
      std::uint64_t offset = 0;
      std::int64_t time = 0;
      simdjson::dom::element pub;
      if (e.get(entry) || entry.at(0).get(offset) || entry.at(1).get(time) ||
          entry.at(2).get(pub) || !pub.is_object() || offset == 0 || offset > top) {
        error = where + "bad history entry";
        return false;
      }
      ch->history.push_back(publication{offset, time, simdjson::minify(pub)});
    }
    while (ch->history.size() > ns->history_size) ch->history.pop_front();
    prune(*ch, now_wall);
    const std::string key = ch->name;
    channels[key] = std::move(ch);
    ++loaded;
  }
  channel_count.store(channels.size(), std::memory_order_relaxed);
  say(log_level::info, "snapshot: " + std::to_string(loaded) + " channels restored from " +
                           config.snapshot_file);
  return true;
}

void service::impl::save_snapshot() {
  if (config.snapshot_file.empty()) return;
  const std::string tmp = config.snapshot_file + ".tmp";
  std::size_t saved = 0;
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) {
      say(log_level::error, "snapshot: cannot write " + tmp);
      return;
    }
    std::lock_guard lock(mutex);
    const std::int64_t now_wall = wall_ms();
    std::string line;
    for (auto& [name, ch] : channels) {
      prune(*ch, now_wall);
      if (ch->top == 0) continue;
      line = "{";
      append_stream(*ch, line);
      line.append(",\"history\":[");
      bool first = true;
      ch->history.for_each([&](const publication& p) {
        if (!first) line.push_back(',');
        first = false;
        line.push_back('[');
        append_uint(line, p.offset);
        line.push_back(',');
        line.append(std::to_string(p.time_ms));
        line.push_back(',');
        line.append(p.json);
        line.push_back(']');
      });
      line.append("]}\n");
      out << line;
      ++saved;
    }
    out.flush();
    if (!out) {
      say(log_level::error, "snapshot: write failed: " + tmp);
      return;
    }
  }
  if (std::rename(tmp.c_str(), config.snapshot_file.c_str()) != 0) {
    say(log_level::error, "snapshot: cannot rename " + tmp + " to " + config.snapshot_file);
    return;
  }
  say(log_level::info,
      "snapshot: " + std::to_string(saved) + " channels saved to " + config.snapshot_file);
}

// ---------------------------------------------------------------------------
// service

service::service(realtime_config config, log_function log)
    : impl_(std::make_unique<impl>(std::move(config), std::move(log))) {}

service::~service() {
  {
    std::lock_guard lock(impl_->housekeeping_mutex);
    impl_->housekeeping_stop = true;
  }
  impl_->housekeeping_cv.notify_all();
  if (impl_->housekeeper.joinable()) impl_->housekeeper.join();
  // The server's destructor runs on_close for the connections it still has,
  // which touch the hub: destroy it while everything else is alive.
  impl_->srv.reset();
}

std::error_code service::listen() {
  impl& s = *impl_;
  if (!s.validate()) return std::make_error_code(std::errc::invalid_argument);
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
  if (!s.load_snapshot()) return std::make_error_code(std::errc::invalid_argument);
  s.setup_metrics();
  s.build_server();
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
  {
    std::lock_guard lock(s.housekeeping_mutex);
    s.housekeeping_stop = true;
  }
  s.housekeeping_cv.notify_all();
  s.housekeeper.join();
  s.save_snapshot();
  return ec;
}

void service::shutdown() {
  if (impl_->srv) impl_->srv->shutdown();
}

const std::string& service::error_message() const noexcept { return impl_->error; }

}  // namespace switchboard::realtime
