// session_state_test.cpp — connection_state's layout: the channel list in one
// word (one channel inline, a list from the second), and the rarely used
// members (connection_cold) allocated only when written.
#include "session.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace switchboard::realtime::detail {
namespace {

std::vector<local_channel*> items(const channel_list& list) {
  return std::vector<local_channel*>(list.begin(), list.end());
}

TEST(session_state, sizes) {
  EXPECT_EQ(sizeof(channel_list), sizeof(void*));
  if (sizeof(void*) == 8) {
    EXPECT_LE(sizeof(connection_state), 88u);
  }
}

TEST(session_state, channel_list_one_then_many_then_one) {
  local_channel a, b, c;
  channel_list list;
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.size(), 0u);
  EXPECT_EQ(list.begin(), list.end());

  list.push_back(&a);
  EXPECT_FALSE(list.empty());
  EXPECT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0], &a);
  EXPECT_EQ(list.back(), &a);

  list.push_back(&b);
  list.push_back(&c);
  EXPECT_EQ(items(list), (std::vector<local_channel*>{&a, &b, &c}));
  EXPECT_EQ(list.back(), &c);

  list.erase(list.begin() + 1);  // the middle one: order kept
  EXPECT_EQ(items(list), (std::vector<local_channel*>{&a, &c}));
  list.erase(list.begin());  // back to one inline
  EXPECT_EQ(items(list), (std::vector<local_channel*>{&c}));
  EXPECT_EQ(list.size(), 1u);
  list.push_back(&a);  // a list again
  EXPECT_EQ(items(list), (std::vector<local_channel*>{&c, &a}));
  list.erase(list.end() - 1);
  list.erase(list.begin());
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.size(), 0u);
}

TEST(session_state, channel_list_frees_its_list_when_destroyed) {
  // (under ASan a leaked list fails the run)
  local_channel a, b;
  channel_list list;
  list.push_back(&a);
  list.push_back(&b);
  EXPECT_EQ(list.size(), 2u);
}

TEST(session_state, cold_members_are_allocated_on_first_write_only) {
  connection_state conn;
  EXPECT_EQ(conn.cold_, nullptr);
  // Reads see empty members and allocate nothing.
  EXPECT_TRUE(conn.cold_view().user.empty());
  EXPECT_EQ(conn.cold_view().claims, nullptr);
  EXPECT_EQ(conn.cold_view().presence, nullptr);
  EXPECT_EQ(conn.cold_view().hook, nullptr);
  EXPECT_TRUE(conn.cold_view().address.empty());
  EXPECT_EQ(conn.cold_view().expiry_due, 0);
  EXPECT_TRUE(conn.grants("any"));  // anonymous: every channel
  EXPECT_EQ(conn.cold_, nullptr);

  auto claims = std::make_unique<token_claims>();
  claims->user = "ann";
  claims->has_channels = true;
  claims->channels = {"chat:*"};
  conn.cold().claims = std::move(claims);
  ASSERT_NE(conn.cold_, nullptr);
  EXPECT_TRUE(conn.grants("chat:lobby"));
  EXPECT_FALSE(conn.grants("news"));
  const connection_cold* first = conn.cold_.get();
  conn.cold().user = std::string_view("ann");
  EXPECT_EQ(conn.cold_.get(), first);  // one block, kept
  EXPECT_EQ(&conn.cold_view(), first);
}

TEST(session_state, presence_of_makes_the_entry_once) {
  connection_state conn;
  conn.client = std::string_view("0123456789abcdef");
  const auto& entry = conn.presence_of();
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->client, std::string_view("0123456789abcdef"));
  EXPECT_EQ(conn.presence_of().get(), entry.get());
  EXPECT_EQ(conn.cold_view().presence.get(), entry.get());
}

}  // namespace
}  // namespace switchboard::realtime::detail
