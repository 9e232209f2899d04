// address_range_test.cpp — server.trusted_proxies entries (src/realtime/
// address_range.hpp): single addresses and CIDR ranges of both families, the
// refusals with their messages, and matching, IPv4-mapped peers included.
#include "address_range.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace switchboard::realtime::detail {
namespace {

bool in(std::string_view range, std::string_view address) {
  std::string error;
  const auto r = parse_address_range(range, error);
  EXPECT_TRUE(r) << range << ": " << error;
  const auto ip = parse_ip(address);
  EXPECT_TRUE(ip) << address;
  return r && ip && range_contains(*r, *ip);
}

// "'TEXT'" + rest (append: GCC 12's -Wrestrict misfires on "lit" + std::string).
std::string quoted(std::string_view text, std::string_view rest) {
  std::string out;
  out.push_back('\'');
  out.append(text);
  out.push_back('\'');
  out.append(rest);
  return out;
}

std::string refusal(std::string_view text) {
  std::string error;
  EXPECT_FALSE(parse_address_range(text, error)) << text;
  return error;
}

TEST(address_range, single_addresses_match_only_themselves) {
  EXPECT_TRUE(in("10.0.0.5", "10.0.0.5"));
  EXPECT_FALSE(in("10.0.0.5", "10.0.0.6"));
  EXPECT_TRUE(in("::1", "::1"));
  EXPECT_TRUE(in("::1", "0:0:0:0:0:0:0:1"));  // the same address written out
  EXPECT_FALSE(in("::1", "::2"));
  EXPECT_FALSE(in("::1", "127.0.0.1"));
}

TEST(address_range, ipv4_ranges) {
  EXPECT_TRUE(in("10.0.0.0/8", "10.0.0.0"));
  EXPECT_TRUE(in("10.0.0.0/8", "10.255.255.255"));
  EXPECT_FALSE(in("10.0.0.0/8", "11.0.0.0"));
  EXPECT_FALSE(in("10.0.0.0/8", "9.255.255.255"));
  // A prefix that is not a byte boundary.
  EXPECT_TRUE(in("172.16.0.0/12", "172.31.255.254"));
  EXPECT_FALSE(in("172.16.0.0/12", "172.32.0.1"));
  EXPECT_FALSE(in("172.16.0.0/12", "172.15.255.255"));
  EXPECT_TRUE(in("192.168.1.128/25", "192.168.1.200"));
  EXPECT_FALSE(in("192.168.1.128/25", "192.168.1.127"));
  EXPECT_TRUE(in("10.0.0.5/32", "10.0.0.5"));
  EXPECT_FALSE(in("10.0.0.5/32", "10.0.0.4"));
  EXPECT_TRUE(in("0.0.0.0/0", "203.0.113.9"));
  // Every IPv4 range stays within IPv4: /0 does not take IPv6 peers.
  EXPECT_FALSE(in("0.0.0.0/0", "2001:db8::1"));
}

TEST(address_range, ipv6_ranges) {
  EXPECT_TRUE(in("::1/128", "::1"));
  EXPECT_FALSE(in("::1/128", "::"));
  EXPECT_TRUE(in("fd00::/8", "fdff:ffff::1"));
  EXPECT_FALSE(in("fd00::/8", "fc00::1"));
  EXPECT_TRUE(in("2001:db8::/33", "2001:db8:7fff::1"));
  EXPECT_FALSE(in("2001:db8::/33", "2001:db8:8000::1"));
  EXPECT_TRUE(in("::/0", "2001:db8::1"));
  EXPECT_TRUE(in("::/0", "10.0.0.1"));  // held as ::ffff:10.0.0.1
}

// A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d: the IPv4 entry
// must still match it.
TEST(address_range, ipv4_mapped_peers_match_ipv4_entries) {
  EXPECT_TRUE(in("10.0.0.0/8", "::ffff:10.1.2.3"));
  EXPECT_TRUE(in("127.0.0.1", "::ffff:127.0.0.1"));
  EXPECT_FALSE(in("10.0.0.0/8", "::ffff:11.1.2.3"));
  EXPECT_TRUE(in("::ffff:10.0.0.0/104", "10.200.0.1"));
  // Not mapped: ::10.1.2.3 (the deprecated IPv4-compatible form) is not IPv4.
  EXPECT_FALSE(in("10.0.0.0/8", "::10.1.2.3"));
}

TEST(address_range, refusals_say_why) {
  const std::string not_an_address =
      "is not an IPv4 or IPv6 address or CIDR range (\"10.0.0.5\", \"10.0.0.0/8\", \"fd00::/8\"; "
      "no names)";
  for (const char* bad :
       {"", "proxy.internal", "localhost", "10.0.0", "10.0.0.256", "1.2.3.4.5", "::g", "[::1]",
        "10.0.0.5:80", "fe80::1%eth0", " 10.0.0.5", "10.0.0.5 ", "/8", "10.0.0.0/8/8"}) {
    const std::string e = refusal(bad);
    if (std::string_view(bad) == "10.0.0.0/8/8") {
      EXPECT_EQ(e, "'10.0.0.0/8/8': the prefix length after '/' must be 0 to 32 for IPv4");
    } else {
      EXPECT_EQ(e, quoted(bad, " " + not_an_address)) << bad;
    }
  }
  for (const char* bad : {"10.0.0.0/", "10.0.0.0/33", "10.0.0.0/08", "10.0.0.0/-1", "10.0.0.0/+8",
                          "10.0.0.0/ 8", "10.0.0.0/8x", "10.0.0.0/1000"}) {
    EXPECT_EQ(refusal(bad), quoted(bad, ": the prefix length after '/' must be 0 to 32 for IPv4"));
  }
  for (const char* bad : {"::/129", "::/", "fd00::/0128"}) {
    EXPECT_EQ(refusal(bad), quoted(bad, ": the prefix length after '/' must be 0 to 128 for IPv6"));
  }
  EXPECT_EQ(refusal("10.1.2.3/8"),
            "'10.1.2.3/8' has bits set past its prefix: did you mean 10.0.0.0/8?");
  EXPECT_EQ(refusal("192.168.1.1/25"),
            "'192.168.1.1/25' has bits set past its prefix: did you mean 192.168.1.0/25?");
  EXPECT_EQ(refusal("fd00::1/8"),
            "'fd00::1/8' has bits set past its prefix: did you mean fd00::/8?");
  EXPECT_EQ(refusal("::1/0"), "'::1/0' has bits set past its prefix: did you mean ::/0?");
}

// Found by address_range_fuzz: inet_pton stops at a NUL, so "::1\0junk" read as ::1.
TEST(address_range, embedded_nul_is_not_an_address) {
  using namespace std::string_view_literals;
  EXPECT_FALSE(parse_ip("::1\0junk"sv));
  EXPECT_FALSE(parse_ip("10.0.0.1\0"sv));
  std::string error;
  EXPECT_FALSE(parse_address_range("10.0.0.0\0/8"sv, error));
  EXPECT_FALSE(parse_host_port("127.0.0.1\0:9100"sv, error));
  EXPECT_FALSE(address_set(std::vector<std::string>{"::1"}).contains("::1\0x"sv));
}

TEST(address_range, set_matches_any_entry_and_nothing_else) {
  const address_set none;
  EXPECT_TRUE(none.empty());
  EXPECT_FALSE(none.contains("127.0.0.1"));
  const address_set set(std::vector<std::string>{"10.0.0.0/8", "::1", "192.0.2.7"});
  EXPECT_FALSE(set.empty());
  EXPECT_TRUE(set.contains("10.9.8.7"));
  EXPECT_TRUE(set.contains("::1"));
  EXPECT_TRUE(set.contains("192.0.2.7"));
  EXPECT_TRUE(set.contains("::ffff:192.0.2.7"));
  EXPECT_FALSE(set.contains("192.0.2.8"));
  EXPECT_FALSE(set.contains("127.0.0.1"));
  EXPECT_FALSE(set.contains(""));
  EXPECT_FALSE(set.contains("unknown"));
  EXPECT_FALSE(set.contains("10.9.8.7:80"));
}

TEST(host_port, numeric_hosts_with_a_port) {
  std::string error;
  auto hp = parse_host_port("127.0.0.1:9100", error);
  ASSERT_TRUE(hp) << error;
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 9100);
  hp = parse_host_port("[::1]:65535", error);
  ASSERT_TRUE(hp) << error;
  EXPECT_EQ(hp->host, "::1");
  EXPECT_EQ(hp->port, 65535);
  hp = parse_host_port("0.0.0.0:1", error);
  ASSERT_TRUE(hp) << error;
  EXPECT_EQ(hp->port, 1);
}

TEST(host_port, refusals_say_why) {
  const std::string not_host_port =
      " is not HOST:PORT with a numeric host (\"127.0.0.1:9100\", \"[::1]:9100\")";
  for (const char* bad :
       {"", "9100", ":9100", "localhost:9100", "127.0.0.1", "::1:9100", "[127.0.0.1]:9100", "[::1]",
        "[::1:9100", "127.0.0.1 :9100", "host.example:80"}) {
    std::string error;
    EXPECT_FALSE(parse_host_port(bad, error)) << bad;
    EXPECT_EQ(error, quoted(bad, not_host_port)) << bad;
  }
  for (const char* bad : {"127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:09100",
                          "127.0.0.1:+80", "127.0.0.1:80x", "[::1]:123456"}) {
    std::string error;
    EXPECT_FALSE(parse_host_port(bad, error)) << bad;
    EXPECT_EQ(error, quoted(bad, ": the port must be 1 to 65535")) << bad;
  }
}

}  // namespace
}  // namespace switchboard::realtime::detail
