// switchboard/protocol/small_frame.hpp — the common frame read without a
// message_reader: a whole unfragmented text or binary message with a 7-bit
// length, no RSV bits, masked as the role requires, lying wholly in the input.
//
// For such a frame decode_frame_header() and the reader's header checks could
// only pass (the size limit is the one rule left to check), so reading it
// straight off the wire weakens nothing. message_reader's fast path is this
// function; a server connection with no reader (nothing partial held between
// reads) calls it directly, and so needs no reader at all for a read made of
// such frames.
//
// Thread-safety: stateless; safe from any thread on disjoint buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "switchboard/protocol/frame.hpp"
#include "switchboard/protocol/mask.hpp"
#include "switchboard/protocol/utf8.hpp"

namespace switchboard::protocol {

// What read_small_frame() found.
enum class small_frame : std::uint8_t {
  none,          // not such a frame (or not wholly here): nothing consumed or modified
  message,       // a whole message: op and payload are set, the frame consumed
  invalid_utf8,  // a text message that is not UTF-8 (RFC 6455 §8.1, 1007): the header
                 // consumed, the payload left (as the reader's general path does)
};

// Reads one small frame from the front of `input`.
//
// mask_bit: 0x80 when frames must be masked (a server), 0 when they must not.
// limit: the largest payload accepted here, at most 125; a larger frame
//   returns none (the reader's general path reports message_too_big).
// On message: `op` is text or binary and `payload` views the unmasked bytes
//   in `input`'s buffer (unmasked in place: the buffer must be writable).
inline small_frame read_small_frame(std::span<char>& input, std::uint8_t mask_bit,
                                    std::size_t limit, opcode& op,
                                    std::string_view& payload) noexcept {
  const std::size_t header_size = mask_bit != 0 ? 6 : 2;
  if (input.size() < header_size) return small_frame::none;
  const auto* p = reinterpret_cast<const unsigned char*>(input.data());
  // FIN set, RSV1-3 clear, opcode text (0x1) or binary (0x2).
  if (static_cast<unsigned>(p[0] - 0x81) > 1) return small_frame::none;
  // In one test: MASK as the role requires (RFC 6455 §5.1), a 7-bit length
  // (126 and 127 announce an extended one) and the size limit. Flipping the
  // expected MASK bit leaves the length alone when MASK is right and adds 128
  // when it is wrong.
  const std::size_t length = p[1] ^ mask_bit;
  if (length > limit) return small_frame::none;
  if (input.size() - header_size < length) return small_frame::none;  // not wholly here yet

  op = static_cast<opcode>(p[0] & 0x0F);
  char* data = input.data() + header_size;
  payload = {data, length};
  if (mask_bit != 0) {
    mask_key key;
    std::memcpy(key.data(), p + 2, 4);
    apply_mask(data, length, key);
  }
  if (op == opcode::text && !is_valid_utf8(data, length)) {
    input = input.subspan(header_size);
    return small_frame::invalid_utf8;
  }
  input = input.subspan(header_size + length);
  return small_frame::message;
}

}  // namespace switchboard::protocol
