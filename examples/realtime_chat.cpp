// realtime_chat.cpp — a complete realtime::client program (docs/client.md):
// subscribe to a channel, print what arrives, publish each stdin line.
//   realtime_chat ws://127.0.0.1:8080/ws chat:lobby "$TOKEN"
#include <cstdio>
#include <future>
#include <iostream>
#include <memory>
#include <string>
#include <switchboard/realtime/client.hpp>

namespace rt = switchboard::realtime;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s URL CHANNEL [TOKEN]\n", argv[0]);
    return 2;
  }
  const std::string channel = argv[2];

  rt::client_options options;
  options.url = argv[1];
  if (argc > 3) options.token = argv[3];  // or options.token_provider = [] { return fetch(); };

  // Callbacks run on the client's own thread, one at a time.
  std::promise<void> stopped;  // set when the client is disconnected for good
  bool stopped_set = false;    // only the client's thread touches it
  rt::client_handlers handlers;
  handlers.on_state = [&](const rt::state_event& e) {
    std::fprintf(stderr, "[%s] %s\n", std::string(rt::to_string(e.state)).c_str(),
                 e.reason.c_str());
    if (e.state == rt::connection_state::disconnected && !e.will_reconnect && !stopped_set) {
      stopped_set = true;
      stopped.set_value();
    }
  };
  handlers.on_message = [](const rt::publication& p) {
    std::printf("%s #%llu %s: %s\n", p.channel.c_str(), static_cast<unsigned long long>(p.offset),
                p.user.empty() ? "?" : p.user.c_str(), p.data.c_str());
    std::fflush(stdout);
  };
  handlers.on_subscribed = [](const rt::subscribe_result& r) {
    if (r.resumed && !r.recovered) {
      std::fprintf(stderr, "missed publications on %s (%s)\n", r.channel.c_str(), r.reason.c_str());
    }
  };
  handlers.on_error = [](const rt::error_event& e) {
    std::fprintf(stderr, "error %d: %s\n", e.error.code, e.error.message.c_str());
  };

  rt::client client(options, handlers);  // starts its thread; nothing is sent yet
  if (auto error = client.connect()) {   // a bad URL is reported here
    std::fprintf(stderr, "%s\n", error.message().c_str());
    return 2;
  }
  client.subscribe(channel, {.since = std::nullopt, .history = 10},
                   [](const rt::subscribe_result& r) {
                     if (r.error) std::fprintf(stderr, "subscribe: %s\n", r.error->message.c_str());
                   });

  // Calls are thread-safe: this thread publishes while the client's thread
  // delivers. Each line is sent as a JSON string, and its answer awaited
  // (a request made while connecting waits for the connection).
  for (std::string line; std::getline(std::cin, line);) {
    std::string data = "\"";
    for (char c : line) {
      if (c == '"' || c == '\\') data += '\\';
      if (static_cast<unsigned char>(c) >= 0x20) data += c;
    }
    data += '"';
    auto done = std::make_shared<std::promise<rt::publish_result>>();
    auto answer = done->get_future();
    client.publish(channel, data, [done](const rt::publish_result& r) { done->set_value(r); });
    // Fine on this thread; never wait like this inside a callback (it would
    // block the thread that delivers the answer).
    const rt::publish_result r = answer.get();
    if (r.error) std::fprintf(stderr, "publish: %d %s\n", r.error->code, r.error->message.c_str());
  }
  // close() is asynchronous like every call: wait for its end (close
  // handshake done, requests still in flight answered) before destroying.
  client.close();
  stopped.get_future().wait();
}
