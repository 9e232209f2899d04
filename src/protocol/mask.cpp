// Masking (RFC 6455 §5.3): XOR with a repeating 4-byte key.
//
// Every path works on the key as a 32-bit "pattern" whose bytes in memory
// order are the key rotated by the current offset. Because vector widths (8,
// 16, 32 bytes) are multiples of 4, one pattern serves a whole run of words;
// only the scalar head and tail move the phase.
//
// Large buffers: a scalar head brings `dst` to a 32-byte boundary (so vector
// stores never split cache lines), then a 128-bytes-per-iteration vector loop,
// then the tail. Loads from `src` may stay unaligned; that is cheap on every
// x86-64 that has AVX2 and still correct with SSE2 (we use loadu).
#include "switchboard/protocol/mask.hpp"

#include <bit>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#define SWITCHBOARD_MASK_X86 1
#else
#define SWITCHBOARD_MASK_X86 0
#endif

namespace switchboard::protocol {
namespace {

// Below this size the vector set-up is not worth it; mask_small() wins.
constexpr std::size_t k_vector_threshold = 64;

// Advances a pattern by `n` bytes of payload: the byte that was at memory
// position n%4 moves to position 0. The pattern repeats every 4 bytes, so this
// is a rotation of the 32-bit value, whose direction depends on byte order.
inline std::uint32_t advance(std::uint32_t pattern, std::size_t n) noexcept {
  const int bits = static_cast<int>(8 * (n & 3));
  if constexpr (std::endian::native == std::endian::little) {
    return std::rotr(pattern, bits);
  } else {
    return std::rotl(pattern, bits);
  }
}

// The key rotated so that its first byte in memory is key[offset % 4].
inline std::uint32_t pattern_for(const mask_key& key, std::size_t offset) noexcept {
  std::uint32_t p;
  std::memcpy(&p, key.data(), 4);
  return advance(p, offset);
}

// The pattern repeated over 8 bytes; the same in either byte order.
inline std::uint64_t widen(std::uint32_t pattern) noexcept {
  return (static_cast<std::uint64_t>(pattern) << 32) | pattern;
}

template <typename Word>
inline Word load(const char* p) noexcept {
  Word w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

template <typename Word>
inline void store(char* p, Word w) noexcept {
  std::memcpy(p, &w, sizeof w);
}

// 16 bytes XORed with a pattern: one SSE2 register on x86-64, two 64-bit
// words elsewhere.
#if SWITCHBOARD_MASK_X86
using block16 = __m128i;
inline block16 load16(const char* p) noexcept {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}
inline void store16(char* p, block16 b) noexcept {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), b);
}
inline block16 xor16(block16 b, std::uint32_t pattern) noexcept {
  return _mm_xor_si128(b, _mm_set1_epi32(static_cast<int>(pattern)));
}
#else
struct block16 {
  std::uint64_t lo, hi;
};
inline block16 load16(const char* p) noexcept {
  return {load<std::uint64_t>(p), load<std::uint64_t>(p + 8)};
}
inline void store16(char* p, block16 b) noexcept {
  store(p, b.lo);
  store(p + 8, b.hi);
}
inline block16 xor16(block16 b, std::uint32_t pattern) noexcept {
  return {b.lo ^ widen(pattern), b.hi ^ widen(pattern)};
}
#endif

// Up to 63 bytes (small frames, and the head and tail of large ones) with a
// fixed handful of loads and stores per size class and no loop: a loop here
// is one the compiler vectorizes, and the vectorized prologue, epilogue and
// alias checks cost more than the whole job at these sizes. The size classes
// cover the range with two (or four) possibly overlapping blocks. All loads
// come before any store, so dst == src works, and where blocks overlap both
// stores write the same unmasked byte.
// REQUIRES: n < 64.
inline void mask_small(char* dst, const char* src, std::size_t n, std::uint32_t pattern) noexcept {
  if (n >= 16) {
    // The blocks ending at n start at n-16 and n-32: the same phase, n % 4.
    const std::uint32_t end_pattern = advance(pattern, n);
    const block16 first = xor16(load16(src), pattern);
    const block16 last = xor16(load16(src + n - 16), end_pattern);
    if (n > 32) {
      const block16 second = xor16(load16(src + 16), pattern);
      const block16 third = xor16(load16(src + n - 32), end_pattern);
      store16(dst + 16, second);
      store16(dst + n - 32, third);
    }
    store16(dst, first);
    store16(dst + n - 16, last);
    return;
  }
  if (n >= 8) {
    const std::uint64_t first = load<std::uint64_t>(src) ^ widen(pattern);
    const std::uint64_t last = load<std::uint64_t>(src + n - 8) ^ widen(advance(pattern, n));
    store(dst, first);
    store(dst + n - 8, last);
    return;
  }
  if (n >= 4) {
    const std::uint32_t first = load<std::uint32_t>(src) ^ pattern;
    const std::uint32_t last = load<std::uint32_t>(src + n - 4) ^ advance(pattern, n);
    store(dst, first);
    store(dst + n - 4, last);
    return;
  }
  unsigned char key[4];
  std::memcpy(key, &pattern, 4);
  if (n > 0) dst[0] = static_cast<char>(src[0] ^ key[0]);
  if (n > 1) dst[1] = static_cast<char>(src[1] ^ key[1]);
  if (n > 2) dst[2] = static_cast<char>(src[2] ^ key[2]);
}

#if SWITCHBOARD_MASK_X86

// REQUIRES: n is a multiple of 16. Returns nothing; the phase is unchanged.
void mask_sse2(char* dst, const char* src, std::size_t n, std::uint32_t pattern) noexcept {
  const __m128i k = _mm_set1_epi32(static_cast<int>(pattern));
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 16));
    __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 32));
    __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 48));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm_xor_si128(a, k));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i + 16), _mm_xor_si128(b, k));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i + 32), _mm_xor_si128(c, k));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i + 48), _mm_xor_si128(d, k));
  }
  for (; i < n; i += 16) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm_xor_si128(a, k));
  }
}

// REQUIRES: n is a multiple of 32 and the CPU supports AVX2.
__attribute__((target("avx2"))) void mask_avx2(char* dst, const char* src, std::size_t n,
                                               std::uint32_t pattern) noexcept {
  const __m256i k = _mm256_set1_epi32(static_cast<int>(pattern));
  std::size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 32));
    __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 64));
    __m256i d = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 96));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_xor_si256(a, k));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i + 32), _mm256_xor_si256(b, k));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i + 64), _mm256_xor_si256(c, k));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i + 96), _mm256_xor_si256(d, k));
  }
  for (; i < n; i += 32) {
    __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_xor_si256(a, k));
  }
}

bool detect_avx2() noexcept {
  __builtin_cpu_init();  // may run before other static constructors
  return __builtin_cpu_supports("avx2");
}

// Decided once at start-up. A static constructor in another unit that masks
// before this one runs sees `false` (zero-initialized) and takes the SSE2
// path: slower, never wrong.
const bool k_has_avx2 = detect_avx2();

#endif  // SWITCHBOARD_MASK_X86

// REQUIRES: n >= k_vector_threshold. Kept out of line so that the small case
// in mask_any() stays a leaf with nothing to save.
__attribute__((noinline)) void mask_large(char* dst, const char* src, std::size_t n,
                                          std::uint32_t pattern) noexcept {
#if SWITCHBOARD_MASK_X86
  // Head: up to 31 bytes so that dst is 32-byte aligned.
  const std::size_t head = (32 - (reinterpret_cast<std::uintptr_t>(dst) & 31)) & 31;
  mask_small(dst, src, head, pattern);
  pattern = advance(pattern, head);
  dst += head;
  src += head;
  n -= head;
  const std::size_t body = k_has_avx2 ? (n & ~std::size_t{31}) : (n & ~std::size_t{15});
  if (k_has_avx2) {
    mask_avx2(dst, src, body, pattern);
  } else {
    mask_sse2(dst, src, body, pattern);
  }
  // body is a multiple of 4, so the pattern's phase is unchanged for the tail
  // (under 32 bytes).
  mask_small(dst + body, src + body, n - body, pattern);
#else
  // 64-bit words (a multiple of 4 bytes: the phase is unchanged), then the
  // under-8-byte tail.
  const std::size_t body = n & ~std::size_t{7};
  for (std::size_t i = 0; i < body; i += 8) {
    store(dst + i, load<std::uint64_t>(src + i) ^ widen(pattern));
  }
  mask_small(dst + body, src + body, n - body, pattern);
#endif
}

// Small sizes are settled here, inline, without a further call: for a short
// frame the call and its set-up cost about as much as the masking itself.
inline void mask_any(char* dst, const char* src, std::size_t n, const mask_key& key,
                     std::size_t offset) noexcept {
  const std::uint32_t pattern = pattern_for(key, offset);
  if (n < k_vector_threshold) {
    mask_small(dst, src, n, pattern);
  } else {
    mask_large(dst, src, n, pattern);
  }
}

}  // namespace

void apply_mask(char* data, std::size_t size, const mask_key& key,
                std::size_t key_offset) noexcept {
  mask_any(data, data, size, key, key_offset);
}

void mask_copy(char* dst, const char* src, std::size_t size, const mask_key& key,
               std::size_t key_offset) noexcept {
  mask_any(dst, src, size, key, key_offset);
}

}  // namespace switchboard::protocol
