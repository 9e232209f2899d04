#include <switchboard/protocol/http_head.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>

namespace switchboard::protocol {
namespace {

// The client's head from RFC 6455 §1.3, plus its own framing bytes after it.
constexpr std::string_view k_rfc_request =
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";
constexpr std::string_view k_frame = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";

std::string request_with(std::string_view fields) {
  return "GET / HTTP/1.1\r\n" + std::string(fields) + "\r\n";
}

// Feeds `input` in the chunk sizes `split` gives, each time as a fresh copy of
// everything so far (the buffer moves, as it may in a real server).
template <class Parser, class Split>
parse_result feed(Parser& p, std::string_view input, std::string& buf, Split split) {
  parse_result r{0, parse_status::need_more, error::none};
  std::size_t have = 0;
  while (r.status == parse_status::need_more && have < input.size()) {
    have = std::min(input.size(), have + split());
    buf = std::string(input.substr(0, have));
    r = p.parse(buf);
  }
  return r;
}

TEST(http_head, parses_the_rfc_6455_request) {
  request_parser p;
  const std::string input = std::string(k_rfc_request) + std::string(k_frame);
  const auto r = p.parse(input);
  ASSERT_EQ(r.status, parse_status::complete);
  EXPECT_EQ(r.err, error::none);
  EXPECT_EQ(r.consumed, k_rfc_request.size());  // the frame stays with the caller
  const auto& h = p.head();
  EXPECT_EQ(h.method(), "GET");
  EXPECT_EQ(h.target(), "/chat");
  EXPECT_EQ(h.path(), "/chat");
  EXPECT_EQ(h.query(), "");
  EXPECT_EQ(h.version_major(), 1);
  EXPECT_EQ(h.version_minor(), 1);
  ASSERT_EQ(h.headers().size(), 7u);
  EXPECT_EQ(h.headers()[0].name, "Host");
  EXPECT_EQ(h.headers()[0].value, "server.example.com");
  EXPECT_EQ(h.find("sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_EQ(h.find("Sec-WebSocket-Protocol"), "chat, superchat");
  EXPECT_EQ(h.find("X-Missing"), std::nullopt);
}

TEST(http_head, splits_target_into_path_and_query) {
  struct row {
    std::string_view target, path, query;
  };
  const row rows[] = {
      {"/", "/", ""},          {"/chat?room=1&x", "/chat", "room=1&x"}, {"/?", "/", ""},
      {"/a?b?c", "/a", "b?c"}, {"/caf\xc3\xa9", "/caf\xc3\xa9", ""},  // obs-text is accepted in the
                                                                      // target
      {"*", "*", ""},
  };
  for (const auto& row : rows) {
    request_parser p;
    const auto input = "GET " + std::string(row.target) + " HTTP/1.1\r\nHost: a\r\n\r\n";
    ASSERT_EQ(p.parse(input).status, parse_status::complete) << row.target;
    EXPECT_EQ(p.head().path(), row.path);
    EXPECT_EQ(p.head().query(), row.query);
  }
}

TEST(http_head, trims_ows_around_values_and_keeps_inner_whitespace) {
  struct row {
    std::string_view line, value;
  };
  const row rows[] = {
      {"X: a", "a"}, {"X:a", "a"},        {"X: \t a b \t ", "a b"},         {"X:", ""},
      {"X:   ", ""}, {"X: a\tb", "a\tb"}, {"X: caf\xc3\xa9", "caf\xc3\xa9"}};
  for (const auto& row : rows) {
    request_parser p;
    const auto input = request_with(std::string(row.line) + "\r\n");
    ASSERT_EQ(p.parse(input).status, parse_status::complete) << row.line;
    EXPECT_EQ(p.head().find("x"), row.value);
  }
}

struct reject_row {
  std::string_view input;
  error expected;
  int status;
};

void expect_rejected(const reject_row& row) {
  request_parser p;
  const auto r = p.parse(row.input);
  EXPECT_EQ(r.status, parse_status::error) << testing::PrintToString(row.input);
  EXPECT_EQ(r.err, row.expected) << testing::PrintToString(row.input);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_EQ(http_status_for(r.err), row.status);
}

TEST(http_head, rejects_each_malformed_request_with_its_own_error) {
  using namespace std::string_view_literals;
  const reject_row rows[] = {
      {"GET\r\n\r\n", error::bad_request_line, 400},
      {"GET /\r\n\r\n", error::bad_request_line, 400},
      {"GET  / HTTP/1.1\r\n\r\n", error::bad_request_line, 400},
      {" GET / HTTP/1.1\r\n\r\n", error::bad_request_line, 400},
      {"G(T / HTTP/1.1\r\n\r\n", error::bad_request_line, 400},
      {"GET /a\x01z HTTP/1.1\r\n\r\n", error::bad_request_line, 400},
      {"GET /a\rz HTTP/1.1\r\n\r\n", error::bad_request_line, 400},
      {"GET /\x7f HTTP/1.1\r\n\r\n", error::bad_request_line, 400},
      {"GET\t/ HTTP/1.1\r\n\r\n", error::bad_request_line, 400},
      {"GET / HTTP/1.1\0\r\n\r\n"sv, error::bad_request_line, 400},
      {"\0GET / HTTP/1.1\r\n\r\n"sv, error::bad_request_line, 400},
      {"GET / HTTP/1.10\r\n\r\n", error::bad_http_version, 400},
      {"GET / http/1.1\r\n\r\n", error::bad_http_version, 400},
      {"GET / HTTP/1\r\n\r\n", error::bad_http_version, 400},
      {"GET / HTTP/1.1 \r\n\r\n", error::bad_http_version, 400},
      {"GET / HTTP/a.1\r\n\r\n", error::bad_http_version, 400},
      {"GET / HTTPS/1.1\r\n\r\n", error::bad_http_version, 400},
      {"GET / HTTP/1.1\r\nHo@st: a\r\n\r\n", error::bad_header_name, 400},
      {"GET / HTTP/1.1\r\n: a\r\n\r\n", error::bad_header_name, 400},
      {"GET / HTTP/1.1\r\nNa me: a\r\n\r\n", error::bad_header_name, 400},
      {"GET / HTTP/1.1\r\nH\xc3\xb6st: a\r\n\r\n", error::bad_header_name, 400},
      {"GET / HTTP/1.1\r\nHost\r\n\r\n", error::missing_header_colon, 400},
      {"GET / HTTP/1.1\r\nHost \t\r\n\r\n", error::missing_header_colon, 400},
      {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", error::whitespace_before_colon, 400},
      {"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", error::whitespace_before_colon, 400},
      {"GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"sv, error::bad_header_value, 400},
      {"GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", error::bad_header_value, 400},
      {"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", error::bad_header_value, 400},
      {"GET / HTTP/1.1\r\nX: \x7f\r\n\r\n", error::bad_header_value, 400},
      {"GET / HTTP/1.1\r\nX: a\x1b[0m\r\n\r\n", error::bad_header_value, 400},
      {"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", error::obs_fold, 400},
      {"GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", error::obs_fold, 400},
      {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", error::obs_fold, 400},
      {"GET / HTTP/1.1\nHost: a\r\n\r\n", error::bare_lf, 400},
      {"GET / HTTP/1.1\r\nHost: a\n\r\n", error::bare_lf, 400},
      {"GET / HTTP/1.1\r\nHost: a\r\n\n", error::bare_lf, 400},
      {"\n", error::bare_lf, 400},
  };
  for (const auto& row : rows) expect_rejected(row);
}

TEST(http_head, fails_fast_on_bare_lf_before_the_head_ends) {
  request_parser p;
  const auto r = p.parse("GET / HTTP/1.1\r\nHost: a\n");
  EXPECT_EQ(r.status, parse_status::error);
  EXPECT_EQ(r.err, error::bare_lf);
}

TEST(http_head, errors_are_sticky_until_reset) {
  request_parser p;
  ASSERT_EQ(p.parse("GET / HTTP/1.1\r\nHost : a\r\n\r\n").err, error::whitespace_before_colon);
  const auto again = p.parse(k_rfc_request);
  EXPECT_EQ(again.status, parse_status::error);
  EXPECT_EQ(again.err, error::whitespace_before_colon);
  p.reset();
  EXPECT_EQ(p.parse(k_rfc_request).status, parse_status::complete);
  EXPECT_EQ(p.head().target(), "/chat");
}

TEST(http_head, reset_reuses_the_parser_for_the_next_head) {
  request_parser p;
  ASSERT_EQ(p.parse("GET /one HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n").status, parse_status::complete);
  p.reset();
  EXPECT_TRUE(p.head().headers().empty());
  ASSERT_EQ(p.parse("GET /two HTTP/1.1\r\nC: 3\r\n\r\n").status, parse_status::complete);
  EXPECT_EQ(p.head().target(), "/two");
  ASSERT_EQ(p.head().headers().size(), 1u);
  EXPECT_EQ(p.head().find("a"), std::nullopt);
}

TEST(http_head, skips_empty_lines_before_the_request_line) {
  request_parser p;
  const std::string input = "\r\n\r\n" + std::string(k_rfc_request);
  const auto r = p.parse(input);
  ASSERT_EQ(r.status, parse_status::complete);
  EXPECT_EQ(r.consumed, input.size());
  EXPECT_EQ(p.head().method(), "GET");
}

TEST(http_head, byte_at_a_time_and_random_splits_match_one_shot) {
  const std::string input = std::string(k_rfc_request) + std::string(k_frame);
  request_parser one_shot;
  const auto expected = one_shot.parse(input);
  ASSERT_EQ(expected.status, parse_status::complete);

  std::mt19937 rng(6455);
  for (int trial = 0; trial < 200; ++trial) {
    request_parser p;
    std::string buf;
    const std::size_t max_chunk = trial == 0 ? 1 : 1 + trial % 40;
    const auto r = feed(p, input, buf, [&] { return 1 + rng() % max_chunk; });
    ASSERT_EQ(r.status, parse_status::complete) << trial;
    EXPECT_EQ(r.consumed, k_rfc_request.size());
    ASSERT_EQ(p.head().headers().size(), one_shot.head().headers().size());
    for (std::size_t i = 0; i < p.head().headers().size(); ++i) {
      EXPECT_EQ(p.head().headers()[i].name, one_shot.head().headers()[i].name);
      EXPECT_EQ(p.head().headers()[i].value, one_shot.head().headers()[i].value);
    }
    EXPECT_EQ(p.head().target(), "/chat");
  }
}

TEST(http_head, incremental_errors_match_one_shot) {
  const std::string_view inputs[] = {"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
                                     "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
                                     "GET / HTTP/1.0x\r\n\r\n"};
  for (const auto input : inputs) {
    request_parser one_shot, bytewise;
    std::string buf;
    const auto a = one_shot.parse(input);
    const auto b = feed(bytewise, input, buf, [] { return std::size_t{1}; });
    EXPECT_EQ(a.status, b.status);
    EXPECT_EQ(a.err, b.err) << input;
  }
}

TEST(http_head, need_more_until_the_blank_line) {
  request_parser p;
  const std::string_view input = k_rfc_request;
  for (std::size_t n = 0; n < input.size(); ++n) {
    const auto r = p.parse(input.substr(0, n));
    ASSERT_EQ(r.status, parse_status::need_more) << n;
    EXPECT_EQ(r.consumed, 0u);
  }
  EXPECT_EQ(p.parse(input).status, parse_status::complete);
}

TEST(http_head, parse_after_complete_returns_the_same_result) {
  request_parser p;
  std::string buf(k_rfc_request);
  ASSERT_EQ(p.parse(buf).status, parse_status::complete);
  const std::string more = buf + "more";
  const auto r = p.parse(more);
  EXPECT_EQ(r.status, parse_status::complete);
  EXPECT_EQ(r.consumed, k_rfc_request.size());
  EXPECT_EQ(p.head().target().data(), buf.data() + 4);  // still the buffer that completed it
}

TEST(http_head, moved_parser_keeps_its_head) {
  request_parser p;
  ASSERT_EQ(p.parse(k_rfc_request).status, parse_status::complete);
  request_parser q = std::move(p);
  EXPECT_EQ(q.head().find("Host"), "server.example.com");
}

// --- limits: exactly at each boundary passes, one past fails -----------------

std::string header_of_size(std::size_t line_length) {
  // "X: " plus filler, so the line (CRLF excluded) is line_length bytes.
  return "X: " + std::string(line_length - 3, 'v') + "\r\n";
}

TEST(http_head, head_size_limit_at_and_past_the_boundary) {
  const http_limits limits{256, 64, 8192};
  std::string head = "GET / HTTP/1.1\r\n";
  const std::size_t fill = limits.max_head_size - head.size() - 2 - 2;  // field CRLF, final CRLF
  head += header_of_size(fill) + "\r\n";
  ASSERT_EQ(head.size(), limits.max_head_size);
  request_parser at(limits);
  EXPECT_EQ(at.parse(head + std::string(k_frame)).status, parse_status::complete);

  std::string over = "GET / HTTP/1.1\r\n" + header_of_size(fill + 1) + "\r\n";
  request_parser past(limits);
  const auto r = past.parse(over);
  EXPECT_EQ(r.err, error::head_too_large);
  EXPECT_EQ(http_status_for(r.err), 431);
}

TEST(http_head, head_size_limit_fails_without_waiting_for_the_end) {
  const http_limits limits{256, 64, 8192};
  request_parser p(limits);
  std::string partial = "GET / HTTP/1.1\r\nX: " + std::string(300, 'v');
  EXPECT_EQ(p.parse(std::string_view(partial).substr(0, 256)).err, error::head_too_large);
  request_parser q(limits);
  // Exactly the limit received, no end yet: the end would make it longer.
  EXPECT_EQ(q.parse(std::string_view(partial).substr(0, 255)).status, parse_status::need_more);
  EXPECT_EQ(q.parse(std::string_view(partial).substr(0, 256)).status, parse_status::error);
}

TEST(http_head, header_count_limit_at_and_past_the_boundary) {
  const http_limits limits{16384, 4, 8192};
  std::string fields;
  for (char c = '0'; c < '4'; ++c) fields.append("H").append(1, c).append(": v\r\n");
  request_parser at(limits);
  const auto text = request_with(fields);  // outlives the head's views
  ASSERT_EQ(at.parse(text).status, parse_status::complete);
  EXPECT_EQ(at.head().headers().size(), 4u);

  request_parser past(limits);
  const auto r = past.parse(request_with(fields + "H4: v\r\n"));
  EXPECT_EQ(r.err, error::too_many_headers);
  EXPECT_EQ(http_status_for(r.err), 431);

  request_parser none({16384, 0, 8192});
  EXPECT_EQ(none.parse("GET / HTTP/1.1\r\n\r\n").status, parse_status::complete);
  none.reset();
  EXPECT_EQ(none.parse("GET / HTTP/1.1\r\nA: b\r\n\r\n").err, error::too_many_headers);
}

TEST(http_head, header_line_limit_at_and_past_the_boundary) {
  const http_limits limits{16384, 64, 100};
  request_parser at(limits);
  const auto text = request_with(header_of_size(100));
  ASSERT_EQ(at.parse(text).status, parse_status::complete);
  EXPECT_EQ(at.head().find("x")->size(), 97u);

  request_parser past(limits);
  const auto r = past.parse(request_with(header_of_size(101)));
  EXPECT_EQ(r.err, error::header_line_too_long);
  EXPECT_EQ(http_status_for(r.err), 431);

  // Fails while the line is still arriving, once it cannot fit any more.
  request_parser early(limits);
  const std::string partial = "GET / HTTP/1.1\r\nX: " + std::string(200, 'v');
  EXPECT_EQ(early.parse(partial).err, error::header_line_too_long);
}

TEST(http_head, request_line_limit_at_and_past_the_boundary) {
  const http_limits limits{16384, 64, 64};
  const auto line = [](std::size_t n) {
    return "GET /" + std::string(n - 14, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  };
  request_parser at(limits);
  const auto text = line(64);
  ASSERT_EQ(at.parse(text).status, parse_status::complete);
  EXPECT_EQ(at.head().target().size(), 64u - 13u);

  request_parser past(limits);
  const auto r = past.parse(line(65));
  EXPECT_EQ(r.err, error::request_line_too_long);
  EXPECT_EQ(http_status_for(r.err), 414);
}

// --- lookups -----------------------------------------------------------------

TEST(http_head, field_names_are_case_insensitive) {
  request_parser p;
  const auto text = request_with("Host: a\r\nX-Dup: 1\r\nx-dup: 2\r\n");
  ASSERT_EQ(p.parse(text).status, parse_status::complete);
  const auto& h = p.head();
  EXPECT_EQ(h.find("HOST"), "a");
  EXPECT_EQ(h.find("host"), "a");
  EXPECT_EQ(h.find("X-DUP"), "1");  // the first field wins
  EXPECT_EQ(h.count("x-Dup"), 2u);
  EXPECT_EQ(h.count("Hos"), 0u);
}

TEST(http_head, has_token_reads_comma_lists_across_fields) {
  struct row {
    std::string_view fields;
    bool expected;
  };
  const row rows[] = {
      {"Connection: Upgrade\r\n", true},
      {"Connection: keep-alive, Upgrade\r\n", true},
      {"Connection: keep-alive,upgrade\r\n", true},
      {"Connection: UPGRADE\r\n", true},
      {"Connection:  , \t upgrade \t, \r\n", true},
      {"Connection: keep-alive\r\nConnection: upgrade\r\n", true},
      {"Connection: keep-alive\r\n", false},
      {"Connection: upgraded\r\n", false},
      {"Connection: up grade\r\n", false},
      {"Connection: \"upgrade\"\r\n", false},
      {"Connexion: upgrade\r\n", false},
      {"", false},
  };
  for (const auto& row : rows) {
    request_parser p;
    const auto text = request_with(row.fields);
    ASSERT_EQ(p.parse(text).status, parse_status::complete) << row.fields;
    EXPECT_EQ(p.head().has_token("connection", "Upgrade"), row.expected) << row.fields;
  }
}

TEST(http_head, cookie_lookup_follows_rfc_6265) {
  struct row {
    std::string_view fields, name;
    std::optional<std::string_view> expected;
  };
  const row rows[] = {
      {"Cookie: a=1; b=2\r\n", "b", "2"},
      {"Cookie: a=1;b=2\r\n", "a", "1"},
      {"Cookie: token=eyJ.x.y==\r\n", "token", "eyJ.x.y=="},
      {"Cookie: q=\"quoted\"\r\n", "q", "quoted"},
      {"Cookie: empty=; b=2\r\n", "empty", ""},
      {"Cookie: A=1\r\n", "a", std::nullopt},  // names are case-sensitive
      {"Cookie: flag; b=2\r\n", "flag", std::nullopt},
      {"Cookie: ab=1\r\n", "a", std::nullopt},
      {"Cookie: a=1\r\ncookie: b=2\r\n", "b", "2"},
      {"Cookie: b=first; b=second\r\n", "b", "first"},
      {"X-Cookie: b=2\r\n", "b", std::nullopt},
  };
  for (const auto& row : rows) {
    request_parser p;
    const auto text = request_with(row.fields);
    ASSERT_EQ(p.parse(text).status, parse_status::complete);
    EXPECT_EQ(p.head().cookie(row.name), row.expected) << row.fields;
  }
}

TEST(http_head, token_helpers) {
  EXPECT_TRUE(is_token("permessage-deflate"));
  EXPECT_TRUE(is_token("!#$%&'*+-.^_`|~09azAZ"));
  EXPECT_FALSE(is_token(""));
  EXPECT_FALSE(is_token("a b"));
  EXPECT_FALSE(is_token("a,b"));
  EXPECT_FALSE(is_token("\"a\""));
  EXPECT_TRUE(is_field_value("text/plain; q=\"1\"\tx \xff"));
  EXPECT_FALSE(is_field_value("a\r\nSet-Cookie: x"));
  EXPECT_FALSE(is_field_value(std::string_view("a\0b", 3)));
  EXPECT_TRUE(ascii_iequals("WebSocket", "websocket"));
  EXPECT_FALSE(ascii_iequals("websockets", "websocket"));
  list_cursor list(" a ,, b\t,");
  std::string_view e;
  ASSERT_TRUE(list.next(e));
  EXPECT_EQ(e, "a");
  ASSERT_TRUE(list.next(e));
  EXPECT_EQ(e, "b");
  EXPECT_FALSE(list.next(e));
}

// --- request bodies ----------------------------------------------------------

// The framing request_body_length gives for a request with `fields`.
body_length body_of(std::string_view fields) {
  request_parser p;
  const auto text = "POST / HTTP/1.1\r\n" + std::string(fields) + "\r\n";
  const auto r = p.parse(text);
  EXPECT_EQ(r.status, parse_status::complete) << fields;
  return request_body_length(p.head());
}

TEST(http_head, body_length_reads_agreeing_content_lengths) {
  struct row {
    std::string_view fields;
    std::uint64_t bytes;
  };
  const row rows[] = {
      {"Content-Length: 0\r\n", 0},
      {"Content-Length: 5\r\n", 5},
      {"content-length:\t12 \r\n", 12},
      {"Content-Length: 005\r\n", 5},  // leading zeros are digits too
      {"Content-Length: 5\r\nContent-Length: 5\r\n", 5},
      {"Content-Length: 5, 5\r\n", 5},
      {"Content-Length: 5,,5,\r\n", 5},  // empty list elements are skipped
      {"Content-Length: 5\r\nX-Other: 6\r\nCONTENT-LENGTH: 05, 5\r\n", 5},
      {"Content-Length: 18446744073709551615\r\n", 18446744073709551615u},
  };
  for (const auto& row : rows) {
    const auto b = body_of(row.fields);
    EXPECT_EQ(b.framing, body_framing::content_length) << row.fields;
    EXPECT_EQ(b.bytes, row.bytes) << row.fields;
  }
}

TEST(http_head, body_length_saturates_past_64_bits) {
  constexpr auto k_max = std::numeric_limits<std::uint64_t>::max();
  for (const std::string_view fields :
       {"Content-Length: 18446744073709551616\r\n", "Content-Length: 99999999999999999999999\r\n",
        // Both saturate, so they agree: over every limit either way.
        "Content-Length: 18446744073709551616, 18446744073709551617\r\n"}) {
    const auto b = body_of(fields);
    EXPECT_EQ(b.framing, body_framing::content_length) << fields;
    EXPECT_EQ(b.bytes, k_max) << fields;
  }
}

TEST(http_head, body_length_refuses_malformed_or_disagreeing_lengths) {
  for (const std::string_view fields : {
           "Content-Length: abc\r\n",
           "Content-Length: -1\r\n",
           "Content-Length: +5\r\n",
           "Content-Length: 5 5\r\n",
           "Content-Length: 0x10\r\n",
           "Content-Length: 1e3\r\n",
           "Content-Length: 5;\r\n",
           "Content-Length: \"5\"\r\n",
           "Content-Length:\r\n",
           "Content-Length: ,\r\n",
           "Content-Length: 5\r\nContent-Length:\r\n",
           "Content-Length: 5\r\nContent-Length: 6\r\n",
           "Content-Length: 5, 6\r\n",
           "Content-Length: 5, x\r\n",
           "Content-Length: 0\r\nContent-Length: 18446744073709551616\r\n",
       }) {
    const auto b = body_of(fields);
    EXPECT_EQ(b.framing, body_framing::bad) << fields;
    EXPECT_EQ(b.bytes, 0u) << fields;
  }
}

TEST(http_head, body_length_transfer_encoding_overrides_content_length) {
  for (const std::string_view fields : {
           "Transfer-Encoding: chunked\r\n",
           "transfer-encoding: gzip, chunked\r\n",
           "Transfer-Encoding: gzip\r\n",
           "Transfer-Encoding:\r\n",
           "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
           "Transfer-Encoding: chunked\r\nContent-Length: nonsense\r\n",
       }) {
    const auto b = body_of(fields);
    EXPECT_EQ(b.framing, body_framing::transfer_coded) << fields;
    EXPECT_EQ(b.bytes, 0u) << fields;
  }
}

TEST(http_head, body_length_is_none_without_either_field) {
  for (const std::string_view fields :
       {"", "Host: x\r\n", "Content-Length-X: 5\r\n", "Transfer-Encodings: chunked\r\n"}) {
    const auto b = body_of(fields);
    EXPECT_EQ(b.framing, body_framing::none) << fields;
    EXPECT_EQ(b.bytes, 0u) << fields;
  }
}

// --- responses ---------------------------------------------------------------

TEST(http_head, parses_status_lines) {
  struct row {
    std::string_view line;
    int status;
    std::string_view reason;
  };
  const row rows[] = {
      {"HTTP/1.1 101 Switching Protocols", 101, "Switching Protocols"},
      {"HTTP/1.1 101", 101, ""},
      {"HTTP/1.1 101 ", 101, ""},
      {"HTTP/1.0 404 Not\tFound \xc3\xa9", 404, "Not\tFound \xc3\xa9"},
  };
  for (const auto& row : rows) {
    response_parser p;
    const auto input = std::string(row.line) + "\r\nUpgrade: websocket\r\n\r\n";
    const auto received = input + std::string(k_frame);  // outlives the head's views
    const auto r = p.parse(received);
    ASSERT_EQ(r.status, parse_status::complete) << row.line;
    EXPECT_EQ(r.consumed, input.size());
    EXPECT_EQ(p.head().status(), row.status);
    EXPECT_EQ(p.head().reason(), row.reason);
    EXPECT_EQ(p.head().find("upgrade"), "websocket");
    EXPECT_TRUE(p.head().has_token("Upgrade", "WebSocket"));
  }
}

TEST(http_head, rejects_malformed_status_lines) {
  struct row {
    std::string_view input;
    error expected;
  };
  const row rows[] = {
      {"HTTP/1.1 10 Short\r\n\r\n", error::bad_status_line},
      {"HTTP/1.1 1011\r\n\r\n", error::bad_status_line},
      {"HTTP/1.1 abc\r\n\r\n", error::bad_status_line},
      {"HTTP/1.1\r\n\r\n", error::bad_status_line},
      {"XTTP/1.1 101 X\r\n\r\n", error::bad_status_line},
      {"\r\nHTTP/1.1 101 X\r\n\r\n", error::bad_status_line},
      {"HTTP/1.1 101 ok\x01\r\n\r\n", error::bad_status_line},
      {"HTTP/1.x 101 X\r\n\r\n", error::bad_http_version},
      {"HTTP/11 101 X\r\n\r\n", error::bad_http_version},
      {"HTTP/1.1 101 X\r\nUpgrade : x\r\n\r\n", error::whitespace_before_colon},
      {"HTTP/1.1 101 X\nUpgrade: x\r\n\r\n", error::bare_lf},
  };
  for (const auto& row : rows) {
    response_parser p;
    EXPECT_EQ(p.parse(row.input).err, row.expected) << testing::PrintToString(row.input);
  }
  response_parser long_line({16384, 64, 32});
  EXPECT_EQ(long_line.parse("HTTP/1.1 101 " + std::string(40, 'x') + "\r\n\r\n").err,
            error::header_line_too_long);
}

TEST(http_head, response_byte_at_a_time_matches_one_shot) {
  const std::string input =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n" +
      std::string(k_frame);
  response_parser p;
  std::string buf;
  const auto r = feed(p, input, buf, [] { return std::size_t{1}; });
  ASSERT_EQ(r.status, parse_status::complete);
  EXPECT_EQ(r.consumed, input.size() - k_frame.size());
  EXPECT_EQ(p.head().find("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

}  // namespace
}  // namespace switchboard::protocol
