// Frame header decoding and encoding (RFC 6455 §5.2).
//
// Wire layout of the first two bytes:
//   byte 0: FIN(0x80) RSV1(0x40) RSV2(0x20) RSV3(0x10) opcode(0x0F)
//   byte 1: MASK(0x80) payload length(0x7F): 0-125 literal, 126 = a 16-bit
//           length follows, 127 = a 64-bit length follows (network order)
// then the extended length, then the 4-byte masking key when MASK is set.
#include "switchboard/protocol/frame.hpp"

#include <cassert>
#include <cstring>

namespace switchboard::protocol {
namespace {

constexpr std::uint8_t k_fin = 0x80;
constexpr std::uint8_t k_rsv1 = 0x40;
constexpr std::uint8_t k_rsv2 = 0x20;
constexpr std::uint8_t k_rsv3 = 0x10;
constexpr std::uint8_t k_opcode_bits = 0x0F;
constexpr std::uint8_t k_mask_bit = 0x80;
constexpr std::uint8_t k_length_bits = 0x7F;
constexpr std::uint8_t k_length16 = 126;
constexpr std::uint8_t k_length64 = 127;

std::uint64_t read_be(const unsigned char* p, std::size_t n) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

void write_be(char* p, std::uint64_t v, std::size_t n) noexcept {
  for (std::size_t i = n; i-- > 0;) {
    p[i] = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
}

}  // namespace

decode_result decode_frame_header(const char* data, std::size_t size, frame_header& out) noexcept {
  if (size < 2) return {};
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  const std::uint8_t b0 = p[0];
  const std::uint8_t b1 = p[1];
  const std::uint8_t op = b0 & k_opcode_bits;
  const std::uint8_t len7 = b1 & k_length_bits;

  // Opcodes 3-7 and 11-15 are reserved for future use (RFC 6455 §5.2).
  if (!is_defined_opcode(op)) return {0, error::reserved_opcode};
  const bool control = (op & 0x8) != 0;
  // Control frames must not be fragmented (RFC 6455 §5.5).
  if (control && (b0 & k_fin) == 0) return {0, error::fragmented_control_frame};
  // Control frames carry at most 125 bytes, so never an extended length (§5.5).
  if (control && len7 > k_max_control_payload) return {0, error::control_frame_too_large};

  const std::size_t ext = len7 == k_length16 ? 2 : len7 == k_length64 ? 8 : 0;
  const bool masked = (b1 & k_mask_bit) != 0;
  const std::size_t total = 2 + ext + (masked ? 4 : 0);
  if (size < total) return {};

  std::uint64_t length = len7;
  if (ext == 2) {
    length = read_be(p + 2, 2);
    // A 16-bit length must be needed: 0-125 fit in the 7-bit field (§5.2).
    if (length < k_length16) return {0, error::non_minimal_length};
  } else if (ext == 8) {
    length = read_be(p + 2, 8);
    // The most significant bit of a 64-bit length must be 0 (RFC 6455 §5.2).
    if (length >> 63) return {0, error::length_msb_set};
    // A 64-bit length must be needed: up to 65535 fits in 16 bits (§5.2).
    if (length <= 0xFFFF) return {0, error::non_minimal_length};
  }

  out.fin = (b0 & k_fin) != 0;
  out.rsv1 = (b0 & k_rsv1) != 0;
  out.rsv2 = (b0 & k_rsv2) != 0;
  out.rsv3 = (b0 & k_rsv3) != 0;
  out.op = static_cast<opcode>(op);
  out.masked = masked;
  out.length = length;
  if (masked) std::memcpy(out.key.data(), p + 2 + ext, 4);
  return {total, error::none};
}

std::size_t encode_frame_header(const frame_header& header, char* out) noexcept {
  // REQUIRES: a length the wire can carry and a legal control frame.
  assert((header.length >> 63) == 0);
  assert(!is_control(header.op) || (header.fin && header.length <= k_max_control_payload));

  std::uint8_t b0 = static_cast<std::uint8_t>(header.op) & k_opcode_bits;
  if (header.fin) b0 |= k_fin;
  if (header.rsv1) b0 |= k_rsv1;
  if (header.rsv2) b0 |= k_rsv2;
  if (header.rsv3) b0 |= k_rsv3;
  const std::uint8_t mask = header.masked ? k_mask_bit : 0;
  out[0] = static_cast<char>(b0);

  std::size_t n = 2;
  if (header.length < k_length16) {
    out[1] = static_cast<char>(mask | static_cast<std::uint8_t>(header.length));
  } else if (header.length <= 0xFFFF) {
    out[1] = static_cast<char>(mask | k_length16);
    write_be(out + 2, header.length, 2);
    n = 4;
  } else {
    out[1] = static_cast<char>(mask | k_length64);
    write_be(out + 2, header.length, 8);
    n = 10;
  }
  if (header.masked) {
    std::memcpy(out + n, header.key.data(), 4);
    n += 4;
  }
  return n;
}

}  // namespace switchboard::protocol
