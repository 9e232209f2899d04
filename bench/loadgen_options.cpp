// loadgen_options.cpp — argument parsing for switchboard_loadgen, with CLI11
// (as the switchboard binary does); the URL, the source addresses and the
// combinations of flags are checked after it.
#include "loadgen_options.hpp"

#include <CLI/CLI.hpp>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "cli_parse.hpp"

namespace switchboard::bench {
namespace {

// ws[s]://HOST[:PORT][/PATH], or tcp://HOST:PORT for --raw. HOST is numeric.
void parse_url(std::string_view url, loadgen_options& out) {
  std::uint16_t default_port = 80;
  out.tls = false;
  if (url.starts_with("ws://")) {
    url.remove_prefix(5);
  } else if (url.starts_with("wss://")) {
    url.remove_prefix(6);
    default_port = 443;
    out.tls = true;
  } else if (url.starts_with("tcp://")) {
    url.remove_prefix(6);
  } else {
    throw std::invalid_argument("--url: expected ws://HOST:PORT/PATH or wss://HOST:PORT/PATH");
  }
  cli::url_rest rest = cli::parse_url_rest(url, default_port, "/");
  out.remote = rest.remote;
  out.host_header = std::move(rest.host_header);
  out.target = std::move(rest.target);
  std::string_view host = rest.host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  out.server_name = std::string(host);
}

}  // namespace

const char* mode_name(load_mode mode) noexcept {
  switch (mode) {
    case load_mode::echo:
      return "echo";
    case load_mode::connect_storm:
      return "connect-storm";
    case load_mode::idle:
      return "idle";
  }
  return "?";
}

const char* offer_name(deflate_offer offer) noexcept {
  return offer == deflate_offer::takeover ? "takeover" : "no-takeover";
}

loadgen_options parse_loadgen_options(int argc, char** argv) {
  loadgen_options out;
  std::string url;
  std::string sources;
  CLI::App app{"switchboard_loadgen: WebSocket echo load (or raw TCP with --raw)",
               "switchboard_loadgen"};
  app.option_defaults()->always_capture_default();
  app.add_option("--url", url, "ws[s]://HOST:PORT/PATH (tcp://HOST:PORT with --raw)")->required();
  app.add_option("--ca-file", out.ca_file,
                 "wss://: PEM CA(s) the server certificate must chain to");
  app.add_flag("--insecure", out.insecure, "wss://: do not verify the server certificate");
  app.add_option("--connections", out.connections, "concurrent connections")
      ->check(cli::at_least(1));
  app.add_option("--size", out.size, "payload bytes per message")->check(cli::at_least(1));
  app.add_option("--inflight", out.inflight, "messages in flight per connection")
      ->check(cli::at_least(1));
  app.add_option("--duration", out.duration_s, "measured seconds")->check(cli::at_least(0));
  app.add_option("--warmup", out.warmup_s, "unmeasured seconds first")->check(cli::at_least(0));
  app.add_option("--threads", out.threads, "event-loop threads")->check(cli::at_least(1));
  cli::add_choice(app, "--mode", out.mode,
                  {{"echo", load_mode::echo},
                   {"connect-storm", load_mode::connect_storm},
                   {"idle", load_mode::idle}},
                  "echo | connect-storm | idle");
  app.add_option("--source-ips", sources,
                 "local IPv4 addresses to spread connections over (A,B,...)");
  app.add_option("--connect-timeout", out.connect_timeout_s, "per connect + upgrade attempt")
      ->check(cli::at_least(0));
  app.add_flag("--raw", out.raw, "raw TCP echo of SIZE-byte messages, no WebSocket");
  cli::add_choice(app, "--payload", out.payload,
                  {{"bytes", payload_kind::bytes}, {"json", payload_kind::json}},
                  "bytes ('x' * SIZE, binary) | json (SIZE-byte JSON-like text)");
  app.add_flag("--deflate", out.deflate,
               "offer permessage-deflate; compress sends, inflate and check echoes");
  CLI::Option* offer = cli::add_choice(
      app, "--deflate-offer", out.offer,
      {{"no-takeover", deflate_offer::no_takeover}, {"takeover", deflate_offer::takeover}},
      "what to offer, implies --deflate: no-takeover (both *_no_context_takeover) | "
      "takeover (as browsers offer)");
  app.add_option("--idle-messages", out.idle_messages,
                 "idle mode: echo N messages on each connection, then idle");
  app.add_flag("--json", out.json, "print one JSON object instead of text");
  app.add_option("--server-pid", out.server_pid,
                 "report that process's CPU time (user + sys) inside the measured window, read "
                 "from /proc (server on this host)")
      ->check(cli::at_least(1));
  cli::parse_or_throw(app, argc, argv);

  if (offer->count() > 0) out.deflate = true;
  parse_url(url, out);
  if (!sources.empty()) cli::parse_source_ips(sources, out.sources);
  if (out.raw && out.mode == load_mode::connect_storm) {
    throw std::invalid_argument("--raw supports --mode echo and idle only");
  }
  if (out.raw && (out.deflate || out.payload != payload_kind::bytes)) {
    throw std::invalid_argument("--raw takes neither --deflate nor --payload json");
  }
  if (out.tls && out.ca_file.empty() && !out.insecure) {
    throw std::invalid_argument("wss:// needs --ca-file FILE (verify the server) or --insecure");
  }
  if (out.tls && !out.ca_file.empty() && out.insecure) {
    throw std::invalid_argument("--ca-file and --insecure exclude each other");
  }
  if (!out.tls && (!out.ca_file.empty() || out.insecure)) {
    throw std::invalid_argument("--ca-file and --insecure apply to wss:// URLs only");
  }
  if (out.tls && out.raw) throw std::invalid_argument("--raw takes ws:// or tcp:// URLs only");
  cli::check_source_families(out.sources, out.remote);
  return out;
}

}  // namespace switchboard::bench
