// libFuzzer harness for message_reader in the server role (reading masked
// client frames). message_reader_client_fuzz.cpp includes this file with
// SWITCHBOARD_FUZZ_ROLE set to client.
//
// Input layout:
//   byte 0      flags: bit 0 streaming mode, bit 1 allow_rsv1, bit 2 a tiny
//               max_message_size (100) instead of 64 KiB, bits 5-7 = k
//   bytes 1..k+1  chunk-size schedule: chunk i has schedule[i % (k+1)] + 1 bytes
//   the rest    the byte stream handed to the reader
//
// Each chunk is copied into a fresh heap buffer of exactly its size, so
// AddressSanitizer catches any read past what the reader was given.
//
// Invariants (a violation traps):
//   - need_more only with the input used up; at most one event per byte (+1)
//   - nothing but the same error after an error, and nothing consumed then
//   - message payloads <= max_message_size; control payloads <= 125 bytes;
//     close codes valid on the wire or 1005; message_part flags consistent
//   - the same messages, controls and error whatever the chunking and
//     whether streaming or buffered: the run is repeated with the whole input
//     as one chunk in buffered mode and the normalized events compared.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "switchboard/protocol/message_reader.hpp"

#ifndef SWITCHBOARD_FUZZ_ROLE
#define SWITCHBOARD_FUZZ_ROLE server
#endif

namespace {

using namespace switchboard::protocol;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// An event with stream parts merged back into whole messages.
struct normalized {
  event_kind kind;
  opcode op;
  bool compressed;
  std::uint16_t code;
  error err;
  std::string payload;
  bool operator==(const normalized&) const = default;
};

class harness {
 public:
  explicit harness(const reader_options& options) : options_(options), reader_(options) {}

  // Feeds one chunk. Returns false once the reader has failed.
  bool feed(const std::uint8_t* data, std::size_t size) {
    // Exactly-sized heap copy: over-reads hit the redzone.
    std::unique_ptr<char[]> buf(new char[size == 0 ? 1 : size]);
    if (size != 0) std::memcpy(buf.get(), data, size);
    std::span<char> input(buf.get(), size);
    for (std::size_t events = 0;; ++events) {
      check(events <= size + 1);
      const std::size_t before = input.size();
      const reader_event ev = reader_.next(input);
      check(input.size() <= before);
      if (ev.kind == event_kind::need_more) {
        check(input.empty());
        return true;
      }
      if (!on_event(ev)) {
        // Sticky: the same error again, nothing consumed.
        const std::size_t left = input.size();
        const reader_event again = reader_.next(input);
        check(again.kind == event_kind::error && again.err == ev.err && input.size() == left);
        return false;
      }
    }
  }

  const std::vector<normalized>& events() const { return events_; }

 private:
  bool on_event(const reader_event& ev) {
    switch (ev.kind) {
      case event_kind::message:
        check(!options_.stream && !open_);
        check(ev.op == opcode::text || ev.op == opcode::binary);
        check(ev.payload.size() <= options_.max_message_size);
        check(!ev.compressed || options_.allow_rsv1);
        add(ev, std::string(ev.payload));
        return true;
      case event_kind::message_part:
        check(options_.stream);
        check(ev.first == !open_);
        check(ev.op == opcode::text || ev.op == opcode::binary);
        if (open_) check(ev.op == part_op_ && ev.compressed == part_compressed_);
        part_op_ = ev.op;
        part_compressed_ = ev.compressed;
        assembling_.append(ev.payload);
        check(assembling_.size() <= options_.max_message_size);
        open_ = !ev.last;
        if (ev.last) {
          reader_event whole = ev;
          whole.kind = event_kind::message;
          add(whole, assembling_);
          assembling_.clear();
        }
        return true;
      case event_kind::ping:
      case event_kind::pong:
        check(ev.payload.size() <= k_max_control_payload);
        add(ev, std::string(ev.payload));
        return true;
      case event_kind::close:
        check(ev.payload.size() <= k_max_control_payload - 2);
        check(is_valid_on_wire(ev.code) || (ev.code == 1005 && ev.payload.empty()));
        check(reader_.close_received());
        add(ev, std::string(ev.payload));
        return true;
      case event_kind::error:
        check(ev.err != error::none && !is_handshake_error(ev.err));
        check(reader_.last_error() == ev.err);
        add(ev, {});
        return false;
      case event_kind::need_more:
        break;
    }
    check(false);
    return false;
  }

  void add(const reader_event& ev, std::string payload) {
    events_.push_back({ev.kind, ev.kind == event_kind::message ? ev.op : opcode::continuation,
                       ev.kind == event_kind::message && ev.compressed, ev.code, ev.err,
                       std::move(payload)});
  }

  reader_options options_;
  message_reader reader_;
  std::vector<normalized> events_;
  std::string assembling_;
  bool open_ = false;
  opcode part_op_ = opcode::continuation;
  bool part_compressed_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t flags = data[0];
  const std::size_t schedule_size = (flags >> 5) + 1u;
  if (size < 1 + schedule_size) return 0;
  const std::uint8_t* schedule = data + 1;
  const std::uint8_t* stream = data + 1 + schedule_size;
  const std::size_t stream_size = size - 1 - schedule_size;

  reader_options options;
  options.role = role::SWITCHBOARD_FUZZ_ROLE;
  options.stream = flags & 1;
  options.allow_rsv1 = flags & 2;
  options.max_message_size = (flags & 4) ? 100 : 64 * 1024;

  harness chunked(options);
  std::size_t pos = 0;
  for (std::size_t i = 0; pos < stream_size; ++i) {
    const std::size_t n =
        std::min<std::size_t>(schedule[i % schedule_size] + 1u, stream_size - pos);
    const bool alive = chunked.feed(stream + pos, n);
    pos += n;
    if (!alive) break;
  }

  reader_options buffered = options;
  buffered.stream = false;
  harness whole(buffered);
  whole.feed(stream, stream_size);
  // Chunking and streaming change nothing but how data messages are cut.
  check(chunked.events() == whole.events());
  return 0;
}
