// ws_client — a WebSocket client on switchboard::client: connects to URL,
// sends each MESSAGE as a text message, prints every message it receives,
// and once as many have come back as it sent, closes normally (1000).
//
// Usage: ws_client URL [MESSAGE...]      e.g. ws_client ws://127.0.0.1:9001/ hello world
// Exit status: 0 after a normal close, 1 if the connection failed or the
// server closed with another code (the reason goes to stderr).
//
// Everything runs on one event loop on this thread; the client's callbacks
// run there too, so they may call the client directly.
#include <cstdio>
#include <string>
#include <string_view>
#include <switchboard/client/websocket_client.hpp>
#include <switchboard/net/event_loop.hpp>
#include <vector>

namespace sb = switchboard;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s URL [MESSAGE...]\n", argv[0]);
    return 2;
  }
  const std::string url = argv[1];
  const std::vector<std::string> messages(argv + 2, argv + argc);

  std::error_code error;
  std::unique_ptr<sb::net::event_loop> loop = sb::net::event_loop::create(error);
  if (!loop) {
    std::fprintf(stderr, "ws_client: %s\n", error.message().c_str());
    return 1;
  }

  int exit_code = 1;
  std::size_t received = 0;
  sb::client::websocket_client* self = nullptr;  // set below, before connect()
  sb::client::client_handlers handlers;
  handlers.on_open = [&](std::string_view) {
    for (const std::string& m : messages) self->send_text(m);
    if (messages.empty()) self->close(1000);
  };
  handlers.on_message = [&](std::string_view payload, sb::protocol::opcode) {
    std::printf("%.*s\n", static_cast<int>(payload.size()), payload.data());
    std::fflush(stdout);
    if (++received == messages.size()) self->close(1000, "done");
  };
  handlers.on_error = [&](std::error_code, std::string_view text) {
    std::fprintf(stderr, "ws_client: %.*s\n", static_cast<int>(text.size()), text.data());
  };
  handlers.on_close = [&](std::uint16_t code, std::string_view reason) {
    if (code == 1000) {
      exit_code = 0;
    } else {
      std::fprintf(stderr, "ws_client: closed with %u %.*s\n", static_cast<unsigned>(code),
                   static_cast<int>(reason.size()), reason.data());
    }
  };
  // Reconnection is off by default: once closed, the run is over.
  handlers.on_state = [&](const sb::client::state_change& change) {
    if (change.state == sb::client::client_state::closed) loop->stop();
  };

  sb::client::websocket_client client(*loop, sb::client::client_options{}, std::move(handlers));
  self = &client;
  if (auto connect_error = client.connect(url)) {
    std::fprintf(stderr, "ws_client: %s: %s\n", url.c_str(), connect_error.message().c_str());
    return 1;
  }
  if (auto run_error = loop->run()) {
    std::fprintf(stderr, "ws_client: event loop: %s\n", run_error.message().c_str());
    return 1;
  }
  return exit_code;
}
