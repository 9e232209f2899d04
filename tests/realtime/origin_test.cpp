// origin_test.cpp — the Origin check of /ws (src/realtime/origin.hpp):
// same-origin by default, "*" only when listed alone, exact entries and
// "https://*.example.com" patterns, and the allow-list entries refused at start.
#include "origin.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace switchboard::realtime::detail {
namespace {

using list = std::vector<std::string>;

TEST(origin, parse_splits_scheme_host_and_port) {
  auto o = parse_origin("https://app.example.com");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->scheme, "https");
  EXPECT_EQ(o->host, "app.example.com");
  EXPECT_EQ(o->port, 443);
  EXPECT_FALSE(o->explicit_port);
  o = parse_origin("http://127.0.0.1:8080");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->port, 8080);
  EXPECT_TRUE(o->explicit_port);
  o = parse_origin("http://[::1]:9000");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->host, "[::1]");
  EXPECT_EQ(o->port, 9000);
  for (const char* bad : {"null", "", "https://", "https://a.example/", "https://a.example/x",
                          "ftp://a.example", "https://a.example:0", "https://a.example:65536",
                          "https://a.example:x", "https://u@a.example", "https://[::1",
                          "https://a example", "file://"}) {
    EXPECT_FALSE(parse_origin(bad)) << bad;
  }
}

// Issue 14 (5): with an empty list any Origin used to be accepted, so a page
// of another site could open /ws with the victim's cookie.
TEST(origin, empty_list_allows_only_the_requests_own_host) {
  const list none;
  EXPECT_FALSE(origin_allowed(none, "https://evil.example", "app.example.com", false));
  EXPECT_FALSE(origin_allowed(none, "https://evil.example", "app.example.com", true));
  EXPECT_FALSE(origin_allowed(none, "null", "app.example.com", false));
  // Same host and port.
  EXPECT_TRUE(origin_allowed(none, "http://127.0.0.1:8080", "127.0.0.1:8080", false));
  EXPECT_TRUE(origin_allowed(none, "http://APP.example.com", "app.EXAMPLE.com", false));
  EXPECT_FALSE(origin_allowed(none, "http://127.0.0.1:8081", "127.0.0.1:8080", false));
  EXPECT_FALSE(origin_allowed(none, "http://localhost:8080", "127.0.0.1:8080", false));
  EXPECT_TRUE(origin_allowed(none, "http://[::1]:8080", "[::1]:8080", false));
  // Host without a port: the Origin's scheme's default port (a TLS proxy in front).
  EXPECT_TRUE(origin_allowed(none, "https://app.example.com", "app.example.com", false));
  EXPECT_TRUE(origin_allowed(none, "http://app.example.com", "app.example.com", false));
  EXPECT_FALSE(origin_allowed(none, "https://app.example.com:8443", "app.example.com", false));
  // Over TLS the page must be https.
  EXPECT_TRUE(origin_allowed(none, "https://app.example.com", "app.example.com", true));
  EXPECT_FALSE(origin_allowed(none, "http://app.example.com", "app.example.com", true));
  EXPECT_TRUE(origin_allowed(none, "https://app.example.com:8443", "app.example.com:8443", true));
  // No Host to compare with: refused. No Origin: not a browser, allowed.
  EXPECT_FALSE(origin_allowed(none, "https://app.example.com", "", false));
  EXPECT_TRUE(origin_allowed(none, "", "app.example.com", false));
}

TEST(origin, star_alone_allows_any_origin) {
  EXPECT_TRUE(origin_allowed({"*"}, "https://evil.example", "app.example.com", false));
  EXPECT_TRUE(origin_allowed({"*"}, "null", "app.example.com", false));
}

TEST(origin, entries_match_scheme_host_and_port_exactly) {
  const list l = {"https://app.example.com", "http://127.0.0.1:3000"};
  EXPECT_TRUE(origin_allowed(l, "https://app.example.com", "api.example.com", false));
  EXPECT_TRUE(origin_allowed(l, "https://app.example.com:443", "api.example.com", false));
  EXPECT_TRUE(origin_allowed(l, "http://127.0.0.1:3000", "x", false));
  EXPECT_FALSE(origin_allowed(l, "http://app.example.com", "api.example.com", false));
  EXPECT_FALSE(origin_allowed(l, "https://app.example.com:8443", "api.example.com", false));
  EXPECT_FALSE(origin_allowed(l, "https://evil.app.example.com", "api.example.com", false));
  EXPECT_FALSE(origin_allowed(l, "https://app.example.com.evil", "api.example.com", false));
  // A list replaces same-origin: the server's own page must be listed too.
  EXPECT_FALSE(origin_allowed(l, "https://api.example.com", "api.example.com", false));
}

TEST(origin, wildcard_entry_matches_subdomains_only) {
  const list l = {"https://*.example.com"};
  EXPECT_TRUE(origin_allowed(l, "https://app.example.com", "h", false));
  EXPECT_TRUE(origin_allowed(l, "https://a.b.example.com", "h", false));
  EXPECT_FALSE(origin_allowed(l, "https://example.com", "h", false));
  EXPECT_FALSE(origin_allowed(l, "https://.example.com", "h", false));
  EXPECT_FALSE(origin_allowed(l, "https://evilexample.com", "h", false));
  EXPECT_FALSE(origin_allowed(l, "http://app.example.com", "h", false));
  EXPECT_FALSE(origin_allowed(l, "https://app.example.com:8443", "h", false));
  EXPECT_TRUE(origin_allowed({"http://*.example.com:8080"}, "http://a.example.com:8080", "h", false));
}

// Issue 14 (7): entries that could never match were accepted silently.
TEST(origin, allow_list_entries_are_checked) {
  for (const char* good : {"*", "https://app.example.com", "http://127.0.0.1:8080",
                           "https://*.example.com", "http://[::1]:3000"}) {
    EXPECT_EQ(check_allowed_origin(good), "") << good;
  }
  EXPECT_EQ(check_allowed_origin("https://App.Example.com"),
            "'https://App.Example.com' must be lower case: write 'https://app.example.com'");
  EXPECT_EQ(check_allowed_origin("https://app.example.com/"),
            "'https://app.example.com/' has a path or a trailing slash; an origin has none: "
            "write 'https://app.example.com'");
  EXPECT_EQ(check_allowed_origin("https://app.example.com/chat"),
            "'https://app.example.com/chat' has a path or a trailing slash; an origin has none: "
            "write 'https://app.example.com'");
  EXPECT_EQ(check_allowed_origin("app.example.com"),
            "'app.example.com' is not an origin: write scheme://host[:port], e.g. "
            "'https://app.example.com'");
  EXPECT_EQ(check_allowed_origin("ws://app.example.com"),
            "'ws://app.example.com': the scheme must be http or https");
  EXPECT_EQ(check_allowed_origin("https://app.*.com"),
            "'https://app.*.com': '*' is allowed only as the whole list entry \"*\" or as the "
            "first label ('https://*.example.com')");
  EXPECT_EQ(check_allowed_origin("https://*.com"),
            "'https://*.com': a wildcard needs a domain of at least two labels "
            "('https://*.example.com')");
  EXPECT_EQ(check_allowed_origin("https://a.example:99999"),
            "'https://a.example:99999' is not an origin: write scheme://host[:port] (a port from "
            "1 to 65535)");
}

}  // namespace
}  // namespace switchboard::realtime::detail
