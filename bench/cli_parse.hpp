// cli_parse.hpp — the option-parsing helpers switchboard_loadgen and
// switchboard_fanout share: numbers with a lower bound, comma lists, the
// HOST[:PORT][/PATH] part of a URL and --source-ips. Every helper throws
// std::invalid_argument with a message for the user.
//
// Thread-safety: plain functions; call from any thread.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "switchboard/net/tcp_socket.hpp"

namespace switchboard::bench::cli {

// An integer >= min.
inline std::uint64_t to_count(std::string_view flag, std::string_view text, std::uint64_t min) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < min) {
    throw std::invalid_argument(std::string(flag) + ": expected an integer >= " +
                                std::to_string(min) + ", got '" + std::string(text) + "'");
  }
  return value;
}

// True, with `value` set, when all of `text` is a number >= min.
inline bool read_number(const std::string& text, double min, double& value) {
  char* end = nullptr;
  value = std::strtod(text.c_str(), &end);
  return end != text.c_str() && *end == '\0' && value >= min;
}

// A number >= min.
inline double to_number(std::string_view flag, const std::string& text, double min) {
  double value = 0;
  if (!read_number(text, min, value)) {
    throw std::invalid_argument(std::string(flag) + ": expected a number >= " +
                                std::to_string(min) + ", got '" + text + "'");
  }
  return value;
}

// Seconds >= 0.
inline double to_seconds(std::string_view flag, const std::string& text) {
  double value = 0;
  if (!read_number(text, 0, value)) {
    throw std::invalid_argument(std::string(flag) + ": expected seconds >= 0, got '" + text + "'");
  }
  return value;
}

// Calls f(item) for each item of "A,B,...", in order.
template <class F>
void for_each_item(std::string_view list, F&& f) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    f(list.substr(0, comma));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

// What follows the scheme in a URL: HOST[:PORT][/PATH], HOST numeric.
struct url_rest {
  net::endpoint remote;
  std::string host_header;  // HOST[:PORT] as written, sent as Host
  std::string target;       // /PATH, or the default
  std::string_view host;    // HOST as written (IPv6 in brackets); points into the URL
};

inline url_rest parse_url_rest(std::string_view rest, std::uint16_t default_port,
                               std::string_view default_target) {
  url_rest out;
  const std::size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  out.target = slash == std::string_view::npos ? std::string(default_target)
                                               : std::string(rest.substr(slash));
  std::string_view host = authority;
  std::uint16_t port = default_port;
  const std::size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
    host = authority.substr(0, colon);
    port = static_cast<std::uint16_t>(to_count("--url port", authority.substr(colon + 1), 1));
  }
  auto parsed = net::endpoint::parse(host, port);
  if (!parsed) throw std::invalid_argument("--url: the host must be a numeric address");
  out.remote = *parsed;
  out.host_header = std::string(authority);
  out.host = host;
  return out;
}

// --source-ips A,B,...: appended to `out`, port 0.
inline void parse_source_ips(std::string_view list, std::vector<net::endpoint>& out) {
  for_each_item(list, [&](std::string_view item) {
    auto parsed = net::endpoint::parse(item, 0);
    if (!parsed) {
      throw std::invalid_argument("--source-ips: not a numeric address: '" + std::string(item) +
                                  "'");
    }
    out.push_back(*parsed);
  });
}

// Every source address must be of the --url host's family.
inline void check_source_families(const std::vector<net::endpoint>& sources,
                                  const net::endpoint& remote) {
  for (const auto& source : sources) {
    if (source.family() != remote.family()) {
      throw std::invalid_argument("--source-ips: address family differs from the --url host");
    }
  }
}

}  // namespace switchboard::bench::cli
