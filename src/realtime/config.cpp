// config.cpp — check_config(): the whole-configuration rules (see config.hpp).
#include <switchboard/realtime/config.hpp>

#include "channel.hpp"
#include "origin.hpp"

namespace switchboard::realtime {

bool valid_namespace_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > k_max_namespace_name) return false;
  for (char c : name) {
    if (c == ':' || !is_channel_char(c)) return false;
  }
  return true;
}

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
  for (const std::string& entry : config.allowed_origins) {
    // "*" is a decision to allow every site; mixed with entries it is a mistake.
    if (entry == "*" && config.allowed_origins.size() > 1) {
      return "server: allowed_origins: \"*\" (any origin) must be the only entry";
    }
    if (std::string e = detail::check_allowed_origin(entry); !e.empty()) {
      return "server: allowed_origins: " + e;
    }
  }
  for (const auto& [name, ns] : config.namespaces) {
    // "default" names the channels without ':' and is always allowed.
    if (name != k_default_namespace && !valid_namespace_name(name)) {
      return "namespaces: invalid namespace name '" + name +
             "': a namespace name is 1 to 126 of A-Z a-z 0-9 _ - . @ =";
    }
  }
  return {};
}

}  // namespace switchboard::realtime
