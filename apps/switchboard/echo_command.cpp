// echo_command.cpp — `switchboard echo`: an RFC 6455 echo server on every
// path (for conformance suites, benchmarks and the integration tests). Every
// message comes back with its opcode. The CLI is a contract other tests rely
// on: one line "listening on ws://HOST:PORT" on stdout once listening;
// SIGTERM/SIGINT close every client with the shutdown code and exit 0.
// With --tls-cert/--tls-key the port speaks wss:// only and the line says
// "listening on wss://HOST:PORT"; SIGHUP re-reads the certificate and key
// (one stderr line: reloaded, or why not and that the old one stays).
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include <switchboard/net/signal_watcher.hpp>
#include <switchboard/net/tls_context.hpp>
#include <switchboard/net/cpus.hpp>
#include <switchboard/server/server.hpp>

#include "commands.hpp"

namespace switchboard::app {

namespace {

// wss:// settings (TLS only when a certificate is given).
struct echo_tls_options {
  std::string cert;                  // PEM chain, leaf first
  std::string key;                   // PEM, unencrypted
  std::string ca;                    // PEM: CAs client certificates must chain to
  std::string client_cert = "none";  // none | request | require
};

struct echo_options {
  echo_tls_options tls;  // --tls-*: wss:// when tls.cert is set
  std::string host = "127.0.0.1";
  std::uint16_t port = 9001;
  std::size_t threads = 0;  // 0: auto, one loop per usable CPU
  std::string io_backend = "epoll";
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
  // dedicated: the library's lean defaults (11 and 4: ~31 KiB per connection,
  // at most ~61 KiB; server/compression.hpp).
  unsigned deflate_window_bits = server::compression_options{}.server_max_window_bits;
  unsigned deflate_mem_level = server::compression_options{}.mem_level;
};

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds{static_cast<std::int64_t>(std::llround(seconds * 1000.0))};
}

// The server's TLS context, or nullptr with `why` set. REQUIRES: !o.cert.empty().
std::unique_ptr<net::tls_context> make_echo_tls(const echo_tls_options& o, std::string& why) {
  net::tls_server_options options;
  options.certificate_chain_file = o.cert;
  options.private_key_file = o.key;
  options.client_ca_file = o.ca;
  if (o.client_cert == "request") {
    options.client_auth = net::client_certificates::request;
  } else if (o.client_cert == "require") {
    options.client_auth = net::client_certificates::require;
  }
  if (options.client_auth != net::client_certificates::none && o.ca.empty()) {
    why = "--tls-client-cert " + o.client_cert + " needs --tls-ca";
    return nullptr;
  }
  net::tls_error error;
  auto context = net::tls_context::server(options, error);
  if (!context) why = error.text;
  return context;
}

int run_echo(const echo_options& o) {
  server::server_options opts;
  opts.host = o.host;
  opts.port = o.port;
  opts.threads = o.threads != 0 ? o.threads : net::usable_cpus();
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
  (void)net::parse_io_backend(o.io_backend, opts.io_backend);  // checked by the option

  // wss://: the context outlives the server (declared first, destroyed last).
  std::unique_ptr<net::tls_context> tls;
  if (!o.tls.cert.empty()) {
    std::string why;
    tls = make_echo_tls(o.tls, why);
    if (!tls) {
      std::cerr << "switchboard echo: TLS: " << why << "\n";
      return 1;
    }
    opts.tls = tls.get();
    opts.on_tls_reload = [](const net::tls_error& result) {
      if (result) {
        std::fprintf(stderr,
                     "switchboard echo: SIGHUP: TLS reload failed, keeping the old "
                     "certificate: %s\n",
                     result.text.c_str());
      } else {
        std::fprintf(stderr, "switchboard echo: SIGHUP: TLS certificate and key reloaded\n");
      }
    };
    opts.on_tls_handshake_error = [](std::error_code error, std::string_view reason) {
      const std::string text = reason.empty() ? error.message() : std::string(reason);
      std::fprintf(stderr, "switchboard echo: TLS handshake failed: %s\n", text.c_str());
    };
  }

  // Block the signals before anyone can learn the port: a SIGTERM sent right
  // after the "listening" line then waits for the signalfd instead of killing
  // us (and so does a SIGHUP with TLS, which reloads the certificate).
  if (auto ec = tls ? net::signal_watcher::block({SIGINT, SIGTERM, SIGHUP})
                    : net::signal_watcher::block({SIGINT, SIGTERM})) {
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
  if (srv.io_backend() != opts.io_backend) {
    std::fprintf(stderr, "switchboard echo: io_uring unavailable (%s), using epoll\n",
                 srv.io_backend_error().message().c_str());
  }
  const bool v6 = o.host.find(':') != std::string::npos && o.host.front() != '[';
  std::printf("listening on %s://%s%s%s:%u\n", tls ? "wss" : "ws", v6 ? "[" : "", o.host.c_str(),
              v6 ? "]" : "", static_cast<unsigned>(srv.port()));
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
  cmd->add_option_function<std::string>(
         "--threads",
         [o](const std::string& v) {
           // "auto" is the default; a number is checked by the validator below.
           o->threads = v == "auto" ? 0 : static_cast<std::size_t>(std::stoul(v));
         },
         "event-loop threads (SO_REUSEPORT); auto: one per usable CPU (affinity mask and "
         "cgroup quota)")
      ->type_name("N|auto")
      ->default_str("auto")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            if (v == "auto") return {};
            std::size_t n = 0;
            const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            if (ec != std::errc{} || end != v.data() + v.size() || n < 1 || n > 1024) {
              return "must be auto or 1 to 1024, got " + v;
            }
            return {};
          },
          "", "threads"));
  cmd->add_option("--io-backend", o->io_backend,
                  "what the event loops wait for I/O with; io_uring falls back to epoll "
                  "(one log line) where the kernel refuses it")
      ->check(CLI::IsMember({"epoll", "io_uring"}))
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
                  "thread only, none per connection) or 'dedicated' (context takeover; with the "
                  "defaults ~31 KiB per active connection, at most ~61 KiB when the client does "
                  "not offer client_max_window_bits). No value: shared. Absent: off")
      ->expected(0, 1)
      ->check(CLI::IsMember({"", "shared", "dedicated"}));
  cmd->add_option("--deflate-threshold", o->deflate_threshold,
                  "messages shorter than this many bytes are sent uncompressed")
      ->capture_default_str();
  cmd->add_option("--deflate-window-bits", o->deflate_window_bits,
                  "dedicated: LZ77 window (9-15) of each connection's deflater and the most the "
                  "client may use when it offers client_max_window_bits (else it may use 15); "
                  "memory 4<<N (deflate) + 1<<N (inflate) bytes. 15 with --deflate-mem-level 8: "
                  "~301 KiB per connection, better ratio; 9 with 1: ~17 KiB (~48 KiB at most)")
      ->check(CLI::Range(9u, 15u))
      ->capture_default_str();
  cmd->add_option("--deflate-mem-level", o->deflate_mem_level,
                  "dedicated: zlib memLevel (1-9) of each connection's deflater; memory 512<<N bytes")
      ->check(CLI::Range(1u, 9u))
      ->capture_default_str();
  CLI::Option* tls_cert =
      cmd->add_option("--tls-cert", o->tls.cert,
                      "serve wss:// (TLS 1.2/1.3) with this PEM certificate chain, leaf first; "
                      "SIGHUP re-reads it and the key");
  CLI::Option* tls_key =
      cmd->add_option("--tls-key", o->tls.key, "PEM private key (unencrypted) of --tls-cert");
  tls_cert->needs(tls_key);
  tls_key->needs(tls_cert);
  cmd->add_option("--tls-ca", o->tls.ca, "PEM file of the CAs client certificates must chain to")
      ->needs(tls_cert);
  cmd->add_option("--tls-client-cert", o->tls.client_cert,
                  "ask clients for a certificate: none, request (verified if sent) or require; "
                  "request and require need --tls-ca")
      ->check(CLI::IsMember({"none", "request", "require"}))
      ->needs(tls_cert)
      ->capture_default_str();
  cmd->callback([&run, o, cmd] {
    // A bare --deflate means shared.
    if (cmd->count("--deflate") > 0 && o->deflate.empty()) o->deflate = "shared";
    run = [o] { return run_echo(*o); };
  });
}

}  // namespace switchboard::app
