// memory_broker_test.cpp — the embedded broker on its own, with a fake clock
// and a recording event sink: offsets and epochs, recovery and its three
// refusals, history size and TTL (no sleeping), when a channel's state goes,
// presence events and the snapshot round trip.
#include "memory_broker.hpp"
#include "wire.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

namespace switchboard::realtime::detail {
namespace {

struct recorder final : broker_events {
  struct event {
    std::string channel, epoch;
    std::uint64_t offset;  // 0 for presence
    std::string body;      // tail, or "+"/"-" and the entry
  };
  std::vector<event> events;
  void on_publication(std::string_view channel, std::string_view epoch, std::uint64_t offset,
                      std::string_view tail) override {
    events.push_back({std::string(channel), std::string(epoch), offset, std::string(tail)});
  }
  void on_presence(std::string_view channel, std::string_view epoch, bool join,
                   std::string_view entry) override {
    std::string body(1, join ? '+' : '-');
    body.append(entry);
    events.push_back({std::string(channel), std::string(epoch), 0, std::move(body)});
  }
  std::vector<std::string> controls;
  void on_control(std::string_view message) override { controls.emplace_back(message); }
};

class memory_broker_test : public ::testing::Test {
 protected:
  memory_broker_test() {
    config.namespaces["chat"] = namespace_options{3, 10, true, publish_policy::any};
    ns = &config.namespaces.at("chat");
  }

  std::unique_ptr<memory_broker> make(std::string snapshot = {}) {
    memory_broker_options o;
    o.snapshot_file = std::move(snapshot);
    o.wall_clock = [this] { return now; };
    auto b = std::make_unique<memory_broker>(config, std::move(o));
    EXPECT_EQ(b->start(events), "");
    return b;
  }

  publish_result publish(broker& b, std::string_view channel, std::string data) {
    publish_result out;
    b.publish(channel, *ns, "\"data\":" + data, [&](publish_result r) { out = std::move(r); });
    return out;
  }

  read_result read(broker& b, std::string_view channel, read_request rq) {
    read_result out;
    b.read(channel, *ns, std::move(rq), [&](read_result r) { out = std::move(r); });
    return out;
  }

  realtime_config config;
  const namespace_options* ns = nullptr;
  recorder events;
  std::int64_t now = 1'000'000;
};

TEST_F(memory_broker_test, offsets_count_up_in_one_epoch_and_events_follow_them) {
  auto b = make();
  b->subscribe_node("chat:a", *ns);
  const auto first = publish(*b, "chat:a", "1");
  const auto second = publish(*b, "chat:a", "2");
  ASSERT_FALSE(first.error);
  EXPECT_EQ(first.offset, 1u);
  EXPECT_EQ(second.offset, 2u);
  EXPECT_EQ(first.epoch, second.epoch);
  EXPECT_EQ(first.epoch.size(), 16u);
  ASSERT_EQ(events.events.size(), 2u);
  EXPECT_EQ(events.events[1].offset, 2u);
  EXPECT_EQ(events.events[1].body, "\"data\":2");
  EXPECT_EQ(events.events[1].epoch, first.epoch);
}

TEST_F(memory_broker_test, recovery_is_exact_or_says_why_not) {
  auto b = make();
  b->subscribe_node("chat:a", *ns);
  std::string epoch;
  for (int i = 1; i <= 5; ++i) epoch = publish(*b, "chat:a", std::to_string(i)).epoch;
  // Kept: 3, 4, 5 (history_size 3).
  read_request rq;
  rq.since = stream_position{epoch, 3};
  auto r = read(*b, "chat:a", rq);
  EXPECT_EQ(r.offset, 5u);
  ASSERT_TRUE(r.recovered);
  EXPECT_TRUE(*r.recovered);
  EXPECT_EQ(r.publications, R"({"offset":4,"data":4},{"offset":5,"data":5})");

  rq.since = stream_position{epoch, 1};  // 2 is gone
  r = read(*b, "chat:a", rq);
  EXPECT_FALSE(*r.recovered);
  EXPECT_EQ(r.reason, "too far behind");
  EXPECT_EQ(r.publications, "");

  rq.since = stream_position{epoch, 6};
  EXPECT_EQ(read(*b, "chat:a", rq).reason, "offset ahead of the stream");
  rq.since = stream_position{"other", 5};
  EXPECT_EQ(read(*b, "chat:a", rq).reason, "epoch changed");

  rq.latest_when_lost = true;  // history: the latest instead
  rq.limit = 2;
  EXPECT_EQ(read(*b, "chat:a", rq).publications, R"({"offset":4,"data":4},{"offset":5,"data":5})");
}

TEST_F(memory_broker_test, history_expires_by_the_clock_without_sleeping) {
  auto b = make();
  b->subscribe_node("chat:a", *ns);
  const std::string epoch = publish(*b, "chat:a", "1").epoch;
  now += 6'000;
  publish(*b, "chat:a", "2");
  now += 5'000;  // 1 is 11 s old (TTL 10), 2 is 5 s old
  b->tick();
  read_request rq;
  rq.since = stream_position{epoch, 0};
  const auto r = read(*b, "chat:a", rq);
  EXPECT_FALSE(*r.recovered);
  EXPECT_EQ(r.reason, "too far behind");
  EXPECT_EQ(read(*b, "chat:a", {}).publications, R"({"offset":2,"data":2})");
}

TEST_F(memory_broker_test, a_channel_without_subscribers_history_or_presence_is_forgotten) {
  auto b = make();
  b->subscribe_node("chat:a", *ns);
  const std::string epoch = publish(*b, "chat:a", "1").epoch;
  b->unsubscribe_node("chat:a");
  EXPECT_EQ(b->channel_count(), 1u);  // history holds it
  now += 11'000;
  b->tick();
  EXPECT_EQ(b->channel_count(), 0u);
  // A new stream: new epoch, offsets from 1, and recovery from the old epoch is refused.
  const auto again = publish(*b, "chat:a", "2");
  EXPECT_NE(again.epoch, epoch);
  EXPECT_EQ(again.offset, 1u);
}

TEST_F(memory_broker_test, presence_joins_lists_and_leaves) {
  auto b = make();
  b->subscribe_node("chat:a", *ns);
  b->presence_add("chat:a", std::make_shared<const presence_entry>(
                                presence_entry{"c1", R"({"client":"c1"})"}));
  b->presence_add("chat:a", std::make_shared<const presence_entry>(
                                presence_entry{"c2", R"({"client":"c2"})"}));
  std::string listed;
  b->presence("chat:a", {}, [&](broker::presence_result r) { listed = r.entries; });
  EXPECT_EQ(listed, R"({"client":"c1"},{"client":"c2"})");  // in client-id order
  b->presence_remove("chat:a", "c1");
  b->presence_remove("chat:a", "nobody");  // no event for a client that isn't there
  ASSERT_EQ(events.events.size(), 3u);
  EXPECT_EQ(events.events[0].body, R"(+{"client":"c1"})");
  EXPECT_EQ(events.events[2].body, R"(-{"client":"c1"})");
}

// {"client":"ID"} (appended: GCC 12 warns falsely on "lit" + std::string&&).
std::string entry_of(std::string_view id) {
  std::string e = R"({"client":")";
  e.append(id);
  e.append("\"}");
  return e;
}

broker::presence_result presence_of(broker& b, std::string_view channel, std::string cursor,
                                    std::size_t limit, std::size_t max_members = SIZE_MAX) {
  broker::presence_result out;
  broker::presence_request rq;
  rq.cursor = std::move(cursor);
  rq.limit = limit;
  rq.max_members = max_members;
  b.presence(channel, std::move(rq), [&](broker::presence_result r) { out = std::move(r); });
  return out;
}

TEST_F(memory_broker_test, presence_pages_in_client_order_from_a_cursor) {
  auto b = make();
  b->subscribe_node("chat:a", *ns);
  for (const char* id : {"c5", "c1", "c4", "c2", "c3"}) {
    b->presence_add("chat:a",
                    std::make_shared<const presence_entry>(presence_entry{id, entry_of(id)}));
  }
  auto page = presence_of(*b, "chat:a", "", 2);
  EXPECT_EQ(page.count, 5u);
  EXPECT_TRUE(page.listed);
  EXPECT_EQ(page.entries, R"({"client":"c1"},{"client":"c2"})");
  EXPECT_EQ(page.next, "c2");
  // A member that leaves or joins before the cursor does not shift the next page.
  b->presence_remove("chat:a", "c1");
  page = presence_of(*b, "chat:a", page.next, 2);
  EXPECT_EQ(page.entries, R"({"client":"c3"},{"client":"c4"})");
  EXPECT_EQ(page.next, "c4");
  page = presence_of(*b, "chat:a", page.next, 2);
  EXPECT_EQ(page.entries, R"({"client":"c5"})");
  EXPECT_EQ(page.next, "") << "the last page has no cursor";
  // Exactly a full last page: no cursor either.
  page = presence_of(*b, "chat:a", "c3", 2);
  EXPECT_EQ(page.entries, R"({"client":"c4"},{"client":"c5"})");
  EXPECT_EQ(page.next, "");
  // A cursor past the end: an empty page.
  page = presence_of(*b, "chat:a", "zz", 2);
  EXPECT_TRUE(page.listed);
  EXPECT_EQ(page.entries, "");
}

TEST_F(memory_broker_test, presence_over_max_members_reports_the_count_only) {
  auto b = make();
  b->subscribe_node("chat:a", *ns);
  for (int i = 0; i < 4; ++i) {
    const std::string id(1, static_cast<char>('a' + i));
    b->presence_add("chat:a",
                    std::make_shared<const presence_entry>(presence_entry{id, entry_of(id)}));
  }
  auto r = presence_of(*b, "chat:a", "", 100, 3);
  EXPECT_EQ(r.count, 4u);
  EXPECT_FALSE(r.listed);
  EXPECT_EQ(r.entries, "");
  r = presence_of(*b, "chat:a", "", 100, 4);  // at the maximum: still listed
  EXPECT_TRUE(r.listed);
  EXPECT_EQ(r.count, 4u);
  r = presence_of(*b, "chat:a", "", 0);  // limit 0: the count alone
  EXPECT_EQ(r.count, 4u);
  EXPECT_FALSE(r.listed);
  r = presence_of(*b, "chat:nobody", "", 100);
  EXPECT_EQ(r.count, 0u);
  EXPECT_TRUE(r.listed);
  EXPECT_EQ(r.entries, "");
}

TEST_F(memory_broker_test, a_snapshot_keeps_epochs_offsets_and_history) {
  const auto path =
      (std::filesystem::temp_directory_path() / ("sb_mb_" + std::to_string(::getpid()))).string();
  std::string epoch;
  {
    auto b = make(path);
    b->subscribe_node("chat:a", *ns);
    for (int i = 1; i <= 4; ++i) epoch = publish(*b, "chat:a", std::to_string(i)).epoch;
    b->stop();
  }
  auto b = make(path);
  read_request rq;
  rq.since = stream_position{epoch, 2};
  const auto r = read(*b, "chat:a", rq);
  EXPECT_TRUE(*r.recovered);
  EXPECT_EQ(r.publications, R"({"offset":3,"data":3},{"offset":4,"data":4})");
  EXPECT_EQ(publish(*b, "chat:a", "5").offset, 5u);
  std::filesystem::remove(path);
}

// --- the server API (http_api_methods.cpp) -----------------------------------------

TEST_F(memory_broker_test, history_remove_drops_kept_publications_and_keeps_the_position) {
  auto b = make();
  b->subscribe_node("chat:r", *ns);  // state beside history: the stream stays
  for (int i = 0; i < 3; ++i) ASSERT_FALSE(publish(*b, "chat:r", std::to_string(i)).error);
  const std::string epoch = read(*b, "chat:r", {}).epoch;
  std::optional<failure> removed = make_failure(errors::bad_param);
  b->remove_history("chat:r", [&](std::optional<failure> f) { removed = std::move(f); });
  EXPECT_FALSE(removed);
  read_request latest;
  latest.latest_when_lost = true;
  const auto now_read = read(*b, "chat:r", latest);
  EXPECT_EQ(now_read.publications, "");
  EXPECT_EQ(now_read.epoch, epoch);
  EXPECT_EQ(now_read.offset, 3u);
  // A recovery from before the removal cannot be exact any more.
  read_request since;
  since.since = stream_position{epoch, 1};
  const auto recovery = read(*b, "chat:r", since);
  EXPECT_EQ(recovery.recovered, std::optional<bool>(false));
  EXPECT_EQ(recovery.reason, "too far behind");
  // The offsets go on.
  EXPECT_EQ(publish(*b, "chat:r", "9").offset, 4u);
  // A channel without state: nothing to remove, no error.
  removed = make_failure(errors::bad_param);
  b->remove_history("chat:none", [&](std::optional<failure> f) { removed = std::move(f); });
  EXPECT_FALSE(removed);
}

TEST_F(memory_broker_test, control_messages_reach_this_node_and_nodes_lists_it) {
  auto b = make();
  bool sent = false;
  b->send_control("{\"op\":\"disconnect\"}", [&](std::optional<failure> f) { sent = !f; });
  EXPECT_TRUE(sent);
  ASSERT_EQ(events.controls.size(), 1u);
  EXPECT_EQ(events.controls[0], "{\"op\":\"disconnect\"}");

  broker::nodes_result listed;
  b->nodes([&](broker::nodes_result r) { listed = std::move(r); });
  EXPECT_TRUE(listed.nodes.empty());  // nothing published yet
  b->publish_node("n1", "{\"node\":\"n1\",\"connections\":1}");
  b->publish_node("n1", "{\"node\":\"n1\",\"connections\":2}");
  b->nodes([&](broker::nodes_result r) { listed = std::move(r); });
  ASSERT_FALSE(listed.error);
  ASSERT_EQ(listed.nodes.size(), 1u);  // one node: the latest only
  EXPECT_EQ(listed.nodes[0], "{\"node\":\"n1\",\"connections\":2}");
}

}  // namespace
}  // namespace switchboard::realtime::detail
