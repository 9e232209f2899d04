// echo_server — a WebSocket echo server in a few lines of switchboard::server:
// every message goes back to its sender with the same opcode (text or
// binary); pings, the close handshake, timeouts and limits are the library's.
//
// Usage: echo_server [PORT]    (no PORT or 0: the kernel picks a free one)
// Prints one line once listening, "listening on ws://127.0.0.1:PORT", and runs
// until SIGINT or SIGTERM, which close every connection with 1001 and return.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <switchboard/net/signal_watcher.hpp>
#include <switchboard/server/server.hpp>

namespace sb = switchboard;

int main(int argc, char** argv) {
  sb::server::server_options options;
  options.host = "127.0.0.1";
  options.port = argc > 1 ? static_cast<std::uint16_t>(std::atoi(argv[1])) : 0;
  options.handle_signals = true;  // SIGINT / SIGTERM: graceful shutdown

  // Block the signals before anyone learns the port: a SIGTERM sent right
  // after the "listening" line then waits for the server instead of killing us.
  if (auto error = sb::net::signal_watcher::block({SIGINT, SIGTERM})) {
    std::fprintf(stderr, "echo_server: %s\n", error.message().c_str());
    return 1;
  }

  sb::server::server server(options);
  sb::server::ws_behavior echo;
  echo.on_message = [](sb::server::websocket& ws, std::string_view payload,
                       sb::protocol::opcode op) { ws.send(payload, op); };
  server.ws("*", std::move(echo));  // every path

  if (auto error = server.listen()) {
    std::fprintf(stderr, "echo_server: cannot listen: %s\n", error.message().c_str());
    return 1;
  }
  std::printf("listening on ws://127.0.0.1:%u\n", static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  if (auto error = server.run()) {
    std::fprintf(stderr, "echo_server: %s\n", error.message().c_str());
    return 1;
  }
  return 0;
}
