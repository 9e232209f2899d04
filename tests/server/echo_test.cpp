// echo_test.cpp — data through an upgraded connection: sizes around every
// length encoding, fragmentation with interleaved control frames, pings,
// many messages per write, and one read mixing the small frames read without
// a reader with the frames that need one.
#include <string>

#include <atomic>

#include <switchboard/protocol/message_writer.hpp>

#include "server_test_support.hpp"

namespace switchboard::server::test {
namespace {

using protocol::event_kind;
using protocol::opcode;

class echo_test : public server_test {};

std::string pattern(std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

TEST_F(echo_test, EchoesTextAndBinaryOfEverySize) {
  running_server srv(test_options(), add_echo);
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  for (std::size_t size : {0u, 125u, 126u, 65535u, 65536u, 1024u * 1024u}) {
    for (opcode op : {opcode::text, opcode::binary}) {
      const std::string payload = pattern(size);
      ASSERT_TRUE(c.send_message(op, payload));
      const received r = c.next();
      ASSERT_EQ(r.kind, event_kind::message) << size;
      EXPECT_EQ(r.op, op);
      EXPECT_EQ(r.payload.size(), size);
      EXPECT_TRUE(r.payload == payload) << size;
    }
  }
}

TEST_F(echo_test, FragmentedMessageWithPingBetweenFragments) {
  running_server srv(test_options(), add_echo);
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_frame(opcode::text, "Hel", false));
  ASSERT_TRUE(c.send_frame(opcode::ping, "mid"));
  ASSERT_TRUE(c.send_frame(opcode::continuation, "lo, ", false));
  ASSERT_TRUE(c.send_frame(opcode::continuation, "world"));
  received pong = c.next();
  EXPECT_EQ(pong.kind, event_kind::pong);
  EXPECT_EQ(pong.payload, "mid");
  received r = c.next();
  EXPECT_EQ(r.kind, event_kind::message);
  EXPECT_EQ(r.op, opcode::text);
  EXPECT_EQ(r.payload, "Hello, world");
}

TEST_F(echo_test, PingIsAnsweredWithSamePayload) {
  running_server srv(test_options(), add_echo);
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  const std::string payload(125, 'p');
  ASSERT_TRUE(c.send_frame(opcode::ping, payload));
  received r = c.next();
  EXPECT_EQ(r.kind, event_kind::pong);
  EXPECT_EQ(r.payload, payload);
  ASSERT_TRUE(c.send_frame(opcode::ping, ""));
  EXPECT_EQ(c.next().kind, event_kind::pong);
}

TEST_F(echo_test, ManyMessagesInOneWriteAndSplitFrames) {
  running_server srv(test_options(), add_echo);
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  std::string burst;
  protocol::message_writer writer(protocol::role::client);
  for (int i = 0; i < 100; ++i) writer.append_message(burst, opcode::text, numbered("m", i));
  // A large frame cut at an awkward point: the tail arrives in a later read.
  std::string big;
  writer.append_message(big, opcode::binary, pattern(70000));
  ASSERT_TRUE(c.send_raw(burst + big.substr(0, 7)));
  for (int i = 0; i < 100; ++i) ASSERT_EQ(c.next().payload, numbered("m", i));
  ASSERT_TRUE(c.send_raw(big.substr(7)));
  EXPECT_EQ(c.next().payload, pattern(70000));
}

TEST_F(echo_test, SmallFramesAndFramesNeedingAReaderInOneRead) {
  running_server srv(test_options(), add_echo);
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  protocol::message_writer writer(protocol::role::client);
  std::string wire;
  writer.append_message(wire, opcode::text, "one");
  writer.append_message(wire, opcode::binary, "two");
  writer.append_frame(wire, opcode::ping, "p1");
  writer.append_frame(wire, opcode::text, "thr", false);
  writer.append_frame(wire, opcode::continuation, "ee");
  writer.append_message(wire, opcode::text, "four");
  writer.append_message(wire, opcode::binary, pattern(300));  // a 16-bit length
  writer.append_message(wire, opcode::text, "five");
  ASSERT_TRUE(c.send_raw(wire));
  EXPECT_EQ(c.next().payload, "one");
  received two = c.next();
  EXPECT_EQ(two.op, opcode::binary);
  EXPECT_EQ(two.payload, "two");
  received pong = c.next();
  EXPECT_EQ(pong.kind, event_kind::pong);
  EXPECT_EQ(pong.payload, "p1");
  EXPECT_EQ(c.next().payload, "three");
  EXPECT_EQ(c.next().payload, "four");
  EXPECT_EQ(c.next().payload, pattern(300));
  EXPECT_EQ(c.next().payload, "five");
  // Once the reader has given its messages out, small frames alone again.
  ASSERT_TRUE(c.send_message(opcode::text, "six"));
  EXPECT_EQ(c.next().payload, "six");
}

TEST_F(echo_test, InvalidUtf8AfterGoodSmallFramesInOneReadFailsWith1007) {
  running_server srv(test_options(), add_echo);
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  protocol::message_writer writer(protocol::role::client);
  std::string wire;
  writer.append_message(wire, opcode::text, "fine");
  writer.append_message(wire, opcode::text, "bad \xC0\xAF");
  writer.append_message(wire, opcode::text, "never echoed");
  ASSERT_TRUE(c.send_raw(wire));
  EXPECT_EQ(c.next().payload, "fine");
  received r = c.next();
  ASSERT_EQ(r.kind, event_kind::close);
  EXPECT_EQ(r.code, 1007);
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(echo_test, AMessageOverTheLimitIsRefusedEvenWhenSmall) {
  auto options = test_options();
  options.max_message_size = 10;
  running_server srv(options, add_echo);
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_message(opcode::binary, "0123456789"));
  EXPECT_EQ(c.next().payload, "0123456789");
  ASSERT_TRUE(c.send_message(opcode::binary, "0123456789a"));
  received r = c.next();
  ASSERT_EQ(r.kind, event_kind::close);
  EXPECT_EQ(r.code, 1009);
}

TEST_F(echo_test, StreamingFragmentsAndCallbacks) {
  std::atomic<int> pongs{0};
  running_server srv(test_options(), [&](server& s) {
    ws_behavior b;
    b.with_user_data<std::string>();
    b.on_fragment = [](websocket& ws, std::string_view piece, opcode op, bool first, bool last) {
      auto& acc = ws.data<std::string>();
      if (first) acc.clear();
      acc.append(piece);
      if (last) ws.send(numbered("got ", acc.size()), op);
    };
    b.on_pong = [&](websocket&, std::string_view) { ++pongs; };
    s.ws("/", std::move(b));
  });
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_frame(opcode::binary, pattern(1000), false));
  ASSERT_TRUE(c.send_frame(opcode::continuation, pattern(3000)));
  EXPECT_EQ(c.next().payload, "got 4000");
  ASSERT_TRUE(c.send_frame(opcode::pong, "x"));
  ASSERT_TRUE(c.send_message(opcode::text, "sync"));
  EXPECT_EQ(c.next().payload, "got 4");
  EXPECT_EQ(pongs.load(), 1);
}

}  // namespace
}  // namespace switchboard::server::test
