// redis_packed_test.cpp — the packed pub/sub form of several publications of
// one channel (redis_packed.hpp): the parser's cases, and what the publish
// script of redis_scripts.hpp really sends through a real redis-server
// (redis_process.hpp): one PUBLISH per channel per call, packed for several
// publications and single for one, with offsets that match the stream.
#include "redis_packed.hpp"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <vector>

#include "redis_process.hpp"
#include "redis_scripts.hpp"

namespace switchboard::realtime::detail {
namespace {

using test::redis_process;

std::vector<std::string> tails_of(const packed_publications& p) {
  return {p.tails.begin(), p.tails.end()};
}

TEST(redis_packed, parses_consecutive_publications) {
  packed_publications p;
  ASSERT_TRUE(parse_packed("ab12 7 3:abc0:5:x y:z", p));
  EXPECT_EQ(p.epoch, "ab12");
  EXPECT_EQ(p.first, 7u);
  EXPECT_EQ(tails_of(p), (std::vector<std::string>{"abc", "", "x y:z"}));
}

TEST(redis_packed, a_tail_may_hold_any_byte) {
  const std::string payload = std::string("e 1 4:") + std::string("\0:\n ", 4) + "1:7";
  packed_publications p;
  ASSERT_TRUE(parse_packed(payload, p));
  ASSERT_EQ(p.tails.size(), 2u);
  EXPECT_EQ(p.tails[0], std::string_view("\0:\n ", 4));
  EXPECT_EQ(p.tails[1], "7");
}

// Each malformed payload, with the rule it breaks.
TEST(redis_packed, rejects_malformed_payloads) {
  const struct {
    const char* payload;
    const char* rule;
  } cases[] = {
      {"", "an epoch, an offset and tails are needed"},
      {"e", "no space after the epoch"},
      {" 1 1:a", "an empty epoch"},
      {"e 1", "no space after the first offset"},
      {"e  1:a", "an empty first offset"},
      {"e 0 1:a", "offsets start at 1"},
      {"e x1 1:a", "a first offset that is not a number"},
      {"e 1x 1:a", "trailing bytes after the first offset"},
      {"e -1 1:a", "a negative first offset"},
      {"e 99999999999999999999 1:a", "a first offset past 64 bits"},
      {"e 1 ", "no publication at all"},
      {"e 1 abc", "a length without its colon"},
      {"e 1 :abc", "an empty length"},
      {"e 1 x:abc", "a length that is not a number"},
      {"e 1 -1:abc", "a negative length"},
      {"e 1 4:abc", "a length past the end (truncated)"},
      {"e 1 1:a2:b", "the last tail truncated"},
      {"e 18446744073709551615 1:a1:b", "offsets that would wrap"},
  };
  for (const auto& c : cases) {
    packed_publications p;
    EXPECT_FALSE(parse_packed(c.payload, p)) << c.rule << ": \"" << c.payload << '"';
  }
  packed_publications p;
  EXPECT_TRUE(parse_packed("e 18446744073709551614 1:a1:b", p)) << "the last offset fits";
}

// ---- the publish script against a real redis-server ------------------------

struct reply_deleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;
struct context_deleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using context_ptr = std::unique_ptr<redisContext, context_deleter>;

reply_ptr call(redisContext* c, const std::vector<std::string>& argv) {
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lens;
  for (const std::string& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  return reply_ptr(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), ptrs.data(), lens.data())));
}

// The next pub/sub message's payload on a subscribed context.
std::string next_message(redisContext* c) {
  void* raw = nullptr;
  if (redisGetReply(c, &raw) != REDIS_OK) return "(no reply)";
  reply_ptr r(static_cast<redisReply*>(raw));
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) return "(not a message)";
  return std::string(r->element[2]->str, r->element[2]->len);
}

TEST(redis_packed, the_publish_script_packs_one_message_per_channel) {
  redis_process redis;
  ASSERT_TRUE(redis.ok());
  context_ptr cmd(redisConnect("127.0.0.1", redis.port()));
  context_ptr sub(redisConnect("127.0.0.1", redis.port()));
  ASSERT_TRUE(cmd && !cmd->err && sub && !sub->err);
  reply_ptr s = call(sub.get(), {"SUBSCRIBE", "c:a", "c:b"});
  ASSERT_TRUE(s);
  reply_ptr second;
  {
    void* raw = nullptr;
    ASSERT_EQ(redisGetReply(sub.get(), &raw), REDIS_OK);  // the second confirmation
    second.reset(static_cast<redisReply*>(raw));
  }
  // Channel a: three publications; channel b: one. History 10, no TTL.
  const std::vector<std::string> first_call{"EVAL",     redis_scripts::k_publish,
                                            "6",        "m:a",
                                            "s:a",      "c:a",
                                            "m:b",      "s:b",
                                            "c:b",      "fresh",
                                            "3",        "10",
                                            "0",        "86400000",
                                            "one",      "two:2",
                                            "",         "1",
                                            "10",       "0",
                                            "86400000", "solo"};
  reply_ptr r = call(cmd.get(), first_call);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->type, REDIS_REPLY_ARRAY) << (r->type == REDIS_REPLY_ERROR ? r->str : "");
  ASSERT_EQ(r->elements, 4u);
  EXPECT_EQ(std::string(r->element[0]->str), "fresh");
  EXPECT_EQ(r->element[1]->integer, 1);  // a's first offset
  EXPECT_EQ(r->element[3]->integer, 1);  // b's

  EXPECT_EQ(next_message(sub.get()), std::string("Mfresh 1 3:one5:two:20:"));
  const std::string single = next_message(sub.get());
  EXPECT_EQ(single, "mfresh 1 solo");  // n = 1: the single form, as before

  // A second call continues a's offsets; its message parses to 4 and 5.
  r = call(cmd.get(), {"EVAL", redis_scripts::k_publish, "3", "m:a", "s:a", "c:a", "other", "2",
                       "10", "0", "86400000", "four", "five"});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(std::string(r->element[0]->str), "fresh") << "the epoch is kept";
  EXPECT_EQ(r->element[1]->integer, 4);
  const std::string packed = next_message(sub.get());
  ASSERT_EQ(packed.front(), 'M');
  packed_publications p;
  ASSERT_TRUE(parse_packed(std::string_view(packed).substr(1), p)) << packed;
  EXPECT_EQ(p.epoch, "fresh");
  EXPECT_EQ(p.first, 4u);
  EXPECT_EQ(tails_of(p), (std::vector<std::string>{"four", "five"}));

  // The stream holds the same offsets and tails.
  r = call(cmd.get(), {"XRANGE", "s:a", "-", "+"});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->elements, 5u);
  const char* want[][2] = {
      {"1-0", "one"}, {"2-0", "two:2"}, {"3-0", ""}, {"4-0", "four"}, {"5-0", "five"}};
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(std::string(r->element[i]->element[0]->str), want[i][0]);
    const redisReply* fields = r->element[i]->element[1];
    ASSERT_EQ(fields->elements, 4u);
    EXPECT_EQ(std::string(fields->element[3]->str, fields->element[3]->len), want[i][1]);
  }
  r = call(cmd.get(), {"HGET", "m:a", "o"});
  ASSERT_TRUE(r);
  EXPECT_EQ(std::string(r->str), "5");
}

}  // namespace
}  // namespace switchboard::realtime::detail
