// Fuzzes the POST /rt/session/<id>/send body (src/realtime/command_batch.hpp)
// the way the session runs it: split into lines, each line parsed as one
// switchboard.v1 command. The first input byte picks the line limit.
// Invariants, checked with __builtin_trap():
//  - every line is a substring of the body, holds no '\n', is followed by at
//    most one '\r' and then '\n' or the end, is not blank, and is marked too_large exactly when over the limit;
//  - the lines, in order, cover every non-blank line of the body;
//  - parse_command() on each line either succeeds or fails with a 400.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "command.hpp"
#include "command_batch.hpp"

namespace {

using namespace switchboard::realtime::detail;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t max_line = data[0];
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  static std::vector<batch_line> lines;
  static simdjson::dom::parser parser;
  split_command_batch(body, max_line, lines);
  const char* previous_end = body.data();
  std::size_t non_blank = 0;
  for (std::string_view rest = body; !rest.empty();) {
    const auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (line.find_first_not_of(" \t\r") != std::string_view::npos) ++non_blank;
  }
  check(lines.size() == non_blank);
  for (const batch_line& l : lines) {
    check(l.text.data() >= previous_end);
    check(l.text.data() + l.text.size() <= body.data() + body.size());
    previous_end = l.text.data() + l.text.size();
    check(l.text.find('\n') == std::string_view::npos);
    check(!l.text.empty());
    // What follows the line in the body: its dropped '\r' (one), then '\n' or the end.
    const std::size_t end = static_cast<std::size_t>(l.text.data() - body.data()) + l.text.size();
    std::string_view after = body.substr(end);
    if (!after.empty() && after.front() == '\r') after.remove_prefix(1);
    check(after.empty() || after.front() == '\n');
    check(l.text.find_first_not_of(" \t\r") != std::string_view::npos);
    check(l.too_large == (l.text.size() > max_line));
    command c;
    if (auto f = parse_command(parser, l.text, c)) check(f->code == 400);
  }
  return 0;
}
