// message_reader: frames in, events out (RFC 6455 §5, §7.4, §8.1).
//
// Two states: `header` (waiting for a frame header) and `payload` (reading
// the payload of frame_). The hot path — a small unfragmented data frame that
// lies wholly in the input — skips both: read_small_frame() reads its 2-6
// header bytes directly, unmasks in place, validates UTF-8 and returns a
// view. Nothing is copied. Every other frame goes through the general path.
//
// The shared 128-byte stash holds either a partial header (before the header
// is decoded) or a partial control payload (after it), never both, so
// stash_size_ is the byte count of whichever is being collected.
#include "switchboard/protocol/message_reader.hpp"

#include <algorithm>
#include <cstring>
#include <new>

#include "switchboard/protocol/close_code.hpp"
#include "switchboard/protocol/mask.hpp"
#include "switchboard/protocol/small_frame.hpp"

namespace switchboard::protocol {
namespace {

// Smallest message buffer we allocate; avoids a string of tiny regrowths.
constexpr std::size_t k_min_buffer = 256;

// The largest length the 7-bit field holds itself; 126 and 127 announce a
// 16- or 64-bit length (RFC 6455 §5.2).
constexpr std::size_t k_max_short_length = 125;

reader_event event_of(event_kind kind) noexcept {
  reader_event ev;
  ev.kind = kind;
  return ev;
}

void drop_front(std::span<char>& input, std::size_t n) noexcept {
  input = input.subspan(n);
}

}  // namespace

message_reader::message_reader(const reader_options& options) noexcept
    : options_(options),
      mask_bit_(options.role == role::server ? 0x80 : 0),
      short_limit_(static_cast<std::uint8_t>(
          std::min<std::uint64_t>(k_max_short_length, options.max_message_size))) {}

void message_reader::reset() noexcept {
  error_ = error::none;
  state_ = state::header;
  close_received_ = false;
  frame_ = frame_header{};
  frame_done_ = 0;
  in_message_ = false;
  message_compressed_ = false;
  check_utf8_ = false;
  part_sent_ = false;
  message_op_ = opcode::continuation;
  message_size_ = 0;
  utf8_.reset();
  stash_size_ = 0;
  buffer_size_ = 0;
}

void message_reader::shrink_buffer(std::size_t keep) noexcept {
  // A message being assembled still needs its bytes.
  if (in_message_ || buffer_capacity_ <= keep) return;
  buffer_.reset();
  buffer_size_ = 0;
  buffer_capacity_ = 0;
}

reader_event message_reader::fail(error e) noexcept {
  error_ = e;
  reader_event ev = event_of(event_kind::error);
  ev.err = e;
  return ev;
}

// The fast path for the common frame (small_frame.hpp: a whole unfragmented
// text or binary message with a 7-bit length and no RSV bits, masked as our
// role requires, lying wholly in the input). Anything else returns false
// with nothing touched, and the general path takes the frame from the start.
// REQUIRES: no error, state_ == header, stash_size_ == 0, !in_message_ and
// !close_received_ (so no fragmentation or after-close rule can apply).
// Inline: it is most of next(), and one call frame per frame is enough.
inline bool message_reader::read_small_frame(std::span<char>& input, reader_event& out) noexcept {
  opcode op{};
  std::string_view payload;
  switch (protocol::read_small_frame(input, mask_bit_, short_limit_, op, payload)) {
    case small_frame::none:
      return false;
    case small_frame::invalid_utf8:
      out = fail(error::invalid_utf8);
      return true;
    case small_frame::message:
      break;
  }
  // In streaming mode the whole message is its one and only part.
  out.kind = options_.stream ? event_kind::message_part : event_kind::message;
  out.op = op;
  out.first = options_.stream;
  out.last = options_.stream;
  out.payload = payload;
  buffer_size_ = 0;  // as when the general path starts a message
  return true;
}

reader_event message_reader::next(std::span<char>& input) noexcept {
  // `out` is the only thing returned, so it is built in the caller's slot.
  reader_event out;
  // Between messages, with nothing stashed, no error and no close to enforce
  // (nothing may follow it), most frames take the fast path.
  if (error_ == error::none && state_ == state::header && stash_size_ == 0 && !in_message_ &&
      !close_received_ && read_small_frame(input, out)) {
    return out;
  }
  next_general(input, out);
  return out;
}

// next() for everything the fast path declines. Out of line, so that next()
// saves and restores only the few registers the fast path needs.
// REQUIRES: `out` is a default (need_more) event.
__attribute__((noinline)) void message_reader::next_general(std::span<char>& input,
                                                            reader_event& out) noexcept {
  if (error_ != error::none) {
    out.kind = event_kind::error;
    out.err = error_;
    return;
  }
  for (;;) {
    if (state_ == state::header) {
      if (input.empty()) return;  // need_more
      if (!read_header(input, out)) return;
    }
    if (is_control(frame_.op)) {
      out = read_control(input);
      return;
    }
    const bool produced = options_.stream ? read_data_stream(input, out) : read_data(input, out);
    if (produced) return;
    // A non-final fragment ended without an event: go on to the next frame.
  }
}

// Decodes and checks the next header. Returns true with state_ == payload, or
// false with `out` set to need_more (the partial header was stashed) or error.
// REQUIRES: state_ == header and !input.empty().
bool message_reader::read_header(std::span<char>& input, reader_event& out) noexcept {
  // The close frame is the last frame the peer may send (RFC 6455 §5.5.1).
  if (close_received_) {
    out = fail(error::data_after_close);
    return false;
  }
  if (stash_size_ == 0) {
    const decode_result r = decode_frame_header(input.data(), input.size(), frame_);
    if (r.err != error::none) {
      out = fail(r.err);
      return false;
    }
    if (r.consumed == 0) {
      // Fewer than k_max_frame_header_size bytes: keep them for next time.
      std::memcpy(stash_.data(), input.data(), input.size());
      stash_size_ = static_cast<std::uint8_t>(input.size());
      drop_front(input, input.size());
      out = event_of(event_kind::need_more);
      return false;
    }
    drop_front(input, r.consumed);
  } else {
    // Top the stash up to the largest header size, decode, and give back
    // whatever turned out to be payload rather than header.
    const std::size_t have = stash_size_;
    const std::size_t take = std::min(k_max_frame_header_size - have, input.size());
    std::memcpy(stash_.data() + have, input.data(), take);
    const decode_result r = decode_frame_header(stash_.data(), have + take, frame_);
    if (r.err != error::none) {
      out = fail(r.err);
      return false;
    }
    if (r.consumed == 0) {
      stash_size_ = static_cast<std::uint8_t>(have + take);
      drop_front(input, take);
      out = event_of(event_kind::need_more);
      return false;
    }
    drop_front(input, r.consumed - have);
    stash_size_ = 0;
  }

  if (const error e = check_header(); e != error::none) {
    out = fail(e);
    return false;
  }
  frame_done_ = 0;
  if (is_data(frame_.op) && frame_.op != opcode::continuation) {
    // First frame of a data message.
    in_message_ = true;
    message_op_ = frame_.op;
    message_compressed_ = frame_.rsv1;
    // Compressed text is checked by the caller after inflating.
    check_utf8_ = frame_.op == opcode::text && !frame_.rsv1;
    part_sent_ = false;
    message_size_ = 0;
    buffer_size_ = 0;
    utf8_.reset();
  }
  if (is_data(frame_.op)) message_size_ += frame_.length;
  state_ = state::payload;
  return true;
}

// The rules that depend on the connection rather than on the header alone.
error message_reader::check_header() const noexcept {
  const frame_header& h = frame_;
  // RSV2 and RSV3 belong to extensions we never negotiate (RFC 6455 §5.2).
  if (h.rsv2 || h.rsv3) return error::reserved_bits;
  if (h.rsv1) {
    // RSV1 needs a negotiated extension (RFC 6455 §5.2).
    if (!options_.allow_rsv1) return error::reserved_bits;
    // permessage-deflate never compresses control frames (RFC 7692 §6.1).
    if (is_control(h.op)) return error::rsv1_on_control;
    // RSV1 marks only the first frame of a compressed message (RFC 7692 §6.1).
    if (h.op == opcode::continuation) return error::rsv1_on_continuation;
  }
  if (options_.role == role::server) {
    // A client masks every frame it sends (RFC 6455 §5.1).
    if (!h.masked) return error::unmasked_frame;
  } else if (h.masked) {
    // A server never masks its frames (RFC 6455 §5.1).
    return error::masked_frame;
  }
  if (is_data(h.op)) {
    if (h.op == opcode::continuation) {
      // A continuation must follow a non-final data frame (RFC 6455 §5.4).
      if (!in_message_) return error::unexpected_continuation;
    } else if (in_message_) {
      // A new message may not start inside a fragmented one (RFC 6455 §5.4).
      return error::expected_continuation;
    }
    // Enforce the size limit at the header, before buffering (RFC 6455 §10.4).
    const std::uint64_t before = h.op == opcode::continuation ? message_size_ : 0;
    const std::uint64_t limit = options_.max_message_size;
    if (h.length > limit || before > limit - h.length) return error::message_too_big;
  }
  return error::none;
}

// Collects a control frame's payload (<= 125 bytes) and turns it into an event.
reader_event message_reader::read_control(std::span<char>& input) noexcept {
  const auto length = static_cast<std::size_t>(frame_.length);
  if (stash_size_ == 0 && input.size() >= length) {
    // Wholly in the input: unmask and hand out in place.
    char* payload = input.data();
    drop_front(input, length);
    state_ = state::header;
    return control_event(payload, length);
  }
  const std::size_t take = std::min(length - stash_size_, input.size());
  std::memcpy(stash_.data() + stash_size_, input.data(), take);
  stash_size_ = static_cast<std::uint8_t>(stash_size_ + take);
  drop_front(input, take);
  if (stash_size_ < length) return event_of(event_kind::need_more);
  stash_size_ = 0;
  state_ = state::header;
  return control_event(stash_.data(), length);
}

reader_event message_reader::control_event(char* payload, std::size_t size) noexcept {
  if (frame_.masked) apply_mask(payload, size, frame_.key);
  if (frame_.op == opcode::ping || frame_.op == opcode::pong) {
    reader_event ev = event_of(frame_.op == opcode::ping ? event_kind::ping : event_kind::pong);
    ev.payload = {payload, size};
    return ev;
  }
  // REQUIRES: frame_.op == opcode::close (decode admits no other control opcode).
  reader_event ev = event_of(event_kind::close);
  if (size == 0) {
    ev.code = to_underlying(close_code::no_status);
  } else {
    // A non-empty close payload starts with a 2-byte code (RFC 6455 §5.5.1).
    if (size == 1) return fail(error::close_payload_one_byte);
    const auto* p = reinterpret_cast<const unsigned char*>(payload);
    ev.code = static_cast<std::uint16_t>((p[0] << 8) | p[1]);
    // Only codes meant to travel in a close frame are accepted (RFC 6455 §7.4).
    if (!is_valid_on_wire(ev.code)) return fail(error::bad_close_code);
    ev.payload = {payload + 2, size - 2};
    // The close reason is UTF-8 text (RFC 6455 §5.5.1).
    if (!is_valid_utf8(ev.payload)) return fail(error::close_reason_invalid_utf8);
  }
  close_received_ = true;
  return ev;
}

// Buffered mode. Returns true with an event in `out`, or false when a
// non-final frame has been read completely and the next header follows.
bool message_reader::read_data(std::span<char>& input, reader_event& out) noexcept {
  const std::uint64_t remaining = frame_.length - frame_done_;
  if (frame_done_ == 0 && frame_.fin && frame_.op != opcode::continuation &&
      input.size() >= remaining) {
    // The whole message is one frame inside the input: zero-copy.
    char* payload = input.data();
    const auto size = static_cast<std::size_t>(remaining);
    if (frame_.masked) apply_mask(payload, size, frame_.key);
    // A text message must be valid UTF-8 (RFC 6455 §8.1).
    if (check_utf8_ && !is_valid_utf8(payload, size)) {
      out = fail(error::invalid_utf8);
      return true;
    }
    drop_front(input, size);
    state_ = state::header;
    in_message_ = false;
    out = event_of(event_kind::message);
    out.op = message_op_;
    out.compressed = message_compressed_;
    out.payload = {payload, size};
    return true;
  }

  const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, input.size()));
  if (take != 0) {
    // Allocation failure: we cannot hold a message this big.
    if (!append(input.data(), take)) {
      out = fail(error::message_too_big);
      return true;
    }
    // Fail fast: each piece of a text message is checked on arrival (RFC 6455 §8.1).
    if (check_utf8_ && !utf8_.feed(buffer_.get() + buffer_size_ - take, take)) {
      out = fail(error::invalid_utf8);
      return true;
    }
    drop_front(input, take);
    frame_done_ += take;
  }
  if (frame_done_ < frame_.length) {
    out = event_of(event_kind::need_more);
    return true;
  }
  state_ = state::header;
  if (!frame_.fin) return false;
  in_message_ = false;
  // A text message may not end inside a code point (RFC 6455 §8.1).
  if (check_utf8_ && !utf8_.complete()) {
    out = fail(error::invalid_utf8);
    return true;
  }
  out = event_of(event_kind::message);
  out.op = message_op_;
  out.compressed = message_compressed_;
  out.payload = {buffer_.get(), buffer_size_};
  return true;
}

// Streaming mode: every call hands out what has arrived of the current frame.
// Returns false for an empty non-final frame (nothing to say), true otherwise.
bool message_reader::read_data_stream(std::span<char>& input, reader_event& out) noexcept {
  const std::uint64_t remaining = frame_.length - frame_done_;
  const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, input.size()));
  const bool frame_end = take == remaining;
  const bool last = frame_end && frame_.fin;
  if (take == 0 && !last) {
    if (!frame_end) {
      out = event_of(event_kind::need_more);
      return true;
    }
    state_ = state::header;
    return false;
  }
  char* piece = input.data();
  if (frame_.masked) apply_mask(piece, take, frame_.key, static_cast<std::size_t>(frame_done_));
  if (check_utf8_) {
    // Each piece of a text message is checked on arrival (RFC 6455 §8.1).
    if (!utf8_.feed(piece, take)) {
      out = fail(error::invalid_utf8);
      return true;
    }
    // A text message may not end inside a code point (RFC 6455 §8.1).
    if (last && !utf8_.complete()) {
      out = fail(error::invalid_utf8);
      return true;
    }
  }
  drop_front(input, take);
  frame_done_ += take;
  if (frame_end) state_ = state::header;
  if (last) in_message_ = false;
  out = event_of(event_kind::message_part);
  out.op = message_op_;
  out.compressed = message_compressed_;
  out.first = !part_sent_;
  out.last = last;
  out.payload = {piece, take};
  part_sent_ = true;
  return true;
}

// Appends `size` payload bytes (unmasking them) to the message buffer.
// Returns false only if the buffer cannot grow (allocation failure).
bool message_reader::append(const char* src, std::size_t size) noexcept {
  if (buffer_capacity_ - buffer_size_ < size) {
    // Grow geometrically with the bytes that actually arrived (not with the
    // announced length, which a peer could inflate to make us allocate), but
    // never past what a message may hold.
    const std::size_t needed = buffer_size_ + size;
    std::size_t capacity = std::max({needed, buffer_capacity_ * 2, k_min_buffer});
    if (capacity > options_.max_message_size) {
      capacity = std::max<std::size_t>(needed, static_cast<std::size_t>(options_.max_message_size));
    }
    std::unique_ptr<char[]> grown(new (std::nothrow) char[capacity]);
    if (!grown) return false;
    if (buffer_size_ != 0) std::memcpy(grown.get(), buffer_.get(), buffer_size_);
    buffer_ = std::move(grown);
    buffer_capacity_ = capacity;
  }
  char* dst = buffer_.get() + buffer_size_;
  if (frame_.masked) {
    mask_copy(dst, src, size, frame_.key, static_cast<std::size_t>(frame_done_));
  } else {
    std::memcpy(dst, src, size);
  }
  buffer_size_ += size;
  return true;
}

}  // namespace switchboard::protocol
