// switchboard/realtime/config.hpp — everything `switchboard serve` can be
// told, with its default. The TOML file and the command-line flags of
// `switchboard serve` fill this struct (apps/switchboard/serve_config.cpp);
// docs/protocol.md says what each option means on the wire.
//
// Durations are seconds (double) here because that is how people write them
// in a config file; the service converts them.
//
// Thread-safety: plain values; the service copies them at construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>
#include <switchboard/realtime/export.hpp>

namespace switchboard::realtime {

// Who may publish on a namespace's channels from a WebSocket.
enum class publish_policy : std::uint8_t {
  subscribers,  // only connections subscribed to the channel (the default)
  any,          // any connection allowed to use the channel
  none,         // nobody: only the HTTP API publishes
};

// Options of one namespace (the part of a channel name before the first ':').
struct namespace_options {
  // Publications kept per channel for history and recovery (0: none).
  std::size_t history_size = 100;
  // Seconds a publication is kept (0: until newer ones push it out).
  double history_ttl = 300;
  // Track who is subscribed; push joins and leaves (coalesced per tick).
  bool presence = true;
  publish_policy publish = publish_policy::subscribers;
  // Past this many members a channel's presence reports counts only: the
  // `presence` reply gives the count without the list, and subscribers get a
  // count push at most once a second instead of each join and leave. Bounds
  // the N x N fan-out of a crowded channel (docs/protocol.md, "Presence").
  std::size_t presence_max_members = 1000;
  // Proxy hooks of the namespace (docs/hooks.md): URLs asked before a
  // subscribe / a publish is let through ("": none), and what a failed call
  // (timeout, backend down, bad answer) means: "deny" (error 503) or "allow".
  std::string subscribe_hook = {};
  std::string subscribe_hook_on_error = "deny";
  std::string publish_hook = {};
  std::string publish_hook_on_error = "deny";
};

// Maxima: values past them are refused at start (exit 2). Each is far above
// what a deployment needs and low enough that one setting alone cannot make
// the process allocate without bound.
inline constexpr std::size_t k_max_history_size = 1'000'000;           // per channel
inline constexpr std::size_t k_max_message_size = 64 * 1024 * 1024;    // 64 MiB
inline constexpr std::size_t k_max_backpressure = 1024 * 1024 * 1024;  // 1 GiB per connection
inline constexpr std::size_t k_max_subscriptions = 100'000;            // per connection
inline constexpr std::size_t k_max_connections = 10'000'000;
// Shortest HS256 secret accepted: RFC 7518 §3.2 asks for a key of at least
// the hash's size (256 bits); a shorter one can be brute-forced offline from
// any token.
inline constexpr std::size_t k_min_jwt_secret = 32;

// The name of the namespace of channels whose name has no ':'.
inline constexpr const char* k_default_namespace = "default";

enum class compression_mode : std::uint8_t { off, shared, dedicated };
enum class overflow_policy : std::uint8_t { close, drop };
// When the journal is fsynced (like Redis's appendfsync): before each
// publication is delivered and acknowledged, about once a second, or when
// the kernel decides. docs/durability.md says what each survives.
enum class fsync_policy : std::uint8_t { always, everysec, no };

struct realtime_config {
  // [server]
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  // Event loops; 0 ("auto"): one per usable CPU (net::usable_cpus()).
  std::size_t threads = 0;
  // What the event loops wait for I/O with: "epoll" or "io_uring" (falls
  // back to epoll, with one log line, where the kernel refuses it).
  std::string io_backend = "epoll";
  // Origins allowed to open /ws: "scheme://host[:port]" in lower case
  // ("https://app.example.com"), "https://*.example.com" for every subdomain,
  // or the one entry "*" for any origin. Empty: same-origin only (the
  // Origin must name the request's Host). A request without Origin (not
  // from a browser) is always allowed.
  std::vector<std::string> allowed_origins;
  std::size_t max_connections = 10'000;
  // Addresses ("10.0.0.5", "::1") or CIDR ranges ("10.0.0.0/8", "fd00::/8")
  // of reverse proxies whose X-Forwarded-For names the client; from anyone
  // else the header is ignored and the peer address counts.
  std::vector<std::string> trusted_proxies;
  // Serve the demo chat page at / (and the browser SDK at /switchboard.js).
  bool demo = true;
  compression_mode compression = compression_mode::shared;
  std::string tls_cert;  // PEM files; both set: wss:// and https://
  std::string tls_key;

  // [auth]
  std::string jwt_secret;  // HS256 key; empty: tokens are refused
  bool allow_anonymous = false;
  double connect_timeout = 10;  // seconds to send `connect` when it is needed
  std::string cookie_name = "switchboard_token";
  bool allow_token_in_url = false;
  // Seconds before a token's exp when the server pushes `refresh`; at exp a
  // connection that did not send `refresh` with a new token is closed 4002.
  double refresh_lead = 30;

  // [api]
  std::string api_key;  // X-API-Key for /api/*; empty: the API answers 403

  // [metrics]
  // "Authorization: Bearer KEY" that GET /metrics requires; empty: open.
  std::string metrics_key;
  // "HOST:PORT" ("127.0.0.1:9100", "[::1]:9100"; numeric, port 1-65535, not
  // server.port): GET /metrics is served there, over plain HTTP, and no
  // longer on the main port. Empty: /metrics is on the main port. metrics_key
  // applies wherever it is.
  std::string metrics_listen;

  // [admin] — the dashboard at /admin (docs/admin.md); never anonymous.
  bool admin_enabled = false;
  // HTTP Basic password (any user name); empty: the api_key. check_config()
  // refuses admin_enabled with neither.
  std::string admin_password;
  // Its own listener ("127.0.0.1", port): set host to serve /admin there
  // only (not on the main port); empty: the main listener.
  std::string admin_host;
  std::uint16_t admin_port = 0;

  // [limits]
  std::size_t max_message_size = 64 * 1024;      // inbound WebSocket message
  std::size_t max_publication_size = 64 * 1024;  // `data` of one publication
  double command_rate = 100;                     // commands per second (refill)
  double command_burst = 200;                    // bucket size
  std::size_t rate_limit_close = 100;            // commands refused in a row before close 1008
  std::size_t max_subscriptions = 256;           // channels per connection
  // Per client address (see trusted_proxies): open WebSocket connections and
  // upgrades per second (bucket of handshake_burst); 0: no limit. Past
  // either the upgrade is refused with 429 before the 101.
  std::size_t max_connections_per_ip = 0;
  double handshake_rate = 0;
  double handshake_burst = 20;
  std::size_t max_backpressure = 1024 * 1024;
  overflow_policy backpressure_policy = overflow_policy::close;
  // Channels with state (subscribers, history or presence) at once, over the
  // whole server; a new one past it is refused (error 503). About 0.5 KiB each.
  std::size_t max_channels = 100'000;
  // Bytes of kept publications over every channel; past it the oldest
  // publications of the whole server are dropped first.
  std::size_t history_memory = 64u << 20;
  // Bytes queued for slow readers over all connections (0: no limit). Past
  // it backpressure_policy hits the largest queues first. 256 MiB fits a
  // small machine; raise it with the memory you give the server.
  std::size_t max_outbound_memory = 256 * 1024 * 1024;

  // [keepalive]
  double ping_interval = 25;
  double pong_timeout = 10;

  // [shutdown]
  std::uint16_t shutdown_code = 1012;
  double shutdown_timeout = 5;

  // [history]
  std::string snapshot_file;  // empty: history does not survive a restart
  // Append-only journal of publications; needs snapshot_file (its base).
  // Empty: what was published since the last snapshot is lost on a crash.
  std::string journal_file;
  fsync_policy journal_fsync = fsync_policy::everysec;

  // [broker]
  // Empty or {"memory"}: the embedded in-memory broker (one node). Otherwise
  // Redis URLs, one per shard (redis://[:password@]host:port[/db] or
  // unix:///path): nodes on the same Redis act as one.
  std::vector<std::string> broker_urls;
  std::string broker_key_prefix = "switchboard:";  // before every Redis key
  double presence_lease = 30;    // seconds a node's presence entry lives unrefreshed
  double presence_refresh = 10;  // seconds between a node's refreshes
  // Several publications of one channel in one PUBLISH (the packed form); false:
  // one PUBLISH each, the only form a node before the packed form reads (a
  // rolling upgrade from such a version: docs/scaling.md).
  bool broker_packed_publish = true;

  // [sse] — the HTTP transports: GET /sse and /rt/session (docs/protocol.md,
  // "HTTP transports").
  bool sse_enabled = true;
  double sse_heartbeat = 15;             // seconds between ": hb" comments on an idle stream
  double sse_retry = 2;                  // retry: hint, jittered in [retry, 2 retry)
  double sse_session_idle_timeout = 60;  // seconds a session lives with no downstream
  double sse_poll_timeout = 25;          // seconds a long-poll is held
  // Bytes a session keeps for its downstream until acknowledged; past it the
  // session is closed as a slow consumer.
  std::size_t sse_max_buffered = 1024 * 1024;
  // [log]
  std::string log_format = "text";  // text | json
  std::string log_level = "info";   // trace debug info warn error off
  // [hooks] (docs/hooks.md): proxy hooks to the application's backend. An
  // empty URL turns its hook off. connect: asked when a client sends
  // `connect` without a token (with connect_always, every client); refresh:
  // `refresh` without a token; rpc: the `rpc` command.
  std::string hooks_connect_url;
  bool hooks_connect_always = false;
  std::string hooks_connect_on_error = "deny";  // deny | allow
  std::string hooks_refresh_url;
  std::string hooks_refresh_on_error = "deny";  // deny | allow
  std::string hooks_rpc_url;
  // HMAC-SHA256 key that signs every hook request; empty: unsigned.
  std::string hooks_secret;
  double hooks_timeout = 1;                 // seconds per call (connect to last byte)
  std::size_t hooks_max_concurrency = 64;   // calls on the wire per backend; more wait
  // Headers of the client's upgrade request passed on to the backend.
  std::vector<std::string> hooks_forward_headers = {"Cookie", "Authorization"};
  std::string hooks_tls_ca_file;  // PEM trust anchors for https:// hooks; empty: the system's
  // [events] (docs/hooks.md, "Lifecycle events"): connect, disconnect,
  // subscribe, unsubscribe, presence.join and presence.leave POSTed in
  // batches to this webhook (signed with hooks.secret) until it answers 2xx,
  // from the outbox file, so a restart or a crash loses none. Empty: off.
  std::string events_url;
  std::string events_outbox;           // required with events_url
  std::size_t events_batch = 100;      // events per POST at most
  double events_retry_max = 30;        // seconds: the longest wait between retries
  // Where events go before the webhook: "file" (the outbox, sent by this
  // node), "redis" (the outbox hands them to a Redis stream that one node at
  // a time sends; Redis broker only), "auto" (redis with the Redis broker).
  std::string events_store = "auto";
  std::size_t events_stream_max = 1'000'000;  // events in the stream past which nodes wait
  // Unacknowledged events held in memory; the rest wait in the outbox file
  // and are read back as the window empties.
  std::size_t events_memory_window = 10'000;

  // [http] plain HTTP keep-alive (server_options::http_idle_timeout and
  // max_http_requests): seconds an idle connection waits for its next
  // request (0: no limit), requests per connection (1: none kept alive;
  // 0: no limit).
  double http_idle_timeout = 30;
  std::size_t http_max_requests = 1000;

  // [namespaces.NAME]; "default" holds channels without ':'. Channels of a
  // namespace not listed here are refused (404).
  std::map<std::string, namespace_options, std::less<>> namespaces = {
      {k_default_namespace, namespace_options{}}};
};

// True if `name` can name a namespace: 1 to 126 of A-Z a-z 0-9 _ - . @ =
// (room left for ':' and a channel name within the 128-byte channel limit).
SWITCHBOARD_REALTIME_EXPORT bool valid_namespace_name(std::string_view name) noexcept;

// The checks a configuration must pass before a service runs it, the one
// place they are made (`switchboard serve` calls it after the file, the
// environment and the flags; service::listen() calls it again for programs
// that fill the struct themselves): tls_cert and tls_key both or neither;
// a jwt_secret of at least k_min_jwt_secret bytes; the k_max_* maxima;
// max_publication_size <= max_message_size; somebody can connect (a JWT
// secret or anonymous access); namespace names valid; broker URLs memory
// alone or redis:// / unix:// ones, no snapshot file with Redis, and
// presence_refresh below presence_lease; allowed_origins entries well-formed
// (src/realtime/origin.hpp); trusted_proxies addresses or CIDR ranges
// (src/realtime/address_range.hpp); metrics_listen a numeric HOST:PORT
// other than the server's. Returns "" or one line
// saying what is wrong and how to fix it.
SWITCHBOARD_REALTIME_EXPORT std::string check_config(const realtime_config& config);

// Checks that the state files of [history] (snapshot_file, journal_file) can
// be written: their directory takes new files and an existing file is a
// regular file open to reading and writing. Touches the file system (creates
// and removes PATH.tmp), so it is separate from check_config(); `switchboard
// serve` calls it before listening and exits 2 on an error. Returns "" or one
// line naming the key, the path and the reason.
SWITCHBOARD_REALTIME_EXPORT std::string check_storage(const realtime_config& config);

// Makes config.host numeric: a name ("localhost") is resolved to its first
// address, IPv4 preferred. Returns "" or one line saying why it cannot be
// used. Blocking (getaddrinfo): call before listening, not on a loop.
SWITCHBOARD_REALTIME_EXPORT std::string resolve_host(realtime_config& config);

}  // namespace switchboard::realtime
