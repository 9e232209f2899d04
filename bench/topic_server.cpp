// topic_server.cpp — switchboard_topic_server: the server layer's topic
// fan-out (server::publish, websocket::subscribe) behind the switchboard.v1
// messages that switchboard_fanout sends (pubsub_wire.hpp), with nothing of
// the realtime layer (no history, presence, auth or JSON parsing). Its peer
// in the same runs is the bare loop's fan-out ceiling, switchboard_raw_echo
// --fanout; `switchboard serve` adds the realtime layer on top of this.
//
//   switchboard_topic_server [--host ADDR] [--port PORT] [--threads N] [--io-backend B]
//                            [--max-backpressure BYTES] [--policy close|drop]
//
// Prints "listening on HOST:PORT" once listening; SIGINT / SIGTERM shut it down.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <string_view>

#include "pubsub_wire.hpp"
#include "switchboard/server/server.hpp"

int main(int argc, char** argv) {
  using namespace switchboard;
  server::server_options options;
  options.port = 0;
  options.ping_interval = std::chrono::milliseconds{0};  // the load generator answers pings,
                                                         // but they would only add noise
  std::string policy = "close";
  std::string io_backend = "epoll";
  CLI::App app{"switchboard_topic_server: server-layer topic fan-out for switchboard_fanout",
               "switchboard_topic_server"};
  app.option_defaults()->always_capture_default();
  app.add_option("--host", options.host, "numeric address to listen on");
  app.add_option("--port", options.port, "port (0: any)");
  app.add_option("--threads", options.threads, "event loops")->check(CLI::Range(1, 256));
  app.add_option("--max-backpressure", options.max_backpressure,
                 "bytes queued per connection before the policy applies");
  app.add_option("--policy", policy, "over max-backpressure: close (1008) | drop")
      ->check(CLI::IsMember({"close", "drop"}));
  app.add_option("--io-backend", io_backend, "event-loop backend (io_uring falls back to epoll)")
      ->check(CLI::IsMember({"epoll", "io_uring"}));
  CLI11_PARSE(app, argc, argv);
  (void)net::parse_io_backend(io_backend, options.io_backend);
  options.policy =
      policy == "drop" ? server::backpressure_policy::drop : server::backpressure_policy::close;

  server::server srv(options);
  server::ws_behavior behavior;
  behavior.on_upgrade = [](server::upgrade_request& req) {
    const std::string_view supported[] = {bench::pubsub::k_subprotocol};
    req.accept(req.select_subprotocol(supported).value_or(std::string_view{}));
  };
  behavior.on_message = [&srv](server::websocket& ws, std::string_view payload,
                               protocol::opcode /*op*/) {
    thread_local std::string out;
    const bench::pubsub::command c = bench::pubsub::parse_command(payload);
    if (c.kind == bench::pubsub::command_kind::subscribe) {
      ws.subscribe(c.channel);
    } else if (c.kind == bench::pubsub::command_kind::publish) {
      out.clear();
      bench::pubsub::append_push(out, c);
      srv.publish(c.channel, out, protocol::opcode::text);
    }
    out.clear();
    bench::pubsub::append_reply(out, c);
    ws.send(out, protocol::opcode::text);
  };
  srv.ws("*", std::move(behavior));
  if (auto ec = srv.listen()) {
    std::fprintf(stderr, "switchboard_topic_server: listen: %s\n", ec.message().c_str());
    return 1;
  }
  std::printf("listening on %s:%u\n", options.host.c_str(), static_cast<unsigned>(srv.port()));
  std::fflush(stdout);
  return srv.run() ? 1 : 0;
}
