// Fuzzes the Origin check of /ws (src/realtime/origin.hpp). The input is split
// at its first newline into an Origin and a Host field. Invariants, checked
// with __builtin_trap():
//  - a parsed origin has scheme http or https, a non-empty host that is a
//    substring of the input, and a port in 1..65535;
//  - a parsed origin is accepted as an allow-list entry when it is in lower
//    case, and then it allows itself whatever the Host says;
//  - with an empty list, an Origin is allowed only if it parses;
//  - "*" alone allows everything, no Origin is always allowed.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "origin.hpp"

namespace {

using namespace switchboard::realtime::detail;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool lower_case(std::string_view s) {
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nl = input.find('\n');
  const std::string_view origin = input.substr(0, nl);
  const std::string_view host = nl == std::string_view::npos ? "" : input.substr(nl + 1);

  const auto parsed = parse_origin(origin);
  if (parsed) {
    check(parsed->scheme == "http" || parsed->scheme == "https");
    check(!parsed->host.empty() && origin.find(parsed->host) != std::string_view::npos);
    check(parsed->port != 0);
    if (lower_case(origin)) {
      check(check_allowed_origin(origin).empty());
      check(origin_allowed({std::string(origin)}, origin, host, false));
    }
  }
  const bool same = origin_allowed({}, origin, host, size % 2 == 0);
  if (!origin.empty() && !parsed) check(!same);
  check(origin_allowed({"*"}, origin, host, true));
  check(origin_allowed({}, "", host, true));
  (void)check_allowed_origin(input);
  return 0;
}
