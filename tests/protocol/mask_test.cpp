// Tests for masking (RFC 6455 §5.3): every path (scalar, SSE2, AVX2; head,
// body, tail) against a byte-at-a-time reference, for every alignment,
// length and key offset, plus guard bytes around the range.
#include "switchboard/protocol/mask.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace switchboard::protocol {
namespace {

constexpr std::size_t k_guard = 40;  // untouched bytes on each side
constexpr unsigned char k_guard_byte = 0xA5;

std::vector<char> random_bytes(std::size_t n, std::mt19937& rng) {
  std::vector<char> v(n);
  for (char& c : v) c = static_cast<char>(rng());
  return v;
}

std::vector<char> reference(const std::vector<char>& in, const mask_key& key, std::size_t offset) {
  std::vector<char> out(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    out[i] = static_cast<char>(in[i] ^ key[(offset + i) % 4]);
  }
  return out;
}

// A buffer with `align` bytes of misalignment relative to a 64-byte boundary,
// guard bytes on both sides, and the payload copied in.
struct placed {
  std::vector<char> storage;
  char* data;

  placed(const std::vector<char>& payload, std::size_t align)
      : storage(payload.size() + 2 * k_guard + 128, static_cast<char>(k_guard_byte)) {
    auto base = reinterpret_cast<std::uintptr_t>(storage.data()) + k_guard;
    base = (base + 63) & ~std::uintptr_t{63};
    data = reinterpret_cast<char*>(base + align);
    std::copy(payload.begin(), payload.end(), data);
  }

  bool guards_intact(std::size_t size) const {
    for (std::size_t i = 1; i <= k_guard; ++i) {
      if (static_cast<unsigned char>(data[-static_cast<std::ptrdiff_t>(i)]) != k_guard_byte)
        return false;
      if (static_cast<unsigned char>(data[size + i - 1]) != k_guard_byte) return false;
    }
    return true;
  }
};

const mask_key k_key = {0x37, 0xfa, 0x21, 0x3d};

TEST(mask, rfc_example) {
  // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
  std::string s = "Hello";
  apply_mask(s.data(), s.size(), k_key);
  EXPECT_EQ(s, std::string("\x7f\x9f\x4d\x51\x58", 5));
  apply_mask(s.data(), s.size(), k_key);
  EXPECT_EQ(s, "Hello");
}

TEST(mask, apply_matches_reference_for_every_alignment_length_offset) {
  std::mt19937 rng(12345);
  for (std::size_t length = 0; length <= 300; ++length) {
    const std::vector<char> payload = random_bytes(length, rng);
    for (std::size_t align = 0; align < 16; ++align) {
      for (std::size_t offset = 0; offset < 4; ++offset) {
        placed buf(payload, align);
        apply_mask(buf.data, length, k_key, offset);
        const std::vector<char> want = reference(payload, k_key, offset);
        ASSERT_TRUE(std::equal(want.begin(), want.end(), buf.data))
            << "length " << length << " align " << align << " offset " << offset;
        ASSERT_TRUE(buf.guards_intact(length))
            << "length " << length << " align " << align << " offset " << offset;
      }
    }
  }
}

TEST(mask, copy_matches_reference_for_every_alignment_length_offset) {
  std::mt19937 rng(777);
  for (std::size_t length = 0; length <= 300; ++length) {
    const std::vector<char> payload = random_bytes(length, rng);
    for (std::size_t align = 0; align < 16; ++align) {
      const std::size_t src_align = (align * 7 + 3) % 16;  // src and dst misaligned differently
      for (std::size_t offset = 0; offset < 4; ++offset) {
        placed src(payload, src_align);
        placed dst(std::vector<char>(length, 0), align);
        mask_copy(dst.data, src.data, length, k_key, offset);
        const std::vector<char> want = reference(payload, k_key, offset);
        ASSERT_TRUE(std::equal(want.begin(), want.end(), dst.data))
            << "length " << length << " align " << align << " offset " << offset;
        ASSERT_TRUE(std::equal(payload.begin(), payload.end(), src.data)) << "src modified";
        ASSERT_TRUE(dst.guards_intact(length));
      }
    }
  }
}

TEST(mask, big_sizes) {
  std::mt19937 rng(99);
  for (std::size_t length : {std::size_t{4096}, std::size_t{65536}, std::size_t{65536 + 13},
                             std::size_t{1} << 20, (std::size_t{1} << 20) + 31}) {
    const std::vector<char> payload = random_bytes(length, rng);
    for (std::size_t align : {0, 1, 17, 31}) {
      for (std::size_t offset : {0, 1, 2, 3, 1000001}) {
        placed buf(payload, align);
        apply_mask(buf.data, length, k_key, offset);
        const std::vector<char> want = reference(payload, k_key, offset);
        ASSERT_TRUE(std::equal(want.begin(), want.end(), buf.data))
            << "length " << length << " align " << align << " offset " << offset;
        ASSERT_TRUE(buf.guards_intact(length));
      }
    }
  }
}

TEST(mask, offset_uses_only_its_value_modulo_four) {
  std::mt19937 rng(5);
  const std::vector<char> payload = random_bytes(100, rng);
  for (std::size_t offset = 0; offset < 4; ++offset) {
    std::vector<char> a = payload;
    std::vector<char> b = payload;
    apply_mask(a.data(), a.size(), k_key, offset);
    apply_mask(b.data(), b.size(), k_key, offset + 4 * 12345);
    EXPECT_EQ(a, b);
  }
}

TEST(mask, chunked_unmasking_equals_whole) {
  // A payload unmasked in pieces, each with offset = bytes done so far.
  std::mt19937 rng(2024);
  const std::vector<char> payload = random_bytes(5000, rng);
  const std::vector<char> want = reference(payload, k_key, 0);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<char> buf = payload;
    std::size_t done = 0;
    while (done < buf.size()) {
      const std::size_t n = std::min<std::size_t>(rng() % 300, buf.size() - done);
      apply_mask(buf.data() + done, n, k_key, done);
      done += n;
    }
    ASSERT_EQ(buf, want) << "trial " << trial;
  }
}

TEST(mask, is_an_involution_and_handles_zero_key) {
  std::mt19937 rng(8);
  const std::vector<char> payload = random_bytes(1000, rng);
  std::vector<char> buf = payload;
  apply_mask(buf.data(), buf.size(), k_key, 3);
  EXPECT_NE(buf, payload);
  apply_mask(buf.data(), buf.size(), k_key, 3);
  EXPECT_EQ(buf, payload);
  apply_mask(buf.data(), buf.size(), mask_key{0, 0, 0, 0}, 1);
  EXPECT_EQ(buf, payload);
}

TEST(mask, zero_length_with_null_pointer) {
  apply_mask(nullptr, 0, k_key, 2);
  mask_copy(nullptr, nullptr, 0, k_key, 1);
  SUCCEED();
}

TEST(mask, every_key_byte_position) {
  // A key with one non-zero byte shows which payload bytes it reaches.
  for (std::size_t k = 0; k < 4; ++k) {
    mask_key key{0, 0, 0, 0};
    key[k] = 0xFF;
    for (std::size_t offset = 0; offset < 4; ++offset) {
      std::vector<char> buf(257, 0);
      apply_mask(buf.data(), buf.size(), key, offset);
      for (std::size_t i = 0; i < buf.size(); ++i) {
        const bool hit = (offset + i) % 4 == k;
        ASSERT_EQ(buf[i], hit ? static_cast<char>(0xFF) : 0) << k << " " << offset << " " << i;
      }
    }
  }
}

}  // namespace
}  // namespace switchboard::protocol
