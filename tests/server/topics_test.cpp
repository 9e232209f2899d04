// topics_test.cpp — publish/subscribe across loops, cross-thread send,
// close and dispatch, and the size of a connection object.
#include <atomic>
#include <cstdio>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "server_test_support.hpp"

namespace switchboard::server::test {
namespace {

using protocol::event_kind;
using protocol::opcode;

class topics_test : public server_test {};

// "sub:T" subscribes to T and answers "ok:<loop>"; "unsub:T" unsubscribes;
// "pub:T:N" publishes N numbered messages to T from the loop thread.
void pubsub_server(server& s) {
  ws_behavior b;
  b.on_message = [&s](websocket& ws, std::string_view p, opcode) {
    if (p.starts_with("sub:")) {
      ws.subscribe(p.substr(4));
      ws.send(numbered("ok:", ws.id().loop), opcode::text);
    } else if (p.starts_with("unsub:")) {
      ws.send(ws.unsubscribe(p.substr(6)) ? "unsubscribed" : "not subscribed", opcode::text);
    } else if (p.starts_with("qpub:") || p.starts_with("ipub:")) {
      // One publication, then a direct send: queued delivery puts the
      // direct send first on the publisher's own loop, immediate the other way.
      const auto delivery =
          p[0] == 'q' ? publish_delivery::queued : publish_delivery::immediate;
      s.publish(p.substr(5), "published", opcode::text, 0, delivery);
      ws.send("direct", opcode::text);
    } else if (p.starts_with("pub:") || p.starts_with("qpubn:")) {
      // "qpubn:T:N": the same, queued (as the realtime layer publishes).
      const bool queued = p[0] == 'q';
      const std::size_t start = queued ? 6 : 4;
      const auto colon = p.find(':', start);
      const std::string topic(p.substr(start, colon - start));
      const int n = std::stoi(std::string(p.substr(colon + 1)));
      for (int i = 0; i < n; ++i) {
        s.publish(topic, numbered(queued ? "Q" : "L", i), opcode::text, 0,
                  queued ? publish_delivery::queued : publish_delivery::immediate);
      }
    }
  };
  s.ws("/", std::move(b));
}

// Connects 16 clients of pubsub_server() and subscribes each to "room";
// `loops` gets each one's "ok:<loop>" answer (which loop it landed on). Its
// assertions end only this helper: call it in ASSERT_NO_FATAL_FAILURE.
void subscribe_to_room(running_server& srv, std::vector<std::unique_ptr<ws_client>>& clients,
                       std::set<std::string>& loops) {
  for (int i = 0; i < 16; ++i) {
    auto c = std::make_unique<ws_client>(srv.port());
    ASSERT_EQ(c->upgrade(), 101);
    ASSERT_TRUE(c->send_message(opcode::text, "sub:room"));
    const received ok = c->next();
    ASSERT_EQ(ok.payload.substr(0, 3), "ok:");
    loops.insert(ok.payload);
    clients.push_back(std::move(c));
  }
}

TEST_F(topics_test, PublishReachesEverySubscriberOnceInOrderAcrossLoops) {
  auto options = test_options();
  options.threads = 2;
  running_server srv(options, pubsub_server);
  std::vector<std::unique_ptr<ws_client>> clients;
  std::set<std::string> loops;
  ASSERT_NO_FATAL_FAILURE(subscribe_to_room(srv, clients, loops));
  EXPECT_EQ(loops.size(), 2u) << "16 connections all landed on one loop";
  ws_client outsider(srv.port());
  ASSERT_EQ(outsider.upgrade(), 101);
  // From a foreign thread...
  for (int i = 0; i < 100; ++i) srv.get().publish("room", numbered("m", i), opcode::text);
  // ...and from a loop thread.
  ASSERT_TRUE(clients[0]->send_message(opcode::text, "pub:room:20"));
  for (auto& c : clients) {
    for (int i = 0; i < 100; ++i) ASSERT_EQ(c->next().payload, numbered("m", i));
    for (int i = 0; i < 20; ++i) ASSERT_EQ(c->next().payload, numbered("L", i));
    // Nothing more: a ping's pong comes next.
    ASSERT_TRUE(c->send_frame(opcode::ping, "end"));
    EXPECT_EQ(c->next().kind, event_kind::pong);
  }
  ASSERT_TRUE(outsider.send_frame(opcode::ping, "x"));
  EXPECT_EQ(outsider.next().kind, event_kind::pong) << "a non-subscriber got a message";
  ASSERT_TRUE(clients[1]->send_message(opcode::text, "unsub:room"));
  EXPECT_EQ(clients[1]->next().payload, "unsubscribed");
  ASSERT_TRUE(clients[1]->send_message(opcode::text, "unsub:room"));
  EXPECT_EQ(clients[1]->next().payload, "not subscribed");
}

std::vector<std::string> drain(ws_client& c);

// A loop thread that publishes hands each publication to the other loop's
// queue, and wakes it once for everything it published in its callbacks
// (one eventfd write per loop per batch, not per publication); its own loop
// runs what it queued to itself in the same iteration, without an eventfd.
TEST_F(topics_test, APublishingLoopWakesEachOtherLoopOncePerBatchAndItselfNever) {
  auto options = test_options();
  options.threads = 2;
  running_server srv(options, pubsub_server);
  std::vector<std::unique_ptr<ws_client>> clients;
  std::set<std::string> loops;
  ASSERT_NO_FATAL_FAILURE(subscribe_to_room(srv, clients, loops));
  ASSERT_EQ(loops.size(), 2u) << "16 connections all landed on one loop";
  for (const char* command : {"qpubn:room:50", "pub:room:50"}) {
    const std::uint64_t before = srv.get().statistics().loop_wakeups;
    ASSERT_TRUE(clients[0]->send_message(opcode::text, command));
    const char* prefix = command[0] == 'q' ? "Q" : "L";
    for (auto& c : clients) {
      for (int i = 0; i < 50; ++i) ASSERT_EQ(c->next().payload, numbered(prefix, i)) << command;
    }
    EXPECT_EQ(srv.get().statistics().loop_wakeups - before, 1u) << command;
  }
  for (auto& c : clients) EXPECT_TRUE(drain(*c).empty());
}

// "after:T:H" subscribes to T with after = H and answers "ok:<loop>" (or
// "already" if it was subscribed). "recover:T:H" is the realtime layer's
// catch-up: while this loop is busy in the callback, another thread publishes
// sequences 1..5 to T (so they queue for this loop), and only then does the
// connection subscribe with after = H.
void sequenced_server(server& s) {
  ws_behavior b;
  b.on_message = [&s](websocket& ws, std::string_view p, opcode) {
    const auto colon = p.find(':', p.find(':') + 1);
    const std::string topic(p.substr(p.find(':') + 1, colon - p.find(':') - 1));
    const auto after = std::stoull(std::string(p.substr(colon + 1)));
    if (p.starts_with("after:")) {
      ws.send(ws.subscribe(topic, after) ? numbered("ok:", ws.id().loop) : "already", opcode::text);
    } else if (p.starts_with("recover:")) {
      std::thread([&s, topic] {
        for (int i = 1; i <= 5; ++i) s.publish(topic, numbered("s", i), opcode::text, i);
      }).join();
      ws.subscribe(topic, after);
      ws.send(numbered("ok:", ws.id().loop), opcode::text);
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

TEST_F(topics_test, QueuedDeliveryGoesThroughTheOwnLoopsQueue) {
  running_server srv(test_options(), pubsub_server);
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_message(opcode::text, "sub:t"));
  ASSERT_EQ(c.next().payload, "ok:0");
  ASSERT_TRUE(c.send_message(opcode::text, "ipub:t"));
  EXPECT_EQ(c.next().payload, "published");
  EXPECT_EQ(c.next().payload, "direct");
  ASSERT_TRUE(c.send_message(opcode::text, "qpub:t"));
  EXPECT_EQ(c.next().payload, "direct");
  EXPECT_EQ(c.next().payload, "published");
}

TEST_F(topics_test, SequencedPublishSkipsWhatTheSubscriberAlreadyHas) {
  running_server srv(test_options(), sequenced_server);
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(c.send_message(opcode::text, "after:room:3"));
  ASSERT_EQ(c.next().payload, "ok:0");
  // Subscribing again fails and keeps the first position.
  ASSERT_TRUE(c.send_message(opcode::text, "after:room:0"));
  ASSERT_EQ(c.next().payload, "already");
  ws_client all(srv.port());
  ASSERT_EQ(all.upgrade(), 101);
  ASSERT_TRUE(all.send_message(opcode::text, "after:room:0"));
  ASSERT_EQ(all.next().payload, "ok:0");
  for (std::uint64_t i = 1; i <= 5; ++i) {
    srv.get().publish("room", numbered("s", static_cast<long>(i)), opcode::text, i);
    srv.get().publish("room", numbered("u", static_cast<long>(i)), opcode::text);  // unsequenced
  }
  EXPECT_EQ(drain(c), (std::vector<std::string>{"u1", "u2", "u3", "s4", "u4", "s5", "u5"}));
  EXPECT_EQ(drain(all),
            (std::vector<std::string>{"s1", "u1", "s2", "u2", "s3", "u3", "s4", "u4", "s5", "u5"}));
}

TEST_F(topics_test, SequencedPublishOnTwoLoops) {
  auto options = test_options();
  options.threads = 2;
  running_server srv(options, sequenced_server);
  std::vector<std::unique_ptr<ws_client>> clients;
  std::set<std::string> loops;
  // The kernel spreads connections over the loops' listeners at random:
  // connect until both loops hold some (at least 8 connections, at most 64).
  for (int i = 0; i < 64 && (i < 8 || loops.size() < 2); ++i) {
    auto c = std::make_unique<ws_client>(srv.port());
    ASSERT_EQ(c->upgrade(), 101);
    ASSERT_TRUE(c->send_message(opcode::text, "after:room:3"));
    const received ok = c->next();
    ASSERT_EQ(ok.payload.substr(0, 3), "ok:");
    loops.insert(ok.payload);
    clients.push_back(std::move(c));
  }
  ASSERT_EQ(loops.size(), 2u) << "64 connections all landed on one loop";
  for (std::uint64_t i = 1; i <= 5; ++i) {
    srv.get().publish("room", numbered("s", static_cast<long>(i)), opcode::text, i);
    srv.get().publish("room", numbered("u", static_cast<long>(i)), opcode::text);
  }
  for (auto& c : clients) {
    EXPECT_EQ(drain(*c), (std::vector<std::string>{"u1", "u2", "u3", "s4", "u4", "s5", "u5"}));
  }
}

TEST_F(topics_test, PublicationsQueuedBeforeTheSubscribeAreFilteredOnEveryLoop) {
  auto options = test_options();
  options.threads = 2;
  running_server srv(options, sequenced_server);
  std::vector<std::unique_ptr<ws_client>> clients;
  std::set<std::string> loops;
  for (int i = 0; i < 64 && (i < 8 || loops.size() < 2); ++i) {
    auto c = std::make_unique<ws_client>(srv.port());
    ASSERT_EQ(c->upgrade(), 101);
    // Client i has history of its own topic up to i % 4 (0: none); 1..5 are
    // published while its loop is inside the callback, then it subscribes.
    ASSERT_TRUE(c->send_message(opcode::text, numbered(numbered("recover:feed", i) + ":", i % 4)));
    const received ok = c->next();
    ASSERT_EQ(ok.payload.substr(0, 3), "ok:");
    loops.insert(ok.payload);
    clients.push_back(std::move(c));
  }
  ASSERT_EQ(loops.size(), 2u) << "64 connections all landed on one loop";
  for (std::size_t i = 0; i < clients.size(); ++i) {
    srv.get().publish(numbered("feed", static_cast<long>(i)), "s6", opcode::text, 6);
    srv.get().publish(numbered("feed", static_cast<long>(i)), "plain", opcode::text);
  }
  for (std::size_t i = 0; i < clients.size(); ++i) {
    // Exactly what lies after its position, once, in order.
    std::vector<std::string> expected;
    for (std::size_t n = i % 4 + 1; n <= 6; ++n) {
      expected.push_back(numbered("s", static_cast<long>(n)));
    }
    expected.emplace_back("plain");
    EXPECT_EQ(drain(*clients[i]), expected) << "client " << i;
  }
}

TEST_F(topics_test, CrossThreadSendAndClose) {
  std::mutex mutex;
  std::vector<connection_id> ids;
  running_server srv(test_options(), [&](server& s) {
    ws_behavior b;
    b.on_open = [&](websocket& ws) {
      std::lock_guard lock(mutex);
      ids.push_back(ws.id());
    };
    s.ws("/", std::move(b));
  });
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  connection_id id;
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard lock(mutex);
      if (!ids.empty()) {
        id = ids.front();
        break;
      }
    }
    std::this_thread::sleep_for(5ms);
  }
  std::thread other([&] {
    for (int i = 0; i < 10; ++i) srv.get().send(id, numbered("x", i), opcode::text);
    srv.get().close(id, 4002, "from afar");
  });
  other.join();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(c.next().payload, numbered("x", i));
  received r = c.next();
  EXPECT_EQ(r.kind, event_kind::close);
  EXPECT_EQ(r.code, 4002);
  ASSERT_TRUE(c.send_close(4002));
  EXPECT_TRUE(c.wait_closed());
  // A stale id is ignored.
  EXPECT_TRUE(srv.get().send(id, "nobody"));
}

TEST_F(topics_test, DispatchRunsOnTheConnectionsLoopOrSaysItIsGone) {
  std::mutex mutex;
  std::vector<connection_id> ids;
  // "inline": dispatch() from the connection's own callback runs before it returns.
  running_server srv(test_options(), [&](server& s) {
    ws_behavior b;
    b.on_open = [&](websocket& ws) {
      std::lock_guard lock(mutex);
      ids.push_back(ws.id());
    };
    b.on_message = [&s](websocket& ws, std::string_view, opcode) {
      bool ran = false;
      s.dispatch(ws.id(), [&](websocket* w) {
        ran = w == &ws;
        if (w) w->send("first", opcode::text);
      });
      ws.send(ran ? "ran inline" : "not inline", opcode::text);
    };
    s.ws("/", std::move(b));
  });
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mutex);
    return !ids.empty();
  }));
  const connection_id id = ids.front();
  ASSERT_TRUE(c.send_message(opcode::text, "go"));
  EXPECT_EQ(c.next().payload, "first");
  EXPECT_EQ(c.next().payload, "ran inline");

  // From another thread: posted to the loop, runs there with the connection.
  std::atomic<int> outcome{0};
  std::thread other([&] {
    EXPECT_TRUE(srv.get().dispatch(id, [&](websocket* w) {
      if (w) w->send("from afar", opcode::text);
      outcome = w ? 1 : 2;
    }));
  });
  other.join();
  EXPECT_EQ(c.next().payload, "from afar");
  EXPECT_TRUE(wait_until([&] { return outcome.load() == 1; }));

  // Once the connection is gone the function still runs, with nullptr.
  ASSERT_TRUE(c.send_close(1000));
  EXPECT_EQ(c.next().kind, event_kind::close);
  EXPECT_TRUE(c.wait_closed());
  outcome = 0;
  ASSERT_TRUE(wait_until([&] {
    srv.get().dispatch(id, [&](websocket* w) { outcome = w ? 1 : 2; });
    return wait_until([&] { return outcome.load() != 0; }, 1s) && outcome.load() == 2;
  }));
  // An id that names no loop: false, and the function never runs.
  connection_id nowhere = id;
  nowhere.loop = 99;
  EXPECT_FALSE(srv.get().dispatch(nowhere, [&](websocket*) { ADD_FAILURE() << "ran"; }));
}

TEST_F(topics_test, SeveralLoopsStillRefuseAPortInUse) {
  // Each loop has its own SO_REUSEPORT listener; a second server must not join them.
  auto options = test_options();
  options.threads = 2;
  running_server first(options, [](server& s) { s.ws("/", ws_behavior{}); });
  options.port = first.port();
  server second(options);
  second.ws("/", ws_behavior{});
  EXPECT_EQ(second.listen(), std::errc::address_in_use);
}

// A connection's topics are held inline while there is one and in a list
// from the second on (detail::topic_set): every step between the two keeps
// what the connection receives and what it is told.
TEST_F(topics_test, OneConnectionOnSeveralTopicsGetsEachUntilItLeavesIt) {
  // As pubsub_server, and "all" publishes "a", "b" and "c" to the topics of
  // those names at once (delivered inside the callback on this one loop),
  // then answers "done": what arrives before it is exactly what reached it.
  running_server srv(test_options(), [](server& s) {
    ws_behavior b;
    b.on_message = [&s](websocket& ws, std::string_view p, opcode) {
      if (p == "all") {
        for (const char* t : {"a", "b", "c"}) {
          s.publish(t, t, opcode::text, 0, publish_delivery::immediate);
        }
        ws.send("done", opcode::text);
      } else if (p.starts_with("sub:")) {
        ws.send(ws.subscribe(p.substr(4)) ? "ok:" : "already", opcode::text);
      } else if (p.starts_with("unsub:")) {
        ws.send(ws.unsubscribe(p.substr(6)) ? "unsubscribed" : "not subscribed", opcode::text);
      }
    };
    s.ws("/", std::move(b));
  });
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  const auto say = [&](std::string_view text) {
    EXPECT_TRUE(c.send_message(opcode::text, text));
    return c.next().payload;
  };
  const auto drain = [](ws_client& w) {
    EXPECT_TRUE(w.send_message(opcode::text, "all"));
    std::vector<std::string> got;
    for (std::string m = w.next().payload; m != "done"; m = w.next().payload) {
      if (m.empty()) return got;  // nothing more came (a failure below says what)
      got.push_back(std::move(m));
    }
    return got;
  };
  EXPECT_EQ(say("sub:a").substr(0, 3), "ok:");
  EXPECT_EQ(say("sub:b").substr(0, 3), "ok:");
  EXPECT_EQ(say("sub:c").substr(0, 3), "ok:");
  EXPECT_EQ(say("sub:b"), "already");
  EXPECT_EQ(drain(c), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(say("unsub:b"), "unsubscribed");  // from the middle of the list
  EXPECT_EQ(drain(c), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(say("unsub:a"), "unsubscribed");  // one left: inline again
  EXPECT_EQ(say("unsub:a"), "not subscribed");
  EXPECT_EQ(say("sub:c"), "already");
  EXPECT_EQ(drain(c), (std::vector<std::string>{"c"}));
  EXPECT_EQ(say("sub:b").substr(0, 3), "ok:");  // a list again
  EXPECT_EQ(say("unsub:c"), "unsubscribed");
  EXPECT_EQ(say("unsub:b"), "unsubscribed");  // none
  EXPECT_EQ(say("unsub:b"), "not subscribed");
  EXPECT_TRUE(drain(c).empty());
  // Closing with topics (a list of two) leaves nothing behind that a later
  // publication could reach.
  EXPECT_EQ(say("sub:a").substr(0, 3), "ok:");
  EXPECT_EQ(say("sub:b").substr(0, 3), "ok:");
  c.close();
  ws_client d(srv.port());
  ASSERT_EQ(d.upgrade(), 101);
  EXPECT_TRUE(d.send_message(opcode::text, "sub:a"));
  EXPECT_EQ(d.next().payload.substr(0, 3), "ok:");
  EXPECT_EQ(drain(d), (std::vector<std::string>{"a"}));
}

TEST_F(topics_test, ConnectionObjectIsSmall) {
  // What an idle open connection costs in user space: this object (plus the
  // endpoint's user data). Reader and handshake state are pooled per loop.
  // The plain net::transport is inline (TLS state lives in its own block,
  // only for wss://). Budget: 0.25 KiB per idle plain connection with
  // malloc's overhead — 232 bytes is one 240-byte glibc chunk.
  RecordProperty("sizeof_websocket", static_cast<int>(sizeof(websocket)));
  std::printf("sizeof(websocket) = %zu bytes\n", sizeof(websocket));
  EXPECT_LE(sizeof(websocket), 232u);
}

}  // namespace
}  // namespace switchboard::server::test
