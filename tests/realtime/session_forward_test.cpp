// session_forward_test.cpp — the node messages of HTTP sessions across nodes
// (src/realtime/session_forward.hpp): every kind encoded and parsed back,
// each malformed header refused with its reason, session ids that name a
// node, and the home node's relay_sink over a broker that reaches no node.
#include "session_forward.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "memory_broker.hpp"

namespace switchboard::realtime::detail {
namespace {

constexpr std::string_view k_node = "0123456789abcdef";
constexpr std::string_view k_session = "0123456789abcdef.00112233445566778899aabbccddeeff";

TEST(session_forward_test, every_kind_round_trips) {
  node_message m;
  std::string text = node_request(k_node, 7, "send", k_session, "-", "{\"id\":1}\n{\"id\":2}");
  ASSERT_EQ(parse_node_message(text, m), "");
  EXPECT_EQ(m.kind, 'q');
  EXPECT_EQ(m.from, k_node);
  EXPECT_EQ(m.rid, 7u);
  EXPECT_EQ(m.verb, "send");
  EXPECT_EQ(m.session, k_session);
  EXPECT_EQ(m.arg, "-");
  EXPECT_EQ(m.body, "{\"id\":1}\n{\"id\":2}");

  text = node_request(k_node, 8, "poll", k_session, "42", {});
  ASSERT_EQ(parse_node_message(text, m), "");
  EXPECT_EQ(m.arg, "42");

  text = node_answer(k_node, 9, 202, "{\"accepted\":2}");
  ASSERT_EQ(parse_node_message(text, m), "");
  EXPECT_EQ(m.kind, 'a');
  EXPECT_EQ(m.status, 202);
  EXPECT_EQ(m.body, "{\"accepted\":2}");

  text = node_stream_message('w', k_node, 10, "event: message\nid: 1\ndata: {}\n\n");
  ASSERT_EQ(parse_node_message(text, m), "");
  EXPECT_EQ(m.kind, 'w');
  EXPECT_EQ(m.body, "event: message\nid: 1\ndata: {}\n\n");
  for (const char kind : {'e', 'c'}) {
    ASSERT_EQ(parse_node_message(node_stream_message(kind, k_node, 11), m), "");
    EXPECT_EQ(m.kind, kind);
    EXPECT_EQ(m.rid, 11u);
  }
}

TEST(session_forward_test, malformed_messages_are_refused_with_the_reason) {
  const std::string s(k_session);
  const std::string n(k_node);
  const struct {
    std::string text;
    std::string_view error;
  } cases[] = {
      {"q " + n + " 1 send " + s + " -", "no header line"},
      {"x " + n + " 1\n", "unknown kind"},
      {"qq " + n + " 1\n", "unknown kind"},
      {"w 0123456789ABCDEF 1\n", "bad sender node id"},
      {"w 0123 1\n", "bad sender node id"},
      {"w " + n + " 01\n", "bad request number"},
      {"w " + n + " -1\n", "bad request number"},
      {"w " + n + " 99999999999999999999999\n", "bad request number"},
      {"w " + n + "\n", "bad request number"},
      {"q " + n + " 1 publish " + s + " -\n", "unknown verb"},
      {"q " + n + " 1 send nope -\n", "bad session id"},
      {"q " + n + " 1 send " + s + " x\n", "bad argument"},
      {"q " + n + " 1 send " + s + "\n", "bad argument"},
      {"a " + n + " 1 99\n", "bad status"},
      {"a " + n + " 1 600\n", "bad status"},
      {"a " + n + " 1 200 more\n", "extra fields in the header"},
      {"e " + n + " 1\nbody", "unexpected body"},
      {"w " + n + " 2 \n", "fields must be split by single spaces"},
      {"w  " + n + " 2\n", "fields must be split by single spaces"},
      {"\n", "fields must be split by single spaces"},
  };
  for (const auto& c : cases) {
    node_message m;
    EXPECT_EQ(parse_node_message(c.text, m), c.error) << c.text;
  }
}

TEST(session_forward_test, a_session_id_names_its_home_node) {
  EXPECT_EQ(session_home(k_session), k_node);
  EXPECT_EQ(session_home("0123456789abcdef"), "");
  EXPECT_EQ(session_home("0123456789abcdef.00112233"), "");  // short
  EXPECT_EQ(session_home("0123456789abcdeF.00112233445566778899aabbccddeeff"), "");
  EXPECT_EQ(session_home("0123456789abcdef.00112233445566778899aabbccddeefg"), "");
  EXPECT_EQ(session_home("00112233445566778899aabbccddeeff"), "");  // a one-node id
  EXPECT_TRUE(is_node_id(k_node));
  EXPECT_FALSE(is_node_id("0123456789abcde"));
}

// The memory broker reaches no other node: a write fails at once (inside
// write(), where the session holds its lock), which closes the sink without
// running on_close there; reader_gone() runs it once; end() never does.
TEST(session_forward_test, relay_sink_closes_without_reentering_the_session) {
  realtime_config config;
  memory_broker b(config, memory_broker_options{});
  int closes = 0;
  auto sink = std::make_shared<relay_sink>(b, std::string(k_node), "fedcba9876543210", 1,
                                           [&] { ++closes; });
  const server::http_stream stream = server::http_stream::relay(sink);
  EXPECT_TRUE(stream.is_open());
  EXPECT_TRUE(stream.write("data: x\n\n"));
  EXPECT_FALSE(stream.is_open());
  EXPECT_EQ(closes, 0);
  EXPECT_FALSE(stream.write("data: y\n\n"));

  auto gone = std::make_shared<relay_sink>(b, std::string(k_node), "fedcba9876543210", 2,
                                           [&] { ++closes; });
  gone->reader_gone();
  gone->reader_gone();
  EXPECT_EQ(closes, 1);
  EXPECT_FALSE(gone->is_open());

  auto ended = std::make_shared<relay_sink>(b, std::string(k_node), "fedcba9876543210", 3,
                                            [&] { ++closes; });
  server::http_stream::relay(ended).end();
  ended->reader_gone();
  EXPECT_EQ(closes, 1);
}

}  // namespace
}  // namespace switchboard::realtime::detail
