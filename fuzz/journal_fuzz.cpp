// Fuzzes the memory broker's journal reader (src/realtime/journal.hpp) with
// arbitrary files. Invariants, checked with __builtin_trap():
//  - every record handed out lies inside the input, and nothing past
//    valid_bytes was read as a record;
//  - a refused file (error) hands out no record;
//  - bytes after valid_bytes are either torn or corrupt, never both, and
//    neither when the whole input was read;
//  - round trip: the header and the records, encoded again, are exactly the
//    first valid_bytes of the input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "journal.hpp"

namespace {

using namespace switchboard::realtime::detail;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string again;
  std::size_t seen = 0;
  journal_header header;
  const journal_scan s = scan_journal(
      input,
      [&](const journal_header& h) {
        header = h;
        return true;
      },
      [&](const journal_record& r) {
        ++seen;
        check(inside(r.channel, input) && inside(r.epoch, input) && inside(r.tail, input));
        check(r.offset != 0 && !r.channel.empty() && !r.epoch.empty());
        check(r.kept || r.tail.empty());
        encode_journal_record(again, r);
      });
  if (!s.error.empty()) {
    check(seen == 0);
    return 0;
  }
  check(seen == s.records);
  check(s.valid_bytes <= input.size());
  check(!(s.torn && s.corrupt));
  check((s.valid_bytes < input.size()) == (s.torn || s.corrupt));
  std::string encoded(k_journal_magic);
  encode_journal_header(encoded, header);
  encoded += again;
  check(encoded == input.substr(0, s.valid_bytes));
  return 0;
}
