// Tests of event_id.hpp (transport query strings, /sse ids, sequence numbers)
// and command_batch.hpp (the POST /rt/session/<id>/send body).
#include "event_id.hpp"

#include <gtest/gtest.h>

#include "command_batch.hpp"
#include "sse_wire.hpp"

namespace switchboard::realtime::detail {
namespace {

TEST(transport_query, channels_in_order_without_duplicates) {
  transport_query q;
  EXPECT_EQ(parse_transport_query("channel=b&channel=chat%3Alobby&channel=b&_=123", 10, q), "");
  ASSERT_EQ(q.channels.size(), 2u);
  EXPECT_EQ(q.channels[0], "b");
  EXPECT_EQ(q.channels[1], "chat:lobby");
  EXPECT_FALSE(q.last_event_id);
  EXPECT_FALSE(q.after);
}

TEST(transport_query, every_refusal_has_its_reason) {
  struct row {
    std::string_view query;
    std::string_view error;
  };
  const row rows[] = {
      {"channel=a%2", "bad %-escape in the query string"},
      {"channel=a%zz", "bad %-escape in the query string"},
      {"channel=", "invalid channel name: "},
      {"channel=a%20b", "invalid channel name: a b"},
      {"channel=a&colour=red", "unknown query parameter: colour"},
      {"channel=a&channel=b&channel=c", "too many channels (limits.max_subscriptions)"},
      {"last_event_id=1&last_event_id=2", "last_event_id given twice"},
      {"after=1&after=2", "after given twice"},
      {"after=-1", "after must be a sequence number"},
      {"after=18446744073709551616", "after must be a sequence number"},
  };
  for (const row& r : rows) {
    transport_query q;
    EXPECT_EQ(parse_transport_query(r.query, 2, q), r.error) << r.query;
  }
}

TEST(transport_query, token_and_empty_pairs_are_skipped) {
  transport_query q;
  EXPECT_EQ(parse_transport_query("&token=abc&&after=18446744073709551615&last_event_id=x%2Cy", 4, q),
            "");
  EXPECT_EQ(q.after, UINT64_MAX);
  EXPECT_EQ(q.last_event_id, "x,y");
}

TEST(sse_id, round_trip) {
  const std::vector<channel_position> positions = {
      stream_position{"9f1c2e7a", 20}, std::nullopt, stream_position{"e_-Z", 0}};
  std::string id;
  append_sse_id(id, positions);
  EXPECT_EQ(id, "9f1c2e7a:20,-,e_-Z:0");
  std::vector<channel_position> back;
  EXPECT_EQ(parse_sse_id(id, 3, back), "");
  EXPECT_EQ(back, positions);
}

TEST(sse_id, refusals) {
  std::vector<channel_position> out;
  EXPECT_EQ(parse_sse_id("a:1", 2, out), "last event id does not match the stream's channels");
  EXPECT_EQ(parse_sse_id("a:1,b:2,c:3", 2, out),
            "last event id does not match the stream's channels");
  EXPECT_EQ(parse_sse_id("", 1, out), "malformed last event id");
  EXPECT_EQ(parse_sse_id("a1", 1, out), "malformed last event id");
  EXPECT_EQ(parse_sse_id(":1", 1, out), "malformed epoch in the last event id");
  EXPECT_EQ(parse_sse_id("a.b:1", 1, out), "malformed epoch in the last event id");
  EXPECT_EQ(parse_sse_id(std::string(65, 'a') + ":1", 1, out),
            "malformed epoch in the last event id");
  EXPECT_EQ(parse_sse_id("a:", 1, out), "malformed offset in the last event id");
  EXPECT_EQ(parse_sse_id("a:+1", 1, out), "malformed offset in the last event id");
  EXPECT_EQ(parse_sse_id("a:99999999999999999999", 1, out),
            "malformed offset in the last event id");
  EXPECT_EQ(parse_sse_id("a:1,", 2, out), "malformed last event id");
}

TEST(seq, digits_only_and_no_wrap) {
  EXPECT_EQ(parse_seq("0"), 0u);
  EXPECT_EQ(parse_seq("42"), 42u);
  EXPECT_EQ(parse_seq("18446744073709551615"), UINT64_MAX);
  EXPECT_FALSE(parse_seq("18446744073709551616"));
  EXPECT_FALSE(parse_seq(""));
  EXPECT_FALSE(parse_seq(" 1"));
  EXPECT_FALSE(parse_seq("0x1"));
}

TEST(command_batch, lines_blank_lines_crlf_and_size) {
  std::vector<batch_line> lines;
  const std::string_view body = "{\"cmd\":\"ping\"}\r\n\n  \t\r\n{\"id\":2}\n0123456789\n";
  EXPECT_EQ(split_command_batch(body, 9, lines), 3u);
  EXPECT_EQ(lines[0].text, "{\"cmd\":\"ping\"}");
  EXPECT_TRUE(lines[0].too_large);
  EXPECT_EQ(lines[1].text, "{\"id\":2}");
  EXPECT_FALSE(lines[1].too_large);
  EXPECT_EQ(lines[2].text, "0123456789");
  EXPECT_TRUE(lines[2].too_large);
  EXPECT_EQ(split_command_batch("", 10, lines), 0u);
  EXPECT_EQ(split_command_batch("\n\n\r\n", 10, lines), 0u);
  EXPECT_EQ(split_command_batch("x", 10, lines), 1u);
  EXPECT_EQ(lines[0].text, "x");
}

TEST(sse_wire, an_event_is_its_fields_then_a_blank_line) {
  std::string out = "x";
  append_sse_event(out, "publication", "7", R"({"a":1})");
  EXPECT_EQ(out, "xevent: publication\nid: 7\ndata: {\"a\":1}\n\n");
  out.clear();
  append_sse_event(out, {}, {}, "");
  EXPECT_EQ(out, "data: \n\n");
}

TEST(sse_wire, every_line_break_starts_a_data_line) {
  std::string out;
  append_sse_event(out, "message", {}, "one\ntwo\rthree\r\nfour\n");
  EXPECT_EQ(out,
            "event: message\ndata: one\ndata: two\ndata: three\ndata: \ndata: four\n"
            "data: \n\n");
  // Long runs between breaks are copied whole.
  const std::string big(5000, 'z');
  out.clear();
  append_sse_event(out, {}, {}, big + "\n" + big);
  EXPECT_EQ(out, "data: " + big + "\ndata: " + big + "\n\n");
}

}  // namespace
}  // namespace switchboard::realtime::detail
