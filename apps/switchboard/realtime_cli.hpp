// realtime_cli.hpp — what `switchboard sub` and `switchboard pub` share: the
// connection options of a realtime::client (token, TLS), the JSON lines they
// print, and waiting on the main thread for SIGINT/SIGTERM or a flag.
//
// Threads: both commands run their realtime::client on its own thread (its
// callbacks print); the main thread blocks SIGINT and SIGTERM before that
// thread starts (so only the main thread ever takes them) and waits with
// wait_until().
#pragma once

#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>

#include "switchboard/client/url.hpp"
#include "switchboard/net/tls_context.hpp"
#include "switchboard/realtime/client.hpp"

namespace switchboard::app::rt {

constexpr int k_exit_ok = 0;
constexpr int k_exit_refused = 1;  // pub: the server refused a publication
constexpr int k_exit_failed = 2;   // usage, connection, authentication

inline void print_error(std::string_view text) {
  std::fprintf(stderr, "switchboard: %.*s\n", static_cast<int>(text.size()), text.data());
  std::fflush(stderr);
}

// Appends `s` (UTF-8) as a JSON string, quotes included.
inline void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20) {
      out.append("\\u00");
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
}

// The options both commands take to reach a server.
struct connection_settings {
  std::string url;
  std::string token;
  std::string ca_file;
  bool insecure_skip_verify = false;
  double connect_timeout = 10;
};

inline void add_connection_options(CLI::App& cmd, connection_settings& s) {
  cmd.add_option("--token", s.token,
                 "HS256 JWT sent in the connect command (or set SWITCHBOARD_TOKEN, which "
                 "keeps it out of the process list)")
      ->envname("SWITCHBOARD_TOKEN");
  cmd.add_option("--ca-file", s.ca_file,
                 "wss://: PEM file of the CAs to trust (default: the system store)");
  cmd.add_flag("--insecure-skip-verify", s.insecure_skip_verify,
               "wss://: accept any server certificate (testing only)");
  cmd.add_option("--connect-timeout", s.connect_timeout,
                 "Seconds allowed for each connection attempt, up to the connect reply "
                 "(default 10)")
      ->check(CLI::PositiveNumber);
}

// The TLS context for a wss:// URL (null for ws://, or with `error` set).
inline std::unique_ptr<net::tls_context> make_tls(const connection_settings& s,
                                                  std::string& error) {
  client::url parsed;
  if (client::parse_url(s.url, parsed) || !parsed.secure) return nullptr;
  net::tls_client_options tls;
  tls.ca_file = s.ca_file;
  tls.insecure_skip_verification = s.insecure_skip_verify;
  net::tls_error tls_error;
  auto ctx = net::tls_context::client(tls, tls_error);
  if (!ctx) error = "cannot set up TLS: " + tls_error.text;
  return ctx;
}

inline realtime::client_options client_options_for(const connection_settings& s,
                                                   net::tls_context* tls) {
  realtime::client_options o;
  o.url = s.url;
  o.token = s.token;
  o.connect_timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(s.connect_timeout * 1000));
  o.websocket.tls = tls;
  return o;
}

// Blocks SIGINT and SIGTERM in the calling thread and the threads it starts
// afterwards; wait_until() takes them.
inline void block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// Waits until `done` is set (true) or SIGINT/SIGTERM arrives (false).
inline bool wait_until(const std::atomic<bool>& done) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  const timespec tick{0, 50'000'000};
  while (!done.load()) {
    if (sigtimedwait(&set, nullptr, &tick) > 0) return false;
  }
  return true;
}

}  // namespace switchboard::app::rt
