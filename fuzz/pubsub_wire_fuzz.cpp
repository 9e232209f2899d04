// pubsub_wire_fuzz.cpp — the bench fan-out servers' message matcher
// (bench/pubsub_wire.hpp) on arbitrary text: it must not read outside the
// input, every view it returns lies inside it, and what it builds from them
// has the promised shape.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "pubsub_wire.hpp"

namespace {
bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace switchboard::bench::pubsub;
  const std::string text(reinterpret_cast<const char*>(data), size);  // an exact-size heap copy
  const command c = parse_command(text);
  if (!inside(c.id, text) || !inside(c.channel, text) || !inside(c.rest, text)) std::abort();
  if (c.kind != command_kind::unknown &&
      (c.channel.empty() || c.channel.find('"') != std::string_view::npos)) {
    std::abort();
  }
  if (c.kind == command_kind::subscribe &&
      c.id.find_first_not_of("0123456789") != std::string_view::npos) {
    std::abort();
  }
  std::string out;
  append_reply(out, c);
  if (out.empty() || out.front() != '{') std::abort();
  if (c.kind == command_kind::publish) {
    out.clear();
    append_push(out, c);
    if (!out.starts_with("{\"push\":\"message\",\"channel\":\"") || !out.ends_with(c.rest))
      std::abort();
  }
  return 0;
}
