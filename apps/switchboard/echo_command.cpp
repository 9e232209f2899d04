// echo_command.cpp — `switchboard echo`: an RFC 6455 echo server on every
// path (for conformance suites, benchmarks and the integration tests). Every
// message comes back with its opcode. The CLI is a contract other tests rely
// on: one line "listening on ws://HOST:PORT" on stdout once listening;
// SIGTERM/SIGINT close every client with the shutdown code and exit 0.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include <switchboard/net/signal_watcher.hpp>
#include <switchboard/server/server.hpp>

#include "commands.hpp"

namespace switchboard::app {

namespace {

struct echo_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 9001;
  std::size_t threads = 1;
  std::uint64_t max_message_size = 16 * 1024 * 1024;
  double idle_timeout = 0;
  double ping_interval = 30;
  double pong_timeout = 10;
  double handshake_timeout = 10;
  double close_timeout = 5;
  std::size_t max_connections = 0;
  std::size_t max_backpressure = 1024 * 1024;
  std::string backpressure_policy = "close";
  int shutdown_code = 1001;
  double shutdown_timeout = 5;
  // permessage-deflate: "" (off), "shared" or "dedicated".
  std::string deflate;
  std::size_t deflate_threshold = protocol::k_default_compress_threshold;
  unsigned deflate_window_bits = 15;
  unsigned deflate_mem_level = 8;
};

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds{static_cast<std::int64_t>(std::llround(seconds * 1000.0))};
}

int run_echo(const echo_options& o) {
  server::server_options opts;
  opts.host = o.host;
  opts.port = o.port;
  opts.threads = o.threads;
  opts.max_message_size = o.max_message_size;
  opts.idle_timeout = to_ms(o.idle_timeout);
  opts.ping_interval = to_ms(o.ping_interval);
  opts.pong_timeout = to_ms(o.pong_timeout);
  opts.handshake_timeout = to_ms(o.handshake_timeout);
  opts.close_timeout = to_ms(o.close_timeout);
  opts.max_connections = o.max_connections;
  opts.max_backpressure = o.max_backpressure;
  opts.policy = o.backpressure_policy == "drop" ? server::backpressure_policy::drop
                                                : server::backpressure_policy::close;
  opts.shutdown_code = static_cast<protocol::close_code>(o.shutdown_code);
  opts.shutdown_timeout = to_ms(o.shutdown_timeout);
  opts.handle_signals = true;

  // Block the signals before anyone can learn the port: a SIGTERM sent right
  // after the "listening" line then waits for the signalfd instead of killing us.
  if (auto ec = net::signal_watcher::block({SIGINT, SIGTERM})) {
    std::cerr << "switchboard echo: " << ec.message() << "\n";
    return 1;
  }
  server::server srv(opts);
  server::ws_behavior echo;
  // Each message goes back compressed or not as the connection negotiated.
  if (o.deflate == "shared") {
    echo.compression.mode = server::compression_mode::shared;
  } else if (o.deflate == "dedicated") {
    echo.compression.mode = server::compression_mode::dedicated;
    echo.compression.server_max_window_bits = static_cast<std::uint8_t>(o.deflate_window_bits);
    echo.compression.client_max_window_bits = static_cast<std::uint8_t>(o.deflate_window_bits);
    echo.compression.mem_level = static_cast<std::uint8_t>(o.deflate_mem_level);
  }
  echo.compression.threshold = o.deflate_threshold;
  echo.on_message = [](server::websocket& ws, std::string_view payload, protocol::opcode op) {
    ws.send(payload, op);
  };
  srv.ws("*", std::move(echo));
  if (auto ec = srv.listen()) {
    std::cerr << "switchboard echo: cannot listen on " << o.host << ":" << o.port << ": "
              << ec.message() << "\n";
    return 1;
  }
  const bool v6 = o.host.find(':') != std::string::npos && o.host.front() != '[';
  std::printf("listening on ws://%s%s%s:%u\n", v6 ? "[" : "", o.host.c_str(), v6 ? "]" : "",
              static_cast<unsigned>(srv.port()));
  std::fflush(stdout);
  if (auto ec = srv.run()) {
    std::cerr << "switchboard echo: " << ec.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

void add_echo_command(CLI::App& app, command_runner& run) {
  auto o = std::make_shared<echo_options>();
  CLI::App* cmd = app.add_subcommand(
      "echo", "RFC 6455 echo server on every path: each message comes back with its opcode");
  const auto seconds = CLI::NonNegativeNumber;
  cmd->add_option("--host", o->host, "numeric address to listen on")->capture_default_str();
  cmd->add_option("--port", o->port, "TCP port (0 picks a free one)")->capture_default_str();
  cmd->add_option("--threads", o->threads, "event-loop threads (SO_REUSEPORT)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1024}))
      ->capture_default_str();
  cmd->add_option("--max-message-size", o->max_message_size,
                  "largest message in bytes; larger closes with 1009")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--idle-timeout", o->idle_timeout,
                  "seconds without input before closing with 1001 (0 = off)")
      ->check(seconds)
      ->capture_default_str();
  cmd->add_option("--ping-interval", o->ping_interval,
                  "seconds of silence before a keepalive ping (0 = off)")
      ->check(seconds)
      ->capture_default_str();
  cmd->add_option("--pong-timeout", o->pong_timeout,
                  "seconds to wait for an answer to a keepalive ping before closing with 1008 (0 = off)")
      ->check(seconds)
      ->capture_default_str();
  cmd->add_option("--handshake-timeout", o->handshake_timeout,
                  "seconds a client has to send its request head (0 = off)")
      ->check(seconds)
      ->capture_default_str();
  cmd->add_option("--close-timeout", o->close_timeout,
                  "seconds to wait for the peer's close frame after ours (0 = off)")
      ->check(seconds)
      ->capture_default_str();
  cmd->add_option("--max-connections", o->max_connections,
                  "WebSocket connections at once; more get 503 (0 = unlimited)")
      ->capture_default_str();
  cmd->add_option("--max-backpressure", o->max_backpressure,
                  "bytes queued for a slow reader before the policy applies")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--backpressure-policy", o->backpressure_policy,
                  "over max-backpressure: close (1008) or drop new messages")
      ->check(CLI::IsMember({"close", "drop"}))
      ->capture_default_str();
  cmd->add_option("--shutdown-code", o->shutdown_code,
                  "close code sent on SIGTERM/SIGINT: 1001 going away or 1012 restart")
      ->check(CLI::IsMember({1001, 1012}))
      ->capture_default_str();
  cmd->add_option("--shutdown-timeout", o->shutdown_timeout,
                  "seconds to wait for clients' close frames on shutdown")
      ->check(seconds)
      ->capture_default_str();
  cmd->add_option("--deflate", o->deflate,
                  "permessage-deflate (RFC 7692): 'shared' (no context takeover; zlib state per "
                  "thread only, none per connection) or 'dedicated' (context takeover; ~300 KiB "
                  "per active connection with the defaults). No value: shared. Absent: off")
      ->expected(0, 1)
      ->check(CLI::IsMember({"", "shared", "dedicated"}));
  cmd->add_option("--deflate-threshold", o->deflate_threshold,
                  "messages shorter than this many bytes are sent uncompressed")
      ->capture_default_str();
  cmd->add_option("--deflate-window-bits", o->deflate_window_bits,
                  "dedicated: LZ77 window (9-15) of each connection's deflater and the most the "
                  "client may use; memory 4<<N (deflate) + 1<<N (inflate) bytes")
      ->check(CLI::Range(9u, 15u))
      ->capture_default_str();
  cmd->add_option("--deflate-mem-level", o->deflate_mem_level,
                  "dedicated: zlib memLevel (1-9) of each connection's deflater; memory 512<<N bytes")
      ->check(CLI::Range(1u, 9u))
      ->capture_default_str();
  cmd->callback([&run, o, cmd] {
    // A bare --deflate means shared.
    if (cmd->count("--deflate") > 0 && o->deflate.empty()) o->deflate = "shared";
    run = [o] { return run_echo(*o); };
  });
}

}  // namespace switchboard::app
