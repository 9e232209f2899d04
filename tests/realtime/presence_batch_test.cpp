// presence_batch_test.cpp — presence changes coalesced per tick: net joins
// and leaves per client, a join and a leave within a tick cancelling out, one
// batch per channel stream, the counts-only throttle and when a push is worth
// sending.
#include "presence_batch.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <tuple>

namespace switchboard::realtime::detail {
namespace {

// {"client":"ID"} (appended: GCC 12 warns falsely on "lit" + std::string&&).
std::string entry(std::string_view id) {
  std::string e = R"({"client":")";
  e.append(id);
  e.append("\"}");
  return e;
}

constexpr std::uint64_t k_interval = 1000;
constexpr std::uint64_t k_start = 10'000;

TEST(presence_batch_test, joins_and_leaves_of_a_tick_come_out_as_one_batch) {
  presence_batcher b(k_interval);
  b.add("chat:a", "e1", true, entry("c1"));
  b.add("chat:a", "e1", true, entry("c2"));
  b.add("chat:a", "e1", false, entry("c0"));
  auto due = b.take(k_start);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].channel, "chat:a");
  EXPECT_EQ(due[0].epoch, "e1");
  EXPECT_TRUE(due[0].joins == entry("c1") + "," + entry("c2") ||
              due[0].joins == entry("c2") + "," + entry("c1"))
      << due[0].joins;
  EXPECT_EQ(due[0].leaves, entry("c0"));
  // Taken: nothing more until something changes.
  EXPECT_TRUE(b.take(k_start + 200).empty());
}

TEST(presence_batch_test, a_join_and_a_leave_within_a_tick_cancel_out) {
  presence_batcher b(k_interval);
  b.add("chat:a", "e1", true, entry("c1"));
  b.add("chat:a", "e1", false, entry("c1"));
  // Present before the tick, gone and back within it: no change either.
  b.add("chat:a", "e1", false, entry("c2"));
  b.add("chat:a", "e1", true, entry("c2"));
  // Joined, left, joined: one join.
  b.add("chat:a", "e1", true, entry("c3"));
  b.add("chat:a", "e1", false, entry("c3"));
  b.add("chat:a", "e1", true, entry("c3"));
  auto due = b.take(k_start);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].joins, entry("c3"));
  EXPECT_EQ(due[0].leaves, "");
  // Nothing was said about c1 or c2: no push is worth sending for them alone.
  presence_batcher quiet(k_interval);
  quiet.add("chat:b", "e1", true, entry("c1"));
  quiet.add("chat:b", "e1", false, entry("c1"));
  due = quiet.take(k_start);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_TRUE(due[0].joins.empty() && due[0].leaves.empty());
  EXPECT_FALSE(quiet.note_push("chat:b", "e1", false, 0, false));
}

TEST(presence_batch_test, channels_and_epochs_are_batched_apart) {
  presence_batcher b(k_interval);
  b.add("chat:a", "e1", true, entry("c1"));
  b.add("chat:b", "e1", true, entry("c1"));
  b.add("chat:a", "e2", true, entry("c2"));  // a new stream of chat:a: another topic
  auto due = b.take(k_start);
  ASSERT_EQ(due.size(), 3u);
  std::sort(due.begin(), due.end(), [](const auto& x, const auto& y) {
    return std::tie(x.channel, x.epoch) < std::tie(y.channel, y.epoch);
  });
  EXPECT_EQ(due[0].channel + "#" + due[0].epoch + " " + due[0].joins,
            "chat:a#e1 " + entry("c1"));
  EXPECT_EQ(due[1].channel + "#" + due[1].epoch + " " + due[1].joins,
            "chat:a#e2 " + entry("c2"));
  EXPECT_EQ(due[2].channel + "#" + due[2].epoch, "chat:b#e1");
}

TEST(presence_batch_test, entries_without_a_client_id_are_ignored) {
  presence_batcher b(k_interval);
  b.add("chat:a", "e1", true, R"({"user":"x"})");
  b.add("chat:a", "e1", true, "");
  EXPECT_TRUE(b.take(k_start).empty());
  EXPECT_EQ(b.size(), 0u);
}

TEST(presence_batch_test, counts_only_channels_are_pushed_once_per_interval_when_the_count_moves) {
  presence_batcher b(k_interval);
  b.add("chat:a", "e1", true, entry("c1"));
  ASSERT_EQ(b.take(k_start).size(), 1u);
  // The hub found the channel over its maximum: a counts-only push.
  EXPECT_TRUE(b.note_push("chat:a", "e1", true, 1001, true));
  // Churn within the interval waits for it.
  b.add("chat:a", "e1", true, entry("c2"));
  EXPECT_TRUE(b.take(k_start + 200).empty());
  EXPECT_TRUE(b.take(k_start + 999).empty());
  auto due = b.take(k_start + 1000);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_TRUE(b.note_push("chat:a", "e1", true, 1002, true));
  // The count did not move (a join and a leave of different clients): no push.
  b.add("chat:a", "e1", true, entry("c3"));
  b.add("chat:a", "e1", false, entry("c1"));
  ASSERT_EQ(b.take(k_start + 2000).size(), 1u);
  EXPECT_FALSE(b.note_push("chat:a", "e1", true, 1002, true));
  // Back under the maximum: worth a push even without changes (clients reload).
  b.add("chat:a", "e1", false, entry("c3"));
  ASSERT_EQ(b.take(k_start + 3000).size(), 1u);
  EXPECT_TRUE(b.note_push("chat:a", "e1", false, 1000, false));
  // Listed again: every tick may push.
  b.add("chat:a", "e1", true, entry("c4"));
  ASSERT_EQ(b.take(k_start + 3200).size(), 1u);
  EXPECT_TRUE(b.note_push("chat:a", "e1", false, 1001, true));
}

TEST(presence_batch_test, quiet_streams_are_forgotten_after_an_interval) {
  presence_batcher b(k_interval);
  b.add("chat:a", "e1", true, entry("c1"));
  ASSERT_EQ(b.take(k_start).size(), 1u);
  EXPECT_EQ(b.size(), 1u);
  EXPECT_TRUE(b.take(k_start + 500).empty());
  EXPECT_EQ(b.size(), 1u);
  EXPECT_TRUE(b.take(k_start + 1000).empty());
  EXPECT_EQ(b.size(), 0u);
}

// The state lives in pages of its own, mapped while any stream has state and
// unmapped once none has (presence_batch.hpp, "Memory"), so a burst of joins
// leaves no heap holes behind.
TEST(presence_batch_test, the_state_pages_are_unmapped_once_no_stream_has_state) {
  presence_batcher b(k_interval);
  // A burst: many channels, entries long enough to leave the small-string buffer.
  for (int i = 0; i < 2000; ++i) {
    b.add("pres:m" + std::to_string(i), "0123456789abcdef", true,
          entry("client-with-a-long-id-" + std::to_string(i)));
  }
  EXPECT_GT(b.mapped_bytes(), 0u);
  const auto due = b.take(k_start);
  ASSERT_EQ(due.size(), 2000u);
  // The batches are the caller's own copies: whole after the state goes.
  EXPECT_TRUE(b.take(k_start + 500).empty());
  EXPECT_GT(b.mapped_bytes(), 0u) << "state still held for the count interval";
  EXPECT_TRUE(b.take(k_start + 1000).empty());
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.mapped_bytes(), 0u);
  const auto first = std::find_if(due.begin(), due.end(),
                                  [](const presence_batcher::batch& x) { return x.channel == "pres:m7"; });
  ASSERT_NE(first, due.end());
  EXPECT_EQ(first->epoch, "0123456789abcdef");
  EXPECT_EQ(first->joins, entry("client-with-a-long-id-7"));
  // It works the same after a release.
  b.add("chat:a", "e1", true, entry("c1"));
  ASSERT_EQ(b.take(k_start + 2000).size(), 1u);
  EXPECT_TRUE(b.note_push("chat:a", "e1", false, 1, true));
}

TEST(presence_batch_test, page_resource_maps_whole_pages_and_unmaps_them) {
  presence_batcher::page_resource pages;
  std::pmr::memory_resource& r = pages;
  void* a = r.allocate(100, 16);
  void* big = r.allocate(1 << 20, 64);
  EXPECT_GE(pages.mapped_bytes(), std::size_t{1} << 20);
  std::memset(a, 1, 100);
  std::memset(big, 2, 1 << 20);
  r.deallocate(a, 100, 16);
  EXPECT_GE(pages.mapped_bytes(), std::size_t{1} << 20);
  r.deallocate(big, 1 << 20, 64);
  EXPECT_EQ(pages.mapped_bytes(), 0u);
}

}  // namespace
}  // namespace switchboard::realtime::detail
