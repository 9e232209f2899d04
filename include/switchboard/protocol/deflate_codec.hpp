// switchboard/protocol/deflate_codec.hpp — compressing and decompressing
// permessage-deflate message payloads (RFC 7692 §7.2) with zlib.
//
// deflater: one message in (whole, or in pieces), raw DEFLATE out, flushed
// with Z_SYNC_FLUSH and with the final 00 00 FF FF removed (§7.2.1). Send the
// result with RSV1 on the first frame (message_writer's rsv1 argument).
// inflater: the payload of a message received with RSV1 in, the message out;
// it feeds the 00 00 FF FF tail as a separate input (the payload is never
// copied) and enforces a hard limit on the inflated size while inflating, so
// a small frame that would inflate past the limit fails with message_too_big
// after producing at most limit + 1 bytes (decompression bombs). Text
// messages can be validated as UTF-8 in the same pass (inflate_text, or
// begin_message(true)).
//
// Both write into a caller-owned std::string, appending. In steady state
// nothing allocates per message except when that string must grow: zlib
// state is allocated on first use and reused (reset, not freed, between
// messages), until release().
//
// Sharing. With no context takeover in a direction, one deflater (or
// inflater) per thread serves every connection ("shared" mode): no
// connection holds zlib state. Each message must then be compressed or
// inflated in one go (compress() / inflate()), or all its pieces fed before
// another connection's message. With context takeover each connection needs
// its own ("dedicated" mode), whose state can be dropped with release() when
// the connection goes idle only if no context takeover applies. A message
// compressed by a shared deflater can be sent to any number of connections
// whose agreed window for our direction is at least the deflater's
// (publish: compress once, frame once, write N times). A dedicated
// deflater whose connection was sent such a message must reset() before its
// next message, since the peer's window now holds bytes ours does not.
//
// Memory (zlib 1.2.13 on x86-64, measured by memory_is_lazy_counted_and_released;
// memory_bytes() reports it at run time):
//   deflater = (1 << (window_bits + 2)) + (1 << (mem_level + 9)) + ~6 KiB
//     window 15, memLevel 8 (defaults): 268,232 B (262 KiB)
//     window 15, memLevel 9: 399,304 B    window 15, memLevel 1: 138,184 B
//     window 12, memLevel 5:  38,856 B    window 10, memLevel 4:  18,376 B
//     window  9, memLevel 1:   9,160 B
//   inflater = (1 << window_bits) + ~7.4 KiB; zlib allocates the window only
//     when the first message produces output
//     window 15: 40,064 B   window 12: 11,392 B   window 10: 8,320 B   window 9: 7,808 B
// An object with no zlib state (new, or after release()) holds nothing on
// the heap. Level does not change memory.
//
// Thread-safety: none. Use each deflater / inflater from one thread at a
// time (one per event-loop thread, or one per connection).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "switchboard/protocol/error.hpp"
#include "switchboard/protocol/export.hpp"
#include "switchboard/protocol/utf8.hpp"

namespace switchboard::protocol {

namespace detail {
struct zlib_stream;  // a z_stream with its allocation counter
struct SWITCHBOARD_PROTOCOL_EXPORT zlib_stream_deleter {
  void operator()(zlib_stream* s) const noexcept;
};
using zlib_stream_ptr = std::unique_ptr<zlib_stream, zlib_stream_deleter>;
}  // namespace detail

// Messages shorter than this are best sent uncompressed: the few bytes
// deflate might save do not pay for its fixed cost per message (~1 us), and
// without context takeover short messages rarely shrink at all. The server
// applies it (compress when should_compress(size)); RFC 7692 lets a sender
// choose per message (§6: RSV1 marks the compressed ones).
inline constexpr std::size_t k_default_compress_threshold = 128;

constexpr bool should_compress(std::size_t size,
                               std::size_t threshold = k_default_compress_threshold) noexcept {
  return size >= threshold;
}

struct deflate_options {
  // LZ77 window, 9-15 (the agreed limit for our direction; see
  // deflate_window_bits()). Out-of-range values are clamped.
  std::uint8_t window_bits = 15;
  // zlib memLevel, 1-9: the hash table and the pending-symbol buffer
  // (1 << (mem_level + 9) bytes). Lower saves memory, costs some ratio.
  std::uint8_t mem_level = 8;
  // zlib level 0-9 (1 fastest, 9 smallest, 6 zlib's default).
  std::uint8_t level = 6;
  // Forget the history after every message (server_/client_no_context_takeover
  // agreed for our direction, §7.1.1). Required for a shared deflater.
  bool no_context_takeover = false;
};

class SWITCHBOARD_PROTOCOL_EXPORT deflater {
 public:
  explicit deflater(const deflate_options& options = {}) noexcept;
  deflater(deflater&&) noexcept = default;
  deflater& operator=(deflater&&) noexcept = default;
  ~deflater() = default;

  // Compresses the whole message `message`, appending the compressed payload
  // (without the trailing 00 00 FF FF, §7.2.1) to `out`. An empty message
  // gives one byte, 0x00 (§7.2.3.6).
  // REQUIRES: no message is open (write() without finish()).
  // Errors: deflate_failed (close with 1011) only if zlib cannot allocate its
  // state or `out` cannot grow (std::bad_alloc is caught); the deflater is
  // then reset and `out` keeps what it held before the call.
  error compress(std::string_view message, std::string& out) noexcept;

  // The same in pieces: write() every piece, then finish(). Output appears in
  // `out` (appended; a different string per call is fine) as zlib produces it;
  // finish() flushes the rest and strips the tail. Errors as compress().
  error write(std::string_view piece, std::string& out) noexcept;
  error finish(std::string& out) noexcept;

  // Forgets the history: the next message is compressed from scratch.
  // Cheap (keeps zlib's memory). Also abandons an open message.
  void reset() noexcept;
  // Frees zlib's state; the next message allocates it again.
  void release() noexcept;

  // Bytes of heap this deflater holds now (zlib's allocations plus the
  // stream itself); 0 when no state is allocated.
  std::size_t memory_bytes() const noexcept;
  const deflate_options& options() const noexcept { return options_; }

 private:
  bool ensure_state() noexcept;
  error run(std::string_view input, int flush, std::string& out) noexcept;
  error end_message(std::string& out, std::size_t base) noexcept;

  deflate_options options_;
  detail::zlib_stream_ptr stream_;
  bool in_message_ = false;
};

struct inflate_options {
  // LZ77 window, 8-15 (raised to at least 9: a larger window inflates what
  // a smaller one made). Must be at least the peer's agreed limit; 15 always
  // works (the shared inflater uses 15).
  std::uint8_t window_bits = 15;
  // The peer forgets its history after every message (§7.1.1): reset after
  // each message. Required for a shared inflater.
  bool no_context_takeover = false;
  // Hard limit on one message's inflated size; beyond it message_too_big.
  std::size_t max_message_size = 16 * 1024 * 1024;
};

class SWITCHBOARD_PROTOCOL_EXPORT inflater {
 public:
  explicit inflater(const inflate_options& options = {}) noexcept;
  inflater(inflater&&) noexcept = default;
  inflater& operator=(inflater&&) noexcept = default;
  ~inflater() = default;

  // Inflates the whole payload of one compressed message (as received: the
  // concatenated frame payloads, without the 00 00 FF FF tail), appending the
  // message to `out`. inflate_text() also checks that it is UTF-8.
  // Errors (the connection must then be closed with close_code_for(e)):
  //   message_too_big — the message would exceed max_message_size (1009);
  //                     `out` grew by at most max_message_size + 1 bytes
  //                     (also if memory for zlib or `out` runs out)
  //   inflate_failed  — not valid DEFLATE data, or it ends inside a block (1007)
  //   invalid_utf8    — inflate_text(): not UTF-8 (1007)
  // After an error the inflater has forgotten the message and its history,
  // and is ready for another message (another connection, when shared);
  // `out` holds whatever was appended before the failure.
  error inflate(std::string_view payload, std::string& out) noexcept;
  error inflate_text(std::string_view payload, std::string& out) noexcept;

  // The same in pieces, e.g. fragments as they arrive (message_reader's
  // streaming mode). begin_message(), write() every piece, then finish().
  // The limit covers the whole message; UTF-8 is checked incrementally and
  // fails at the first bad piece when `text`. Errors as inflate().
  void begin_message(bool text = false) noexcept;
  error write(std::string_view piece, std::string& out) noexcept;
  error finish(std::string& out) noexcept;

  // Inflated bytes of the open message so far.
  std::size_t message_size() const noexcept { return produced_; }

  // Changes the limit for the next message (e.g. per connection, when shared).
  void set_max_message_size(std::size_t limit) noexcept { options_.max_message_size = limit; }

  // Forgets the history and any open message. Keeps zlib's memory.
  void reset() noexcept;
  // Frees zlib's state; the next message allocates it again.
  void release() noexcept;

  // Bytes of heap this inflater holds now; 0 when no state is allocated.
  std::size_t memory_bytes() const noexcept;
  // Largest memory_bytes() seen since construction (for tests and metrics).
  std::size_t peak_memory_bytes() const noexcept;
  const inflate_options& options() const noexcept { return options_; }

 private:
  bool ensure_state() noexcept;
  bool restart_keeping_window() noexcept;
  error feed(const unsigned char* data, std::size_t size, bool tail, std::string& out) noexcept;
  error fail(error e) noexcept;

  inflate_options options_;
  detail::zlib_stream_ptr stream_;
  utf8_validator utf8_;
  std::size_t produced_ = 0;  // inflated bytes of the open message
  std::size_t fed_ = 0;       // payload bytes of the open message
  std::size_t peak_ = 0;      // peak_memory_bytes() of released streams
  bool in_message_ = false;
  bool text_ = false;
  bool ended_ = false;        // a DEFLATE stream ended and nothing was fed since
  bool more_output_ = false;  // zlib filled the output: it may hold more
};

}  // namespace switchboard::protocol
