// tcp_stream_test.cpp — echo through the cork, one send per stream per
// iteration, replies written when on_data returns (and their order with
// corked, staged and large writes), large writes, backpressure and drain, end
// of stream, errors, and destroying streams from their own callbacks.
#include "switchboard/net/tcp_stream.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <functional>
#include <memory>
#include <string>
#include <tuple>

#include "test_support.hpp"

namespace switchboard::net {
namespace {

using namespace std::chrono_literals;
using test::as_bytes;
using test::as_string;

// A stream handler whose reactions are set per test.
struct scripted_handler final : stream_handler {
  void on_data(tcp_stream& stream, std::span<std::byte> data) override {
    received += as_string(data);
    if (data_fn) data_fn(stream, data);
  }
  void on_drained(tcp_stream& stream) override {
    ++drained;
    if (drained_fn) drained_fn(stream);
  }
  void on_close(tcp_stream& stream, std::error_code error) override {
    ++closes;
    close_error = error;
    if (close_fn) close_fn(stream, error);
  }

  std::string received;
  int drained = 0;
  int closes = 0;
  std::error_code close_error;
  std::function<void(tcp_stream&, std::span<std::byte>)> data_fn;
  std::function<void(tcp_stream&)> drained_fn;
  std::function<void(tcp_stream&, std::error_code)> close_fn;
};

class tcp_stream_test : public test::net_test {
 protected:
  void SetUp() override {
    net_test::SetUp();
    loop = test::make_loop();
    ASSERT_TRUE(loop);
  }
  void TearDown() override {
    streams.clear();
    loop.reset();
    net_test::TearDown();
  }
  // Opens a stream on `socket` reporting to `handler`.
  tcp_stream& open(unique_fd socket, stream_handler& handler) {
    streams.push_back(std::make_unique<tcp_stream>(*loop, handler));
    EXPECT_FALSE(streams.back()->open(std::move(socket)));
    return *streams.back();
  }
  template <class Predicate>
  void stop_when(Predicate done) {
    loop->add_iteration_hook([this, done] {
      if (done()) loop->stop();
    });
  }

  std::unique_ptr<event_loop> loop;
  std::vector<std::unique_ptr<tcp_stream>> streams;
};

TEST_F(tcp_stream_test, EchoRoundTripThroughTheCork) {
  unique_fd client_fd;
  unique_fd server_fd;
  std::tie(client_fd, server_fd) = test::tcp_pair();
  scripted_handler server;
  scripted_handler client;
  server.data_fn = [](tcp_stream& stream, std::span<std::byte> data) {
    EXPECT_EQ(stream.send(data), send_status::ok);
    EXPECT_EQ(stream.buffered_bytes(), data.size());  // a reply, held until on_data returns
  };
  tcp_stream& server_stream = open(std::move(server_fd), server);
  tcp_stream& client_stream = open(std::move(client_fd), client);
  const std::string message = "hello, switchboard";
  EXPECT_EQ(client_stream.send(as_bytes(message)), send_status::ok);
  EXPECT_EQ(client_stream.buffered_bytes(), message.size());  // corked until the flush
  stop_when([&] { return client.received.size() >= message.size(); });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(client.received, message);
  EXPECT_EQ(server_stream.buffered_bytes(), 0u);
  EXPECT_EQ(client_stream.buffered_bytes(), 0u);
  // The client's send went through the cork; on epoll the server's echo, a
  // reply to what it read, was written as on_data returned and did not (the
  // reply window); io_uring streams send their replies through the cork too.
  const std::size_t corked = loop->backend() == io_backend::epoll ? 1 : 2;
  EXPECT_EQ(loop->cork().statistics().bytes_flushed, corked * message.size());
  EXPECT_EQ(loop->cork().statistics().sinks_flushed, corked);
}

// What a stream is sent from its own on_data, and what its peer receives.
struct reply_case {
  const char* name;
  std::function<void(event_loop&, tcp_stream&)> replies;
  std::string expected;
};

TEST_F(tcp_stream_test, RepliesKeepTheirOrderWithStagedLargeAndOverflowingSends) {
  const std::string big = test::pattern(0, 40 * 1024);
  const std::string a3000(3000, 'a');
  const std::string b3000(3000, 'b');
  const std::string fills(event_loop::reply_window::k_capacity, 'f');
  const reply_case cases[] = {
      {"replies only",
       [](event_loop&, tcp_stream& s) {
         s.send(as_bytes("r1"));
         s.send({as_bytes("r2-"), as_bytes("parts")});
       },
       "r1r2-parts"},
      {"a staged send spills them into the cork",
       [](event_loop& loop, tcp_stream& s) {
         s.send(as_bytes("r1"));
         s.send(loop.cork().stage(as_bytes("s1")));
         s.send(as_bytes("r2"));
       },
       "r1s1r2"},
      {"a large send goes after them",
       [&big](event_loop&, tcp_stream& s) {
         s.send(as_bytes("r1"));
         s.send(as_bytes(big));
         s.send(as_bytes("r2"));
       },
       "r1" + big + "r2"},
      {"a full window goes to the cork first",
       [&](event_loop&, tcp_stream& s) {
         s.send(as_bytes(a3000));
         s.send(as_bytes(b3000));  // does not fit beside the first
         s.send(as_bytes("end"));
       },
       a3000 + b3000 + "end"},
      {"exactly full, then one more byte",
       [&](event_loop&, tcp_stream& s) {
         s.send(as_bytes(fills));
         EXPECT_EQ(s.buffered_bytes(), fills.size());
         s.send(as_bytes("+"));
         EXPECT_EQ(s.buffered_bytes(), fills.size() + 1);  // all in the cork now
       },
       fills + "+"},
  };
  for (const reply_case& c : cases) {
    SCOPED_TRACE(c.name);
    unique_fd peer_fd;
    unique_fd fd;
    std::tie(peer_fd, fd) = test::tcp_pair();
    scripted_handler handler;
    handler.data_fn = [&](tcp_stream& s, std::span<std::byte>) { c.replies(*loop, s); };
    open(std::move(fd), handler);
    ASSERT_EQ(::send(peer_fd.get(), "x", 1, 0), 1);
    // Stops after the iteration that read (and flushed: hooks run first).
    const event_loop::hook_id hook = loop->add_iteration_hook([&] {
      if (!handler.received.empty()) loop->stop();
    });
    ASSERT_TRUE(test::run_for_at_most(*loop));
    loop->remove_iteration_hook(hook);
    const std::string got = test::read_exactly(peer_fd.get(), c.expected.size());
    EXPECT_EQ(got.size(), c.expected.size());
    EXPECT_TRUE(got == c.expected) << "bytes arrived out of order";
  }
}

TEST_F(tcp_stream_test, RepliesWaitBehindBytesCorkedBeforeTheRead) {
  unique_fd peer_fd;
  unique_fd fd;
  std::tie(peer_fd, fd) = test::tcp_pair();
  scripted_handler handler;
  tcp_stream& stream = open(std::move(fd), handler);
  handler.data_fn = [](tcp_stream& s, std::span<std::byte>) { s.send(as_bytes("reply")); };
  // Corked before the loop runs, so before the read of its first iteration:
  // the reply must follow these bytes, not overtake them.
  ASSERT_EQ(::send(peer_fd.get(), "x", 1, 0), 1);
  EXPECT_EQ(stream.send(as_bytes("early-")), send_status::ok);
  stop_when([&] { return !handler.received.empty(); });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(test::read_exactly(peer_fd.get(), 11), "early-reply");
}

TEST_F(tcp_stream_test, RepliesJoinTheCorkWhenOnDataWritesToAnotherStream) {
  // A publisher's answer must not overtake what its handler sent to others
  // (a publication's deliveries): with anything else in the cork, replies
  // are flushed with it, after it.
  unique_fd a_peer;
  unique_fd a_fd;
  std::tie(a_peer, a_fd) = test::tcp_pair();
  unique_fd b_peer;
  unique_fd b_fd;
  std::tie(b_peer, b_fd) = test::tcp_pair();
  scripted_handler a_handler;
  scripted_handler b_handler;
  tcp_stream& b = open(std::move(b_fd), b_handler);
  a_handler.data_fn = [&](tcp_stream& a, std::span<std::byte>) {
    a.send(as_bytes("ack-1"));  // a reply while the cork is idle
    b.send(as_bytes("delivery"));
    a.send(as_bytes("ack-2"));
  };
  open(std::move(a_fd), a_handler);
  ASSERT_EQ(::send(a_peer.get(), "x", 1, 0), 1);
  stop_when([&] { return !a_handler.received.empty(); });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(test::read_exactly(a_peer.get(), 10), "ack-1ack-2");
  EXPECT_EQ(test::read_exactly(b_peer.get(), 8), "delivery");
  const auto stats = loop->cork().statistics();
  EXPECT_EQ(stats.sinks_flushed, 2u);  // b first, then a's replies behind it
  EXPECT_EQ(stats.bytes_flushed, 18u);
}

TEST_F(tcp_stream_test, CloseFromOnDataDropsItsReplies) {
  unique_fd peer_fd;
  unique_fd fd;
  std::tie(peer_fd, fd) = test::tcp_pair();
  scripted_handler handler;
  tcp_stream& stream = open(std::move(fd), handler);
  ASSERT_EQ(::send(peer_fd.get(), "x", 1, 0), 1);
  handler.data_fn = [&](tcp_stream& s, std::span<std::byte>) {
    EXPECT_EQ(s.send(as_bytes("never sent")), send_status::ok);
    s.close();
    EXPECT_EQ(s.buffered_bytes(), 0u);
    loop->defer([&] { loop->stop(); });
  };
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_FALSE(stream.is_open());
  EXPECT_EQ(test::read_exactly(peer_fd.get(), 1), "");  // end of stream, no bytes
  // The window is free again: another stream's replies still go out.
  unique_fd peer2_fd;
  unique_fd fd2;
  std::tie(peer2_fd, fd2) = test::tcp_pair();
  scripted_handler handler2;
  handler2.data_fn = [&](tcp_stream& s, std::span<std::byte>) {
    s.send(as_bytes("pong"));
    loop->defer([&] { loop->stop(); });
  };
  open(std::move(fd2), handler2);
  ASSERT_EQ(::send(peer2_fd.get(), "y", 1, 0), 1);
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(test::read_exactly(peer2_fd.get(), 4), "pong");
}

TEST_F(tcp_stream_test, InterleavedSendsToTwoStreamsCostOneSyscallEach) {
  unique_fd a_peer;
  unique_fd a_fd;
  std::tie(a_peer, a_fd) = test::tcp_pair();
  unique_fd b_peer;
  unique_fd b_fd;
  std::tie(b_peer, b_fd) = test::tcp_pair();
  scripted_handler handler;
  tcp_stream& a = open(std::move(a_fd), handler);
  tcp_stream& b = open(std::move(b_fd), handler);
  loop->post([&] {
    a.send(as_bytes("a1"));
    b.send(as_bytes("b1"));
    a.send(as_bytes("a2"));
    b.send(as_bytes("b2"));
    a.send({as_bytes("a3-"), as_bytes("parts")});
    loop->stop();
  });
  const auto before = loop->cork().statistics();
  ASSERT_TRUE(test::run_for_at_most(*loop));
  const auto after = loop->cork().statistics();
  EXPECT_EQ(after.sinks_flushed - before.sinks_flushed, 2u);  // one sendmsg per stream
  EXPECT_EQ(test::read_exactly(a_peer.get(), 12), "a1a2a3-parts");
  EXPECT_EQ(test::read_exactly(b_peer.get(), 4), "b1b2");
}

TEST_F(tcp_stream_test, LargeSendsSkipTheCorkButKeepTheOrder) {
  unique_fd peer_fd;
  unique_fd fd;
  std::tie(peer_fd, fd) = test::tcp_pair();
  scripted_handler handler;
  scripted_handler peer;
  tcp_stream& stream = open(std::move(fd), handler);
  open(std::move(peer_fd), peer);
  const std::string big = test::pattern(0, 200 * 1024);
  const std::string expected = "head" + big + "tail";
  loop->post([&] {
    stream.send(as_bytes("head"));
    stream.send(as_bytes(big));  // written at once, behind "head"
    EXPECT_LT(stream.buffered_bytes(), big.size());
    stream.send(as_bytes("tail"));
  });
  stop_when([&] { return peer.received.size() >= expected.size(); });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(peer.received.size(), expected.size());
  EXPECT_TRUE(peer.received == expected) << "bytes arrived out of order";
}

TEST_F(tcp_stream_test, BackpressureBuffersWhatTheKernelRefusesAndDrains) {
  unique_fd peer_fd;
  unique_fd fd;
  std::tie(peer_fd, fd) = test::tcp_pair();
  // Small kernel buffers so that the peer not reading blocks us quickly.
  const int small = 16 * 1024;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  ::setsockopt(peer_fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  scripted_handler handler;
  tcp_stream& stream = open(std::move(fd), handler);

  constexpr std::size_t k_chunk = 8 * 1024;
  constexpr std::size_t k_target = 1024 * 1024;
  std::size_t sent = 0;
  bool saw_backpressure = false;
  // Phase 1: the peer does not read; send a chunk per iteration until a
  // megabyte is buffered in the stream (the kernel buffers hold far less).
  event_loop::hook_id sender = loop->add_iteration_hook([&] {
    if (stream.buffered_bytes() >= k_target) {
      loop->stop();
      return;
    }
    const send_status status = stream.send(as_bytes(test::pattern(sent, k_chunk)));
    ASSERT_NE(status, send_status::dropped);
    if (status == send_status::backpressure) saw_backpressure = true;
    sent += k_chunk;
    loop->defer([] {});  // next iteration at once
  });
  loop->defer([] {});
  ASSERT_TRUE(test::run_for_at_most(*loop, 10s));
  loop->remove_iteration_hook(sender);
  EXPECT_TRUE(saw_backpressure);
  EXPECT_TRUE(stream.write_blocked());
  EXPECT_GE(stream.buffered_bytes(), k_target);
  EXPECT_EQ(handler.drained, 0);
  // The loop counts what its streams hold for slow peers (nothing is corked now).
  EXPECT_EQ(loop->held_write_bytes(), stream.buffered_bytes());

  // Phase 2: the peer reads everything; EPOLLOUT drains the buffer.
  std::string received;
  scripted_handler peer;
  open(std::move(peer_fd), peer);
  handler.drained_fn = [&](tcp_stream& s) {
    EXPECT_EQ(s.buffered_bytes(), 0u);
    EXPECT_FALSE(s.write_blocked());
  };
  stop_when([&] { return handler.drained > 0 && peer.received.size() >= sent; });
  ASSERT_TRUE(test::run_for_at_most(*loop, 10s));
  EXPECT_EQ(handler.drained, 1);
  EXPECT_EQ(stream.buffered_bytes(), 0u);
  EXPECT_EQ(loop->held_write_bytes(), 0u);
  ASSERT_EQ(peer.received.size(), sent);
  EXPECT_TRUE(peer.received == test::pattern(0, sent)) << "bytes lost or reordered";
}

TEST_F(tcp_stream_test, HeldBytesFollowTheBacklogAndGoWithTheStream) {
  unique_fd peer_fd;
  unique_fd fd;
  std::tie(peer_fd, fd) = test::tcp_pair();
  const int small = 16 * 1024;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  ::setsockopt(peer_fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  scripted_handler handler;
  tcp_stream& stream = open(std::move(fd), handler);
  const std::string big(256 * 1024, 'h');  // direct writes: nothing corked
  for (int i = 0; i < 4; ++i) ASSERT_NE(stream.send(as_bytes(big)), send_status::dropped);
  ASSERT_TRUE(stream.write_blocked());
  EXPECT_EQ(loop->held_write_bytes(), stream.buffered_bytes());
  EXPECT_GT(loop->held_write_bytes(), big.size());
  stream.close();  // the peer never read: the bytes are dropped, and uncounted
  EXPECT_EQ(loop->held_write_bytes(), 0u);
}

TEST_F(tcp_stream_test, PeerEndOfStreamClosesWithAnEmptyError) {
  unique_fd peer_fd;
  unique_fd fd;
  std::tie(peer_fd, fd) = test::tcp_pair();
  scripted_handler handler;
  tcp_stream& stream = open(std::move(fd), handler);
  ASSERT_EQ(::send(peer_fd.get(), "bye", 3, 0), 3);
  ::shutdown(peer_fd.get(), SHUT_WR);
  handler.close_fn = [&](tcp_stream& s, std::error_code) {
    EXPECT_FALSE(s.is_open());
    loop->stop();
  };
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(handler.received, "bye");  // data first, then the end
  EXPECT_EQ(handler.closes, 1);
  EXPECT_FALSE(handler.close_error);
  EXPECT_FALSE(stream.is_open());
  EXPECT_EQ(stream.send(as_bytes("late")), send_status::dropped);
}

// Makes the peer reset the connection, and waits until the reset has arrived.
void reset_peer(unique_fd& peer, int local_fd) {
  const linger abort_on_close{1, 0};
  ::setsockopt(peer.get(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
  peer.reset();
  pollfd ready{local_fd, POLLERR | POLLHUP, 0};
  ASSERT_EQ(::poll(&ready, 1, 5000), 1);
}

TEST_F(tcp_stream_test, PeerResetIsReportedAsAnError) {
  unique_fd peer_fd;
  unique_fd fd;
  std::tie(peer_fd, fd) = test::tcp_pair();
  const int raw = fd.get();
  scripted_handler handler;
  open(std::move(fd), handler);
  reset_peer(peer_fd, raw);
  handler.close_fn = [&](tcp_stream&, std::error_code) { loop->stop(); };
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(handler.closes, 1);
  EXPECT_EQ(handler.close_error, std::errc::connection_reset);
}

TEST_F(tcp_stream_test, AWriteErrorIsReportedFromTheLoopNotFromSend) {
  unique_fd peer_fd;
  unique_fd fd;
  std::tie(peer_fd, fd) = test::tcp_pair();
  const int raw = fd.get();
  scripted_handler handler;
  tcp_stream& stream = open(std::move(fd), handler);
  reset_peer(peer_fd, raw);
  // A large send writes at once and fails inside send(): no callback yet.
  const std::string big(64 * 1024, 'x');
  EXPECT_EQ(stream.send(as_bytes(big)), send_status::dropped);
  EXPECT_EQ(handler.closes, 0);
  EXPECT_EQ(stream.send(as_bytes("small")), send_status::dropped);
  EXPECT_EQ(stream.buffered_bytes(), 0u);
  handler.close_fn = [&](tcp_stream&, std::error_code) { loop->stop(); };
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(handler.closes, 1);
  EXPECT_TRUE(handler.close_error == std::errc::connection_reset ||
              handler.close_error == std::errc::broken_pipe)
      << handler.close_error.message();
  EXPECT_TRUE(handler.received.empty());
}

TEST_F(tcp_stream_test, AFailedCorkFlushIsReportedOnTheNextIteration) {
  unique_fd peer_fd;
  unique_fd fd;
  std::tie(peer_fd, fd) = test::tcp_pair();
  const int raw = fd.get();
  scripted_handler handler;
  tcp_stream& stream = open(std::move(fd), handler);
  std::uint64_t sent_in = 0;
  std::uint64_t reported_in = 0;
  // In a hook, after this iteration's I/O: the peer resets, then a small send
  // is corked; the flush at the end of the iteration fails.
  event_loop::hook_id hook = loop->add_iteration_hook([&] {
    reset_peer(peer_fd, raw);
    EXPECT_EQ(stream.send(as_bytes("corked")), send_status::ok);
    sent_in = loop->iterations();
    loop->remove_iteration_hook(hook);
  });
  loop->defer([] {});
  handler.close_fn = [&](tcp_stream&, std::error_code) {
    reported_in = loop->iterations();
    loop->stop();
  };
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(handler.closes, 1);
  EXPECT_TRUE(handler.close_error == std::errc::connection_reset ||
              handler.close_error == std::errc::broken_pipe)
      << handler.close_error.message();
  EXPECT_EQ(reported_in, sent_in + 1);
  EXPECT_EQ(loop->cork().statistics().sinks_flushed, 1u);
}

TEST_F(tcp_stream_test, AHandlerMayDestroyItsStreamAndOthersFromOnData) {
  unique_fd a_peer;
  unique_fd a_fd;
  std::tie(a_peer, a_fd) = test::tcp_pair();
  unique_fd b_peer;
  unique_fd b_fd;
  std::tie(b_peer, b_fd) = test::tcp_pair();
  scripted_handler handler;
  auto a = std::make_unique<tcp_stream>(*loop, handler);
  auto b = std::make_unique<tcp_stream>(*loop, handler);
  ASSERT_FALSE(a->open(std::move(a_fd)));
  ASSERT_FALSE(b->open(std::move(b_fd)));
  // Both are readable in the same batch; whichever is first destroys both.
  ASSERT_EQ(::send(a_peer.get(), "x", 1, 0), 1);
  ASSERT_EQ(::send(b_peer.get(), "y", 1, 0), 1);
  pollfd ready[2] = {{a->native_handle(), POLLIN, 0}, {b->native_handle(), POLLIN, 0}};
  while (::poll(ready, 2, 5000) == 1 && (ready[0].revents == 0 || ready[1].revents == 0)) {
  }
  handler.data_fn = [&](tcp_stream& self, std::span<std::byte>) {
    self.send(as_bytes("written-then-dropped"));
    a.reset();
    b.reset();
    loop->stop();
  };
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(handler.received.size(), 1u);
  EXPECT_EQ(handler.closes, 0);
}

TEST_F(tcp_stream_test, CloseFromOnDataStopsFurtherCallbacks) {
  unique_fd peer_fd;
  unique_fd fd;
  std::tie(peer_fd, fd) = test::tcp_pair();
  scripted_handler handler;
  tcp_stream& stream = open(std::move(fd), handler);
  ASSERT_EQ(::send(peer_fd.get(), "x", 1, 0), 1);
  ::shutdown(peer_fd.get(), SHUT_WR);
  handler.data_fn = [&](tcp_stream& s, std::span<std::byte>) {
    s.close();
    loop->defer([&] { loop->stop(); });
  };
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_FALSE(stream.is_open());
  EXPECT_EQ(handler.closes, 0);                         // close() by the owner is not reported
  EXPECT_EQ(test::read_exactly(peer_fd.get(), 1), "");  // the peer sees the close
}

TEST_F(tcp_stream_test, AnIdleStreamIsSmall) {
  // Everything per connection in this layer; the buffers are per loop.
  EXPECT_LE(sizeof(tcp_stream), 80u) << "sizeof(tcp_stream) = " << sizeof(tcp_stream);
}

}  // namespace
}  // namespace switchboard::net
