// serve_config.cpp — the TOML file, the environment and the flags of
// `switchboard serve`, all described by one table of keys (k_keys below):
// each key's section, name, member of realtime_config, rule, help text and
// flag. The file parser, the flag handling, the help text and its defaults
// all come from that table, so they cannot disagree.
#include "serve_config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <variant>

namespace switchboard::app {

namespace {

using realtime::compression_mode;
using realtime::fsync_policy;
using realtime::namespace_options;
using realtime::overflow_policy;
using realtime::publish_policy;
using realtime::realtime_config;

// ---------------------------------------------------------------------------
// Rules

constexpr double k_unbounded = std::numeric_limits<double>::infinity();
// Longest duration accepted (about 31 years): far beyond any sane value, and
// small enough that milliseconds fit in 64 bits.
constexpr double k_max_seconds = 1e9;

// What a value must satisfy. Numbers: min..max (above min when above_min).
// Strings: non_empty; one of `choices` when there are any (enums: in the
// order of the enum's values). Integers may have a custom `accept` test
// described by `accept_text` instead of the range.
struct value_rule {
  double min = 0;
  double max = k_unbounded;
  bool above_min = false;
  bool non_empty = false;
  std::span<const std::string_view> choices = {};
  bool (*accept)(std::int64_t) = nullptr;
  std::string_view accept_text = {};
  // Integers: a word that stands for 0 ("auto"), in the file as a string.
  std::string_view zero_word = {};
};

constexpr std::string_view k_compression_names[] = {"off", "shared", "dedicated"};
constexpr std::string_view k_overflow_names[] = {"close", "drop"};
constexpr std::string_view k_publish_names[] = {"subscribers", "any", "none"};
constexpr std::string_view k_fsync_names[] = {"always", "everysec", "no"};
constexpr std::string_view k_log_formats[] = {"text", "json"};
constexpr std::string_view k_io_backends[] = {"epoll", "io_uring"};
constexpr std::string_view k_log_levels[] = {"trace", "debug", "info", "warn", "error", "off"};

// Close codes a server may send on shutdown: normal, going away, restart, or
// an application code.
bool is_shutdown_code(std::int64_t code) {
  return code == 1000 || code == 1001 || code == 1012 || (code >= 4000 && code <= 4999);
}

constexpr value_rule k_any{};
constexpr value_rule k_non_empty{.non_empty = true};
constexpr value_rule k_port{.min = 0, .max = 65535};
constexpr value_rule k_threads{.min = 1, .max = 64, .zero_word = "auto"};
constexpr value_rule k_count{.min = 0};
constexpr value_rule k_positive_count{.min = 1};
constexpr value_rule k_seconds{.min = 0, .max = k_max_seconds};
constexpr value_rule k_positive_number{.min = 0, .max = k_max_seconds, .above_min = true};
constexpr value_rule k_burst{.min = 1, .max = k_unbounded};
constexpr value_rule k_message_size{.min = 1,
                                    .max = static_cast<double>(realtime::k_max_message_size)};
constexpr value_rule k_backpressure{.min = 1,
                                    .max = static_cast<double>(realtime::k_max_backpressure)};
constexpr value_rule k_subscriptions{.min = 1,
                                     .max = static_cast<double>(realtime::k_max_subscriptions)};
constexpr value_rule k_connections{.min = 1,
                                   .max = static_cast<double>(realtime::k_max_connections)};
constexpr value_rule k_history_size{.min = 0,
                                    .max = static_cast<double>(realtime::k_max_history_size)};
constexpr value_rule k_shutdown_code{.accept = is_shutdown_code,
                                     .accept_text = "1000, 1001, 1012 or 4000 to 4999"};
constexpr value_rule k_compression{.choices = k_compression_names};
constexpr value_rule k_overflow{.choices = k_overflow_names};
constexpr value_rule k_publish{.choices = k_publish_names};
constexpr value_rule k_fsync{.choices = k_fsync_names};
constexpr value_rule k_log_format{.choices = k_log_formats};
constexpr value_rule k_io_backend{.choices = k_io_backends};
constexpr std::string_view k_events_stores[] = {"auto", "file", "redis"};
constexpr value_rule k_events_store{.choices = k_events_stores};
constexpr value_rule k_log_level{.choices = k_log_levels};
constexpr std::string_view k_hook_outcomes[] = {"deny", "allow"};
constexpr value_rule k_hook_outcome{.choices = k_hook_outcomes};

// ---------------------------------------------------------------------------
// The keys

template <class S>
using member = std::variant<std::string S::*, bool S::*, std::uint16_t S::*, std::size_t S::*,
                            double S::*, std::vector<std::string> S::*, compression_mode S::*,
                            overflow_policy S::*, publish_policy S::*, fsync_policy S::*>;

template <class M>
struct member_traits;
template <class S, class T>
struct member_traits<T S::*> {
  using type = T;
};

template <class S>
struct key_spec {
  std::string_view section;  // "server"; "namespaces.NAME" for namespace keys
  std::string_view key;
  member<S> field;
  value_rule rule;
  std::string_view help;
  std::string_view flag = {};     // "--port"; empty: only in the file
  std::string_view metavar = {};  // the value's name in --help
  std::string_view env = {};      // environment variable between file and flags
};

using config_key = key_spec<realtime_config>;
using namespace_key = key_spec<namespace_options>;

const config_key k_keys[] = {
    // [server]
    {"server", "host", &realtime_config::host, k_non_empty,
     "IPv4 or IPv6 address to listen on; a name (localhost) is resolved at start, IPv4 first",
     "--host", "HOST"},
    {"server", "port", &realtime_config::port, k_port, "TCP port; 0 picks a free one", "--port",
     "PORT"},
    {"server", "threads", &realtime_config::threads, k_threads,
     "event-loop threads, one SO_REUSEPORT listener each; \"auto\": one per usable CPU "
     "(affinity mask and cgroup quota)",
     "--threads", "N|auto"},
    {"server", "io_backend", &realtime_config::io_backend, k_io_backend,
     "what the event loops wait for I/O with; io_uring falls back to epoll (one log line) "
     "where the kernel refuses it",
     "--io-backend", "epoll|io_uring"},
    {"server", "allowed_origins", &realtime_config::allowed_origins, k_non_empty,
     "an Origin allowed to open /ws, scheme://host[:port] in lower case, "
     "https://*.example.com for subdomains, or * for any (repeat for more; replaces the file's "
     "list); none: same-origin only; a request without Origin (not a browser) is always allowed",
     "--allowed-origin", "ORIGIN"},
    {"server", "max_connections", &realtime_config::max_connections, k_connections,
     "WebSocket connections at once; more are refused", "--max-connections", "N"},
    {"server", "trusted_proxies", &realtime_config::trusted_proxies, k_non_empty,
     "address or CIDR range (10.0.0.0/8) of reverse proxies whose X-Forwarded-For names the "
     "client (repeat for more); none: the header is ignored",
     "--trusted-proxy", "ADDRESS"},
    {"server", "demo", &realtime_config::demo, k_any,
     "do not serve the demo chat page at / and the browser SDK at /switchboard.js", "--no-demo"},
    {"server", "compression", &realtime_config::compression, k_compression,
     "permessage-deflate: off, shared (no context takeover, no zlib memory per connection) or "
     "dedicated (context takeover: better ratio, zlib memory per connection)",
     "--compression", "MODE"},
    {"server", "tls_cert", &realtime_config::tls_cert, k_any,
     "PEM certificate chain, leaf first; with tls_key the port serves https:// and wss:// only",
     "--tls-cert", "FILE"},
    {"server", "tls_key", &realtime_config::tls_key, k_any,
     "PEM private key (unencrypted) of tls_cert", "--tls-key", "FILE"},
    // [auth]
    {"auth", "jwt_secret", &realtime_config::jwt_secret, k_any,
     "HS256 key that signs client tokens, at least 32 bytes; empty: tokens are refused (flags "
     "show in ps: prefer the environment)",
     "--jwt-secret", "SECRET", k_env_jwt_secret},
    {"auth", "allow_anonymous", &realtime_config::allow_anonymous, k_any,
     "clients without a token may connect, with no user id", "--allow-anonymous"},
    {"auth", "connect_timeout", &realtime_config::connect_timeout, k_positive_number,
     "seconds a client without a token in its request has to send `connect` (else close 4001)"},
    {"auth", "cookie_name", &realtime_config::cookie_name, k_non_empty,
     "cookie that may carry the token"},
    {"auth", "allow_token_in_url", &realtime_config::allow_token_in_url, k_any,
     "accept the token in the ?token= query parameter (URLs end up in logs)"},
    {"auth", "refresh_lead", &realtime_config::refresh_lead, k_seconds,
     "seconds before a token's exp when the server pushes `refresh` (at exp, without a "
     "`refresh` command carrying a new token, the connection is closed with 4002)"},
    // [api]
    {"api", "key", &realtime_config::api_key, k_any,
     "X-API-Key that /api/* requires; empty: the API answers 403", "--api-key", "KEY",
     k_env_api_key},
    // [metrics]
    {"metrics", "key", &realtime_config::metrics_key, k_any,
     "bearer token GET /metrics requires (Authorization: Bearer KEY); empty: /metrics is open",
     "--metrics-key", "KEY", k_env_metrics_key},
    {"metrics", "listen", &realtime_config::metrics_listen, k_any,
     "HOST:PORT (127.0.0.1:9100) where GET /metrics is served instead of the main port, over "
     "plain HTTP; empty: on the main port",
     "--metrics-listen", "ADDRESS"},
    // [admin]
    {"admin", "enabled", &realtime_config::admin_enabled, k_any,
     "serve the live dashboard at /admin (docs/admin.md)", "--admin"},
    {"admin", "password", &realtime_config::admin_password, k_any,
     "HTTP Basic password of /admin (any user name); empty: the api.key"},
    {"admin", "host", &realtime_config::admin_host, k_any,
     "address of the dashboard's own listener (then not on the main port); empty: the main "
     "listener"},
    {"admin", "port", &realtime_config::admin_port, k_port,
     "port of the dashboard's own listener (with admin.host; 0 picks a free one)"},
    // [limits]
    {"limits", "max_message_size", &realtime_config::max_message_size, k_message_size,
     "largest inbound WebSocket message in bytes; larger closes with 1009", "--max-message-size",
     "BYTES"},
    {"limits", "max_publication_size", &realtime_config::max_publication_size, k_message_size,
     "largest `data` of one publication in bytes (error 413); at most max_message_size"},
    {"limits", "command_rate", &realtime_config::command_rate, k_positive_number,
     "commands per second that refill a connection's rate-limit bucket"},
    {"limits", "command_burst", &realtime_config::command_burst, k_burst,
     "size of that bucket: commands a connection may send at once"},
    {"limits", "rate_limit_close", &realtime_config::rate_limit_close, k_positive_count,
     "commands refused in a row (error 429) before the connection is closed with 1008"},
    {"limits", "max_subscriptions", &realtime_config::max_subscriptions, k_subscriptions,
     "channels one connection may subscribe to (error 429 past it)"},
    {"limits", "max_connections_per_ip", &realtime_config::max_connections_per_ip, k_count,
     "open WebSocket connections per client address (429 past it); 0: no limit"},
    {"limits", "handshake_rate", &realtime_config::handshake_rate, k_seconds,
     "WebSocket upgrades per second per client address (429 past it); 0: no limit"},
    {"limits", "handshake_burst", &realtime_config::handshake_burst, k_burst,
     "upgrades one client address may make at once before handshake_rate applies"},
    {"limits", "max_backpressure", &realtime_config::max_backpressure, k_backpressure,
     "bytes queued for a slow reader before backpressure_policy applies"},
    {"limits", "backpressure_policy", &realtime_config::backpressure_policy, k_overflow,
     "over max_backpressure: close (1008) or drop the messages that do not fit"},
    {"limits", "max_channels", &realtime_config::max_channels, k_positive_count,
     "channels with subscribers, history or presence at once over the server; a new one past "
     "it gets error 503"},
    {"limits", "history_memory", &realtime_config::history_memory, k_positive_count,
     "bytes of kept publications over every channel; past it the oldest are dropped first"},
    {"limits", "max_outbound_memory", &realtime_config::max_outbound_memory, k_count,
     "bytes queued for slow readers over all connections (0: no limit); past it the largest "
     "queues go first, as backpressure_policy says"},
    // [keepalive]
    {"keepalive", "ping_interval", &realtime_config::ping_interval, k_seconds,
     "seconds of silence before the server pings a connection (0: never)", "--ping-interval",
     "SECONDS"},
    {"keepalive", "pong_timeout", &realtime_config::pong_timeout, k_seconds,
     "seconds a ping may go unanswered before closing with 1008 (0: wait forever)",
     "--pong-timeout", "SECONDS"},
    // [shutdown]
    {"shutdown", "code", &realtime_config::shutdown_code, k_shutdown_code,
     "close code sent to every connection on SIGTERM/SIGINT: 1012 restart, 1001 going away, "
     "1000 or 4000-4999"},
    {"shutdown", "timeout", &realtime_config::shutdown_timeout, k_seconds,
     "seconds to wait for clients' close frames on SIGTERM/SIGINT", "--shutdown-timeout",
     "SECONDS"},
    // [history]
    {"history", "snapshot_file", &realtime_config::snapshot_file, k_any,
     "history is written here on shutdown and read back at start; empty: it does not survive "
     "a restart",
     "--snapshot-file", "PATH"},
    {"history", "journal", &realtime_config::journal_file, k_any,
     "append-only journal of publications, replayed over snapshot_file at start so a crash "
     "loses nothing acknowledged (see journal_fsync); empty: no journal",
     "--journal", "PATH"},
    {"history", "journal_fsync", &realtime_config::journal_fsync, k_fsync,
     "when the journal is fsynced: always (before each publish is acknowledged), everysec or "
     "no (the kernel decides)"},
    // [broker]
    {"broker", "urls", &realtime_config::broker_urls, k_non_empty,
     "the broker: memory (the default: this process alone) or a Redis URL, "
     "redis://[:password@]host:port[/db] or unix:///path/redis.sock; repeat for shards (every "
     "node lists the same URLs); replaces the file's list",
     "--broker", "URL"},
    {"broker", "key_prefix", &realtime_config::broker_key_prefix, k_any,
     "prefix of every Redis key and pub/sub channel, so deployments can share a Redis"},
    {"broker", "presence_lease", &realtime_config::presence_lease, k_positive_number,
     "seconds a client's presence entry lives in Redis without a refresh (a dead node's clients "
     "leave within it)"},
    {"broker", "presence_refresh", &realtime_config::presence_refresh, k_positive_number,
     "seconds between a node's presence refreshes; below presence_lease"},
    {"broker", "packed_publish", &realtime_config::broker_packed_publish, k_any,
     "several publications of one channel in one PUBLISH (false: one each, for a rolling "
     "upgrade from a version that reads only that form)"},
    // [sse]
    {"sse", "enabled", &realtime_config::sse_enabled, k_any,
     "serve the HTTP transports, GET /sse and /rt/session (false: they answer 503)"},
    {"sse", "heartbeat", &realtime_config::sse_heartbeat, k_positive_number,
     "seconds between heartbeat comments on an idle SSE stream (below proxies' idle timeouts)"},
    {"sse", "retry", &realtime_config::sse_retry, k_positive_number,
     "reconnect hint of SSE streams in seconds; each stream gets a value in [retry, 2 retry)"},
    {"sse", "session_idle_timeout", &realtime_config::sse_session_idle_timeout,
     k_positive_number, "seconds an HTTP session lives with no stream or poll attached"},
    {"sse", "poll_timeout", &realtime_config::sse_poll_timeout, k_positive_number,
     "seconds a long-poll is held when there is nothing to send"},
    {"sse", "max_buffered", &realtime_config::sse_max_buffered, k_positive_count,
     "bytes an HTTP session keeps for its downstream until acknowledged; past it the session is "
     "closed as a slow consumer"},
    // [log]
    {"log", "format", &realtime_config::log_format, k_log_format,
     "log lines on stderr: text or json (one object per line)", "--log-format", "FORMAT"},
    {"log", "level", &realtime_config::log_level, k_log_level,
     "least severe level logged: trace, debug, info, warn, error or off", "--log-level", "LEVEL"},
    // [hooks] (docs/hooks.md)
    {"hooks", "connect_url", &realtime_config::hooks_connect_url, k_any,
     "proxy hook asked when a client sends connect without a token (http:// or https://); "
     "empty: off"},
    {"hooks", "connect_always", &realtime_config::hooks_connect_always, k_any,
     "ask the connect hook for every client, token or not"},
    {"hooks", "connect_on_error", &realtime_config::hooks_connect_on_error, k_hook_outcome,
     "when the connect hook fails (timeout, backend down, bad answer): deny (error 503) or "
     "allow (anonymous)"},
    {"hooks", "refresh_url", &realtime_config::hooks_refresh_url, k_any,
     "proxy hook asked when a client sends refresh without a token; empty: off"},
    {"hooks", "refresh_on_error", &realtime_config::hooks_refresh_on_error, k_hook_outcome,
     "when the refresh hook fails: deny (error 503) or allow (the connection keeps its expiry)"},
    {"hooks", "rpc_url", &realtime_config::hooks_rpc_url, k_any,
     "proxy hook that answers the rpc command; empty: rpc is refused (501)"},
    {"hooks", "secret", &realtime_config::hooks_secret, k_any,
     "key of the HMAC-SHA256 signature on every hook request (X-Switchboard-Signature); "
     "empty: unsigned"},
    {"hooks", "timeout", &realtime_config::hooks_timeout, k_positive_number,
     "seconds a hook call may take, connect to last byte"},
    {"hooks", "max_concurrency", &realtime_config::hooks_max_concurrency, k_positive_count,
     "hook requests on the wire per backend at once; more wait their turn"},
    {"hooks", "forward_headers", &realtime_config::hooks_forward_headers, k_non_empty,
     "headers of the client's upgrade request passed on to every hook call"},
    {"hooks", "tls_ca_file", &realtime_config::hooks_tls_ca_file, k_any,
     "PEM trust anchors for https:// hooks; empty: the system store"},
    // [events] (docs/hooks.md, "Lifecycle events")
    {"events", "url", &realtime_config::events_url, k_any,
     "webhook that receives lifecycle events (connect, disconnect, subscribe, unsubscribe, "
     "presence.join, presence.leave) at least once, signed with hooks.secret; empty: off"},
    {"events", "outbox", &realtime_config::events_outbox, k_any,
     "append-only file that holds events until the webhook acknowledged them (needed with "
     "url)"},
    {"events", "batch", &realtime_config::events_batch, k_positive_count,
     "events per POST at most"},
    {"events", "retry_max", &realtime_config::events_retry_max, k_positive_number,
     "longest wait in seconds between two tries of a batch the webhook did not acknowledge"},
    {"events", "store", &realtime_config::events_store, k_events_store,
     "where events wait for the webhook: file (this node's outbox sends them), redis (a Redis "
     "stream one node at a time sends; Redis broker only), auto (redis with the Redis broker)"},
    {"events", "stream_max", &realtime_config::events_stream_max, k_positive_count,
     "events the Redis stream may hold (webhook down); past it new events wait in each node's "
     "outbox file"},
    {"events", "memory_window", &realtime_config::events_memory_window, k_positive_count,
     "unacknowledged events held in memory; later ones wait in the outbox file and are read "
     "back from it as the webhook catches up"},
    // [http]
    {"http", "idle_timeout", &realtime_config::http_idle_timeout, k_seconds,
     "seconds a kept-alive HTTP connection (API, /metrics, /sse) may wait for its next request "
     "(0: no limit)"},
    {"http", "max_requests", &realtime_config::http_max_requests, k_count,
     "HTTP requests one connection may carry before the server closes it (1: no keep-alive; "
     "0: no limit)"},
};

const namespace_key k_namespace_keys[] = {
    {"namespaces.NAME", "history_size", &namespace_options::history_size, k_history_size,
     "publications kept per channel for history and recovery (0: none)"},
    {"namespaces.NAME", "history_ttl", &namespace_options::history_ttl, k_seconds,
     "seconds a publication is kept (0: until newer ones push it out)"},
    {"namespaces.NAME", "presence", &namespace_options::presence, k_any,
     "track who is subscribed; push joins and leaves (coalesced, one push per tick)"},
    {"namespaces.NAME", "presence_max_members", &namespace_options::presence_max_members,
     k_count,
     "past this many members a channel's presence reports counts only (no member list, no "
     "joins and leaves)"},
    {"namespaces.NAME", "publish", &namespace_options::publish, k_publish,
     "who may publish from a WebSocket: subscribers, any (allowed by the token) or none (only "
     "the HTTP API)"},
    {"namespaces.NAME", "subscribe_hook", &namespace_options::subscribe_hook, k_any,
     "proxy hook asked before a subscribe is let through (docs/hooks.md); empty: off"},
    {"namespaces.NAME", "subscribe_hook_on_error", &namespace_options::subscribe_hook_on_error,
     k_hook_outcome, "when the subscribe hook fails: deny (error 503) or allow"},
    {"namespaces.NAME", "publish_hook", &namespace_options::publish_hook, k_any,
     "proxy hook asked before a publish from a WebSocket; it may rewrite the data; empty: off"},
    {"namespaces.NAME", "publish_hook_on_error", &namespace_options::publish_hook_on_error,
     k_hook_outcome, "when the publish hook fails: deny (error 503) or allow"},
};

constexpr std::string_view k_sections[] = {"server",  "auth",    "api",     "metrics", "limits",
                                           "keepalive", "shutdown", "history", "broker", "log",
                                           "hooks", "events", "namespaces", "admin", "sse", "http"};

// ---------------------------------------------------------------------------
// Text helpers

std::string toml_quoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + '"';
}

// 25 -> "25", 0.5 -> "0.5": durations as people write them.
std::string format_number(double value) {
  if (std::isfinite(value) && value == std::floor(value) && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<std::int64_t>(value));
  }
  std::ostringstream out;
  out.precision(15);
  out << value;
  return out.str();
}

std::string join_choices(std::span<const std::string_view> choices) {
  std::string out;
  for (std::size_t i = 0; i < choices.size(); ++i) {
    if (i > 0) out += i + 1 == choices.size() ? " or " : ", ";
    out += toml_quoted(choices[i]);
  }
  return out;
}

// Edit distance, to suggest the key a typo meant.
std::size_t distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// "; did you mean port?" when one candidate is close, else the full list.
std::string suggestion(std::string_view typed, const std::vector<std::string_view>& candidates,
                       std::string_view what) {
  std::string_view best;
  std::size_t best_distance = 3;  // more than 2 edits away is not a typo
  for (std::string_view c : candidates) {
    const std::size_t d = distance(typed, c);
    if (d < best_distance) best = c, best_distance = d;
  }
  if (!best.empty()) return "; did you mean " + std::string(best) + "?";
  std::string out = "; " + std::string(what) + ": ";
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    out += (i > 0 ? ", " : "") + std::string(candidates[i]);
  }
  return out;
}

std::string node_type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    default:
      return "nothing";
  }
}

// ---------------------------------------------------------------------------
// Checking values (shared by the file and the flags)

// A value that breaks its rule. `at` points into the file when the culprit is
// not the key's value itself (an element of an array).
struct bad_value {
  std::string reason;
  const toml::source_region* at = nullptr;
};

// An error with its position already in front.
struct located_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string where(const std::string& file, const toml::source_region& region) {
  return file + ":" + std::to_string(region.begin.line) + ":" + std::to_string(region.begin.column);
}

std::string range_text(const value_rule& rule) {
  if (rule.max == k_unbounded) {
    if (rule.above_min) return "must be more than " + format_number(rule.min);
    if (rule.min == 0) return "must not be negative";
    return "must be at least " + format_number(rule.min);
  }
  if (rule.above_min) {
    return "must be more than " + format_number(rule.min) + " and at most " +
           format_number(rule.max);
  }
  return "must be from " + format_number(rule.min) + " to " + format_number(rule.max);
}

std::int64_t check_integer(const value_rule& rule, std::int64_t value) {
  if (rule.accept) {
    if (!rule.accept(value)) {
      throw bad_value{"must be " + std::string(rule.accept_text) + ", got " +
                      std::to_string(value)};
    }
    return value;
  }
  const auto v = static_cast<double>(value);
  if (v < rule.min || v > rule.max || (rule.above_min && v == rule.min)) {
    throw bad_value{range_text(rule) + ", got " + std::to_string(value)};
  }
  return value;
}

double check_number(const value_rule& rule, double value) {
  if (!std::isfinite(value)) throw bad_value{"must be a finite number"};
  if (value < rule.min || value > rule.max || (rule.above_min && value == rule.min)) {
    throw bad_value{range_text(rule) + ", got " + format_number(value)};
  }
  return value;
}

std::string check_text(const value_rule& rule, std::string_view value) {
  if (rule.non_empty && value.empty()) throw bad_value{"must not be empty"};
  if (!rule.choices.empty() &&
      std::find(rule.choices.begin(), rule.choices.end(), value) == rule.choices.end()) {
    throw bad_value{"must be " + join_choices(rule.choices) + ", got " + toml_quoted(value)};
  }
  return std::string(value);
}

std::size_t choice_index(const value_rule& rule, std::string_view value) {
  check_text(rule, value);
  return static_cast<std::size_t>(std::find(rule.choices.begin(), rule.choices.end(), value) -
                                  rule.choices.begin());
}

bad_value wrong_type(std::string_view expected, const toml::node& node) {
  return bad_value{"expected " + std::string(expected) + ", got " + node_type_name(node)};
}

// One value of type T from the file.
template <class T>
T read_node(const toml::node& node, const value_rule& rule) {
  if constexpr (std::is_same_v<T, bool>) {
    if (const auto* v = node.as_boolean()) return v->get();
    throw wrong_type("true or false", node);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (const auto* v = node.as_string()) return check_text(rule, v->get());
    throw wrong_type("a string", node);
  } else if constexpr (std::is_same_v<T, double>) {
    if (const auto* v = node.as_integer()) return check_number(rule, static_cast<double>(v->get()));
    if (const auto* v = node.as_floating_point()) return check_number(rule, v->get());
    throw wrong_type("a number", node);
  } else if constexpr (std::is_integral_v<T>) {
    if (const auto* v = node.as_integer()) return static_cast<T>(check_integer(rule, v->get()));
    if (const auto* v = node.as_string(); v && !rule.zero_word.empty()) {
      if (v->get() == rule.zero_word) return T{0};
      throw bad_value{"expected an integer or \"" + std::string(rule.zero_word) + "\", got " +
                      toml_quoted(v->get())};
    }
    throw wrong_type(rule.zero_word.empty() ? "an integer"
                                            : "an integer or \"" + std::string(rule.zero_word) + "\"",
                     node);
  } else if constexpr (std::is_enum_v<T>) {
    if (const auto* v = node.as_string()) return static_cast<T>(choice_index(rule, v->get()));
    throw wrong_type("a string (" + join_choices(rule.choices) + ")", node);
  } else {
    static_assert(std::is_same_v<T, std::vector<std::string>>);
    const auto* array = node.as_array();
    if (!array) throw wrong_type("an array of strings", node);
    T out;
    for (const toml::node& element : *array) {
      const auto* text = element.as_string();
      if (!text) {
        throw bad_value{"expected strings in the array, got " + node_type_name(element),
                        &element.source()};
      }
      try {
        out.push_back(check_text(rule, text->get()));
      } catch (bad_value& e) {
        e.at = &element.source();
        throw;
      }
    }
    return out;
  }
}

template <class S>
void set_from_node(const key_spec<S>& spec, const toml::node& node, S& target,
                   const std::string& name, const std::string& file) {
  try {
    std::visit(
        [&](auto field) {
          using T = typename member_traits<decltype(field)>::type;
          target.*field = read_node<T>(node, spec.rule);
        },
        spec.field);
  } catch (const bad_value& e) {
    throw located_error(where(file, e.at ? *e.at : node.source()) + ": " + name + ": " + e.reason);
  }
}

std::int64_t parse_integer(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) throw bad_value{"out of range: " + std::string(text)};
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) {
    throw bad_value{"expected an integer, got " + toml_quoted(text)};
  }
  return value;
}

double parse_number(std::string_view text) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) {
    throw bad_value{"expected a number, got " + toml_quoted(text)};
  }
  return value;
}

// One value of type T from a flag: its values as typed.
template <class T>
T read_flag(const config_key& spec, const std::vector<std::string>& values) {
  if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    T out;
    for (const std::string& v : values) out.push_back(check_text(spec.rule, v));
    return out;
  } else {
    const std::string text = values.empty() ? "true" : values.back();
    if constexpr (std::is_same_v<T, bool>) {
      // A switch: --allow-anonymous sets true, --no-demo sets false.
      return (text == "true") != spec.flag.starts_with("--no-");
    } else if constexpr (std::is_same_v<T, std::string>) {
      return check_text(spec.rule, text);
    } else if constexpr (std::is_same_v<T, double>) {
      return check_number(spec.rule, parse_number(text));
    } else if constexpr (std::is_integral_v<T>) {
      if (!spec.rule.zero_word.empty() && text == spec.rule.zero_word) return T{0};
      return static_cast<T>(check_integer(spec.rule, parse_integer(text)));
    } else {
      static_assert(std::is_enum_v<T>);
      return static_cast<T>(choice_index(spec.rule, text));
    }
  }
}

void set_from_values(const config_key& spec, const std::vector<std::string>& values,
                     realtime_config& config) {
  std::visit(
      [&](auto field) {
        using T = typename member_traits<decltype(field)>::type;
        config.*field = read_flag<T>(spec, values);
      },
      spec.field);
}

// The default of a key, as it would be written in TOML.
template <class S>
const S& defaults_of() {
  static const S defaults{};
  return defaults;
}

template <class S>
std::string default_text(const key_spec<S>& spec) {
  const S& defaults = defaults_of<S>();
  return std::visit(
      [&](auto field) -> std::string {
        using T = typename member_traits<decltype(field)>::type;
        const T& value = defaults.*field;
        if constexpr (std::is_same_v<T, bool>) {
          return value ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::string>) {
          return toml_quoted(value);
        } else if constexpr (std::is_same_v<T, double>) {
          return format_number(value);
        } else if constexpr (std::is_integral_v<T>) {
          if (value == 0 && !spec.rule.zero_word.empty()) return toml_quoted(spec.rule.zero_word);
          return std::to_string(value);
        } else if constexpr (std::is_enum_v<T>) {
          return toml_quoted(spec.rule.choices[static_cast<std::size_t>(value)]);
        } else {
          std::string out = "[";
          for (std::size_t i = 0; i < value.size(); ++i)
            out += (i ? ", " : "") + toml_quoted(value[i]);
          return out + "]";
        }
      },
      spec.field);
}

// ---------------------------------------------------------------------------
// The file

const config_key* find_key(std::string_view section, std::string_view key) {
  for (const config_key& spec : k_keys) {
    if (spec.section == section && spec.key == key) return &spec;
  }
  return nullptr;
}

std::vector<std::string_view> keys_of(std::string_view section) {
  std::vector<std::string_view> out;
  for (const config_key& spec : k_keys) {
    if (spec.section == section) out.push_back(spec.key);
  }
  return out;
}

void load_namespaces(const toml::key& section_key, const toml::node& node, realtime_config& config,
                     const std::string& file) {
  const toml::table* table = node.as_table();
  if (!table) {
    throw located_error(where(file, section_key.source()) +
                        ": namespaces must be [namespaces.NAME] tables, got " +
                        node_type_name(node));
  }
  std::vector<std::string_view> ns_keys;
  for (const namespace_key& spec : k_namespace_keys) ns_keys.push_back(spec.key);
  for (auto&& [name, value] : *table) {
    const std::string qualified = "namespaces." + std::string(name.str());
    if (!realtime::valid_namespace_name(name.str())) {
      throw located_error(where(file, name.source()) + ": " + qualified +
                          ": a namespace name is 1 to 126 of A-Z a-z 0-9 _ - . @ =");
    }
    const toml::table* ns_table = value.as_table();
    if (!ns_table) {
      throw located_error(where(file, name.source()) + ": " + qualified + " must be a table ([" +
                          qualified + "]), got " + node_type_name(value));
    }
    namespace_options options;
    for (auto&& [key, key_value] : *ns_table) {
      const std::string_view key_name = key.str();  // (clang 14 cannot capture bindings)
      const auto spec = std::find_if(std::begin(k_namespace_keys), std::end(k_namespace_keys),
                                     [&](const namespace_key& s) { return s.key == key_name; });
      if (spec == std::end(k_namespace_keys)) {
        throw located_error(where(file, key.source()) + ": unknown key " + qualified + "." +
                            std::string(key.str()) +
                            suggestion(key.str(), ns_keys, "keys of a namespace"));
      }
      set_from_node(*spec, key_value, options, qualified + "." + std::string(key.str()), file);
    }
    config.namespaces.insert_or_assign(std::string(name.str()), options);
  }
}

void load_root(const toml::table& root, realtime_config& config, const std::string& file) {
  const std::vector<std::string_view> sections(std::begin(k_sections), std::end(k_sections));
  for (auto&& [section_key, section] : root) {
    const std::string_view name = section_key.str();
    if (name == "namespaces") {
      load_namespaces(section_key, section, config, file);
      continue;
    }
    if (std::find(sections.begin(), sections.end(), name) == sections.end()) {
      // A key at the top level that belongs in a section, e.g. `port = 80`.
      for (const config_key& spec : k_keys) {
        if (spec.key == name && !section.is_table()) {
          throw located_error(where(file, section_key.source()) + ": " + std::string(name) +
                              " belongs in a section: put it under [" + std::string(spec.section) +
                              "]");
        }
      }
      throw located_error(where(file, section_key.source()) + ": unknown section [" +
                          std::string(name) + "]" + suggestion(name, sections, "sections"));
    }
    const toml::table* table = section.as_table();
    if (!table) {
      throw located_error(where(file, section_key.source()) + ": " + std::string(name) +
                          " must be a table ([" + std::string(name) + "]), got " +
                          node_type_name(section));
    }
    for (auto&& [key, value] : *table) {
      const config_key* spec = find_key(name, key.str());
      const std::string qualified = std::string(name) + "." + std::string(key.str());
      if (!spec) {
        throw located_error(
            where(file, key.source()) + ": unknown key " + qualified +
            suggestion(key.str(), keys_of(name), "keys of [" + std::string(name) + "]"));
      }
      set_from_node(*spec, value, config, qualified, file);
    }
  }
}

// ---------------------------------------------------------------------------
// --help

std::string section_of(const config_key& spec) {
  return std::string(spec.section) + "." + std::string(spec.key);
}

std::string flag_help(const config_key& spec) {
  std::string text = std::string(spec.help) + "  [" + section_of(spec) + " = " + default_text(spec);
  if (!spec.env.empty()) text += "; env " + std::string(spec.env);
  return text + "]";
}

std::string help_footer() {
  std::vector<std::pair<std::string, std::string_view>> rows;  // "key = default", help
  for (const config_key& spec : k_keys) {
    if (spec.flag.empty())
      rows.emplace_back(section_of(spec) + " = " + default_text(spec), spec.help);
  }
  for (const namespace_key& spec : k_namespace_keys) {
    rows.emplace_back(
        std::string(spec.section) + "." + std::string(spec.key) + " = " + default_text(spec),
        spec.help);
  }
  std::size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.first.size());

  std::string namespaces;
  for (const auto& [name, options] : realtime_config{}.namespaces) {
    namespaces += (namespaces.empty() ? "" : ", ") + name;
  }
  std::string out = "Keys only in the config file (TOML key = default):\n";
  for (const auto& [key, help] : rows) {
    out += "  " + key + std::string(width - key.size() + 2, ' ') + std::string(help) + "\n";
  }
  out += "\nBuilt-in namespaces: " + namespaces +
         ". Each [namespaces.NAME] table adds one; declaring [namespaces.default] replaces the "
         "built-in one.\n"
         "Precedence: built-in default < --config FILE < environment (" +
         std::string(k_env_jwt_secret) + ", " + std::string(k_env_api_key) + ", " +
         std::string(k_env_metrics_key) +
         ") < flags.\n"
         "Wire protocol: docs/protocol.md. Every key, with an annotated example file: "
         "docs/configuration.md.";
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------

std::string load_config_file(const std::string& path, realtime_config& config) {
  // toml++ only says that it could not open the file; say why.
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    std::fclose(f);
  } else {
    return path + ": cannot open the config file: " + std::strerror(errno);
  }
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return path + ": is a directory, not a config file";
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) return path + ": cannot read the config file";
  return load_config_string(std::move(text).str(), path, config);
}

std::string load_config_string(std::string_view text, const std::string& origin,
                               realtime_config& config) {
  try {
    const toml::table root = toml::parse(text, origin);
    load_root(root, config, origin);
  } catch (const toml::parse_error& e) {
    if (e.source().begin.line == 0) return origin + ": " + std::string(e.description());
    return where(origin, e.source()) + ": " + std::string(e.description());
  } catch (const located_error& e) {
    return e.what();
  }
  return {};
}

void add_serve_options(CLI::App& cmd, serve_flags& flags) {
  cmd.add_option("-c,--config", flags.config_file,
                 "TOML configuration file (docs/configuration.md); the flags below override it")
      ->type_name("FILE");
  for (const config_key& spec : k_keys) {
    if (spec.flag.empty()) continue;
    const std::string name(spec.flag);
    const std::string group = "[" + std::string(spec.section) + "]";
    CLI::Option* option = nullptr;
    if (std::holds_alternative<bool realtime_config::*>(spec.field)) {
      option = cmd.add_flag_function(
          name,
          [&flags, name](std::int64_t count) {
            flags.given.push_back({name, {count > 0 ? "true" : "false"}});
          },
          flag_help(spec));
    } else if (std::holds_alternative<std::vector<std::string> realtime_config::*>(spec.field)) {
      option = cmd.add_option_function<std::vector<std::string>>(
          name,
          [&flags, name](const std::vector<std::string>& values) {
            flags.given.push_back({name, values});
          },
          flag_help(spec));
      option->type_name(std::string(spec.metavar))->allow_extra_args(false);
    } else {
      option = cmd.add_option_function<std::string>(
          name,
          [&flags, name](const std::string& value) {
            flags.given.push_back({name, {value}});
          },
          flag_help(spec));
      option->type_name(std::string(spec.metavar))
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    }
    option->group(group);
  }
  cmd.footer(help_footer());
}

std::string build_serve_config(const serve_flags& flags, realtime_config& config,
                               const env_lookup& env) {
  config = realtime_config{};
  if (!flags.config_file.empty()) {
    if (std::string error = load_config_file(flags.config_file, config); !error.empty()) {
      return error;
    }
  }
  for (const config_key& spec : k_keys) {
    if (spec.env.empty()) continue;
    const std::string var(spec.env);
    const char* value = env ? env(var.c_str()) : std::getenv(var.c_str());
    // Set but empty counts as unset: `VAR= switchboard serve` keeps the file's value.
    if (value == nullptr || *value == '\0') continue;
    try {
      set_from_values(spec, {value}, config);
    } catch (const bad_value& e) {
      return var + ": " + e.reason;
    }
  }
  for (const given_flag& flag : flags.given) {
    const auto spec = std::find_if(std::begin(k_keys), std::end(k_keys),
                                   [&](const config_key& s) { return s.flag == flag.name; });
    if (spec == std::end(k_keys)) return flag.name + ": not a flag of switchboard serve";
    try {
      set_from_values(*spec, flag.values, config);
    } catch (const bad_value& e) {
      return flag.name + ": " + e.reason;
    }
  }
  if (std::string error = realtime::check_config(config); !error.empty()) return error;
  // "localhost" used to reach listen() and fail there with exit 1 "Invalid argument".
  return realtime::resolve_host(config);
}

}  // namespace switchboard::app
