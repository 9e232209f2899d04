// cli_parse.hpp — what the bench tools' CLI11 parsers share: running the
// parse (help exits 0, errors become std::invalid_argument with the usage),
// and the checks CLI11 cannot express: the HOST[:PORT][/PATH] part of a URL
// and --source-ips. Every helper throws std::invalid_argument with a message
// for the user.
//
// Thread-safety: plain functions; call from any thread.
#pragma once

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "switchboard/net/tcp_socket.hpp"

namespace switchboard::bench::cli {

// Parses argv with `app`: --help prints the usage and exits 0; any other
// parse error throws std::invalid_argument with CLI11's message and the usage.
inline void parse_or_throw(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) std::exit(app.exit(e));
    throw std::invalid_argument(std::string(e.what()) + " (--help lists the options)");
  }
}

// A check that the value is a number >= min, with a short message.
inline CLI::Validator at_least(double min) {
  std::string shown = std::to_string(min);
  shown.erase(shown.find_last_not_of('0') + 1);
  if (shown.back() == '.') shown.pop_back();
  return CLI::Validator(
      [min, shown](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        if (end == text.c_str() || *end != '\0' || !(value >= min)) {
          return "expected a number >= " + shown + ", got '" + text + "'";
        }
        return {};
      },
      ">=" + shown);
}

// An option whose value is one of `choices`' names, stored as its value.
template <class E>
CLI::Option* add_choice(CLI::App& app, const std::string& name, E& out,
                        std::vector<std::pair<std::string, E>> choices, const std::string& help) {
  std::vector<std::string> names;
  std::string current;
  for (const auto& [n, v] : choices) {
    names.push_back(n);
    if (v == out) current = n;
  }
  return app
      .add_option_function<std::string>(
          name,
          [&out, choices](const std::string& value) {
            for (const auto& [n, v] : choices) {
              if (n == value) out = v;
            }
          },
          help)
      ->check(CLI::IsMember(names))
      ->default_str(current);
}

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
