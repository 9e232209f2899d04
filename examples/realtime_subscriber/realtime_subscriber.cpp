// realtime_subscriber — a subscriber of `switchboard serve`: a plain
// switchboard::client WebSocket that speaks the switchboard.v1 JSON protocol
// (docs/protocol.md). It subscribes to CHANNEL, prints "subscribed CHANNEL"
// once the server confirms, then prints each publication's JSON push as one
// line, and after COUNT of them (default: run until the server closes)
// closes normally.
//
// Usage: realtime_subscriber URL CHANNEL [COUNT]
//   realtime_subscriber ws://127.0.0.1:8080/ws news 1
// A token, when the server wants one, comes from SWITCHBOARD_TOKEN and is sent
// as "Authorization: Bearer ..." (checked before the 101, docs/protocol.md).
// Exit status: 0 after a normal close, 1 on a failed connection, a refused
// subscription or another close code.
//
// To stay dependency-free the example looks for one field with a few lines
// of string search; a real program parses the JSON (simdjson, nlohmann/json).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <switchboard/client/websocket_client.hpp>
#include <switchboard/net/event_loop.hpp>

namespace sb = switchboard;

namespace {

// The kind of a server push ("message", "join", "leave"), or "" for a reply:
// the string value of "push" in the server's compact JSON.
std::string_view push_kind(std::string_view json) {
  constexpr std::string_view key = R"("push":")";
  const auto start = json.find(key);
  if (start == std::string_view::npos) return {};
  const auto begin = start + key.size();
  const auto end = json.find('"', begin);
  return end == std::string_view::npos ? std::string_view{} : json.substr(begin, end - begin);
}

// CHANNEL as a JSON string. Channel names are plain ASCII (docs/protocol.md);
// anything else is sent escaped and the server answers 422.
std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s URL CHANNEL [COUNT]\n", argv[0]);
    return 2;
  }
  const std::string url = argv[1];
  const std::string channel = argv[2];
  const long count = argc > 3 ? std::atol(argv[3]) : 0;

  std::error_code error;
  auto loop = sb::net::event_loop::create(error);
  if (!loop) {
    std::fprintf(stderr, "realtime_subscriber: %s\n", error.message().c_str());
    return 1;
  }

  sb::client::client_options options;
  options.protocols = {"switchboard.v1"};
  if (const char* token = std::getenv("SWITCHBOARD_TOKEN"); token && *token) {
    options.headers.emplace_back("Authorization", std::string("Bearer ") + token);
  }

  int exit_code = 1;
  long received = 0;
  bool refused = false;
  sb::client::websocket_client* self = nullptr;  // set below, before connect()
  sb::client::client_handlers handlers;
  handlers.on_open = [&](std::string_view) {
    self->send_text(R"({"id":1,"cmd":"subscribe","channel":)" + json_string(channel) + "}");
  };
  handlers.on_message = [&](std::string_view json, sb::protocol::opcode) {
    if (json.starts_with(R"({"id":1,)")) {  // the reply to our subscribe
      if (json.find(R"("error":)") != std::string_view::npos) {
        std::fprintf(stderr, "realtime_subscriber: subscribe refused: %.*s\n",
                     static_cast<int>(json.size()), json.data());
        refused = true;
        self->close(1000);
        return;
      }
      std::printf("subscribed %s\n", channel.c_str());
    } else if (push_kind(json) == "message") {
      std::printf("%.*s\n", static_cast<int>(json.size()), json.data());
      if (++received == count) self->close(1000, "done");
    }
    std::fflush(stdout);
  };
  handlers.on_error = [&](std::error_code, std::string_view text) {
    std::fprintf(stderr, "realtime_subscriber: %.*s\n", static_cast<int>(text.size()),
                 text.data());
  };
  handlers.on_close = [&](std::uint16_t code, std::string_view reason) {
    // Done: we closed after COUNT publications, or the server went away
    // politely (1001, or 1012 when it restarts). A refusal is a failure.
    const bool graceful = code == 1000 || code == 1001 || code == 1012;
    if (graceful && !refused) {
      exit_code = 0;
    } else if (!graceful) {
      std::fprintf(stderr, "realtime_subscriber: closed with %u %.*s\n",
                   static_cast<unsigned>(code), static_cast<int>(reason.size()), reason.data());
    }
  };
  handlers.on_state = [&](const sb::client::state_change& change) {
    if (change.state == sb::client::client_state::closed) loop->stop();
  };

  sb::client::websocket_client client(*loop, std::move(options), std::move(handlers));
  self = &client;
  if (auto connect_error = client.connect(url)) {
    std::fprintf(stderr, "realtime_subscriber: %s: %s\n", url.c_str(),
                 connect_error.message().c_str());
    return 1;
  }
  if (auto run_error = loop->run()) {
    std::fprintf(stderr, "realtime_subscriber: event loop: %s\n", run_error.message().c_str());
    return 1;
  }
  return exit_code;
}
