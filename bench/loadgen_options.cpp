// loadgen_options.cpp — argument parsing for switchboard_loadgen. Plain
// argv walking: the tool has a dozen flags and no subcommands.
#include "loadgen_options.hpp"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "cli_parse.hpp"

namespace switchboard::bench {
namespace {

constexpr const char* k_usage =
    "usage: switchboard_loadgen --url ws[s]://HOST:PORT/PATH [options]\n"
    "  --ca-file FILE        wss://: PEM CA(s) the server certificate must chain to\n"
    "  --insecure            wss://: do not verify the server certificate\n"
    "  --connections N       concurrent connections (100)\n"
    "  --size BYTES          payload bytes per message (16)\n"
    "  --inflight K          messages in flight per connection (1)\n"
    "  --duration S          measured seconds (10)\n"
    "  --warmup S            unmeasured seconds first (2)\n"
    "  --threads T           event-loop threads (1)\n"
    "  --mode M              echo | connect-storm | idle (echo)\n"
    "  --source-ips A,B,...  local IPv4 addresses to spread connections over\n"
    "  --connect-timeout S   per connect + upgrade attempt (10)\n"
    "  --raw                 raw TCP echo of SIZE-byte messages, no WebSocket\n"
    "  --payload P           bytes ('x' * SIZE, binary) | json (SIZE-byte JSON-like text) (bytes)\n"
    "  --deflate             offer permessage-deflate; compress sends, inflate and check echoes\n"
    "  --deflate-offer O     what to offer, implies --deflate: no-takeover (both\n"
    "                        *_no_context_takeover, default) | takeover (as browsers offer)\n"
    "  --idle-messages N     idle mode: echo N messages on each connection, then idle (0)\n"
    "  --json                print one JSON object instead of text\n"
    "  --server-pid PID      report that process's CPU time (user + sys) inside the\n"
    "                        measured window, read from /proc (server on this host)\n";

using cli::to_count;
using cli::to_seconds;

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
  bool have_url = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(k_usage, stdout);
      std::exit(0);
    }
    if (flag == "--raw") {
      out.raw = true;
      continue;
    }
    if (flag == "--json") {
      out.json = true;
      continue;
    }
    if (flag == "--deflate") {
      out.deflate = true;
      continue;
    }
    if (flag == "--insecure") {
      out.insecure = true;
      continue;
    }
    if (i + 1 >= argc) throw std::invalid_argument(std::string(flag) + ": missing value");
    const std::string value = argv[++i];
    if (flag == "--url") {
      parse_url(value, out);
      have_url = true;
    } else if (flag == "--connections") {
      out.connections = to_count(flag, value, 1);
    } else if (flag == "--size") {
      out.size = to_count(flag, value, 1);
    } else if (flag == "--inflight") {
      out.inflight = to_count(flag, value, 1);
    } else if (flag == "--duration") {
      out.duration_s = to_seconds(flag, value);
    } else if (flag == "--warmup") {
      out.warmup_s = to_seconds(flag, value);
    } else if (flag == "--threads") {
      out.threads = to_count(flag, value, 1);
    } else if (flag == "--connect-timeout") {
      out.connect_timeout_s = to_seconds(flag, value);
    } else if (flag == "--mode") {
      if (value == "echo") {
        out.mode = load_mode::echo;
      } else if (value == "connect-storm") {
        out.mode = load_mode::connect_storm;
      } else if (value == "idle") {
        out.mode = load_mode::idle;
      } else {
        throw std::invalid_argument("--mode: expected echo, connect-storm or idle");
      }
    } else if (flag == "--payload") {
      if (value == "bytes") {
        out.payload = payload_kind::bytes;
      } else if (value == "json") {
        out.payload = payload_kind::json;
      } else {
        throw std::invalid_argument("--payload: expected bytes or json");
      }
    } else if (flag == "--deflate-offer") {
      out.deflate = true;
      if (value == "no-takeover") {
        out.offer = deflate_offer::no_takeover;
      } else if (value == "takeover") {
        out.offer = deflate_offer::takeover;
      } else {
        throw std::invalid_argument("--deflate-offer: expected no-takeover or takeover");
      }
    } else if (flag == "--idle-messages") {
      out.idle_messages = to_count(flag, value, 0);
    } else if (flag == "--server-pid") {
      out.server_pid = static_cast<long>(to_count(flag, value, 1));
    } else if (flag == "--ca-file") {
      out.ca_file = value;
    } else if (flag == "--source-ips") {
      cli::parse_source_ips(value, out.sources);
    } else {
      throw std::invalid_argument("unknown option '" + std::string(flag) + "'\n" + k_usage);
    }
  }
  if (!have_url) throw std::invalid_argument(std::string("--url is required\n") + k_usage);
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
