// Fuzzes read_back_events() (src/realtime/event_outbox.hpp), which reads
// the events outbox back from disk a window at a time. The input's first
// byte is the window (`want`, 0-255); the second picks the head: odd, a
// valid magic + header record; even, the next bytes as they come (the
// third byte their length). The rest is the chunk. Invariants, checked
// with __builtin_trap():
//  - never reads outside its input (ASan), never takes more than `want`;
//  - `bytes` stays within the chunk, and without an error it is exactly the
//    sum of the whole records taken, each of which reached `each`;
//  - with an error nothing is reported as taken.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "event_outbox.hpp"
#include "journal.hpp"

namespace {

using namespace switchboard::realtime::detail;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const std::size_t want = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  std::string head;
  if (data[1] & 1) {
    head.assign(k_journal_magic);
    journal_header h;
    h.base = "events";
    encode_journal_header(head, h);
  } else {
    const std::size_t n =
        std::min<std::size_t>(static_cast<unsigned char>(rest[0]), rest.size() - 1);
    head.assign(rest.substr(1, n));
    rest.remove_prefix(1 + n);
  }
  std::size_t seen = 0;
  const outbox_readback rb =
      read_back_events(head, rest, want, [&](std::uint64_t, std::string_view json) {
        check(json.size() <= rest.size());
        ++seen;
      });
  check(rb.bytes <= rest.size());
  check(rb.records <= want);
  if (rb.error.empty()) {
    check(seen == rb.records);
    // `bytes` ends exactly after `records` whole frames.
    std::size_t at = 0;
    for (std::size_t i = 0; i < rb.records; ++i) {
      check(at + 8 <= rb.bytes);
      std::uint32_t length = 0;
      for (int b = 3; b >= 0; --b)
        length = (length << 8) | static_cast<unsigned char>(rest[at + b]);
      at += 8 + length;
    }
    check(at == rb.bytes);
  } else {
    check(rb.bytes == 0 && rb.records == 0);
  }
  return 0;
}
