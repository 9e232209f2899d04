// topic_batch_test.cpp — the loop's topic batch (topics.cpp): publications
// to one topic in one iteration reach each subscriber as one span of its one
// write, and every rule of writing them one by one still holds — order with
// direct sends, other topics, large frames, (un)subscribing and closing inside
// the batch, the `after` filter, and the backpressure cap with both policies.
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "server_test_support.hpp"

namespace switchboard::server::test {
namespace {

using protocol::event_kind;
using protocol::opcode;

class topic_batch_test : public server_test {};

// "after:T:H" subscribes to T with after = H and answers "ok:<loop>" (or
// "already"); "batch:T:0" makes, in one callback (so in one loop iteration),
// sequenced and unsequenced publications to T interleaved with direct sends
// to the caller.
void sequenced_server(server& s) {
  ws_behavior b;
  b.on_message = [&s](websocket& ws, std::string_view p, opcode) {
    const auto colon = p.find(':', p.find(':') + 1);
    const std::string topic(p.substr(p.find(':') + 1, colon - p.find(':') - 1));
    const auto after = std::stoull(std::string(p.substr(colon + 1)));
    if (p.starts_with("after:")) {
      ws.send(ws.subscribe(topic, after) ? numbered("ok:", ws.id().loop) : "already", opcode::text);
    } else if (p.starts_with("batch:")) {
      s.publish(topic, "b1", opcode::text, 1);
      ws.send("d1", opcode::text);
      s.publish(topic, "b2", opcode::text, 2);
      s.publish(topic, "b3", opcode::text, 3);
      s.publish(topic, "u", opcode::text);
      ws.send("d2", opcode::text);
      s.publish(topic, "b4", opcode::text, 4);
    }
  };
  s.ws("/", std::move(b));
}

// Reads messages until the pong for a ping sent now: everything that was
// delivered before it.
std::vector<std::string> drain(ws_client& c) {
  EXPECT_TRUE(c.send_frame(opcode::ping, "end"));
  std::vector<std::string> got;
  for (;;) {
    received r = c.next();
    if (r.kind != event_kind::message) {
      EXPECT_EQ(r.kind, event_kind::pong);
      return got;
    }
    got.push_back(std::move(r.payload));
  }
}

TEST_F(topic_batch_test, PublicationsOfOneIterationKeepTheirOrderWithDirectSends) {
  // Every publication of the batch goes out in the same write to each
  // subscriber (the loop's cork coalesces them); what each one receives must
  // still be its own sequence filter applied to the publications, in order,
  // with the caller's direct sends where it made them.
  running_server srv(test_options(), sequenced_server);
  ws_client caller(srv.port());
  ASSERT_EQ(caller.upgrade(), 101);
  ASSERT_TRUE(caller.send_message(opcode::text, "after:t:0"));
  ASSERT_EQ(caller.next().payload, "ok:0");
  ws_client behind(srv.port());
  ASSERT_EQ(behind.upgrade(), 101);
  ASSERT_TRUE(behind.send_message(opcode::text, "after:t:2"));
  ASSERT_EQ(behind.next().payload, "ok:0");
  ws_client other(srv.port());
  ASSERT_EQ(other.upgrade(), 101);
  ASSERT_TRUE(other.send_message(opcode::text, "after:other:0"));
  ASSERT_EQ(other.next().payload, "ok:0");
  ASSERT_TRUE(caller.send_message(opcode::text, "batch:t:0"));
  EXPECT_EQ(drain(caller), (std::vector<std::string>{"b1", "d1", "b2", "b3", "u", "d2", "b4"}));
  EXPECT_EQ(drain(behind), (std::vector<std::string>{"b3", "u", "b4"}));
  EXPECT_EQ(drain(other), std::vector<std::string>{});
  // Again from another thread, queued for the loop: one batch of posts.
  for (std::uint64_t i = 5; i <= 8; ++i) {
    srv.get().publish("t", numbered("b", static_cast<long>(i)), opcode::text, i);
  }
  EXPECT_EQ(drain(caller), (std::vector<std::string>{"b5", "b6", "b7", "b8"}));
  EXPECT_EQ(drain(behind), (std::vector<std::string>{"b5", "b6", "b7", "b8"}));
}

// Runs a script in one callback, so in one loop iteration, while publications
// to a topic are held in the loop's batch: "p:T:X" publishes X to T, "L:T:X"
// publishes X padded to 20 KiB (written at once, not batched), "s:T" / "u:T"
// (un)subscribes the caller, "d:X" sends X to the caller, "c" closes the
// caller (4001). Steps are separated by ';'.
void script_server(server& s) {
  ws_behavior b;
  b.on_message = [&s](websocket& ws, std::string_view p, opcode) {
    while (!p.empty()) {
      const std::string_view step = p.substr(0, p.find(';'));
      p.remove_prefix(std::min(p.size(), step.size() + 1));
      const std::string_view arg = step.size() > 2 ? step.substr(2) : std::string_view{};
      const std::string_view topic = arg.substr(0, arg.find(':'));
      const std::string_view text = arg.find(':') == std::string_view::npos
                                        ? std::string_view{}
                                        : arg.substr(arg.find(':') + 1);
      switch (step[0]) {
        case 'p':
          s.publish(topic, text, opcode::text);
          break;
        case 'L': {
          std::string large(text);
          large.resize(20 * 1024, '.');
          s.publish(topic, large, opcode::text);
          break;
        }
        case 's':
          ws.subscribe(arg);
          break;
        case 'u':
          ws.unsubscribe(arg);
          break;
        case 'd':
          ws.send(arg, opcode::text);
          break;
        case 'c':
          ws.close(4001);
          break;
      }
    }
  };
  s.ws("/", std::move(b));
}

// The first `n` bytes of each message: large ones are padded.
std::vector<std::string> heads(std::vector<std::string> got, std::size_t n = 8) {
  for (auto& m : got) m = m.substr(0, std::min(n, m.find('.')));
  return got;
}

TEST_F(topic_batch_test, ABatchKeepsEveryRuleOfImmediateDelivery) {
  running_server srv(test_options(), script_server);
  ws_client caller(srv.port());
  ASSERT_EQ(caller.upgrade(), 101);
  ws_client both(srv.port());
  ASSERT_EQ(both.upgrade(), 101);
  ASSERT_TRUE(both.send_message(opcode::text, "s:a;s:b;d:ok"));
  ASSERT_EQ(both.next().payload, "ok");
  // A subscription made after a publication does not get it; one ended
  // after a publication does; another topic's publications and a large one
  // keep their places; direct sends keep theirs.
  ASSERT_TRUE(caller.send_message(
      opcode::text, "p:a:a1;s:a;p:a:a2;d:x1;p:b:b1;p:a:a3;L:a:A4;p:a:a5;u:a;p:a:a6;d:x2"));
  EXPECT_EQ(heads(drain(caller)), (std::vector<std::string>{"a2", "x1", "a3", "A4", "a5", "x2"}));
  EXPECT_EQ(heads(drain(both)),
            (std::vector<std::string>{"a1", "a2", "b1", "a3", "A4", "a5", "a6"}));
  // A close frame follows what was published before it.
  ASSERT_TRUE(caller.send_message(opcode::text, "s:a;p:a:a7;p:a:a8;c"));
  EXPECT_EQ(caller.next().payload, "a7");
  EXPECT_EQ(caller.next().payload, "a8");
  const received r = caller.next();
  EXPECT_EQ(r.kind, event_kind::close);
  EXPECT_EQ(r.code, 4001);
  EXPECT_EQ(heads(drain(both)), (std::vector<std::string>{"a7", "a8"}));
  EXPECT_TRUE(
      wait_until([&] { return srv.get().statistics().messages_sent == 1u + 6u + 7u + 4u; }));
}

// Publishes `count` numbered messages of `size` bytes to "t" from a loop
// callback while the subscriber does not read: the kernel's buffers fill (or,
// for small messages, the iteration's cork does), then the cap. 64 KiB
// frames are written at once, 1 KiB ones staged in the cork and referred to.
void flooding_server(server& s, int count, std::size_t size) {
  ws_behavior b;
  b.on_message = [&s, count, size](websocket& ws, std::string_view p, opcode) {
    if (p == "sub") {
      ws.subscribe("t");
      ws.send("ok", opcode::text);
      return;
    }
    std::string message(size, 'x');
    for (int i = 0; i < count; ++i) {
      const std::string n = numbered("m", i) + ";";
      message.replace(0, n.size(), n);
      s.publish("t", message, opcode::binary);
    }
    ws.send("flooded", opcode::text);
  };
  s.ws("/", std::move(b));
}

TEST_F(topic_batch_test, ThePublicationsOverTheBackpressureCapAreDroppedTheRestArriveInOrder) {
  for (const std::size_t size : {std::size_t{64 * 1024}, std::size_t{1024}}) {
    SCOPED_TRACE(size);
    auto options = test_options();
    options.max_backpressure = 64 * 1024;
    options.policy = backpressure_policy::drop;
    constexpr int k_count = 400;  // 25 MiB at 64 KiB: more than loopback's socket buffers hold
    running_server srv(options, [size](server& s) { flooding_server(s, k_count, size); });
    ws_client sub(srv.port());
    ASSERT_EQ(sub.upgrade(), 101);
    ASSERT_TRUE(sub.send_message(opcode::text, "sub"));
    ASSERT_EQ(sub.next().payload, "ok");
    ws_client publisher(srv.port());
    ASSERT_EQ(publisher.upgrade(), 101);
    ASSERT_TRUE(publisher.send_message(opcode::text, "go"));
    ASSERT_EQ(publisher.next().payload, "flooded");
    const std::uint64_t drops = srv.get().statistics().backpressure_drops;
    EXPECT_GT(drops, 0u);
    // Everything accepted arrives, in publication order; what was dropped is
    // exactly what is missing.
    std::vector<std::string> got = drain(sub);
    EXPECT_EQ(got.size() + drops, static_cast<std::size_t>(k_count));
    int last = -1;
    for (const std::string& m : got) {
      ASSERT_EQ(m.size(), size);
      const int n = std::stoi(m.substr(1, m.find(';') - 1));
      EXPECT_GT(n, last) << "publication " << n << " after " << last;
      last = n;
    }
    EXPECT_EQ(got.empty() ? "" : got.front().substr(0, 3), "m0;");
    if (size == 1024) {
      // Nothing leaves before the iteration's flush: frames (4-byte header)
      // are admitted while the queue is within the cap, then none.
      EXPECT_EQ(got.size(), options.max_backpressure / (size + 4) + 1);
    }
    EXPECT_EQ(srv.get().statistics().messages_sent, got.size() + 2u);  // + "ok", "flooded"
  }
}

TEST_F(topic_batch_test, ThePublicationThatBreaksTheCapClosesTheSubscriberWith1008) {
  for (const std::size_t size : {std::size_t{64 * 1024}, std::size_t{1024}}) {
    SCOPED_TRACE(size);
    auto options = test_options();
    options.max_backpressure = 64 * 1024;
    options.policy = backpressure_policy::close;
    running_server srv(options, [size](server& s) { flooding_server(s, 400, size); });
    ws_client sub(srv.port());
    ASSERT_EQ(sub.upgrade(), 101);
    ASSERT_TRUE(sub.send_message(opcode::text, "sub"));
    ASSERT_EQ(sub.next().payload, "ok");
    ws_client publisher(srv.port());
    ASSERT_EQ(publisher.upgrade(), 101);
    ASSERT_TRUE(publisher.send_message(opcode::text, "go"));
    ASSERT_EQ(publisher.next().payload, "flooded");
    EXPECT_EQ(srv.get().statistics().backpressure_drops, 1u);
    // The publications accepted before the cap, in order, then the close.
    int expected = 0;
    for (;;) {
      received r = sub.next();
      if (r.kind != event_kind::message) {
        EXPECT_EQ(r.kind, event_kind::close);
        EXPECT_EQ(r.code, 1008);
        break;
      }
      ASSERT_EQ(r.payload.substr(0, r.payload.find(';')), numbered("m", expected));
      ++expected;
    }
    EXPECT_GT(expected, 0);
    EXPECT_LT(expected, 400);
  }
}

}  // namespace
}  // namespace switchboard::server::test
