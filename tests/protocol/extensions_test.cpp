#include <switchboard/protocol/extensions.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace switchboard::protocol {
namespace {

// A compact picture of a parse result: "name;p;q=v, other".
std::string render(const std::vector<extension>& list) {
  std::string s;
  for (const auto& e : list) {
    if (!s.empty()) s.append(", ");
    s.append(e.name);
    for (const auto& p : e.params) {
      s.append(";").append(p.name);
      if (p.has_value) s.append("=").append(p.value);
    }
  }
  return s;
}

TEST(extensions, parses_valid_offers) {
  struct row {
    std::string_view value, expected;
  };
  const row rows[] = {
      {"permessage-deflate", "permessage-deflate"},
      {"permessage-deflate; client_max_window_bits", "permessage-deflate;client_max_window_bits"},
      {"permessage-deflate; client_max_window_bits=10; server_no_context_takeover",
       "permessage-deflate;client_max_window_bits=10;server_no_context_takeover"},
      // Multiple offers in preference order (RFC 7692 §5 example).
      {"permessage-deflate; client_max_window_bits=10, permessage-deflate",
       "permessage-deflate;client_max_window_bits=10, permessage-deflate"},
      {"foo, bar; baz=2", "foo, bar;baz=2"},
      // OWS around every separator.
      {" \tfoo \t;\t a \t=\t 1 \t,\t bar\t ", "foo;a=1, bar"},
      {"foo;a=1;b;c=x", "foo;a=1;b;c=x"},
      // Quoted values are unquoted; quoted-pairs unescaped.
      {"foo; a=\"10\"", "foo;a=10"},
      {"foo; a=\"1\\0\"", "foo;a=10"},
      {"foo; a=\"\\x\\-y\"", "foo;a=x-y"},
      // Empty list elements are skipped (RFC 9110 §5.6.1).
      {"foo,, bar,", "foo, bar"},
      {", foo", "foo"},
  };
  for (const auto& row : rows) {
    std::vector<extension> out;
    ASSERT_EQ(parse_extensions(row.value, out), error::none) << row.value;
    EXPECT_EQ(render(out), row.expected) << row.value;
    EXPECT_EQ(check_extensions(row.value), error::none) << row.value;
  }
}

TEST(extensions, params_record_whether_they_have_a_value) {
  std::vector<extension> out;
  ASSERT_EQ(parse_extensions("pmd; flag; bits=15; q=\"\\9\"", out), error::none);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].params.size(), 3u);
  EXPECT_EQ(out[0].params[0].name, "flag");
  EXPECT_FALSE(out[0].params[0].has_value);
  EXPECT_EQ(out[0].params[0].value, "");
  EXPECT_EQ(out[0].params[1].name, "bits");
  EXPECT_TRUE(out[0].params[1].has_value);
  EXPECT_EQ(out[0].params[1].value, "15");
  EXPECT_EQ(out[0].params[2].value, "9");
}

TEST(extensions, rejects_malformed_values_and_leaves_out_unchanged) {
  const std::string_view rows[] = {
      "",
      " ",
      ",",
      " , ,",
      "foo;",
      "foo; ",
      ";a",
      "foo bar",
      "foo; a b",
      "foo; a=",
      "foo; a= ,bar",
      "foo; =1",
      "foo; a==1",
      "foo; a=1 2",
      "foo; a=\"\"",     // unquotes to an empty string, not a token
      "foo; a=\"1 2\"",  // unquotes to a non-token
      "foo; a=\"1",      // unterminated
      "foo; a=\"1\\\"",  // escaped closing quote, then unterminated
      "foo; a=\"\\ \"",  // escape of a non-token character
      "foo; a=\"x\"y",
      "foo; a=\"x,y\"",
      "foo; a=(1)",
      "fo\"o",
      "foo/1",
      "foo\x01",
      "foo;a=1;",
      "foo,bar;",
      "\"foo\"",
  };
  for (const auto value : rows) {
    std::vector<extension> out(1);
    out[0].name = "kept";
    EXPECT_EQ(parse_extensions(value, out), error::bad_extension_header)
        << testing::PrintToString(value);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].name, "kept");
    EXPECT_EQ(check_extensions(value), error::bad_extension_header)
        << testing::PrintToString(value);
  }
}

TEST(extensions, appends_across_calls_and_fields_in_order) {
  std::vector<extension> out;
  ASSERT_EQ(parse_extensions("a", out), error::none);
  ASSERT_EQ(parse_extensions("b; x=1, c", out), error::none);
  EXPECT_EQ(render(out), "a, b;x=1, c");

  request_parser p;
  const std::string_view text =
      "GET / HTTP/1.1\r\nSec-WebSocket-Extensions: foo\r\nX: y\r\n"
      "sec-websocket-extensions: bar; q, baz\r\n\r\n";
  ASSERT_EQ(p.parse(text).status, parse_status::complete);
  out.clear();
  ASSERT_EQ(parse_extensions(p.head(), out), error::none);
  EXPECT_EQ(render(out), "foo, bar;q, baz");

  request_parser bad;
  ASSERT_EQ(bad.parse("GET / HTTP/1.1\r\nSec-WebSocket-Extensions: ok\r\n"
                      "Sec-WebSocket-Extensions: no;\r\n\r\n")
                .status,
            parse_status::complete);
  out.clear();
  EXPECT_EQ(parse_extensions(bad.head(), out), error::bad_extension_header);
  EXPECT_TRUE(out.empty());

  request_parser none;
  ASSERT_EQ(none.parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n").status, parse_status::complete);
  EXPECT_EQ(parse_extensions(none.head(), out), error::none);
  EXPECT_TRUE(out.empty());
}

TEST(extensions, check_extension_names_against_the_offers) {
  const std::string_view offered[] = {"permessage-deflate", "x-webkit"};
  struct row {
    std::string_view value;
    error expected;
  };
  const row rows[] = {
      {"permessage-deflate", error::none},
      {"permessage-deflate; server_max_window_bits=10", error::none},
      {"x-webkit, permessage-deflate", error::none},
      {"Permessage-Deflate", error::response_unexpected_extension},  // case-sensitive
      {"permessage-deflate, other", error::response_unexpected_extension},
      {"other; ;", error::response_unexpected_extension},  // stops at the first unknown name
      {"permessage-deflate;", error::bad_extension_header},
      {"", error::bad_extension_header},
  };
  for (const auto& row : rows)
    EXPECT_EQ(check_extension_names(row.value, offered), row.expected) << row.value;
  EXPECT_EQ(check_extension_names("permessage-deflate", {}), error::response_unexpected_extension);
}

}  // namespace
}  // namespace switchboard::protocol
