// Fuzzes the TOML configuration of `switchboard serve`
// (apps/switchboard/serve_config.hpp: load_config_string, then check_config).
// The input is the file's text. Invariants, checked with __builtin_trap():
//  - an error is one line: "ORIGIN:LINE:COL: reason" (LINE, COL >= 1) or
//    "ORIGIN: reason", as serve_config.hpp documents;
//  - the outcome does not depend on the origin's name, nor on the config it
//    starts from being fresh or already loaded from the same text;
//  - a success yields a config whose every value keeps its documented rule
//    (port, threads 1-64, sizes > 0, finite durations, known names), and
//    check_config() accepts it or says which section is wrong.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "serve_config.hpp"

namespace {

using switchboard::realtime::realtime_config;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Reads a positive decimal number at the front of `s`.
bool eat_number(std::string_view& s) {
  std::size_t n = 0;
  while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
  if (n == 0 || s[0] == '0') return false;
  s.remove_prefix(n);
  return true;
}

void check_error(std::string_view error, std::string_view origin) {
  check(starts_with(error, origin));
  std::string_view rest = error.substr(origin.size());
  check(starts_with(rest, ":"));
  rest.remove_prefix(1);
  if (!rest.empty() && rest[0] != ' ') {
    check(eat_number(rest) && starts_with(rest, ":"));
    rest.remove_prefix(1);
    check(eat_number(rest));
    check(starts_with(rest, ":"));
    rest.remove_prefix(1);
  }
  check(starts_with(rest, " ") && rest.size() > 1);
}

bool duration(double s, bool above_zero) {
  return std::isfinite(s) && s <= 1e9 && (above_zero ? s > 0 : s >= 0);
}

bool one_of(std::string_view s, std::initializer_list<std::string_view> choices) {
  for (const auto c : choices)
    if (s == c) return true;
  return false;
}

bool namespace_name(std::string_view name) {
  // Written out rather than calling the library: an independent statement of the rule.
  if (name.empty() || name.size() > 126) return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.' || c == '@' || c == '=';
    if (!ok) return false;
  }
  return true;
}

void check_values(const realtime_config& c) {
  using namespace switchboard::realtime;
  check(!c.host.empty());
  check(c.threads <= 64);  // 0 is "auto"
  for (const auto& origin : c.allowed_origins) check(!origin.empty());
  check(c.max_connections >= 1);
  check(c.compression == compression_mode::off || c.compression == compression_mode::shared ||
        c.compression == compression_mode::dedicated);
  check(duration(c.connect_timeout, true));
  check(!c.cookie_name.empty());
  check(c.max_message_size >= 1 && c.max_publication_size >= 1);
  check(duration(c.command_rate, true));
  check(c.command_burst >= 1 && !std::isnan(c.command_burst));
  check(c.rate_limit_close >= 1 && c.max_subscriptions >= 1 && c.max_backpressure >= 1);
  check(c.backpressure_policy == overflow_policy::close ||
        c.backpressure_policy == overflow_policy::drop);
  check(duration(c.ping_interval, false) && duration(c.pong_timeout, false));
  check(c.shutdown_code == 1000 || c.shutdown_code == 1001 || c.shutdown_code == 1012 ||
        (c.shutdown_code >= 4000 && c.shutdown_code <= 4999));
  check(duration(c.shutdown_timeout, false));
  check(c.max_channels >= 1 && c.history_memory >= 1);
  check(c.journal_fsync == fsync_policy::always || c.journal_fsync == fsync_policy::everysec ||
        c.journal_fsync == fsync_policy::no);
  check(one_of(c.log_format, {"text", "json"}));
  check(one_of(c.log_level, {"trace", "debug", "info", "warn", "error", "off"}));
  for (const auto& [name, ns] : c.namespaces) {
    check(namespace_name(name));
    check(duration(ns.history_ttl, false));
    check(ns.publish == publish_policy::subscribers || ns.publish == publish_policy::any ||
          ns.publish == publish_policy::none);
  }
}

bool same(const realtime_config& a, const realtime_config& b) {
  if (a.namespaces.size() != b.namespaces.size()) return false;
  for (auto i = a.namespaces.begin(), j = b.namespaces.begin(); i != a.namespaces.end(); ++i, ++j) {
    const auto &x = i->second, &y = j->second;
    if (i->first != j->first || x.history_size != y.history_size ||
        x.history_ttl != y.history_ttl || x.presence != y.presence || x.publish != y.publish)
      return false;
  }
  return a.host == b.host && a.port == b.port && a.threads == b.threads &&
         a.allowed_origins == b.allowed_origins && a.max_connections == b.max_connections &&
         a.demo == b.demo && a.compression == b.compression && a.tls_cert == b.tls_cert &&
         a.tls_key == b.tls_key && a.jwt_secret == b.jwt_secret &&
         a.allow_anonymous == b.allow_anonymous && a.connect_timeout == b.connect_timeout &&
         a.cookie_name == b.cookie_name && a.allow_token_in_url == b.allow_token_in_url &&
         a.api_key == b.api_key && a.max_message_size == b.max_message_size &&
         a.max_publication_size == b.max_publication_size && a.command_rate == b.command_rate &&
         a.command_burst == b.command_burst && a.rate_limit_close == b.rate_limit_close &&
         a.max_subscriptions == b.max_subscriptions && a.max_backpressure == b.max_backpressure &&
         a.backpressure_policy == b.backpressure_policy && a.ping_interval == b.ping_interval &&
         a.pong_timeout == b.pong_timeout && a.shutdown_code == b.shutdown_code &&
         a.shutdown_timeout == b.shutdown_timeout && a.snapshot_file == b.snapshot_file &&
         a.journal_file == b.journal_file && a.journal_fsync == b.journal_fsync &&
         a.max_channels == b.max_channels && a.history_memory == b.history_memory &&
         a.log_format == b.log_format && a.log_level == b.log_level;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string origin = "fuzz.toml";
  realtime_config config;
  const std::string error = switchboard::app::load_config_string(text, origin, config);

  // Another name changes only the prefix of the error.
  const std::string other = "x/other.toml";
  realtime_config config2;
  const std::string error2 = switchboard::app::load_config_string(text, other, config2);
  check(error.empty() == error2.empty());

  if (!error.empty()) {
    check_error(error, origin);
    check_error(error2, other);
    check(error.substr(origin.size()) == error2.substr(other.size()));
    return 0;
  }
  check(same(config, config2));
  check_values(config);
  // Loading the same text again over it changes nothing: each key replaces.
  check(switchboard::app::load_config_string(text, origin, config2).empty());
  check(same(config, config2));
  const std::string whole = switchboard::realtime::check_config(config);
  check(whole.empty() || starts_with(whole, "server: ") || starts_with(whole, "limits: ") ||
        starts_with(whole, "auth: ") || starts_with(whole, "history: ") ||
        starts_with(whole, "metrics: ") || starts_with(whole, "namespaces: "));
  return 0;
}
