// conformance_driver.cpp — switchboard::client as an echo peer, driven by
// tests/integration/client_conformance_test.py (the client-role conformance
// suite): it connects to the URL, sends every message back with its opcode,
// and reports each event on stdout, one line each, so the suite can check
// what the library saw as well as what it put on the wire.
//
//   client_conformance_driver URL [--protocol P]... [--deflate]
//       [--deflate-no-client-window] [--deflate-server-no-context-takeover]
//       [--max-message-size N] [--handshake-timeout-ms N] [--close-timeout-ms N]
//       [--ca-file F]
//
// Output lines:
//   open SUBPROTOCOL|-               the handshake succeeded
//   deflate on|off                   whether permessage-deflate was agreed
//   message text|binary SIZE         a message arrived (and was echoed)
//   ping SIZE / pong SIZE            a control frame arrived
//   error CATEGORY VALUE [CODE] TEXT on_error; CODE is the close code we sent
//                                    for a protocol error after the upgrade
//   close CODE REASON                on_close
//   closed CODE                      the final state; the program then exits
// Exit status: 0 when the server closed with 1000 and nothing failed, 1
// otherwise, 2 for bad arguments. A watchdog ends the run after 20 s.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "switchboard/client/websocket_client.hpp"
#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/tls_context.hpp"
#include "switchboard/protocol/close_code.hpp"
#include "switchboard/protocol/error.hpp"

namespace {

using namespace switchboard;

void line(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

int usage(const char* why) {
  std::fprintf(stderr, "client_conformance_driver: %s\n", why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage("usage: client_conformance_driver URL [options]");
  const std::string url = argv[1];
  client::client_options options;
  std::string ca_file;
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--protocol" && has_value) {
      options.protocols.emplace_back(argv[++i]);
    } else if (arg == "--deflate") {
      options.deflate = true;
    } else if (arg == "--deflate-no-client-window") {
      options.deflate_offer.offer_client_max_window_bits = false;
    } else if (arg == "--deflate-server-no-context-takeover") {
      options.deflate_offer.server_no_context_takeover = true;
    } else if (arg == "--max-message-size" && has_value) {
      options.max_message_size = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg == "--handshake-timeout-ms" && has_value) {
      options.handshake_timeout = std::chrono::milliseconds(std::strtoll(argv[++i], nullptr, 10));
    } else if (arg == "--close-timeout-ms" && has_value) {
      options.close_timeout = std::chrono::milliseconds(std::strtoll(argv[++i], nullptr, 10));
    } else if (arg == "--ca-file" && has_value) {
      ca_file = argv[++i];
    } else {
      return usage(("unknown or incomplete option: " + std::string(arg)).c_str());
    }
  }

  std::error_code error;
  auto loop = net::event_loop::create(error);
  if (!loop) return usage(("event loop: " + error.message()).c_str());
  std::unique_ptr<net::tls_context> tls;
  if (url.rfind("wss://", 0) == 0) {
    net::tls_client_options tls_options;
    tls_options.ca_file = ca_file;
    net::tls_error tls_error;
    tls = net::tls_context::client(tls_options, tls_error);
    if (!tls) return usage(("TLS context: " + tls_error.text).c_str());
    options.tls = tls.get();
  }

  std::unique_ptr<client::websocket_client> client;
  bool failed = false;
  std::uint16_t final_code = 0;
  client::client_handlers h;
  h.on_open = [&](std::string_view subprotocol) {
    line("open " + (subprotocol.empty() ? std::string("-") : std::string(subprotocol)));
    line(std::string("deflate ") + (client->deflate_params() ? "on" : "off"));
  };
  h.on_message = [&](std::string_view payload, protocol::opcode op) {
    const bool text = op == protocol::opcode::text;
    line(std::string("message ") + (text ? "text " : "binary ") + std::to_string(payload.size()));
    if (client->send(payload, op) == client::send_status::dropped) line("echo dropped");
  };
  h.on_ping = [&](std::string_view payload) { line("ping " + std::to_string(payload.size())); };
  h.on_pong = [&](std::string_view payload) { line("pong " + std::to_string(payload.size())); };
  h.on_error = [&](std::error_code e, std::string_view text) {
    failed = true;
    std::string out = "error ";
    out.append(e.category().name()).append(" ").append(std::to_string(e.value()));
    if (e.category() == protocol::protocol_category() &&
        !protocol::is_handshake_error(static_cast<protocol::error>(e.value()))) {
      const auto code = protocol::close_code_for(static_cast<protocol::error>(e.value()));
      out.append(" ").append(std::to_string(protocol::to_underlying(code)));
    }
    out.append(" ").append(text);
    line(out);
  };
  h.on_close = [&](std::uint16_t code, std::string_view reason) {
    line("close " + std::to_string(code) + " " + std::string(reason));
  };
  h.on_state = [&](const client::state_change& change) {
    if (change.state != client::client_state::closed) return;
    final_code = change.code;
    line("closed " + std::to_string(change.code));
    loop->stop();
  };
  client = std::make_unique<client::websocket_client>(*loop, std::move(options), std::move(h));

  // A hung client must fail the suite, not stall it.
  struct watchdog_state {
    net::event_loop* loop;
    bool* failed;
  } watchdog_context{loop.get(), &failed};
  net::timer_node watchdog(
      [](void* context) {
        auto* state = static_cast<watchdog_state*>(context);
        line("watchdog");
        *state->failed = true;
        state->loop->stop();
      },
      &watchdog_context);
  loop->timers().schedule(watchdog, std::chrono::seconds(20));

  if (auto connect_error = client->connect(url)) {
    line("error connect " + connect_error.message());
    return 1;
  }
  if (auto run_error = loop->run()) line("error loop " + run_error.message());
  watchdog.cancel();
  client.reset();
  return !failed && final_code == 1000 ? 0 : 1;
}
