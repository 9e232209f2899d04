// switchboard/protocol/message_reader.hpp — turns received bytes into
// WebSocket messages and control frames (RFC 6455 §5, §7, §8).
//
// Sans-I/O: the caller hands in whatever bytes arrived; next() returns one
// event at a time. All frame- and message-level rules are enforced here:
// masking per role, RSV bits, opcodes, control frame limits, fragmentation,
// the message size limit (checked at the frame header, before any payload is
// buffered), UTF-8 of text messages (incrementally, failing fast), close
// payloads, and nothing after a close frame.
//
// Memory: unmasking happens in place in the caller's buffer. A message that is
// one unfragmented frame lying wholly in the current input is handed out as a
// view into that input — no copy, no allocation. Other messages are assembled
// in one reader-owned buffer, reused across messages and grown only when a
// larger message arrives. A partial frame header or partial control frame at
// the end of the input is kept in 128 bytes of fixed storage inside the
// reader. Streaming mode never buffers data messages at all.
//
// Thread-safety: a message_reader is not synchronized; use each from one
// thread at a time (one per connection). Distinct readers share nothing.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "switchboard/protocol/error.hpp"
#include "switchboard/protocol/export.hpp"
#include "switchboard/protocol/frame.hpp"
#include "switchboard/protocol/utf8.hpp"

namespace switchboard::protocol {

struct reader_options {
  // Our role. A server requires masked frames, a client unmasked (RFC 6455 §5.1).
  protocol::role role = protocol::role::server;
  // Largest data message accepted, in payload bytes (compressed size when
  // RSV1 is set: the inflater limits the inflated size). Larger fails with
  // message_too_big (1009) as soon as a frame header announces it.
  std::uint64_t max_message_size = 16 * 1024 * 1024;
  // Deliver data messages as message_part events while they arrive, never
  // buffering them (for large transfers). Each call hands out what has
  // arrived of the current frame; an empty non-final frame yields nothing,
  // and the message's end always yields a part with last = true (empty if
  // the final frame was). How a message is cut into parts depends on how the
  // bytes arrived; their concatenation does not. max_message_size applies.
  bool stream = false;
  // RSV1 is meaningful (permessage-deflate negotiated, RFC 7692): allowed on
  // the first frame of a data message, where it marks the message compressed.
  bool allow_rsv1 = false;
};

enum class event_kind : std::uint8_t {
  need_more,     // the input is used up; call again with more bytes
  message,       // a whole data message: op, compressed, payload
  message_part,  // streaming mode: a piece of a data message: op, compressed, first, last, payload
  ping,          // payload: the ping's application data (answer with a pong)
  pong,          // payload: the pong's application data
  close,         // code and payload (the reason); the peer started or answered the close
  error,         // err; the reader is stopped; send close_code_for(err) and close
};

// One result of message_reader::next(). Fields not listed for a kind are
// zero / empty.
struct reader_event {
  event_kind kind = event_kind::need_more;
  opcode op = opcode::continuation;  // message, message_part: text or binary
  bool compressed = false;           // message, message_part: RSV1 was set (only with allow_rsv1)
  bool first = false;                // message_part: first piece of its message
  bool last = false;                 // message_part: last piece (the message is complete)
  std::uint16_t code = 0;            // close: status code, 1005 when the close frame had no payload
  error err = error::none;  // error: what went wrong; close_code_for(err) says what to send
  // message, message_part, ping, pong: the (unmasked) payload; close: the reason.
  std::string_view payload;
};

// Reads the frames of one connection, in one direction.
class SWITCHBOARD_PROTOCOL_EXPORT message_reader {
 public:
  explicit message_reader(const reader_options& options) noexcept;

  message_reader(const message_reader&) = delete;
  message_reader& operator=(const message_reader&) = delete;
  message_reader(message_reader&&) noexcept = default;
  message_reader& operator=(message_reader&&) noexcept = default;
  ~message_reader() = default;

  // Consumes bytes from the front of `input` and returns the next event.
  //
  // input: the received bytes not yet consumed. On return it has been
  //   advanced past everything the reader used. Bytes are unmasked in place,
  //   so the buffer must be writable; consumed bytes may have been modified.
  //   After need_more, `input` is empty (a trailing partial frame header or
  //   control frame has been copied into the reader). After any other event it
  //   may still hold bytes: call next() again before reading more.
  //
  // Views (reader_event::payload) point either into the caller's input buffer
  // or into reader-owned storage. Both stay valid until the next call to
  // next() on this reader (or its destruction/reset()), provided the caller
  // keeps the input buffer's memory alive and unmodified until then.
  //
  // Errors are sticky: after an error event every later call returns the same
  // error and consumes nothing. The errors, and the rule each enforces:
  //   reserved_opcode, fragmented_control_frame, control_frame_too_large,
  //   length_msb_set, non_minimal_length — see decode_frame_header (§5.2, §5.5)
  //   reserved_bits        — RSV1-3 set but not negotiated (§5.2)
  //   rsv1_on_control, rsv1_on_continuation — with allow_rsv1 (RFC 7692 §6)
  //   unmasked_frame       — server role got an unmasked frame (§5.1)
  //   masked_frame         — client role got a masked frame (§5.1)
  //   unexpected_continuation, expected_continuation — fragmentation (§5.4)
  //   message_too_big      — over max_message_size, reported at the header (1009);
  //                          also if the message buffer cannot be allocated
  //   invalid_utf8         — text message not UTF-8, at the first bad piece (§8.1, 1007)
  //   close_payload_one_byte, bad_close_code, close_reason_invalid_utf8 (§5.5.1, §7.4)
  //   data_after_close     — any byte after the close frame (§5.5.1)
  // UTF-8 is not checked for compressed messages: check after inflating.
  reader_event next(std::span<char>& input) noexcept;

  // Back to the initial state (new connection): forgets any partial frame,
  // open message, close and error. Keeps the message buffer's capacity.
  void reset() noexcept;

  // Frees the message buffer when it has grown past `keep` bytes (e.g. after
  // an unusually large message, to bound idle memory). Only call between
  // messages: not while a buffered message view is still in use.
  void shrink_buffer(std::size_t keep = 0) noexcept;

  // True once a close frame has been returned.
  bool close_received() const noexcept { return close_received_; }
  // The sticky error, or error::none.
  error last_error() const noexcept { return error_; }
  // Bytes held in the message buffer for the message being assembled.
  std::size_t buffered() const noexcept { return buffer_size_; }
  std::size_t buffer_capacity() const noexcept { return buffer_capacity_; }
  const reader_options& options() const noexcept { return options_; }

 private:
  enum class state : std::uint8_t { header, payload };

  reader_event fail(error e) noexcept;
  bool read_small_frame(std::span<char>& input, reader_event& out) noexcept;
  void next_general(std::span<char>& input, reader_event& out) noexcept;
  error check_header() const noexcept;
  bool read_header(std::span<char>& input, reader_event& out) noexcept;
  reader_event read_control(std::span<char>& input) noexcept;
  reader_event control_event(char* payload, std::size_t size) noexcept;
  bool read_data(std::span<char>& input, reader_event& out) noexcept;
  bool read_data_stream(std::span<char>& input, reader_event& out) noexcept;
  bool append(const char* src, std::size_t size) noexcept;

  reader_options options_;
  // The options as the fast path uses them, worked out once: the MASK bit
  // every frame must carry (0x80 for a server, 0 for a client; RFC 6455
  // §5.1) and the largest 7-bit length it takes (125, or max_message_size if
  // smaller).
  std::uint8_t mask_bit_ = 0;
  std::uint8_t short_limit_ = 0;
  error error_ = error::none;
  state state_ = state::header;
  bool close_received_ = false;

  // The frame being read.
  frame_header frame_;
  std::uint64_t frame_done_ = 0;  // payload bytes of this frame already read

  // The data message being read.
  bool in_message_ = false;  // a first frame without FIN has been read
  bool message_compressed_ = false;
  bool check_utf8_ = false;
  bool part_sent_ = false;  // streaming: a part of this message went out
  opcode message_op_ = opcode::continuation;
  std::uint64_t message_size_ = 0;  // payload bytes announced so far
  utf8_validator utf8_;

  // A partial header (<= 14 bytes) or partial control payload (<= 125 bytes).
  std::uint8_t stash_size_ = 0;
  std::array<char, 128> stash_{};

  // The message buffer (raw storage: no zero-fill on growth).
  std::unique_ptr<char[]> buffer_;
  std::size_t buffer_size_ = 0;
  std::size_t buffer_capacity_ = 0;
};

}  // namespace switchboard::protocol
