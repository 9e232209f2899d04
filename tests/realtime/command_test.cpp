// Tests for the switchboard.v1 command parser (src/realtime/command.hpp):
// every field, every failure, and the lifetime of the views.
#include "command.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace switchboard::realtime::detail {
namespace {

struct parsed {
  std::optional<failure> fail;
  command c;
};

parsed parse(simdjson::dom::parser& parser, std::string_view payload) {
  parsed p;
  p.fail = parse_command(parser, payload, p.c);
  return p;
}

const failure k_not_object{400, "bad request: a command is one JSON object"};
const failure k_bad_id{400, "bad request: id must be a number or a string"};
const failure k_no_cmd{400, "bad request: no cmd"};
const failure k_bad_since{400, "since must be {\"epoch\": string, \"offset\": unsigned integer}"};
const failure k_bad_limit{400, "limit must be a positive integer"};
const failure k_bad_info{400, "info must be an object"};

TEST(Command, MinimalPing) {
  simdjson::dom::parser parser;
  const auto p = parse(parser, R"({"cmd":"ping"})");
  ASSERT_FALSE(p.fail);
  EXPECT_EQ(p.c.cmd, "ping");
  EXPECT_EQ(p.c.id, "");
  EXPECT_FALSE(p.c.has_channel);
  EXPECT_FALSE(p.c.has_data);
  EXPECT_FALSE(p.c.has_token);
  EXPECT_FALSE(p.c.has_info);
  EXPECT_FALSE(p.c.since);
  EXPECT_FALSE(p.c.limit);
  EXPECT_FALSE(p.c.since_error || p.c.limit_error || p.c.info_error);
}

TEST(Command, NotOneObject) {
  simdjson::dom::parser parser;
  for (const std::string_view bad :
       {"", " ", "[]", "\"ping\"", "42", "null", "{", "{\"cmd\":\"ping\"", "{\"cmd\":\"ping\"} {}",
        "{\"cmd\":\"ping\",}", "{'cmd':'ping'}", "\xef\xbb\xbf{}x"}) {
    const auto p = parse(parser, bad);
    ASSERT_TRUE(p.fail) << bad;
    EXPECT_EQ(*p.fail, k_not_object) << bad;
    EXPECT_EQ(p.c.id, "") << bad;
  }
}

TEST(Command, IdNumberOrStringIsMinified) {
  simdjson::dom::parser parser;
  EXPECT_EQ(parse(parser, R"({"id": 7, "cmd":"ping"})").c.id, "7");
  EXPECT_EQ(parse(parser, R"({"id":-3,"cmd":"ping"})").c.id, "-3");
  EXPECT_EQ(parse(parser, R"({"id":18446744073709551615,"cmd":"ping"})").c.id,
            "18446744073709551615");
  EXPECT_EQ(parse(parser, R"({"id":1.5,"cmd":"ping"})").c.id, "1.5");
  EXPECT_EQ(parse(parser, R"({"id": "a\"b" ,"cmd":"ping"})").c.id, R"("a\"b")");
  EXPECT_EQ(parse(parser, R"({"id":"","cmd":"ping"})").c.id, R"("")");
}

TEST(Command, BadIdTypes) {
  simdjson::dom::parser parser;
  for (const std::string_view bad :
       {R"({"id":null,"cmd":"ping"})", R"({"id":true,"cmd":"ping"})", R"({"id":[1],"cmd":"ping"})",
        R"({"id":{},"cmd":"ping"})", R"({"id":null})"}) {
    const auto p = parse(parser, bad);
    ASSERT_TRUE(p.fail) << bad;
    EXPECT_EQ(*p.fail, k_bad_id) << bad;
    EXPECT_EQ(p.c.id, "") << bad;  // the reply carries no id
  }
}

TEST(Command, NoCmdKeepsTheId) {
  simdjson::dom::parser parser;
  for (const std::string_view bad : {R"({"id":4})", R"({"id":4,"cmd":null})", R"({"id":4,"cmd":1})",
                                     R"({"id":4,"Cmd":"ping"})", R"({"id":4,"cmd":["ping"]})"}) {
    const auto p = parse(parser, bad);
    ASSERT_TRUE(p.fail) << bad;
    EXPECT_EQ(*p.fail, k_no_cmd) << bad;
    EXPECT_EQ(p.c.id, "4") << bad;
  }
  EXPECT_EQ(*parse(parser, "{}").fail, k_no_cmd);
}

TEST(Command, AnyStringIsACmd) {
  // Unknown and empty commands are the service's to refuse ("unknown command: ").
  simdjson::dom::parser parser;
  EXPECT_FALSE(parse(parser, R"({"cmd":""})").fail);
  EXPECT_EQ(parse(parser, R"({"cmd":"\u0070ing"})").c.cmd, "ping");
  EXPECT_EQ(parse(parser, R"({"cmd":"frobnicate"})").c.cmd, "frobnicate");
}

// Issue 14 (8): the first of two "cmd" keys used to win, so
// {"cmd":"ping","cmd":"publish"} ran ping; the JWT path refuses repeated names.
TEST(Command, DuplicateKeysAre400NamingTheKey) {
  simdjson::dom::parser parser;
  auto p = parse(parser, R"({"id":1,"cmd":"ping","cmd":"publish"})");
  ASSERT_TRUE(p.fail);
  EXPECT_EQ(*p.fail, (failure{400, "bad request: duplicate key: cmd"}));
  EXPECT_EQ(p.c.id, "1");  // the reply carries the id
  EXPECT_EQ(p.c.cmd, "");
  // Escapes do not hide a duplicate: keys are compared unescaped.
  p = parse(parser, R"({"cmd":"publish","channel":"a","\u0063hannel":"b"})");
  ASSERT_TRUE(p.fail);
  EXPECT_EQ(p.fail->message, "bad request: duplicate key: channel");
  // Nested objects are their own scope.
  EXPECT_FALSE(parse(parser, R"({"cmd":"publish","data":{"cmd":1},"info":{"cmd":2}})").fail);
  // Many keys (the sorted path): the first repeated one is named.
  std::string many = R"({"cmd":"ping")";
  for (int i = 0; i < 40; ++i) many += ",\"k" + std::to_string(i) + "\":0";
  many += R"(,"k7":1,"k3":2})";
  p = parse(parser, many);
  ASSERT_TRUE(p.fail);
  EXPECT_EQ(p.fail->message, "bad request: duplicate key: k3");
  many = R"({"cmd":"ping")";
  for (int i = 0; i < 40; ++i) many += ",\"k" + std::to_string(i) + "\":0";
  EXPECT_FALSE(parse(parser, many + "}").fail);
}

TEST(Command, Channel) {
  simdjson::dom::parser parser;
  auto p = parse(parser, R"({"cmd":"subscribe","channel":"chat:lobby"})");
  EXPECT_TRUE(p.c.has_channel);
  EXPECT_EQ(p.c.channel, "chat:lobby");
  // Escapes are undone: the view points into the parser's document.
  p = parse(parser, R"({"cmd":"subscribe","channel":"chat:\u006cobby"})");
  EXPECT_TRUE(p.c.has_channel);
  EXPECT_EQ(p.c.channel, "chat:lobby");
  // Not a string: absent, so the command says "no channel". Validity is the service's.
  for (const std::string_view v : {"null", "1", "[\"a\"]", "{}"}) {
    p = parse(parser, std::string(R"({"cmd":"subscribe","channel":)") + std::string(v) + "}");
    ASSERT_FALSE(p.fail) << v;
    EXPECT_FALSE(p.c.has_channel) << v;
  }
  p = parse(parser, R"({"cmd":"subscribe","channel":""})");
  EXPECT_TRUE(p.c.has_channel);
  EXPECT_EQ(p.c.channel, "");
}

TEST(Command, Since) {
  simdjson::dom::parser parser;
  auto p =
      parse(parser, R"({"cmd":"subscribe","since":{"epoch":"9f1c2e7a","offset":12,"extra":true}})");
  ASSERT_FALSE(p.fail);
  ASSERT_TRUE(p.c.since);
  EXPECT_EQ(*p.c.since, (stream_position{"9f1c2e7a", 12}));
  EXPECT_FALSE(p.c.since_error);
  p = parse(parser, R"({"cmd":"history","since":{"offset":18446744073709551615,"epoch":""}})");
  ASSERT_TRUE(p.c.since);
  EXPECT_EQ(*p.c.since, (stream_position{"", 18446744073709551615u}));
  for (const std::string_view bad :
       {"null", "1", "[]", "{}", R"({"epoch":"e"})", R"({"offset":1})", R"({"epoch":1,"offset":1})",
        R"({"epoch":"e","offset":-1})", R"({"epoch":"e","offset":1.5})",
        R"({"epoch":"e","offset":"1"})"}) {
    p = parse(parser, std::string(R"({"cmd":"subscribe","since":)") + std::string(bad) + "}");
    ASSERT_FALSE(p.fail) << bad;  // a field error is the command's to report
    EXPECT_FALSE(p.c.since) << bad;
    ASSERT_TRUE(p.c.since_error) << bad;
    EXPECT_EQ(*p.c.since_error, k_bad_since) << bad;
  }
  // simdjson refuses an integer past 64 bits anywhere in the document.
  p = parse(parser, R"({"cmd":"subscribe","since":{"epoch":"e","offset":18446744073709551616}})");
  ASSERT_TRUE(p.fail);
  EXPECT_EQ(*p.fail, k_not_object);
}

TEST(Command, Data) {
  simdjson::dom::parser parser;
  auto p = parse(parser, R"({"cmd":"publish","data": { "text" : "hi" , "n":[1, 2] }})");
  EXPECT_TRUE(p.c.has_data);
  EXPECT_EQ(p.c.data, R"({"text":"hi","n":[1,2]})");
  p = parse(parser, R"({"cmd":"publish","data":null})");
  EXPECT_TRUE(p.c.has_data);
  EXPECT_EQ(p.c.data, "null");
  p = parse(parser, R"({"cmd":"publish","data":"a b"})");
  EXPECT_EQ(p.c.data, R"("a b")");
  p = parse(parser, R"({"cmd":"publish"})");
  EXPECT_FALSE(p.c.has_data);
  EXPECT_EQ(p.c.data, "");
}

TEST(Command, Limit) {
  simdjson::dom::parser parser;
  auto p = parse(parser, R"({"cmd":"history","limit":2})");
  ASSERT_TRUE(p.c.limit);
  EXPECT_EQ(*p.c.limit, 2u);
  EXPECT_FALSE(p.c.limit_error);
  p = parse(parser, R"({"cmd":"history","limit":18446744073709551615})");
  EXPECT_EQ(p.c.limit, 18446744073709551615u);
  for (const std::string_view bad : {"0", "-1", "1.5", "\"2\"", "null", "[2]", "1e3"}) {
    p = parse(parser, std::string(R"({"cmd":"history","limit":)") + std::string(bad) + "}");
    ASSERT_FALSE(p.fail) << bad;
    EXPECT_FALSE(p.c.limit) << bad;
    ASSERT_TRUE(p.c.limit_error) << bad;
    EXPECT_EQ(*p.c.limit_error, k_bad_limit) << bad;
  }
}

TEST(Command, Token) {
  simdjson::dom::parser parser;
  auto p = parse(parser, R"({"cmd":"connect","token":"eyJ.x.y"})");
  EXPECT_TRUE(p.c.has_token);
  EXPECT_EQ(p.c.token, "eyJ.x.y");
  // A non-string token is no token: the connect is anonymous.
  p = parse(parser, R"({"cmd":"connect","token":null})");
  EXPECT_FALSE(p.c.has_token);
}

TEST(Command, Info) {
  simdjson::dom::parser parser;
  auto p = parse(parser, R"({"cmd":"connect","info": {"name": "Alice"}})");
  EXPECT_TRUE(p.c.has_info);
  EXPECT_EQ(p.c.info, R"({"name":"Alice"})");
  EXPECT_FALSE(p.c.info_error);
  for (const std::string_view bad : {"null", "\"x\"", "[]", "1"}) {
    p = parse(parser, std::string(R"({"cmd":"connect","info":)") + std::string(bad) + "}");
    ASSERT_FALSE(p.fail) << bad;
    EXPECT_FALSE(p.c.has_info) << bad;
    ASSERT_TRUE(p.c.info_error) << bad;
    EXPECT_EQ(*p.c.info_error, k_bad_info) << bad;
  }
}

TEST(Command, OutIsResetEachTime) {
  simdjson::dom::parser parser;
  command c;
  ASSERT_FALSE(parse_command(parser,
                             R"({"id":1,"cmd":"history","channel":"a","limit":0,"data":1,)"
                             R"("token":"t","info":[],"since":{"epoch":"e","offset":1}})",
                             c));
  EXPECT_TRUE(c.limit_error && c.info_error && c.since && c.has_data && c.has_token);
  ASSERT_TRUE(parse_command(parser, "[]", c));
  EXPECT_EQ(c.id, "");
  EXPECT_EQ(c.cmd, "");
  EXPECT_FALSE(c.has_channel || c.has_data || c.has_token || c.has_info || c.since ||
               c.limit_error || c.info_error);
}

TEST(Command, ViewsOutliveThePayload) {
  // The views point into the parser's document, not into the caller's buffer.
  simdjson::dom::parser parser;
  command c;
  {
    std::string payload = R"({"cmd":"subscribe","channel":"chat:lobby","token":"tok"})";
    ASSERT_FALSE(parse_command(parser, payload, c));
    payload.assign(payload.size(), 'x');
  }
  EXPECT_EQ(c.cmd, "subscribe");
  EXPECT_EQ(c.channel, "chat:lobby");
  EXPECT_EQ(c.token, "tok");
}

TEST(Command, ReadFieldsOfAnHttpBody) {
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  ASSERT_FALSE(parser.parse(std::string_view(R"({"channel":"news","data":[1, 2]})")).get(obj));
  command c;
  read_command_fields(obj, c);
  EXPECT_TRUE(c.has_channel);
  EXPECT_EQ(c.channel, "news");
  EXPECT_TRUE(c.has_data);
  EXPECT_EQ(c.data, "[1,2]");
}

}  // namespace
}  // namespace switchboard::realtime::detail
