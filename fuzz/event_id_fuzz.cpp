// Fuzzes the transport parsers of src/realtime/event_id.hpp: the query string
// of /sse and /rt/session/* and the /sse Last-Event-ID. The input's first
// byte picks the number of channels (0-7) the id must list; the rest is both
// a query string and an id. Invariants, checked with __builtin_trap():
//  - an accepted query has only valid, distinct channel names, at most the cap;
//  - an accepted id has exactly the asked number of positions, and encoding
//    them again gives an id that parses to the same positions;
//  - parse_seq() accepts exactly what std::to_string of its result gives back
//    (no leading zeros aside), never wrapping;
//  - a node message (session_forward.hpp) that parses is written back by its
//    encoder byte for byte, and its session id names a node.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "channel.hpp"
#include "event_id.hpp"
#include "session_forward.hpp"

namespace {

using namespace switchboard::realtime::detail;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t channels = data[0] & 7;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);

  transport_query q;
  if (parse_transport_query(text, 4, q).empty()) {
    check(q.channels.size() <= 4);
    for (std::size_t i = 0; i < q.channels.size(); ++i) {
      check(switchboard::realtime::valid_channel_name(q.channels[i]));
      for (std::size_t j = 0; j < i; ++j) check(q.channels[i] != q.channels[j]);
    }
  }

  std::vector<channel_position> positions;
  if (parse_sse_id(text, channels, positions).empty()) {
    check(positions.size() == channels);
    std::string again;
    append_sse_id(again, positions);
    std::vector<channel_position> back;
    check(parse_sse_id(again, channels, back).empty());
    check(back == positions);
  }

  if (const auto seq = parse_seq(text)) {
    const std::string again = std::to_string(*seq);
    // Equal up to leading zeros.
    const std::size_t first = text.find_first_not_of('0');
    check(first == std::string_view::npos ? again == "0" : text.substr(first) == again);
  }

  node_message m;
  if (parse_node_message(text, m).empty()) {
    std::string again;
    switch (m.kind) {
      case 'q':
        check(!session_home(m.session).empty());
        again = node_request(m.from, m.rid, m.verb, m.session, m.arg, m.body);
        break;
      case 'a': again = node_answer(m.from, m.rid, m.status, m.body); break;
      default: again = node_stream_message(m.kind, m.from, m.rid, m.body); break;
    }
    check(again == text);
  }
  return 0;
}
