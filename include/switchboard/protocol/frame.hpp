// switchboard/protocol/frame.hpp — the WebSocket frame header (RFC 6455 §5.2).
//
// Opcodes, the endpoint role, the decoded form of a frame header, and the two
// conversions between that form and the wire: decode_frame_header() parses and
// checks the rules that need nothing but the header bytes themselves;
// encode_frame_header() writes the shortest legal encoding. Rules that depend
// on the connection (masking per role, RSV bits per negotiated extension,
// fragmentation state, size limits) belong to message_reader.
//
// Thread-safety: everything here is stateless and safe from any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "switchboard/protocol/error.hpp"
#include "switchboard/protocol/export.hpp"

namespace switchboard::protocol {

// Frame opcodes (RFC 6455 §5.2, §11.8). 3-7 and 11-15 are reserved and never
// appear in a decoded header: decode_frame_header() rejects them.
enum class opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

// Which end of the connection this endpoint is. Decides the masking rule
// (RFC 6455 §5.1): clients mask every frame they send, servers never do.
enum class role : std::uint8_t { server, client };

// True for close, ping and pong (opcodes with the high bit set, RFC 6455 §5.5).
constexpr bool is_control(opcode op) noexcept {
  return (static_cast<std::uint8_t>(op) & 0x8) != 0;
}

// True for continuation, text and binary (RFC 6455 §5.6).
constexpr bool is_data(opcode op) noexcept {
  return (static_cast<std::uint8_t>(op) & 0x8) == 0;
}

// True if `value` (the low four bits of the first header byte) is an opcode
// RFC 6455 defines; false for the reserved ones.
constexpr bool is_defined_opcode(std::uint8_t value) noexcept {
  return value <= 0x2 || (value >= 0x8 && value <= 0xA);
}

// A masking key as it appears on the wire: key[0] masks payload byte 0,
// key[1] byte 1, and so on (RFC 6455 §5.3). The same type is used by the
// header, the masking functions and the writer.
using mask_key = std::array<std::uint8_t, 4>;

// Largest header: 2 fixed bytes + 8 bytes of 64-bit length + 4 of mask key.
inline constexpr std::size_t k_max_frame_header_size = 14;

// Largest payload of a close, ping or pong frame (RFC 6455 §5.5).
inline constexpr std::size_t k_max_control_payload = 125;

// A decoded frame header (RFC 6455 §5.2).
struct frame_header {
  bool fin = true;
  bool rsv1 = false;
  bool rsv2 = false;
  bool rsv3 = false;
  opcode op = opcode::text;
  bool masked = false;
  mask_key key{};            // meaningful only when `masked`
  std::uint64_t length = 0;  // payload length in bytes
};

// Number of header bytes a frame with `length` payload bytes needs: 2, plus 2
// for lengths 126-65535 or 8 for longer ones, plus 4 when masked.
constexpr std::size_t frame_header_size(std::uint64_t length, bool masked) noexcept {
  const std::size_t base = length < 126 ? 2 : length <= 0xFFFF ? 4 : 10;
  return base + (masked ? 4 : 0);
}

// The outcome of decode_frame_header(): `consumed` header bytes on success,
// 0 with err == error::none when more bytes are needed, or an error.
struct decode_result {
  std::size_t consumed = 0;
  error err = error::none;
};

// Decodes one frame header from the front of `data`.
//
// data, size: the bytes received so far; need not hold the whole header.
// out: receives the header; written only when the result has consumed > 0.
// Returns consumed = the header's size (2-14) when it is complete and valid;
// consumed = 0 and err = none when more bytes are needed; or an error.
// Errors, in the order checked (the first three are reported as soon as two
// bytes are present, so a bad frame fails before its extended length arrives):
//   reserved_opcode          — opcode 3-7 or 11-15 (RFC 6455 §5.2)
//   fragmented_control_frame — control frame without FIN (RFC 6455 §5.5)
//   control_frame_too_large  — control frame length over 125 (RFC 6455 §5.5)
//   length_msb_set           — 64-bit length with its top bit set (RFC 6455 §5.2)
//   non_minimal_length       — length not in the fewest bytes (RFC 6455 §5.2)
// RSV bits and masking are decoded, not judged: that needs connection state.
SWITCHBOARD_PROTOCOL_EXPORT decode_result decode_frame_header(const char* data, std::size_t size,
                                                              frame_header& out) noexcept;

// Encodes `header` into `out` with the minimal length encoding.
//
// REQUIRES: `out` has room for frame_header_size(header.length, header.masked)
// bytes; header.length < 2^63; a control opcode implies fin and length <= 125.
// Returns the number of bytes written (RFC 6455 §5.2).
SWITCHBOARD_PROTOCOL_EXPORT std::size_t encode_frame_header(const frame_header& header,
                                                            char* out) noexcept;

}  // namespace switchboard::protocol
