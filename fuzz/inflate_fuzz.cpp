// libFuzzer harness for the permessage-deflate inflater (and, in round-trip
// mode, the deflater).
//
// Input layout:
//   byte 0      flags: bit 0 text (UTF-8 checked), bit 1 no context takeover,
//               bit 2 round-trip mode, bits 3-4 the limit (0, 100, 4096,
//               65536 bytes), bits 5-7 = k
//   byte 1      window bits (9 + b % 7) and, for the deflater, memLevel
//   bytes 2..k+2  piece schedule: entry 0 ends the current message (finish),
//               any other entry e feeds the next e bytes as one piece
//   the rest    the data: compressed payloads (inflate mode) or plain
//               messages (round-trip mode)
//
// Inflate mode invariants (a violation traps):
//   - a message never grows the output past the limit: on success at most
//     `limit` bytes, on any error at most limit + 1
//   - only none, message_too_big, inflate_failed, invalid_utf8
//   - the same messages whether a message is fed in the schedule's pieces or
//     whole (a second inflater replays each message whole): when both runs
//     succeed, the outputs are equal. They may disagree on failure, in two
//     ways, both from zlib's two decode paths (a fast one taken when a call
//     has at least 6 input bytes and 258 bytes of room, a slow one otherwise):
//       * a message wrong in two ways at once (corrupt data whose output is
//         also bad UTF-8, or also over the limit) shows either fault first;
//       * a back-reference farther than the agreed window is refused when the
//         referenced bytes are only in zlib's window, but accepted when they
//         are still in the output of the same inflate() call (zlib is built
//         without INFLATE_STRICT). So one run may fail with inflate_failed
//         while the other succeeds; no other error may differ that way.
//   - successful text messages are UTF-8
// Round-trip mode: each message is deflated in the schedule's pieces, then
// inflated whole, and must come back byte for byte.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "switchboard/protocol/deflate_codec.hpp"
#include "switchboard/protocol/utf8.hpp"

namespace {

using namespace switchboard::protocol;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

constexpr std::size_t k_limits[] = {0, 100, 4096, 65536};

struct schedule {
  const std::uint8_t* entries;
  std::size_t size;
  std::size_t next = 0;
  std::uint8_t take() { return entries[next++ % size]; }
};

// Exactly-sized heap copy, so reading past a piece hits ASan's redzone.
std::unique_ptr<char[]> copy(const std::uint8_t* data, std::size_t size) {
  std::unique_ptr<char[]> buf(new char[size == 0 ? 1 : size]);
  for (std::size_t i = 0; i < size; ++i) buf[i] = static_cast<char>(data[i]);
  return buf;
}

void inflate_mode(bool text, const inflate_options& options, schedule& s, const std::uint8_t* data,
                  std::size_t size) {
  inflater pieces(options);
  inflater whole(options);
  std::size_t pos = 0;
  for (std::size_t idle = 0; pos < size && idle <= s.size;) {
    // One message: pieces until a 0 entry or the end of the data.
    const std::size_t start = pos;
    std::string out;
    pieces.begin_message(text);
    error e = error::none;
    for (std::uint8_t entry = s.take(); entry != 0 && pos < size; entry = s.take()) {
      const std::size_t n = std::min<std::size_t>(entry, size - pos);
      const auto buf = copy(data + pos, n);
      pos += n;
      e = pieces.write(std::string_view(buf.get(), n), out);
      check(pieces.message_size() <= options.max_message_size + 1);
      if (e != error::none) break;
    }
    if (e == error::none) e = pieces.finish(out);
    check(e == error::none || e == error::message_too_big || e == error::inflate_failed ||
          e == error::invalid_utf8);
    check(out.size() <= options.max_message_size + (e == error::none ? 0 : 1));
    if (e == error::none && text) check(is_valid_utf8(out));

    // Replay the bytes the pieces run consumed as one payload.
    const auto buf = copy(data + start, pos - start);
    std::string again;
    const std::string_view payload(buf.get(), pos - start);
    const error e2 = text ? whole.inflate_text(payload, again) : whole.inflate(payload, again);
    if ((e == error::none) != (e2 == error::none)) {
      check(e == error::inflate_failed || e2 == error::inflate_failed);
      return;
    }
    if (e == error::none) check(out == again);
    if (e != error::none) return;        // the connection would be closed
    idle = pos == start ? idle + 1 : 0;  // a schedule of zeros makes no progress
  }
}

void round_trip_mode(bool text, std::uint8_t window, std::uint8_t mem, bool no_takeover,
                     schedule& s, const std::uint8_t* data, std::size_t size) {
  deflater d({.window_bits = window, .mem_level = mem, .no_context_takeover = no_takeover});
  inflater inf(
      {.window_bits = window, .no_context_takeover = no_takeover, .max_message_size = size});
  std::size_t pos = 0;
  for (std::size_t idle = 0; pos < size && idle <= s.size;) {
    const std::size_t start = pos;
    std::string wire;
    for (std::uint8_t entry = s.take(); entry != 0 && pos < size; entry = s.take()) {
      const std::size_t n = std::min<std::size_t>(entry, size - pos);
      const auto buf = copy(data + pos, n);
      pos += n;
      check(d.write(std::string_view(buf.get(), n), wire) == error::none);
    }
    check(d.finish(wire) == error::none);
    const std::string_view message(reinterpret_cast<const char*>(data + start), pos - start);
    std::string back;
    const error e = text ? inf.inflate_text(wire, back) : inf.inflate(wire, back);
    if (text && !is_valid_utf8(message)) {
      check(e == error::invalid_utf8);
      return;
    }
    check(e == error::none);
    check(back == message);
    idle = pos == start ? idle + 1 : 0;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t flags = data[0];
  const std::uint8_t shape = data[1];
  const std::size_t k = (flags >> 5) + 1u;
  if (size < 2 + k) return 0;
  schedule s{data + 2, k};
  const bool text = flags & 1;
  const bool no_takeover = flags & 2;
  const std::uint8_t window = static_cast<std::uint8_t>(9 + shape % 7);
  const std::uint8_t mem = static_cast<std::uint8_t>(1 + (shape / 7) % 9);
  const std::uint8_t* rest = data + 2 + k;
  const std::size_t rest_size = size - 2 - k;
  if (flags & 4) {
    round_trip_mode(text, window, mem, no_takeover, s, rest, rest_size);
  } else {
    const inflate_options options{.window_bits = window,
                                  .no_context_takeover = no_takeover,
                                  .max_message_size = k_limits[(flags >> 3) & 3]};
    inflate_mode(text, options, s, rest, rest_size);
  }
  return 0;
}
