// url_test.cpp — parse_url() over a table of good and bad URLs, and resolve()
// for numeric addresses and localhost.
#include "switchboard/client/url.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include "switchboard/client/error.hpp"

namespace switchboard::client {
namespace {

struct good_case {
  const char* text;
  bool secure;
  const char* host;
  std::uint16_t port;
  const char* target;
  const char* host_header;
};

class good_url : public ::testing::TestWithParam<good_case> {};

TEST_P(good_url, Parses) {
  const good_case& c = GetParam();
  url out;
  ASSERT_FALSE(parse_url(c.text, out)) << c.text;
  EXPECT_EQ(out.secure, c.secure);
  EXPECT_EQ(out.host, c.host);
  EXPECT_EQ(out.port, c.port);
  EXPECT_EQ(out.target, c.target);
  EXPECT_EQ(out.host_header, c.host_header);
}

INSTANTIATE_TEST_SUITE_P(
    table, good_url,
    ::testing::Values(
        good_case{"ws://127.0.0.1:9000/chat?room=1", false, "127.0.0.1", 9000, "/chat?room=1",
                  "127.0.0.1:9000"},
        good_case{"ws://example.com", false, "example.com", 80, "/", "example.com"},
        good_case{"ws://example.com:80/", false, "example.com", 80, "/", "example.com"},
        good_case{"WS://Example.COM/a/b", false, "Example.COM", 80, "/a/b", "Example.COM"},
        good_case{"ws://localhost:8080?x=y", false, "localhost", 8080, "/?x=y", "localhost:8080"},
        good_case{"ws://[::1]:9000/ws", false, "::1", 9000, "/ws", "[::1]:9000"},
        good_case{"ws://[::1]", false, "::1", 80, "/", "[::1]"},
        good_case{"wss://example.com/s", true, "example.com", 443, "/s", "example.com"},
        good_case{"wss://example.com:8443", true, "example.com", 8443, "/", "example.com:8443"},
        good_case{"ws://a-b_c.d:1/%20?q=%41", false, "a-b_c.d", 1, "/%20?q=%41", "a-b_c.d:1"}));

struct bad_case {
  const char* text;
  client_error expected;
};

class bad_url : public ::testing::TestWithParam<bad_case> {};

TEST_P(bad_url, IsRejected) {
  url out;
  EXPECT_EQ(parse_url(GetParam().text, out), make_error_code(GetParam().expected))
      << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(
    table, bad_url,
    ::testing::Values(bad_case{"", client_error::bad_url},
                      bad_case{"127.0.0.1:80", client_error::bad_url},
                      bad_case{"http://example.com/", client_error::unsupported_scheme},
                      bad_case{"ftp://x/", client_error::unsupported_scheme},
                      bad_case{"ws://", client_error::bad_url},
                      bad_case{"ws:///path", client_error::bad_url},
                      bad_case{"ws://:80/", client_error::bad_url},
                      bad_case{"ws://host:0/", client_error::bad_url},
                      bad_case{"ws://host:65536/", client_error::bad_url},
                      bad_case{"ws://host:12ab/", client_error::bad_url},
                      bad_case{"ws://host:/", client_error::bad_url},
                      bad_case{"ws://::1/", client_error::bad_url},
                      bad_case{"ws://[::1/", client_error::bad_url},
                      bad_case{"ws://[example.com]/", client_error::bad_url},
                      bad_case{"ws://[::1]x/", client_error::bad_url},
                      bad_case{"ws://user:pw@host/", client_error::bad_url},
                      bad_case{"ws://host/a b", client_error::bad_url},
                      bad_case{"ws://host/a\r\nX: y", client_error::bad_url},
                      bad_case{"ws://host/#frag", client_error::bad_url},
                      bad_case{"ws://ho st/", client_error::bad_url}));

TEST(resolve, NumericAddressesNeedNoLookup) {
  std::vector<net::endpoint> out;
  ASSERT_FALSE(resolve("127.0.0.1", 9000, out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].to_string(), "127.0.0.1:9000");
  ASSERT_FALSE(resolve("::1", 9001, out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].to_string(), "[::1]:9001");
}

TEST(resolve, LocalhostIsLoopbackV4ThenV6) {
  std::vector<net::endpoint> out;
  ASSERT_FALSE(resolve("LocalHost", 80, out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], net::endpoint::loopback_v4(80));
  EXPECT_EQ(out[1], net::endpoint::loopback_v6(80));
}

TEST(resolve, UnknownNameFails) {
  std::vector<net::endpoint> out;
  // .invalid never resolves (RFC 6761 §6.4).
  EXPECT_EQ(resolve("no-such-host.invalid", 80, out), make_error_code(client_error::resolve_failed));
  EXPECT_TRUE(out.empty());
}

TEST(client_error, MessagesAreSentences) {
  EXPECT_EQ(make_error_code(client_error::tls_not_supported).message(),
            "wss:// needs a TLS context (client_options::tls)");
  EXPECT_STREQ(client_category().name(), "switchboard.client");
}

}  // namespace
}  // namespace switchboard::client
