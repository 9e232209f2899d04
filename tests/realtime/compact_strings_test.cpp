// compact_strings_test.cpp — inline_id, rare_string and epoch_text: sizes,
// values, comparisons, that an empty rare_string holds no block and that an
// epoch of 16 hex digits holds none either.
#include "compact_strings.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace switchboard::realtime::detail {
namespace {

TEST(compact_strings, sizes) {
  EXPECT_EQ(sizeof(inline_id), 16u);
  EXPECT_EQ(sizeof(rare_string), sizeof(void*));
  EXPECT_EQ(sizeof(epoch_text), 24u);
}

TEST(compact_strings, inline_id_holds_a_client_id) {
  inline_id id;
  EXPECT_TRUE(id.empty());
  EXPECT_EQ(id.view(), "");
  id = std::string_view("0123456789abcdef");
  EXPECT_EQ(id.size(), 16u);
  EXPECT_EQ(id, std::string_view("0123456789abcdef"));
  EXPECT_FALSE(id == std::string_view("0123456789abcdeF"));
  const std::string copy = id;  // as a std::string where one is needed
  EXPECT_EQ(copy, "0123456789abcdef");
  EXPECT_EQ("client " + id, "client 0123456789abcdef");
  inline_id other;
  other = std::string_view("0123456789abcdef");
  EXPECT_EQ(id, other);
  other = std::string_view("short");
  EXPECT_EQ(other.view(), "short");  // shorter after longer: no stale bytes
  EXPECT_FALSE(id == other);
  other = std::string_view("abcdefghijklmnop");  // the capacity, 16: no NUL kept
  EXPECT_EQ(other.view(), "abcdefghijklmnop");
  EXPECT_EQ(other.size(), 16u);
  other = std::string_view();
  EXPECT_TRUE(other.empty());
  EXPECT_EQ(other.view(), "");
}

TEST(compact_strings, rare_string_reads_as_a_string) {
  rare_string s;
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.str(), "");
  EXPECT_EQ(s.size(), 0u);
  s = std::string("alice");
  EXPECT_FALSE(s.empty());
  EXPECT_EQ(s.size(), 5u);
  EXPECT_EQ(s, std::string_view("alice"));
  const std::string& ref = s;
  EXPECT_EQ(ref, "alice");
  const std::string_view view = s;
  EXPECT_EQ(view, "alice");
  std::string plain;
  plain = s;  // assigns like a std::string
  EXPECT_EQ(plain, "alice");

  rare_string copy = s;  // a deep copy
  s = std::string("bob");
  EXPECT_EQ(copy, std::string_view("alice"));
  EXPECT_EQ(s, std::string_view("bob"));
  EXPECT_FALSE(copy == s);
  copy = s;
  EXPECT_EQ(copy, s);
  rare_string moved = std::move(copy);
  EXPECT_EQ(moved, std::string_view("bob"));
}

TEST(compact_strings, an_empty_value_frees_the_block) {
  rare_string s;
  s = std::string("x");
  const std::string* block = &s.str();
  s = std::string();
  EXPECT_TRUE(s.empty());
  EXPECT_NE(&s.str(), block);  // the shared empty string, not the old block
  s = "y";
  EXPECT_EQ(s, std::string_view("y"));
  s.clear();
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.str(), "");
}

TEST(compact_strings, epoch_text_holds_sixteen_hex_digits_inline) {
  epoch_text e;
  EXPECT_TRUE(e.empty());
  EXPECT_EQ(e.view(), "");
  e = "0123456789abcdef";
  EXPECT_FALSE(e.empty());
  EXPECT_FALSE(e.on_heap());
  EXPECT_EQ(e.view(), "0123456789abcdef");
  EXPECT_TRUE(e == "0123456789abcdef");
  EXPECT_FALSE(e == "0123456789abcde");
  e = "abc";  // shorter: the rest of the inline bytes no longer count
  EXPECT_EQ(e.view(), "abc");
  EXPECT_FALSE(e.on_heap());
}

TEST(compact_strings, epoch_text_keeps_any_other_epoch_whole) {
  // Longer than 16 (an epoch from a snapshot written elsewhere) or with a
  // NUL (which the inline form would take for its end): on the heap, whole.
  epoch_text e("0123456789abcdef0");
  EXPECT_TRUE(e.on_heap());
  EXPECT_EQ(e.view(), "0123456789abcdef0");
  const std::string with_nul("ab\0cd", 5);
  e = with_nul;
  EXPECT_TRUE(e.on_heap());
  EXPECT_EQ(e.view(), with_nul);
  // Back to a short one: inline again, the block freed.
  e = "fedcba9876543210";
  EXPECT_FALSE(e.on_heap());
  EXPECT_EQ(e.view(), "fedcba9876543210");
  // Copies are deep and independent.
  epoch_text long_one("a-much-longer-epoch-than-sixteen");
  epoch_text copy(long_one);
  long_one = "x";
  EXPECT_EQ(copy.view(), "a-much-longer-epoch-than-sixteen");
  EXPECT_EQ(long_one.view(), "x");
  copy = e;
  EXPECT_EQ(copy.view(), "fedcba9876543210");
  EXPECT_FALSE(copy.on_heap());
  e = std::string_view();
  EXPECT_TRUE(e.empty());
}

}  // namespace
}  // namespace switchboard::realtime::detail
