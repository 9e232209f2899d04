// Tests for the compact publication envelope (src/realtime/wire.hpp,
// wire_compact.cpp; docs/protocol.md "Compact pushes"): the exact bytes, the
// rewrite of every shape publication_tail() writes, the refusals, and that a
// compact push or list carries what the full one does.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <string_view>
#include <vector>

#include "wire.hpp"

namespace switchboard::realtime::detail {
namespace {

TEST(wire_compact, push_has_short_keys_and_no_epoch) {
  std::string out = "left over";
  compact_publication_push(
      out, "chat:lobby", 19,
      publication_tail("{\"text\":\"hello again\"}", "c4f2a9d01b7e3c55", "alice"));
  EXPECT_EQ(out,
            "{\"m\":\"chat:lobby\",\"o\":19,\"d\":{\"text\":\"hello again\"},"
            "\"c\":\"c4f2a9d01b7e3c55\",\"u\":\"alice\"}");
  compact_publication_push(out, "news", 1, publication_tail("7", "", ""));  // HTTP API
  EXPECT_EQ(out, "{\"m\":\"news\",\"o\":1,\"d\":7}");
  compact_publication_push(out, "a", 2, publication_tail("null", "0d9e1f2a3b4c5d6e", ""));
  EXPECT_EQ(out, "{\"m\":\"a\",\"o\":2,\"d\":null,\"c\":\"0d9e1f2a3b4c5d6e\"}");
}

TEST(wire_compact, push_is_shorter_than_the_full_one_by_the_envelope_only) {
  const std::string tail =
      publication_tail("{\"text\":\"hello again\"}", "c4f2a9d01b7e3c55", "alice");
  std::string full;
  std::string compact;
  publication_push(full, "chat:lobby", "9f1c2e7a5b3d0e14", 19, tail);
  compact_publication_push(compact, "chat:lobby", 19, tail);
  // {"push":"message","channel": → {"m": (23), ,"epoch":"<16>" (27), and
  // offset, data, client, user → o, d, c, u (5 + 3 + 5 + 3).
  EXPECT_EQ(full.size() - compact.size(), 23u + 27u + 5u + 3u + 5u + 3u);
}

// Data values whose text contains what the scan looks for.
TEST(wire_compact, tail_keeps_any_data_value_intact) {
  const std::vector<std::string> values = {
      "{\"text\":\"hi\"}",
      "\"a string\"",
      "\"has ,\\\"client\\\":\\\"x\\\" inside\"",
      "{\"client\":\"not me\",\"user\":\"nor me\"}",
      "[1,[2,{\"a\":\"]}\"}],\"\\\\\"]",
      "-12.5e3",
      "true",
      "false",
      "null",
      "0",
      "{}",
      "[]",
      "\"\"",
      "\"\\u00e9\\n\"",
  };
  for (const std::string& v : values) {
    for (const auto& [client, user] :
         {std::pair{"", ""}, std::pair{"c1", ""}, std::pair{"c1", "u1"}}) {
      std::string out = "X";
      ASSERT_TRUE(append_compact_tail(out, publication_tail(v, client, user))) << v;
      std::string want = "X\"d\":" + v;
      if (*client) want += std::string(",\"c\":\"") + client + "\"";
      if (*user) want += std::string(",\"u\":\"") + user + "\"";
      EXPECT_EQ(out, want);
    }
  }
}

TEST(wire_compact, tail_of_another_shape_is_refused_and_nothing_appended) {
  const std::vector<std::string_view> bad = {
      "",
      "\"data\":",
      "\"dat\":1",
      "\"offset\":1,\"data\":1",
      "\"data\":{\"a\":1",
      "\"data\":[1,2",
      "\"data\":\"open",
      "\"data\":\"esc\\",
      "\"data\":1,\"client\":",
      "\"data\":1,\"client\":\"c",
      "\"data\":1,\"client\":c",
      "\"data\":1,\"user\":\"u\",\"client\":\"c\"",  // the order publication_tail() never writes
      "\"data\":1,\"other\":2",
      "\"data\":1}",
      "\"data\":{}}",
      "\"data\":1,",
  };
  for (const std::string_view t : bad) {
    std::string out = "kept";
    EXPECT_FALSE(append_compact_tail(out, t)) << t;
    EXPECT_EQ(out, "kept") << t;
  }
}

TEST(wire_compact, publication_lists_are_rewritten_entry_by_entry) {
  std::string list;
  append_publication(list, 13, publication_tail("{\"text\":\"hi\"}", "c4f2a9d01b7e3c55", "alice"));
  list.push_back(',');
  append_publication(list, 14, publication_tail("\"}],{\\\"offset\\\":1\"", "", ""));
  list.push_back(',');
  append_publication(list, 17, publication_tail("[]", "0d9e1f2a3b4c5d6e", ""));
  std::string out = "[";
  ASSERT_TRUE(append_compact_publications(out, list));
  EXPECT_EQ(out,
            "[{\"o\":13,\"d\":{\"text\":\"hi\"},\"c\":\"c4f2a9d01b7e3c55\",\"u\":\"alice\"},"
            "{\"o\":14,\"d\":\"}],{\\\"offset\\\":1\"},"
            "{\"o\":17,\"d\":[],\"c\":\"0d9e1f2a3b4c5d6e\"}");
  std::string empty;
  EXPECT_TRUE(append_compact_publications(empty, ""));
  EXPECT_EQ(empty, "");
}

TEST(wire_compact, a_bad_list_is_refused_whole_and_append_publications_falls_back) {
  const std::vector<std::string_view> bad = {
      "{\"offset\":1,\"data\":1}x",
      "{\"offset\":1,\"data\":1},",
      "{\"offset\":1,\"data\":1}{\"offset\":2,\"data\":2}",
      "{\"offset\":,\"data\":1}",
      "{\"offset\":1\"data\":1}",
      "{\"offset\":1,\"data\":1",
      "{\"o\":1,\"d\":1}",
      "[{\"offset\":1,\"data\":1}]",
  };
  for (const std::string_view l : bad) {
    std::string out = "kept";
    EXPECT_FALSE(append_compact_publications(out, l)) << l;
    EXPECT_EQ(out, "kept") << l;
    std::string fallback;
    append_publications(fallback, l, push_form::compact);
    EXPECT_EQ(fallback, l);
  }
  std::string full;
  append_publications(full, "{\"offset\":1,\"data\":1}", push_form::full);
  EXPECT_EQ(full, "{\"offset\":1,\"data\":1}");
  std::string compact;
  append_publications(compact, "{\"offset\":1,\"data\":1}", push_form::compact);
  EXPECT_EQ(compact, "{\"o\":1,\"d\":1}");
}

// What an SDK reads from a compact push is what it reads from the full one
// (the epoch aside, which is the subscription's).
TEST(wire_compact, compact_and_full_push_carry_the_same_publication) {
  simdjson::dom::parser full_parser;
  simdjson::dom::parser compact_parser;
  const std::vector<std::string> values = {"{\"text\":\"hello\",\"n\":[1,2,{\"x\":null}]}",
                                           "\"\\\"quoted\\\"\"", "3.25", "[]"};
  for (const std::string& v : values) {
    const std::string tail = publication_tail(v, "c4f2a9d01b7e3c55", "bob \"the\" builder");
    std::string full;
    std::string compact;
    publication_push(full, "chat:room-1", "9f1c2e7a5b3d0e14", 42, tail);
    compact_publication_push(compact, "chat:room-1", 42, tail);
    simdjson::dom::element f;
    simdjson::dom::element c;
    ASSERT_EQ(full_parser.parse(full).get(f), simdjson::SUCCESS) << full;
    ASSERT_EQ(compact_parser.parse(compact).get(c), simdjson::SUCCESS) << compact;
    EXPECT_EQ(std::string_view(f["channel"]), std::string_view(c["m"]));
    EXPECT_EQ(std::uint64_t(f["offset"]), std::uint64_t(c["o"]));
    EXPECT_EQ(simdjson::minify(f["data"]), simdjson::minify(c["d"]));
    EXPECT_EQ(std::string_view(f["client"]), std::string_view(c["c"]));
    EXPECT_EQ(std::string_view(f["user"]), std::string_view(c["u"]));
    EXPECT_EQ(c["epoch"].error(), simdjson::NO_SUCH_FIELD);
  }
}

}  // namespace
}  // namespace switchboard::realtime::detail
