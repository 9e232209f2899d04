// Fuzzes how realtime::client takes what a server sends: replies, pushes and
// garbage. One fake server (switchboard::server on 127.0.0.1) and one client
// live for the whole run; the client is connected and subscribed to two
// channels. Each input is split at '\n' into text messages (valid UTF-8 only:
// anything else would be the WebSocket layer's 1007, fuzzed elsewhere), which
// the server pushes to the client; a `history` request whose reply comes after
// them tells when the client has handled them all.
// Invariants, checked with __builtin_trap():
//  - no crash, no sanitizer report, no hang (the history reply comes back);
//  - per channel, publications are delivered with offsets strictly rising
//    within an epoch, whatever the server claims.
#include <simdjson.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <switchboard/realtime/client.hpp>
#include <switchboard/server/server.hpp>

namespace {

using namespace std::chrono_literals;
namespace rt = switchboard::realtime;
namespace sv = switchboard::server;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// The command's id as written by the client ({"id":N,...}), or "0".
std::string id_of(std::string_view command) {
  const std::size_t at = command.find("\"id\":");
  if (at == std::string_view::npos) return "0";
  std::size_t end = at + 5;
  while (end < command.size() && command[end] >= '0' && command[end] <= '9') ++end;
  return std::string(command.substr(at + 5, end - at - 5));
}

struct harness {
  sv::server server{[] {
    sv::server_options o;
    o.port = 0;
    o.handle_signals = false;
    return o;
  }()};
  std::mutex mutex;
  std::optional<sv::connection_id> connection;
  std::map<std::string, std::pair<std::string, std::uint64_t>> last;  // channel -> epoch, offset
  std::unique_ptr<rt::client> client;

  harness() {
    sv::ws_behavior b;
    b.on_open = [this](sv::websocket& ws) {
      std::lock_guard lock(mutex);
      connection = ws.id();
    };
    b.on_message = [](sv::websocket& ws, std::string_view m, switchboard::protocol::opcode) {
      // A well-behaved answer to every command, so the client stays connected.
      const std::string id = id_of(m);
      std::string reply = "{\"id\":" + id + ",\"result\":";
      if (m.find("\"cmd\":\"connect\"") != std::string_view::npos) {
        reply += R"({"client":"fuzz","user":"u"}})";
      } else if (m.find("\"cmd\":\"subscribe\"") != std::string_view::npos) {
        const bool f = m.find("chat:f") != std::string_view::npos;
        reply += f ? R"({"channel":"chat:f","epoch":"e","offset":0}})"
                   : R"({"channel":"chat:g","epoch":"e","offset":0}})";
      } else {
        reply += R"({"channel":"chat:f","epoch":"e","offset":0,"publications":[]}})";
      }
      ws.send(reply, switchboard::protocol::opcode::text);
    };
    server.ws("/ws", std::move(b));
    check(!server.listen());
    check(!server.start());

    rt::client_options o;
    o.url = "ws://127.0.0.1:" + std::to_string(server.port()) + "/ws";
    o.token = "t";
    o.backoff_base = 1ms;
    o.backoff_cap = 10ms;
    rt::client_handlers h;
    h.on_message = [this](const rt::publication& p) {
      // Runs on the client's thread only.
      auto& [epoch, offset] = last[p.channel];
      if (epoch == p.epoch) check(p.offset > offset);
      epoch = p.epoch;
      offset = p.offset;
    };
    client = std::make_unique<rt::client>(o, h);
    check(!client->connect());
    client->subscribe("chat:f");
    client->subscribe("chat:g");
  }
};

harness& instance() {
  static harness* h = new harness();  // lives for the process: no teardown order issues
  return *h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  harness& h = instance();
  std::optional<sv::connection_id> connection;
  {
    std::lock_guard lock(h.mutex);
    connection = h.connection;
  }
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::size_t start = 0;
  while (connection && start <= input.size()) {
    std::size_t end = input.find('\n', start);
    if (end == std::string_view::npos) end = input.size();
    const std::string_view message = input.substr(start, end - start);
    if (simdjson::validate_utf8(message.data(), message.size())) {
      h.server.send(*connection, message, switchboard::protocol::opcode::text);
    }
    start = end + 1;
  }
  // Replies come in order: when this one is in, the messages before it were handled.
  auto done = std::make_shared<std::promise<void>>();
  auto handled = done->get_future();
  h.client->history("chat:f", {}, [done](const rt::history_result&) { done->set_value(); });
  check(handled.wait_for(10s) == std::future_status::ready);
  return 0;
}
