// config.cpp — check_config(): the whole-configuration rules (see config.hpp).
#include <switchboard/realtime/config.hpp>

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <tuple>

#include "address_range.hpp"
#include "channel.hpp"
#include "hook_http.hpp"
#include "origin.hpp"

namespace switchboard::realtime {


bool valid_namespace_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > k_max_namespace_name) return false;
  for (char c : name) {
    if (c == ':' || !is_channel_char(c)) return false;
  }
  return true;
}

namespace {

std::string check_broker(const realtime_config& config) {
  const auto& urls = config.broker_urls;
  const bool memory = urls.empty() || (urls.size() == 1 && urls.front() == "memory");
  if (!memory) {
    for (const std::string& u : urls) {
      if (u == "memory") return "broker: \"memory\" cannot be combined with Redis URLs";
      if (!u.starts_with("redis://") && !u.starts_with("unix://")) {
        return "broker: '" + u +
               "' is not a broker URL: use memory, redis://[:password@]host:port[/db] or "
               "unix:///path/redis.sock";
      }
    }
    // With Redis, history lives in Redis (its persistence settings decide what survives).
    if (!config.snapshot_file.empty()) {
      return "history: snapshot_file is for the memory broker; with Redis, history is Redis's "
             "(configure its persistence)";
    }
  }
  if (!(config.presence_refresh > 0) || !(config.presence_refresh < config.presence_lease)) {
    return "broker: presence_refresh must be above 0 and below presence_lease (an entry must "
           "be renewed before its lease runs out)";
  }
  return {};
}

// [hooks] and the namespaces' hook keys: URLs well-formed, outcomes known.
std::string check_hooks(const realtime_config& config) {
  const auto check = [](const std::string& key, const std::string& url,
                        const std::string& on_error) -> std::string {
    if (on_error != "deny" && on_error != "allow") {
      return key + "_on_error must be deny or allow, not '" + on_error + "'";
    }
    if (url.empty()) return {};
    detail::http_url parsed;
    if (std::string e = detail::parse_http_url_syntax(url, parsed); !e.empty()) {
      return key + ": " + e;
    }
    return {};
  };
  for (const auto& [key, url, on_error] :
       {std::tuple{"hooks: connect", config.hooks_connect_url, config.hooks_connect_on_error},
        std::tuple{"hooks: refresh", config.hooks_refresh_url, config.hooks_refresh_on_error},
        std::tuple{"hooks: rpc", config.hooks_rpc_url, std::string("deny")}}) {
    if (std::string e = check(key, url, on_error); !e.empty()) return e;
  }
  for (const auto& [name, ns] : config.namespaces) {
    const std::string prefix = "namespaces." + name + ".";
    if (std::string e =
            check(prefix + "subscribe_hook", ns.subscribe_hook, ns.subscribe_hook_on_error);
        !e.empty()) {
      return e;
    }
    if (std::string e = check(prefix + "publish_hook", ns.publish_hook, ns.publish_hook_on_error);
        !e.empty()) {
      return e;
    }
  }
  if (!config.events_url.empty()) {
    detail::http_url parsed;
    if (std::string e = detail::parse_http_url_syntax(config.events_url, parsed); !e.empty()) {
      return "events: url: " + e;
    }
    // Without the outbox a crash would lose what was not sent yet.
    if (config.events_outbox.empty()) return "events: url needs events.outbox (a file)";
    const auto& urls = config.broker_urls;
    const bool redis = !urls.empty() && !(urls.size() == 1 && urls.front() == "memory");
    if (config.events_store != "auto" && config.events_store != "file" &&
        config.events_store != "redis") {
      return "events: store must be auto, file or redis";
    }
    // The stream lives in the broker's Redis: without it there is none.
    if (config.events_store == "redis" && !redis) {
      return "events: store = \"redis\" needs the Redis broker (broker.urls)";
    }
  }
  if (!(config.hooks_timeout > 0)) return "hooks: timeout must be above 0 seconds";
  if (config.hooks_max_concurrency == 0) return "hooks: max_concurrency must be at least 1";
  for (const std::string& h : config.hooks_forward_headers) {
    if (!protocol::is_token(h)) return "hooks: forward_headers: '" + h + "' is not a header name";
  }
  return {};
}

}  // namespace

std::string check_config(const realtime_config& config) {
  // Why: the dashboard can disconnect users and publish; it is never open to anyone.
  if (config.admin_enabled && config.admin_password.empty() && config.api_key.empty()) {
    return "admin: enabled needs admin.password or api.key (the dashboard is never anonymous)";
  }
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return std::string("server: set both tls_cert and tls_key, or neither (only ") +
           (config.tls_cert.empty() ? "tls_key" : "tls_cert") + " is set)";
  }
  if (config.max_publication_size > config.max_message_size) {
    return "limits: max_publication_size (" + std::to_string(config.max_publication_size) +
           ") must not exceed max_message_size (" + std::to_string(config.max_message_size) + ")";
  }
  if (config.jwt_secret.empty() && !config.allow_anonymous && config.hooks_connect_url.empty()) {
    // (hooks.connect_url is the third way: the backend decides, docs/hooks.md.)
    return "auth: set auth.jwt_secret or auth.allow_anonymous (nobody could connect)";
  }
  if (!config.journal_file.empty() && config.snapshot_file.empty()) {
    return "history: journal needs history.snapshot_file (the journal is replayed over it and "
           "compacted into it)";
  }
  if (!config.journal_file.empty() && config.journal_file == config.snapshot_file) {
    return "history: journal and snapshot_file must be two different files";
  }
  if (!config.jwt_secret.empty() && config.jwt_secret.size() < k_min_jwt_secret) {
    return "auth: jwt_secret is " + std::to_string(config.jwt_secret.size()) +
           " bytes; an HS256 secret needs at least 32 (RFC 7518 3.2), e.g. the output of "
           "`openssl rand -base64 32`";
  }
  const auto over = [](std::string_view key, std::size_t value, std::size_t max) {
    return std::string(key) + " (" + std::to_string(value) + ") is over its maximum " +
           std::to_string(max);
  };
  if (config.max_message_size > k_max_message_size) {
    return over("limits: max_message_size", config.max_message_size, k_max_message_size);
  }
  if (config.max_backpressure > k_max_backpressure) {
    return over("limits: max_backpressure", config.max_backpressure, k_max_backpressure);
  }
  if (config.sse_max_buffered > k_max_backpressure) {
    return over("sse: max_buffered", config.sse_max_buffered, k_max_backpressure);
  }
  // Why: a timer of a day or more is a typo, and zero or less would spin.
  for (const auto& [key, value] :
       {std::pair<const char*, double>{"sse: heartbeat", config.sse_heartbeat},
        {"sse: retry", config.sse_retry},
        {"sse: session_idle_timeout", config.sse_session_idle_timeout},
        {"sse: poll_timeout", config.sse_poll_timeout}}) {
    if (!(value > 0) || value > 86400) {
      std::string e(key);
      e.append(" must be above 0 and at most 86400 seconds");
      return e;
    }
  }
  if (config.max_subscriptions > k_max_subscriptions) {
    return over("limits: max_subscriptions", config.max_subscriptions, k_max_subscriptions);
  }
  if (config.max_connections > k_max_connections) {
    return over("server: max_connections", config.max_connections, k_max_connections);
  }
  for (const std::string& entry : config.allowed_origins) {
    // "*" is a decision to allow every site; mixed with entries it is a mistake.
    if (entry == "*" && config.allowed_origins.size() > 1) {
      return "server: allowed_origins: \"*\" (any origin) must be the only entry";
    }
    if (std::string e = detail::check_allowed_origin(entry); !e.empty()) {
      return "server: allowed_origins: " + e;
    }
  }
  for (const std::string& proxy : config.trusted_proxies) {
    // Addresses or CIDR ranges only: a name would be resolved once and then trusted blindly.
    std::string why;
    if (!detail::parse_address_range(proxy, why)) return "server: trusted_proxies: " + why;
  }
  if (!config.metrics_listen.empty()) {
    std::string why;
    const auto where = detail::parse_host_port(config.metrics_listen, why);
    if (!where) return "metrics: listen: " + why;
    // Why: with several loops the server binds with SO_REUSEPORT, so a second
    // bind of its port would succeed and split connections between the two.
    if (where->port == config.port) {
      return "metrics: listen: port " + std::to_string(where->port) +
             " is server.port; /metrics needs a port of its own";
    }
  }
  for (const auto& [name, ns] : config.namespaces) {
    // "default" names the channels without ':' and is always allowed.
    if (name != k_default_namespace && !valid_namespace_name(name)) {
      return "namespaces: invalid namespace name '" + name +
             "': a namespace name is 1 to 126 of A-Z a-z 0-9 _ - . @ =";
    }
    if (ns.history_size > k_max_history_size) {
      return over("namespaces." + name + ".history_size", ns.history_size, k_max_history_size);
    }
  }
  if (std::string e = check_broker(config); !e.empty()) return e;
  if (std::string e = check_hooks(config); !e.empty()) return e;
  return {};
}

std::string resolve_host(realtime_config& config) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST;
  addrinfo* found = nullptr;
  if (::getaddrinfo(config.host.c_str(), nullptr, &hints, &found) == 0) {
    ::freeaddrinfo(found);
    return {};  // already an address
  }
  hints.ai_flags = AI_ADDRCONFIG;
  const int rc = ::getaddrinfo(config.host.c_str(), nullptr, &hints, &found);
  if (rc != 0 || found == nullptr) {
    return "server: host '" + config.host + "' is not a numeric address and does not resolve (" +
           ::gai_strerror(rc) + "); use an address such as 127.0.0.1, ::1 or 0.0.0.0";
  }
  // IPv4 first: "localhost" means 127.0.0.1 to most people and clients.
  const addrinfo* pick = found;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    if (a->ai_family == AF_INET) {
      pick = a;
      break;
    }
  }
  char text[INET6_ADDRSTRLEN] = {};
  const void* addr = pick->ai_family == AF_INET
                         ? static_cast<const void*>(
                               &reinterpret_cast<const sockaddr_in*>(pick->ai_addr)->sin_addr)
                         : static_cast<const void*>(
                               &reinterpret_cast<const sockaddr_in6*>(pick->ai_addr)->sin6_addr);
  const bool ok = ::inet_ntop(pick->ai_family, addr, text, sizeof text) != nullptr;
  ::freeaddrinfo(found);
  if (!ok) return "server: host '" + config.host + "' resolved to an address that cannot be used";
  config.host = text;
  return {};
}

}  // namespace switchboard::realtime
