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

// Below this size the vector set-up is not worth it; 64-bit words win.
constexpr std::size_t k_vector_threshold = 64;

// The key rotated so that its first byte in memory is key[offset % 4].
inline std::uint32_t pattern_for(const mask_key& key, std::size_t offset) noexcept {
  const std::size_t o = offset & 3;
  const unsigned char bytes[4] = {key[o], key[(o + 1) & 3], key[(o + 2) & 3], key[(o + 3) & 3]};
  std::uint32_t p;
  std::memcpy(&p, bytes, 4);
  return p;
}

// Advances a pattern by `n` bytes of payload: the byte that was at memory
// position n%4 moves to position 0.
inline std::uint32_t advance(std::uint32_t pattern, std::size_t n) noexcept {
  unsigned char bytes[4];
  std::memcpy(bytes, &pattern, 4);
  const std::size_t o = n & 3;
  const unsigned char rotated[4] = {bytes[o], bytes[(o + 1) & 3], bytes[(o + 2) & 3],
                                    bytes[(o + 3) & 3]};
  std::memcpy(&pattern, rotated, 4);
  return pattern;
}

// 64-bit words, then single bytes. Leaves the phase where it found it only
// when n % 4 == 0; callers that continue afterwards use advance().
inline void mask_words(char* dst, const char* src, std::size_t n, std::uint32_t pattern) noexcept {
  const std::uint64_t wide = (static_cast<std::uint64_t>(pattern) << 32) | pattern;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, src + i, 8);
    w ^= wide;
    std::memcpy(dst + i, &w, 8);
  }
  unsigned char key_bytes[4];
  std::memcpy(key_bytes, &pattern, 4);
  for (; i < n; ++i) dst[i] = static_cast<char>(src[i] ^ key_bytes[i & 3]);
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

void mask_any(char* dst, const char* src, std::size_t n, const mask_key& key,
              std::size_t offset) noexcept {
  std::uint32_t pattern = pattern_for(key, offset);
  if (n < k_vector_threshold) {
    mask_words(dst, src, n, pattern);
    return;
  }
#if SWITCHBOARD_MASK_X86
  // Head: up to 31 bytes so that dst is 32-byte aligned.
  const std::size_t head = (32 - (reinterpret_cast<std::uintptr_t>(dst) & 31)) & 31;
  mask_words(dst, src, head, pattern);
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
  // body is a multiple of 4, so the pattern's phase is unchanged for the tail.
  mask_words(dst + body, src + body, n - body, pattern);
#else
  mask_words(dst, src, n, pattern);
#endif
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
