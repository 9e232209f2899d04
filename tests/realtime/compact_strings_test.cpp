// compact_strings_test.cpp — inline_id and rare_string: sizes, values,
// comparisons, and that an empty rare_string holds no block.
#include "compact_strings.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace switchboard::realtime::detail {
namespace {

TEST(compact_strings, sizes) {
  EXPECT_EQ(sizeof(inline_id), 16u);
  EXPECT_EQ(sizeof(rare_string), sizeof(void*));
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

}  // namespace
}  // namespace switchboard::realtime::detail
