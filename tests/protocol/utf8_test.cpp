// Tests for UTF-8 validation (RFC 3629 §4; RFC 6455 §8.1): a table of valid
// and invalid forms, every split point across feed() calls, fail-fast
// behaviour, exhaustive short sequences, and a differential test against a
// straightforward code-point decoder. Inputs are also padded with ASCII so
// both the scalar and the SIMD engine see each case.
#include "switchboard/protocol/utf8.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace switchboard::protocol {
namespace {

// Reference: decode code point by code point and check the RFC 3629 rules.
bool reference_valid(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    std::uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    const std::uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

// True if some continuation makes `text` valid (it is a valid prefix).
bool reference_prefix_valid(const std::string& text) {
  static const char k_fill[] = {'\x80', '\x90', '\xA0'};
  if (reference_valid(text)) return true;
  for (char a : k_fill) {
    if (reference_valid(text + a)) return true;
    for (char b : k_fill) {
      if (reference_valid(text + a + b)) return true;
      for (char c : k_fill) {
        if (reference_valid(text + a + b + c)) return true;
      }
    }
  }
  return false;
}

std::string encode(std::uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

struct utf8_case {
  const char* name;
  std::string bytes;
  bool valid;
};

const std::vector<utf8_case>& cases() {
  static const std::vector<utf8_case> k_cases = {
      {"empty", "", true},
      {"ascii", "Hello, world", true},
      {"nul", std::string("a\0b", 3), true},
      {"two-byte", "\xC2\x80 \xDF\xBF", true},
      {"three-byte", "\xE0\xA0\x80 \xE2\x82\xAC \xEF\xBF\xBF", true},
      {"before surrogates", "\xED\x9F\xBF", true},
      {"after surrogates", "\xEE\x80\x80", true},
      {"four-byte", "\xF0\x90\x80\x80 \xF0\x9D\x84\x9E \xF4\x8F\xBF\xBF", true},
      {"mixed", "κόσμε \xF0\x9F\x98\x80 日本語", true},
      {"lone continuation", "\x80", false},
      {"continuation after ascii", "a\xBF", false},
      {"overlong 2 C0", "\xC0\x80", false},
      {"overlong 2 C1", "\xC1\xBF", false},
      {"overlong 3", "\xE0\x80\x80", false},
      {"overlong 3 max", "\xE0\x9F\xBF", false},
      {"overlong 4", "\xF0\x80\x80\x80", false},
      {"overlong 4 max", "\xF0\x8F\xBF\xBF", false},
      {"surrogate low", "\xED\xA0\x80", false},
      {"surrogate high", "\xED\xBF\xBF", false},
      {"surrogate pair", "\xED\xA0\xBD\xED\xB2\xA9", false},
      {"above max", "\xF4\x90\x80\x80", false},
      {"F5 lead", "\xF5\x80\x80\x80", false},
      {"F7 lead", "\xF7\xBF\xBF\xBF", false},
      {"five-byte", "\xF8\x88\x80\x80\x80", false},
      {"six-byte", "\xFC\x84\x80\x80\x80\x80", false},
      {"FE", "\xFE", false},
      {"FF", "\xFF", false},
      {"truncated 2", "\xC2", false},
      {"truncated 3", "\xE2\x82", false},
      {"truncated 4", "\xF0\x9F\x98", false},
      {"truncated then ascii", "\xE2\x82\x61", false},
      {"too many continuations", "\xC2\x80\x80", false},
      {"lead then lead", "\xC2\xC2\x80", false},
      {"bad third byte", "\xE2\x82\x41", false},
      {"bad fourth byte", "\xF0\x9F\x98\xC0", false},
      {"valid then surrogate",
       "κόσμε\xED\xA0\x80"
       "edited",
       false},
  };
  return k_cases;
}

std::string pad(const std::string& s, std::size_t before, std::size_t after) {
  return std::string(before, 'x') + s + std::string(after, 'y');
}

TEST(utf8, table_whole_buffer) {
  for (const auto& c : cases()) {
    ASSERT_EQ(reference_valid(c.bytes), c.valid) << "reference disagrees: " << c.name;
    // Pads move the case across the scalar / ASCII-scan / SIMD paths.
    for (std::size_t before : {0, 3, 8, 61, 127, 130, 300}) {
      for (std::size_t after : {0, 1, 64, 200}) {
        EXPECT_EQ(is_valid_utf8(pad(c.bytes, before, after)), c.valid)
            << c.name << " before " << before << " after " << after;
      }
    }
  }
}

TEST(utf8, table_every_split_point) {
  for (const auto& c : cases()) {
    for (std::size_t before : {0, 5, 140}) {
      const std::string s = pad(c.bytes, before, 3);
      for (std::size_t i = 0; i <= s.size(); ++i) {
        for (std::size_t j = i; j <= s.size(); ++j) {
          utf8_validator v;
          const bool ok = v.feed(std::string_view(s).substr(0, i)) &&
                          v.feed(std::string_view(s).substr(i, j - i)) &&
                          v.feed(std::string_view(s).substr(j));
          EXPECT_EQ(ok && v.complete(), c.valid) << c.name << " split " << i << "," << j;
        }
      }
    }
  }
}

TEST(utf8, byte_at_a_time) {
  for (const auto& c : cases()) {
    utf8_validator v;
    bool ok = true;
    for (char b : c.bytes) ok = v.feed(&b, 1) && ok;
    EXPECT_EQ(ok && v.complete(), c.valid) << c.name;
  }
}

TEST(utf8, fails_fast_on_impossible_prefix) {
  // Each must be rejected by the feed() that carries it, though incomplete.
  const char* impossible[] = {"\x80",     "\xBF",         "\xC0",     "\xC1",     "\xF5",
                              "\xF8",     "\xFF",         "\xE0\x80", "\xE0\x9F", "\xED\xA0",
                              "\xED\xBF", "\xF0\x80",     "\xF0\x8F", "\xF4\x90", "\xF4\xBF",
                              "\xE2\x41", "\xF0\x90\x41", "\xC2\xC2"};
  for (const char* p : impossible) {
    for (const std::string& prefix : {std::string(), std::string("abc"), std::string(200, 'z')}) {
      utf8_validator v;
      EXPECT_FALSE(v.feed(prefix + p)) << prefix.size() << " + " << testing::PrintToString(p);
      EXPECT_TRUE(v.failed());
      EXPECT_FALSE(v.complete());
    }
    // The same prefix split after its first byte fails at the second feed.
    const std::string s(p);
    if (s.size() >= 2) {
      utf8_validator v;
      if (v.feed(s.substr(0, 1))) {
        EXPECT_FALSE(v.feed(s.substr(1))) << testing::PrintToString(p);
      }
    }
  }
}

TEST(utf8, incomplete_but_possible_prefix_is_accepted) {
  const char* possible[] = {"\xC2",     "\xDF", "\xE0",     "\xE0\xA0",     "\xED\x9F",
                            "\xEF\xBF", "\xF0", "\xF0\x90", "\xF0\x90\x80", "\xF4\x8F\xBF"};
  for (const char* p : possible) {
    utf8_validator v;
    EXPECT_TRUE(v.feed(std::string("ok ") + p)) << testing::PrintToString(p);
    EXPECT_FALSE(v.complete());
    EXPECT_FALSE(v.failed());
  }
}

TEST(utf8, failure_is_sticky_until_reset) {
  utf8_validator v;
  EXPECT_FALSE(v.feed("\xFF"));
  EXPECT_FALSE(v.feed("fine"));
  EXPECT_FALSE(v.complete());
  v.reset();
  EXPECT_TRUE(v.feed("fine \xE2\x82"));
  EXPECT_FALSE(v.complete());
  v.reset();  // forgets the pending partial code point
  EXPECT_TRUE(v.feed("\xC2\x80"));
  EXPECT_TRUE(v.complete());
}

TEST(utf8, empty_feeds_change_nothing) {
  utf8_validator v;
  EXPECT_TRUE(v.feed(""));
  EXPECT_TRUE(v.feed("\xF0"));
  EXPECT_TRUE(v.feed(""));
  EXPECT_TRUE(v.feed("\x9F"));
  EXPECT_TRUE(v.feed(std::string_view{}));
  EXPECT_TRUE(v.feed("\x98\x80"));
  EXPECT_TRUE(v.complete());
}

TEST(utf8, exhaustive_short_sequences) {
  // Every 2-byte pair, every lead E0-EF or F0-FF with every second byte, each
  // checked against the reference with and without a SIMD-path pad.
  std::vector<std::string> inputs;
  for (unsigned a = 0x80; a < 0x100; ++a) {
    for (unsigned b = 0; b < 0x100; ++b) {
      std::string s{static_cast<char>(a), static_cast<char>(b)};
      inputs.push_back(s);
      if (a >= 0xE0) {
        inputs.push_back(s + '\x80');
        inputs.push_back(s + "\xBF\x80");
      }
    }
  }
  for (const std::string& s : inputs) {
    const bool want = reference_valid(s);
    ASSERT_EQ(is_valid_utf8(s), want) << testing::PrintToString(s);
    ASSERT_EQ(is_valid_utf8(pad(s, 150, 10)), want) << testing::PrintToString(s);
    utf8_validator v;
    const bool ok = v.feed(s.substr(0, 1)) && v.feed(s.substr(1));
    ASSERT_EQ(ok && v.complete(), want) << testing::PrintToString(s);
    ASSERT_EQ(!v.failed(), reference_prefix_valid(s)) << testing::PrintToString(s);
  }
}

TEST(utf8, every_code_point) {
  std::string all;
  for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) {
      // Surrogates encoded as 3 bytes are invalid (RFC 3629 §3).
      ASSERT_FALSE(is_valid_utf8(encode(cp))) << cp;
      continue;
    }
    all += encode(cp);
  }
  EXPECT_TRUE(is_valid_utf8(all));
  utf8_validator v;
  for (std::size_t i = 0; i < all.size(); i += 4093) {
    ASSERT_TRUE(v.feed(std::string_view(all).substr(i, 4093)));
  }
  EXPECT_TRUE(v.complete());
  EXPECT_FALSE(is_valid_utf8(encode(0x110000)));
}

TEST(utf8, random_differential_with_random_splits) {
  const unsigned seed = 20240601;
  std::mt19937 rng(seed);
  const unsigned char interesting[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0,
                                       0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xED,
                                       0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xF8, 0xFF};
  for (int trial = 0; trial < 20000; ++trial) {
    std::string s;
    const std::size_t pieces = rng() % 40;
    for (std::size_t p = 0; p < pieces; ++p) {
      switch (rng() % 4) {
        case 0:
          s += encode(rng() % 0x80);
          break;
        case 1:
          s += encode(0x80 + rng() % 0x780);
          break;
        case 2: {
          const std::uint32_t cp = rng() % 0x110000;
          s += encode(cp >= 0xD800 && cp <= 0xDFFF ? cp - 0x800 : cp);
          break;
        }
        default:
          if (rng() % 8 == 0)
            s += interesting[rng() % sizeof(interesting)];
          else
            s += std::string(rng() % 20, 'a');
      }
    }
    const bool want = reference_valid(s);
    ASSERT_EQ(is_valid_utf8(s), want) << "seed " << seed << " trial " << trial;
    // Random pieces; each feed must report exactly whether the prefix so far
    // can still become valid (fail fast, and never too early).
    utf8_validator v;
    std::size_t pos = 0;
    bool alive = true;
    while (pos < s.size()) {
      const std::size_t n = std::min<std::size_t>(1 + rng() % 9, s.size() - pos);
      const bool ok = v.feed(std::string_view(s).substr(pos, n));
      pos += n;
      alive = alive && reference_prefix_valid(s.substr(0, pos));
      ASSERT_EQ(ok, alive) << "seed " << seed << " trial " << trial << " at " << pos << " "
                           << testing::PrintToString(s);
    }
    ASSERT_EQ(v.complete(), want) << "seed " << seed << " trial " << trial;
  }
}

}  // namespace
}  // namespace switchboard::protocol
