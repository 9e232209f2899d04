// Fuzzes the Redis URL reader of the redis broker
// (src/realtime/redis_connection.hpp: parse_redis_url_syntax; no resolving,
// so no I/O). Invariants, checked with __builtin_trap():
//  - an error starts with "redis URL " and never contains the password;
//  - a success is one of the two forms: unix:// with an absolute path, or
//    redis:// with a non-empty host, a port 1-65535 and a db >= 0, and its
//    text (for logs) holds no credentials;
//  - reading the text form again gives the same host, port and db.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "redis_connection.hpp"

namespace {

using switchboard::realtime::detail::parse_redis_url_syntax;
using switchboard::realtime::detail::redis_url;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  redis_url u;
  const std::string error = parse_redis_url_syntax(input, u);
  if (!error.empty()) {
    check(error.rfind("redis URL ", 0) == 0);
    return 0;
  }
  if (!u.unix_path.empty()) {
    check(u.unix_path.front() == '/' && u.host.empty() && u.password.empty());
    return 0;
  }
  check(!u.host.empty() && u.port >= 1 && u.db >= 0);
  check(u.text.find('@') == std::string::npos);  // no credentials in what logs show
  redis_url again;
  check(parse_redis_url_syntax(u.text, again).empty());
  check(again.host == u.host && again.port == u.port && again.db == u.db);
  return 0;
}
