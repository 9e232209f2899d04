// journal_test.cpp — the journal's format on its own: records round-trip, a
// file cut at every byte reads back as the whole records before the cut
// ("torn"), a garbled last record is torn too, a garbled record followed by
// good ones is "corrupt", and what is not a journal is refused.
#include "journal.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace switchboard::realtime::detail {
namespace {

struct owned_record {
  std::uint64_t offset;
  std::int64_t time_ms;
  bool kept;
  std::string channel, epoch, tail;
  bool operator==(const owned_record&) const = default;
};

std::string journal_of(const std::vector<owned_record>& records, std::vector<std::size_t>* ends) {
  std::string out(k_journal_magic);
  encode_journal_header(out, journal_header{1, "base-id", "boot-id"});
  if (ends) ends->push_back(out.size());
  for (const auto& r : records) {
    encode_journal_record(out, {r.offset, r.time_ms, r.kept, r.channel, r.epoch, r.tail});
    if (ends) ends->push_back(out.size());
  }
  return out;
}

journal_scan scan(std::string_view bytes, std::vector<owned_record>& got) {
  return scan_journal(bytes, {}, [&](const journal_record& r) {
    got.push_back({r.offset, r.time_ms, r.kept, std::string(r.channel), std::string(r.epoch),
                   std::string(r.tail)});
  });
}

const std::vector<owned_record> k_records = {
    {1, 1000, true, "chat:a", "e1", R"("data":{"x":1},"client":"c1")"},
    {2, -5, false, "bare", "e2", ""},
    {3, 1002, true, "chat:a", "e1", R"("data":"three")"},
};

TEST(journal, records_round_trip_with_the_header) {
  const std::string bytes = journal_of(k_records, nullptr);
  std::vector<owned_record> got;
  const journal_scan s = scan(bytes, got);
  EXPECT_EQ(s.error, "");
  EXPECT_EQ(s.header.fsync, 1);
  EXPECT_EQ(s.header.base, "base-id");
  EXPECT_EQ(s.header.boot, "boot-id");
  EXPECT_EQ(got, k_records);
  EXPECT_EQ(s.records, 3u);
  EXPECT_EQ(s.valid_bytes, bytes.size());
  EXPECT_FALSE(s.torn);
  EXPECT_FALSE(s.corrupt);
}

TEST(journal, a_file_cut_anywhere_keeps_the_whole_records_before_the_cut) {
  std::vector<std::size_t> ends;
  const std::string bytes = journal_of(k_records, &ends);
  for (std::size_t cut = ends.front(); cut < bytes.size(); ++cut) {
    std::vector<owned_record> got;
    const journal_scan s = scan(std::string_view(bytes).substr(0, cut), got);
    std::size_t whole = 0;
    while (whole + 1 < ends.size() && ends[whole + 1] <= cut) ++whole;
    ASSERT_EQ(s.error, "") << cut;
    EXPECT_EQ(got.size(), whole) << cut;
    EXPECT_EQ(s.valid_bytes, ends[whole]) << cut;
    EXPECT_EQ(s.torn, cut != ends[whole]) << cut;
    EXPECT_FALSE(s.corrupt) << cut;
  }
}

TEST(journal, a_garbled_last_record_is_torn_a_garbled_middle_one_is_corrupt) {
  std::vector<std::size_t> ends;
  std::string last = journal_of(k_records, &ends);
  last[last.size() - 2] ^= 0x20;
  std::vector<owned_record> got;
  journal_scan s = scan(last, got);
  EXPECT_TRUE(s.torn);
  EXPECT_FALSE(s.corrupt);
  EXPECT_EQ(got.size(), 2u);
  EXPECT_EQ(s.bad_reason, "checksum mismatch");

  std::string middle = journal_of(k_records, nullptr);
  middle[ends[1] + 12] ^= 0x01;  // inside the second record
  got.clear();
  s = scan(middle, got);
  EXPECT_TRUE(s.corrupt);
  EXPECT_FALSE(s.torn);
  EXPECT_EQ(got.size(), 1u);
  EXPECT_EQ(s.valid_bytes, ends[1]);

  // A length that no record can have, with bytes after it: damage, not a cut.
  std::string huge = journal_of(k_records, nullptr);
  huge[ends[1] + 3] = '\x7f';
  got.clear();
  s = scan(huge, got);
  EXPECT_TRUE(s.corrupt);
  EXPECT_EQ(s.bad_reason, "record length out of range");
}

TEST(journal, what_is_not_a_journal_is_refused) {
  std::vector<owned_record> got;
  EXPECT_NE(scan("", got).error, "");
  EXPECT_NE(scan("{\"snapshot\":{}}\n", got).error, "");
  std::string no_header(k_journal_magic);
  EXPECT_NE(scan(no_header, got).error, "");
  std::string bad_header = journal_of({}, nullptr);
  bad_header[bad_header.size() - 1] ^= 1;
  EXPECT_NE(scan(bad_header, got).error, "");
  EXPECT_TRUE(got.empty());
}

TEST(journal, accept_can_stop_before_the_records) {
  const std::string bytes = journal_of(k_records, nullptr);
  std::size_t seen = 0;
  const journal_scan s = scan_journal(
      bytes, [](const journal_header& h) { return h.base == "another"; },
      [&](const journal_record&) { ++seen; });
  EXPECT_EQ(s.error, "");
  EXPECT_EQ(seen, 0u);
}

}  // namespace
}  // namespace switchboard::realtime::detail
