// outbound_test.cpp — server_options::max_outbound_memory: the bytes queued
// for slow readers over all connections. Clients that never read make the
// server queue; each queue stays far under max_backpressure, so only the
// server-wide bound can act: with the close policy it closes the largest
// queues first (1008) and frees them at once, with the drop policy it drops
// what is sent to connections that already lag, and readers keep their
// messages either way.
#include <sys/socket.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>

#include "server_test_support.hpp"

namespace switchboard::server::test {
namespace {

using protocol::opcode;

constexpr std::size_t k_mib = 1024 * 1024;

// An endpoint that queues on command. "fill TAG BYTES": sends 64 KiB messages
// until the connection holds BYTES unsent (the kernel takes what it can
// first), or a send is dropped. "over TAG": sends until the server-wide
// total is over max_outbound_memory, then once more. "echo": answers "echo".
struct queue_server {
  std::mutex mutex;
  std::map<std::string, int> close_codes;  // by tag
  std::map<std::string, bool> dropped;     // by tag
  std::atomic<int> done{0};
  server* srv = nullptr;

  void install(server& s) {
    srv = &s;
    ws_behavior b;
    b.with_user_data<std::string>();  // the tag
    b.on_message = [this](websocket& ws, std::string_view payload, opcode) { on_message(ws, payload); };
    b.on_close = [this](websocket& ws, std::uint16_t code, std::string_view) {
      std::lock_guard lock(mutex);
      close_codes[ws.data<std::string>()] = code;
    };
    s.ws("/", std::move(b));
  }

  void on_message(websocket& ws, std::string_view payload) {
    if (payload == "echo") {
      ws.send("echo", opcode::text);
      return;
    }
    const std::string text(payload);
    const std::size_t space = text.find(' ', 5);
    std::string& tag = ws.data<std::string>();
    tag = text.substr(5, space == std::string::npos ? std::string::npos : space - 5);
    const std::string chunk(64 * 1024, 'q');
    bool lost = false;
    if (text.starts_with("fill ")) {
      const std::size_t target = std::stoul(text.substr(space + 1));
      for (int i = 0; i < 4000 && ws.buffered_amount() < target; ++i) {
        if (ws.send(chunk) == send_status::dropped) {
          lost = true;
          break;
        }
      }
    } else if (text.starts_with("over ")) {
      const std::size_t limit = srv->options().max_outbound_memory;
      for (int i = 0; i < 4000 && srv->statistics().outbound_bytes <= limit; ++i) {
        if (ws.send(chunk) == send_status::dropped) {
          lost = true;
          break;
        }
      }
      if (!lost) lost = ws.send(chunk) == send_status::dropped;
    }
    {
      std::lock_guard lock(mutex);
      dropped[tag] = lost;
    }
    ++done;
  }

  int close_code(const std::string& tag) {
    std::lock_guard lock(mutex);
    const auto it = close_codes.find(tag);
    return it == close_codes.end() ? 0 : it->second;
  }
  bool was_dropped(const std::string& tag) {
    std::lock_guard lock(mutex);
    return dropped[tag];
  }
};

class outbound_test : public server_test {
 protected:
  // A client that never reads, with a small receive buffer so the server
  // queues early.
  std::unique_ptr<ws_client> silent(std::uint16_t port) {
    auto c = std::make_unique<ws_client>(port);
    int small = 4096;
    ::setsockopt(c->fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    EXPECT_EQ(c->upgrade(), 101);
    return c;
  }
  void command(ws_client& c, queue_server& q, const std::string& text) {
    const int before = q.done.load();
    ASSERT_TRUE(c.send_message(opcode::text, text));
    ASSERT_TRUE(wait_until([&] { return q.done.load() > before; })) << text;
  }
};

TEST_F(outbound_test, the_close_policy_closes_the_largest_queues_first) {
  auto options = test_options();
  options.max_backpressure = 64 * k_mib;  // never the per-connection cap
  options.max_outbound_memory = 8 * k_mib;
  queue_server q;
  running_server srv(options, [&](server& s) { q.install(s); });
  auto a = silent(srv.port());
  auto b = silent(srv.port());
  auto c = silent(srv.port());
  auto d = silent(srv.port());
  command(*a, q, "fill a " + std::to_string(4 * k_mib));
  command(*b, q, "fill b " + std::to_string(1 * k_mib));
  command(*c, q, "fill c " + std::to_string(1 * k_mib));
  EXPECT_LE(srv.get().statistics().outbound_bytes, options.max_outbound_memory);
  EXPECT_GE(srv.get().statistics().outbound_bytes, 6 * k_mib);
  // d takes the total over the limit; a, the largest queue, pays for it.
  command(*d, q, "over d");
  EXPECT_FALSE(q.was_dropped("d")) << "within the slack, d's messages are kept";
  ASSERT_TRUE(wait_until([&] { return q.close_code("a") != 0; }));
  EXPECT_EQ(q.close_code("a"), 1008);
  const server_statistics s = srv.get().statistics();
  EXPECT_LE(s.outbound_bytes, options.max_outbound_memory - options.max_outbound_memory / 8);
  EXPECT_EQ(s.outbound_memory_drops, 1u);
  EXPECT_EQ(s.backpressure_drops, 0u);
  EXPECT_EQ(q.close_code("b"), 0);
  EXPECT_EQ(q.close_code("c"), 0);
  EXPECT_EQ(q.close_code("d"), 0);
  // The server goes on serving: a connection that reads gets its answer.
  ws_client reader(srv.port());
  ASSERT_EQ(reader.upgrade(), 101);
  ASSERT_TRUE(reader.send_message(opcode::text, "echo"));
  EXPECT_EQ(reader.next().payload, "echo");
}

TEST_F(outbound_test, one_connection_cannot_queue_past_the_slack) {
  auto options = test_options();
  options.max_backpressure = 64 * k_mib;
  options.max_outbound_memory = 2 * k_mib;
  queue_server q;
  running_server srv(options, [&](server& s) { q.install(s); });
  auto a = silent(srv.port());
  command(*a, q, "fill a " + std::to_string(32 * k_mib));
  EXPECT_TRUE(q.was_dropped("a")) << "a message was refused past 9/8 of the limit";
  ASSERT_TRUE(wait_until([&] { return q.close_code("a") != 0; }));
  EXPECT_EQ(q.close_code("a"), 1008) << "a connection that lost a message is closed";
  EXPECT_TRUE(wait_until([&] { return srv.get().statistics().outbound_bytes == 0; }));
  EXPECT_GE(srv.get().statistics().outbound_memory_drops, 1u);
}

TEST_F(outbound_test, the_drop_policy_drops_for_lagging_connections_only) {
  auto options = test_options();
  options.max_backpressure = 64 * k_mib;
  options.max_outbound_memory = 4 * k_mib;
  options.policy = backpressure_policy::drop;
  queue_server q;
  running_server srv(options, [&](server& s) { q.install(s); });
  auto a = silent(srv.port());
  auto b = silent(srv.port());
  ws_client reader(srv.port());
  ASSERT_EQ(reader.upgrade(), 101);
  command(*a, q, "fill a " + std::to_string(3 * k_mib));
  EXPECT_FALSE(q.was_dropped("a"));
  command(*b, q, "fill b " + std::to_string(16 * k_mib));
  EXPECT_TRUE(q.was_dropped("b"));
  const server_statistics s = srv.get().statistics();
  EXPECT_LE(s.outbound_bytes, options.max_outbound_memory + 64 * 1024 + 16);
  EXPECT_GE(s.outbound_memory_drops, 1u);
  EXPECT_EQ(s.backpressure_drops, 0u);
  // Nobody is closed, and a connection that reads still gets its answers.
  ASSERT_TRUE(reader.send_message(opcode::text, "echo"));
  EXPECT_EQ(reader.next().payload, "echo");
  EXPECT_EQ(q.close_code("a"), 0);
  EXPECT_EQ(q.close_code("b"), 0);
}

}  // namespace
}  // namespace switchboard::server::test
