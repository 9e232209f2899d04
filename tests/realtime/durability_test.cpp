// durability_test.cpp — the memory broker across restarts and crashes (a
// broker destroyed without stop() is a kill -9: nothing more is written),
// with a fake clock and a chosen boot id: an epoch is never reused for other
// data, the journal brings back every acknowledged publication, a torn tail
// is cut, compaction keeps the journal bounded; and the global bounds
// (max_channels, history_memory) with their counters.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "memory_broker.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {
namespace {

struct sink final : broker_events {
  std::vector<std::uint64_t> offsets;
  void on_publication(std::string_view, std::string_view, std::uint64_t offset,
                      std::string_view) override {
    offsets.push_back(offset);
  }
  void on_presence(std::string_view, std::string_view, bool, std::string_view) override {}
};

class durability_test : public ::testing::Test {
 protected:
  durability_test() {
    config.namespaces["chat"] = namespace_options{100, 0, true, publish_policy::any};
    config.namespaces["bare"] = namespace_options{0, 0, false, publish_policy::any};
    dir = std::filesystem::temp_directory_path() /
          ("sb_durability_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    snapshot = (dir / "state.json").string();
    journal = (dir / "state.journal").string();
  }
  ~durability_test() override { std::filesystem::remove_all(dir); }

  std::unique_ptr<memory_broker> make(bool with_journal, fsync_policy fsync = fsync_policy::always,
                                      std::string boot = "boot-1", std::string* error = nullptr) {
    memory_broker_options o;
    o.snapshot_file = snapshot;
    if (with_journal) o.journal_file = journal;
    o.journal_fsync = fsync;
    o.boot_id = std::move(boot);
    o.wall_clock = [this] { return now; };
    o.log = [this](log_level, std::string_view m) { logs.emplace_back(m); };
    auto b = std::make_unique<memory_broker>(config, std::move(o));
    const std::string e = b->start(events);
    if (error) {
      *error = e;
    } else {
      EXPECT_EQ(e, "");
    }
    return b;
  }

  const namespace_options& ns(std::string_view channel) {
    return config.namespaces.at(std::string(channel.substr(0, channel.find(':'))));
  }

  publish_result publish(broker& b, std::string_view channel, const std::string& data) {
    publish_result out;
    b.publish(channel, ns(channel), "\"data\":" + data,
              [&](publish_result r) { out = std::move(r); });
    return out;
  }

  read_result read(broker& b, std::string_view channel, std::optional<stream_position> since) {
    read_request rq;
    rq.since = std::move(since);
    read_result out;
    b.read(channel, ns(channel), std::move(rq), [&](read_result r) { out = std::move(r); });
    return out;
  }

  bool logged(std::string_view part) const {
    for (const auto& l : logs) {
      if (l.find(part) != std::string::npos) return true;
    }
    return false;
  }

  realtime_config config;
  std::filesystem::path dir;
  std::string snapshot, journal;
  sink events;
  std::vector<std::string> logs;
  std::int64_t now = 1'000'000;
};

std::string data_list(std::uint64_t from, std::uint64_t to) {
  std::string out;
  for (std::uint64_t i = from; i <= to; ++i) {
    if (i != from) out.push_back(',');
    out += "{\"offset\":" + std::to_string(i) + ",\"data\":" + std::to_string(i) + "}";
  }
  return out;
}

// Finding 1 of issue 14: a snapshot of an earlier clean shutdown must not
// bring back the epoch after a crash that lost later publications.
TEST_F(durability_test, a_crash_after_a_clean_snapshot_starts_new_epochs) {
  std::string epoch;
  {
    auto b = make(false);
    for (int i = 1; i <= 5; ++i) epoch = publish(*b, "chat:a", std::to_string(i)).epoch;
    b->stop();  // clean: the snapshot holds 1..5
  }
  {
    auto b = make(false);
    EXPECT_EQ(read(*b, "chat:a", stream_position{epoch, 5}).recovered, true) << "clean: same epoch";
    for (int i = 6; i <= 15; ++i) EXPECT_EQ(publish(*b, "chat:a", std::to_string(i)).epoch, epoch);
    // kill -9: the broker goes without stop().
  }
  auto b = make(false);
  const read_result r = read(*b, "chat:a", stream_position{epoch, 15});
  EXPECT_NE(r.epoch, epoch);
  EXPECT_EQ(r.recovered, false);
  EXPECT_EQ(r.reason, "epoch changed");
  EXPECT_EQ(read(*b, "chat:a", stream_position{epoch, 5}).recovered, false);
  EXPECT_TRUE(logged("did not shut down cleanly"));
  // The history that was saved is still there, under the new epoch.
  EXPECT_EQ(read(*b, "chat:a", std::nullopt).publications, data_list(1, 5));
}

TEST_F(durability_test, a_crash_while_saving_leaves_a_file_that_proves_nothing) {
  std::string epoch;
  {
    auto b = make(false);
    epoch = publish(*b, "chat:a", "1").epoch;
    // A shutdown that died before its rename leaves PATH.tmp and the start's file.
    std::ofstream(snapshot + ".tmp") << "{\"snapshot\":{\"id\":\"x\",\"clean\":true}}\n{\"chan";
  }
  auto b = make(false);
  EXPECT_NE(read(*b, "chat:a", std::nullopt).epoch, epoch);
}

TEST_F(durability_test, journal_always_keeps_every_acknowledged_publication_and_the_epoch) {
  std::string epoch;
  {
    auto b = make(true, fsync_policy::always, "boot-1");
    for (int i = 1; i <= 20; ++i) epoch = publish(*b, "chat:a", std::to_string(i)).epoch;
    for (int i = 1; i <= 3; ++i) publish(*b, "bare:x", std::to_string(i));
  }  // kill -9
  // Even after a machine restart: every record was fsynced before it was acknowledged.
  auto b = make(true, fsync_policy::always, "boot-2");
  const read_result r = read(*b, "chat:a", stream_position{epoch, 10});
  EXPECT_EQ(r.epoch, epoch);
  EXPECT_EQ(r.recovered, true);
  EXPECT_EQ(r.publications, data_list(11, 20));
  EXPECT_EQ(publish(*b, "chat:a", "21").offset, 21u) << "offsets continue, never reused";
  EXPECT_TRUE(logged("20 publications replayed") || logged("23 publications replayed"));
}

TEST_F(durability_test, journal_everysec_keeps_epochs_only_on_the_same_boot) {
  std::string epoch;
  {
    auto b = make(true, fsync_policy::everysec, "boot-1");
    for (int i = 1; i <= 4; ++i) epoch = publish(*b, "chat:a", std::to_string(i)).epoch;
  }
  {
    // The process died, the machine did not: the page cache held every record.
    auto b = make(true, fsync_policy::everysec, "boot-1");
    const read_result r = read(*b, "chat:a", stream_position{epoch, 2});
    EXPECT_EQ(r.recovered, true);
    EXPECT_EQ(r.publications, data_list(3, 4));
    publish(*b, "chat:a", "5");
  }
  // The machine restarted: records not yet fsynced may be gone.
  auto b = make(true, fsync_policy::everysec, "boot-2");
  const read_result r = read(*b, "chat:a", stream_position{epoch, 5});
  EXPECT_EQ(r.recovered, false);
  EXPECT_EQ(r.reason, "epoch changed");
  EXPECT_EQ(read(*b, "chat:a", std::nullopt).publications, data_list(1, 5));
}

TEST_F(durability_test, a_torn_tail_is_cut_back_to_the_last_whole_record) {
  std::string epoch;
  {
    auto b = make(true);
    for (int i = 1; i <= 3; ++i) epoch = publish(*b, "chat:a", std::to_string(i)).epoch;
  }
  std::filesystem::resize_file(journal, std::filesystem::file_size(journal) - 3);
  auto b = make(true);
  EXPECT_TRUE(logged("incomplete")) << "the cut is logged";
  const read_result r = read(*b, "chat:a", stream_position{epoch, 0});
  EXPECT_EQ(r.epoch, epoch);
  EXPECT_EQ(r.recovered, true);
  EXPECT_EQ(r.publications, data_list(1, 2));
  EXPECT_EQ(publish(*b, "chat:a", "3").offset, 3u);
}

TEST_F(durability_test, damage_inside_the_journal_is_kept_aside_and_starts_new_epochs) {
  std::string epoch;
  {
    auto b = make(true);
    for (int i = 1; i <= 3; ++i) epoch = publish(*b, "chat:a", std::to_string(i)).epoch;
  }
  {
    std::fstream f(journal, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(journal) / 2));
    f.put('\xff');
  }
  auto b = make(true);
  EXPECT_TRUE(std::filesystem::exists(journal + ".damaged"));
  EXPECT_TRUE(logged("damaged"));
  EXPECT_NE(read(*b, "chat:a", std::nullopt).epoch, epoch);
}

TEST_F(durability_test, a_clean_stop_then_a_restart_needs_no_journal) {
  std::string epoch;
  {
    auto b = make(true, fsync_policy::no);
    for (int i = 1; i <= 3; ++i) epoch = publish(*b, "chat:a", std::to_string(i)).epoch;
    b->stop();
  }
  auto b = make(true, fsync_policy::no, "another-boot");
  const read_result r = read(*b, "chat:a", stream_position{epoch, 1});
  EXPECT_EQ(r.recovered, true);
  EXPECT_EQ(r.publications, data_list(2, 3));
}

TEST_F(durability_test, compaction_keeps_the_journal_bounded_and_loses_nothing) {
  config.namespaces["chat"].history_size = 2;
  const std::string big = "\"" + std::string(100'000, 'x') + "\"";
  std::string epoch;
  std::uintmax_t largest = 0;
  {
    auto b = make(true, fsync_policy::no);
    for (int i = 1; i <= 300; ++i) {  // 30 MB through a channel that keeps 200 KB
      epoch = publish(*b, "chat:a", big).epoch;
      largest = std::max(largest, std::filesystem::file_size(journal));
    }
    publish(*b, "chat:a", "301");
  }
  EXPECT_LT(largest, 10u << 20) << "rewritten past its floor (8 MiB), not grown to 30 MB";
  auto b = make(true, fsync_policy::no);
  const read_result r = read(*b, "chat:a", stream_position{epoch, 299});
  EXPECT_EQ(r.epoch, epoch);
  EXPECT_EQ(r.recovered, true);
  EXPECT_EQ(r.publications, "{\"offset\":300,\"data\":" + big + "},{\"offset\":301,\"data\":301}");
}

TEST_F(durability_test, state_files_are_private) {
  auto b = make(true);
  publish(*b, "chat:a", "1");
  b->stop();
  struct stat st {};
  ASSERT_EQ(::stat(snapshot.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(journal.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(durability_test, a_file_that_is_not_a_journal_is_refused_not_overwritten) {
  std::ofstream(journal) << "my notes\n";
  std::string error;
  auto b = make(true, fsync_policy::always, "boot-1", &error);
  EXPECT_NE(error.find("not a switchboard journal"), std::string::npos) << error;
  std::ifstream in(journal);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "my notes");
}

TEST_F(durability_test, max_channels_refuses_new_channels_with_503) {
  config.max_channels = 2;
  auto b = make(false);
  EXPECT_FALSE(publish(*b, "chat:a", "1").error);
  EXPECT_FALSE(publish(*b, "chat:b", "1").error);
  const publish_result refused = publish(*b, "chat:c", "1");
  ASSERT_TRUE(refused.error);
  EXPECT_EQ(refused.error->code, errors::channel_limit.code);
  EXPECT_EQ(refused.error->code, 503);
  // A subscriber of a refused channel is refused at its read.
  b->subscribe_node("chat:c", ns("chat:c"));
  EXPECT_TRUE(read(*b, "chat:c", std::nullopt).error);
  b->unsubscribe_node("chat:c");
  EXPECT_FALSE(publish(*b, "chat:a", "2").error) << "existing channels go on";
  EXPECT_EQ(b->stats().channels_refused, 2u);
  EXPECT_EQ(b->channel_count(), 2u);
}

TEST_F(durability_test, history_memory_evicts_the_oldest_publications_of_the_server) {
  config.history_memory = 10'000;
  auto b = make(false);
  const std::string data = "\"" + std::string(900, 'y') + "\"";
  std::string epoch_a = publish(*b, "chat:a", data).epoch;
  for (int i = 0; i < 30; ++i) {
    publish(*b, "chat:b" + std::to_string(i % 3), data);
    EXPECT_LE(b->stats().history_bytes, config.history_memory);
  }
  EXPECT_GT(b->stats().history_evictions, 0u);
  EXPECT_GT(b->stats().history_bytes, config.history_memory / 2);
  // chat:a's only publication was the oldest: gone, and its channel with it.
  const read_result r = read(*b, "chat:a", stream_position{epoch_a, 0});
  EXPECT_EQ(r.recovered, false);
  // The newest publications are kept.
  const read_result last = read(*b, "chat:b2", std::nullopt);
  EXPECT_NE(last.publications.find("\"offset\":10,"), std::string::npos) << last.publications;
}

TEST_F(durability_test, evicted_range_is_too_far_behind_while_the_channel_lives) {
  config.history_memory = 5'000;
  auto b = make(false);
  b->subscribe_node("chat:a", ns("chat:a"));  // the channel stays while subscribed
  const std::string data = "\"" + std::string(900, 'z') + "\"";
  const std::string epoch = publish(*b, "chat:a", data).epoch;
  for (int i = 0; i < 10; ++i) publish(*b, "chat:a", data);
  const read_result r = read(*b, "chat:a", stream_position{epoch, 1});
  EXPECT_EQ(r.epoch, epoch);
  EXPECT_EQ(r.recovered, false);
  EXPECT_EQ(r.reason, "too far behind");
}

}  // namespace
}  // namespace switchboard::realtime::detail
