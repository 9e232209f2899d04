// config.cpp — check_config(): the whole-configuration rules (see config.hpp).
#include <switchboard/realtime/config.hpp>

#include "channel.hpp"

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

}  // namespace

std::string check_config(const realtime_config& config) {
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return std::string("server: set both tls_cert and tls_key, or neither (only ") +
           (config.tls_cert.empty() ? "tls_key" : "tls_cert") + " is set)";
  }
  if (config.max_publication_size > config.max_message_size) {
    return "limits: max_publication_size (" + std::to_string(config.max_publication_size) +
           ") must not exceed max_message_size (" + std::to_string(config.max_message_size) + ")";
  }
  if (config.jwt_secret.empty() && !config.allow_anonymous) {
    return "auth: set auth.jwt_secret or auth.allow_anonymous (nobody could connect)";
  }
  if (!config.journal_file.empty() && config.snapshot_file.empty()) {
    return "history: journal needs history.snapshot_file (the journal is replayed over it and "
           "compacted into it)";
  }
  if (!config.journal_file.empty() && config.journal_file == config.snapshot_file) {
    return "history: journal and snapshot_file must be two different files";
  }
  for (const auto& [name, ns] : config.namespaces) {
    // "default" names the channels without ':' and is always allowed.
    if (name != k_default_namespace && !valid_namespace_name(name)) {
      return "namespaces: invalid namespace name '" + name +
             "': a namespace name is 1 to 126 of A-Z a-z 0-9 _ - . @ =";
    }
  }
  if (std::string e = check_broker(config); !e.empty()) return e;
  return {};
}

}  // namespace switchboard::realtime
