// UTF-8 validation (RFC 3629 §4 syntax, as required by RFC 6455 §5.6 / §8.1).
//
// Two engines: simdjson's SIMD validator for anything but short input, and a
// scalar loop (8 ASCII bytes per step) for short runs, where the call and
// set-up cost of the SIMD path would dominate — WebSocket messages are often a
// few dozen bytes.
//
// The incremental validator never runs the scalar DFA over a whole piece: it
// splits each piece at the last code point boundary, validates the bulk in
// one call, and keeps the (at most 3-byte) cut-off sequence, which it checks
// as a prefix right away so that bad input fails in the piece that carries it.
#include "switchboard/protocol/utf8.hpp"

#include <simdjson.h>

#include <cstring>

#if defined(__x86_64__)
#include <emmintrin.h>
#define SWITCHBOARD_UTF8_SSE2 1
#else
#define SWITCHBOARD_UTF8_SSE2 0
#endif

namespace switchboard::protocol {
namespace {

// Up to this many bytes, an ASCII scan in 8-byte words runs first: simdjson
// has a fixed cost of ~11 ns for short inputs (measured on 16 ASCII bytes,
// against ~2 ns for the scan), and short messages are mostly ASCII.
constexpr std::size_t k_scalar_limit = 128;

// After the ASCII scan, a rest this short goes to the scalar checker; longer
// ones to simdjson (the scalar loop costs ~1.4 ns per non-ASCII byte, simdjson
// ~20 ns for any short input).
constexpr std::size_t k_scalar_rest = 16;

constexpr std::uint64_t k_high_bits = 0x8080808080808080ULL;
constexpr std::uint32_t k_high_bits32 = 0x80808080U;

std::uint64_t load64(const unsigned char* p) noexcept {
  std::uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

std::uint32_t load32(const unsigned char* p) noexcept {
  std::uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
}

// 16 bytes ORed together, to test their high bits at once: an SSE2 register
// on x86-64 (movemask gathers the high bits), elsewhere two 64-bit words
// folded into one. Explicit, so the compiler has nothing to vectorize: its
// vector code for these few ORs costs more than the whole check.
#if SWITCHBOARD_UTF8_SSE2
using block16 = __m128i;
block16 load16(const unsigned char* p) noexcept {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}
block16 or16(block16 a, block16 b) noexcept {
  return _mm_or_si128(a, b);
}
bool is_ascii16(block16 b) noexcept {
  return _mm_movemask_epi8(b) == 0;
}
#else
using block16 = std::uint64_t;
block16 load16(const unsigned char* p) noexcept {
  return load64(p) | load64(p + 8);
}
block16 or16(block16 a, block16 b) noexcept {
  return a | b;
}
bool is_ascii16(block16 b) noexcept {
  return (b & k_high_bits) == 0;
}
#endif

// True if the n <= 128 bytes at s are all ASCII, with a few loads and no
// loop. Each size class ORs the blocks that start at s with as many that end
// at s + n; the two runs overlap or meet, so together they cover every byte.
bool is_ascii_short(const unsigned char* s, std::size_t n) noexcept {
  if (n >= 16) {
    block16 any = or16(load16(s), load16(s + n - 16));
    if (n > 32) any = or16(any, or16(load16(s + 16), load16(s + n - 32)));
    if (n > 64) {
      any = or16(any, or16(load16(s + 32), load16(s + n - 48)));
      any = or16(any, or16(load16(s + 48), load16(s + n - 64)));
    }
    return is_ascii16(any);
  }
  if (n >= 8) return ((load64(s) | load64(s + n - 8)) & k_high_bits) == 0;
  if (n >= 4) return ((load32(s) | load32(s + n - 4)) & k_high_bits32) == 0;
  if (n == 0) return true;
  // 1-3 bytes: s[0], s[n/2] and s[n-1] are every byte.
  return ((s[0] | s[n / 2] | s[n - 1]) & 0x80) == 0;
}

// Judges the sequence that starts at s[0], of which n >= 1 bytes are present.
// Returns its length (1-4) when complete and valid, 0 when the bytes present
// are a valid beginning that needs more, and -1 when no continuation could
// make it valid. The ranges are RFC 3629's table (§4).
int check_sequence(const unsigned char* s, std::size_t n) noexcept {
  const unsigned c = s[0];
  if (c < 0x80) return 1;
  std::size_t length;
  unsigned lo = 0x80;
  unsigned hi = 0xBF;
  if (c < 0xC2) {
    // A continuation byte cannot start a sequence; C0/C1 only start overlongs.
    return -1;
  } else if (c < 0xE0) {
    length = 2;
  } else if (c < 0xF0) {
    length = 3;
    // E0 80-9F would be overlong; ED A0-BF would encode a UTF-16 surrogate.
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c < 0xF5) {
    length = 4;
    // F0 80-8F would be overlong; F4 90-BF would exceed U+10FFFF.
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    // F5-FF: beyond U+10FFFF, or the 5- and 6-byte forms RFC 3629 removed.
    return -1;
  }
  // The second byte's range depends on the lead.
  if (n >= 2 && (s[1] < lo || s[1] > hi)) return -1;
  for (std::size_t k = 2; k < length && k < n; ++k) {
    // Third and fourth bytes must be continuation bytes.
    if ((s[k] & 0xC0) != 0x80) return -1;
  }
  return n >= length ? static_cast<int>(length) : 0;
}

// Full length of the sequence a valid lead byte starts (2-4).
std::uint8_t sequence_length(unsigned lead) noexcept {
  return lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

bool validate_scalar(const unsigned char* s, std::size_t n) noexcept {
  std::size_t i = 0;
  while (i < n) {
    if (n - i >= 8) {
      if ((load64(s + i) & k_high_bits) == 0) {
        i += 8;
        continue;
      }
    }
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    const int r = check_sequence(s + i, n - i);
    // Invalid, or a sequence truncated by the end of the input.
    if (r <= 0) return false;
    i += static_cast<std::size_t>(r);
  }
  return true;
}

// The length of the longest prefix of s[0..n) that does not end inside a
// multi-byte sequence: n, unless one of the last three bytes is a lead byte
// whose sequence runs past the end. Validity is not judged here.
std::size_t boundary_before_tail(const unsigned char* s, std::size_t n) noexcept {
  const std::size_t stop = n > 3 ? n - 3 : 0;
  for (std::size_t i = n; i > stop;) {
    --i;
    const unsigned c = s[i];
    if (c < 0x80) return n;
    if (c >= 0xC0) {
      // F8-FF count as length 1: not a tail, the bulk check rejects them.
      const std::size_t length = c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 1;
      return i + length > n ? i : n;
    }
  }
  return n;
}

}  // namespace

bool is_valid_utf8(const char* data, std::size_t size) noexcept {
  if (size > k_scalar_limit) return simdjson::validate_utf8(data, size);
  const auto* s = reinterpret_cast<const unsigned char*>(data);
  // Most short messages are ASCII: settle them with a few loads and no loop.
  if (is_ascii_short(s, size)) return true;
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    if ((load64(s + i) & k_high_bits) != 0) break;
  }
  // s[i] starts a code point: everything before it is ASCII.
  const std::size_t rest = size - i;
  if (rest <= k_scalar_rest) return validate_scalar(s + i, rest);
  return simdjson::validate_utf8(data + i, rest);
}

bool utf8_validator::feed(const char* data, std::size_t size) noexcept {
  if (failed_) return false;
  if (size == 0) return true;  // (data may be null)
  const auto* s = reinterpret_cast<const unsigned char*>(data);

  if (pending_size_ != 0) {
    // pending_length_ is 2-4 and pending_size_ < pending_length_ here.
    const std::size_t want = static_cast<std::size_t>(pending_length_ - pending_size_) & 3;
    const std::size_t take = want < size ? want : size;
    std::memcpy(pending_ + pending_size_, s, take);
    pending_size_ = static_cast<std::uint8_t>(pending_size_ + take);
    s += take;
    size -= take;
    const int r = check_sequence(pending_, pending_size_);
    // The bytes that continue a split code point must fit its lead (RFC 3629 §4).
    if (r < 0) return fail();
    if (r == 0) return true;  // still unfinished; this piece is used up
    pending_size_ = 0;
  }

  const std::size_t split = boundary_before_tail(s, size);
  // Everything up to the last complete code point must be valid (RFC 6455 §8.1).
  if (!is_valid_utf8(reinterpret_cast<const char*>(s), split)) return fail();

  const std::size_t tail = size - split;
  if (tail != 0) {
    // A code point cut off by the end of the piece must already be a valid
    // prefix: fail fast instead of waiting for bytes that cannot help.
    if (check_sequence(s + split, tail) != 0) return fail();
    std::memcpy(pending_, s + split, tail);
    pending_size_ = static_cast<std::uint8_t>(tail);
    pending_length_ = sequence_length(s[split]);
  }
  return true;
}

}  // namespace switchboard::protocol
