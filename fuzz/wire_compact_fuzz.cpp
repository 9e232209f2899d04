// Fuzzes the compact envelope's rewrite of publication tails and lists
// (src/realtime/wire_compact.cpp) with arbitrary text. Invariants, checked
// with __builtin_trap():
//  - a refusal appends nothing;
//  - an accepted tail shrinks by exactly the keys it shortened ("data" → "d"
//    always, "client" → "c", "user" → "u" when present);
//  - when the input is the tail of a JSON object that simdjson accepts, an
//    accepted rewrite is one too, with the same data, client and user;
//  - the same input as a list: refused, or rewritten (the fallback of
//    append_publications() is then the input itself).
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "wire.hpp"

namespace {

using namespace switchboard::realtime::detail;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

simdjson::dom::parser& parser_a() {
  static simdjson::dom::parser p;
  return p;
}
simdjson::dom::parser& parser_b() {
  static simdjson::dom::parser p;
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string out = "#";
  if (!append_compact_tail(out, input)) {
    check(out == "#");
  } else {
    const std::string_view rewritten = std::string_view(out).substr(1);
    // "data" → "d" saves 3, "client" → "c" 5, "user" → "u" 3: the saving
    // says which of the optional keys were there.
    const std::size_t saved = input.size() - rewritten.size();
    check(saved == 3 || saved == 6 || saved == 8 || saved == 11);
    const bool has_c = saved == 8 || saved == 11;
    const bool has_u = saved == 6 || saved == 11;
    check(rewritten.starts_with("\"d\":"));
    const std::string wrapped_in = "{" + std::string(input) + "}";
    const std::string wrapped_out = "{" + std::string(rewritten) + "}";
    simdjson::dom::element a;
    if (parser_a().parse(wrapped_in).get(a) == simdjson::SUCCESS && a.is_object()) {
      simdjson::dom::element b;
      check(parser_b().parse(wrapped_out).get(b) == simdjson::SUCCESS);
      check(simdjson::minify(a["data"]) == simdjson::minify(b["d"]));
      std::string_view x, y;
      if (has_c) check(!a["client"].get(x) && !b["c"].get(y) && x == y);
      if (has_u) check(!a["user"].get(x) && !b["u"].get(y) && x == y);
    }
  }
  std::string list = "#";
  if (!append_compact_publications(list, input)) {
    check(list == "#");
    std::string fallback;
    append_publications(fallback, input, push_form::compact);
    check(fallback == input);
  } else {
    check(input.empty() || list.size() < input.size() + 1);
  }
  return 0;
}
