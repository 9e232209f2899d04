// Fuzzes the server API's methods (src/realtime/http_api_methods.hpp) and the
// control messages every node runs (sessions::apply_control), on a memory
// broker and a server that never listens. The input is "METHOD\nPARAMS": the
// method name up to the first newline, then the body as a client sends it;
// the body is also handed to apply_control, as a stranger on Redis could.
// Invariants, checked with __builtin_trap():
//  - the completion runs exactly once, before call() returns (the memory
//    broker completes at once);
//  - a 200 carries a result that parses as one JSON object; anything else is
//    a status from 400 to 599 with a message.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <switchboard/server/server.hpp>

#include "http_api_methods.hpp"
#include "hub.hpp"
#include "memory_broker.hpp"
#include "metrics.hpp"
#include "session.hpp"

namespace {

using namespace switchboard;
using namespace switchboard::realtime::detail;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

struct world {
  world() {
    config.namespaces["chat"] = realtime::namespace_options{};
    config.namespaces["chat"].history_size = 5;
    config.namespaces["bare"] = realtime::namespace_options{};
    config.namespaces["bare"].history_size = 0;
    config.namespaces["bare"].presence = false;
    // Bounded memory, however many inputs publish.
    config.max_channels = 256;
    config.history_memory = 1 << 20;
    broker = std::make_unique<memory_broker>(config, memory_broker_options{});
    srv = std::make_unique<server::server>();
    h = std::make_unique<hub>(config, *srv, *broker, publications);
    s = std::make_unique<sessions>(config, *h, nullptr, session_metrics{}, nullptr);
    methods = std::make_unique<api_methods>(*h, *s, "fuzz",
                                            [] { return std::string("{\"node\":\"fuzz\"}"); });
    h->set_control_handler([this](std::string_view m) { s->apply_control(m); });
    check(broker->start(*h).empty());
  }
  realtime::realtime_config config;
  realtime::counter publications;
  std::unique_ptr<memory_broker> broker;
  std::unique_ptr<server::server> srv;
  std::unique_ptr<hub> h;
  std::unique_ptr<sessions> s;
  std::unique_ptr<api_methods> methods;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static world w;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto nl = input.find('\n');
  const std::string_view method = input.substr(0, nl);
  const std::string params(nl == std::string_view::npos ? std::string_view()
                                                        : input.substr(nl + 1));
  int calls = 0;
  api_reply reply;
  w.methods->call(method, params, [&](api_reply r) {
    ++calls;
    reply = std::move(r);
  });
  check(calls == 1);
  if (reply.status == 200) {
    simdjson::dom::parser parser;
    simdjson::dom::object obj;
    check(!parser.parse(reply.result).get(obj));
  } else {
    check(reply.status >= 400 && reply.status <= 599 && !reply.message.empty());
  }
  w.s->apply_control(params);
  return 0;
}
