// uring_test.cpp — the io_uring backend's own behaviour: the fallback to epoll
// when the kernel refuses a ring, completion I/O on TCP streams (receives
// spread over many provided buffers, running out of buffers, sends batched
// into one submission, the socket released at once on close), TLS streams on
// completions, and receives that outlive the thread that armed them. The
// rest of the net suite also runs on io_uring (ctest's uring.* names).
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <thread>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/tcp_stream.hpp"
#include "switchboard/net/tls_context.hpp"
#include "switchboard/net/tls_stream.hpp"
#include "test_support.hpp"
#include "tls_certs.hpp"

namespace switchboard::net {
namespace {

using namespace std::chrono_literals;
using test::as_bytes;
using test::as_string;

struct collecting_handler final : stream_handler {
  void on_data(tcp_stream& stream, std::span<std::byte> data) override {
    received += as_string(data);
    ++chunks;
    if (echo) stream.send(data);
  }
  void on_close(tcp_stream& /*stream*/, std::error_code error) override {
    closed = true;
    close_error = error;
  }
  std::string received;
  std::size_t chunks = 0;
  bool echo = false;
  bool closed = false;
  std::error_code close_error;
};

event_loop_options uring_options() {
  event_loop_options options = test::test_loop_options();
  options.backend = io_backend::io_uring;
  return options;
}

// With a registered file table (off by default).
event_loop_options files_options() {
  event_loop_options options = uring_options();
  options.uring_files = 65536;
  return options;
}

class uring_test : public test::net_test {};

TEST_F(uring_test, ParsesAndNamesTheBackends) {
  io_backend backend = io_backend::epoll;
  EXPECT_TRUE(parse_io_backend("io_uring", backend));
  EXPECT_EQ(backend, io_backend::io_uring);
  EXPECT_EQ(to_string(backend), "io_uring");
  EXPECT_TRUE(parse_io_backend("epoll", backend));
  EXPECT_EQ(to_string(backend), "epoll");
  EXPECT_FALSE(parse_io_backend("uring", backend));
  EXPECT_FALSE(parse_io_backend("", backend));
  EXPECT_EQ(backend, io_backend::epoll);  // unchanged by a refused name
}

TEST_F(uring_test, ALoopAskedForIoUringGetsIt) {
  auto loop = test::make_loop(uring_options());
  ASSERT_TRUE(loop);
  EXPECT_EQ(loop->backend(), io_backend::io_uring);
  EXPECT_TRUE(loop->completion_io());
  EXPECT_FALSE(loop->backend_error());
}

TEST_F(uring_test, ARingTheKernelRefusesFallsBackToAWorkingEpollLoop) {
  event_loop_options options = uring_options();
  options.uring_entries = 0;  // the kernel refuses a ring of no entries (EINVAL)
  std::error_code error;
  auto loop = event_loop::create(error, options);
  ASSERT_TRUE(loop) << error.message();
  EXPECT_EQ(loop->backend(), io_backend::epoll);
  EXPECT_FALSE(loop->completion_io());
  EXPECT_EQ(loop->backend_error(), std::errc::invalid_argument);
  // And it is a loop: a stream echoes through it.
  auto [client_fd, server_fd] = test::tcp_pair();
  collecting_handler server;
  server.echo = true;
  tcp_stream stream(*loop, server);
  ASSERT_FALSE(stream.open(std::move(server_fd)));
  const std::string message = "still served";
  ASSERT_EQ(::send(client_fd.get(), message.data(), message.size(), 0),
            static_cast<ssize_t>(message.size()));
  loop->add_iteration_hook([&] {
    if (server.received.size() >= message.size()) loop->stop();
  });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(test::read_exactly(client_fd.get(), message.size()), message);
  stream.close();
}

TEST_F(uring_test, ALoopAskedForEpollHasNoRing) {
  event_loop_options options = test::test_loop_options();
  options.backend = io_backend::epoll;
  auto loop = test::make_loop(options);
  ASSERT_TRUE(loop);
  EXPECT_EQ(loop->backend(), io_backend::epoll);
  EXPECT_FALSE(loop->backend_error());
}

// More bytes than fit one provided buffer arrive in several completions, in order.
TEST_F(uring_test, AMessageLargerThanABufferArrivesWholeAndInOrder) {
  event_loop_options options = uring_options();
  options.uring_buffers = 8;
  options.uring_buffer_size = 1024;
  auto loop = test::make_loop(options);
  ASSERT_TRUE(loop);
  auto [client_fd, server_fd] = test::tcp_pair();
  collecting_handler server;
  server.echo = true;
  tcp_stream stream(*loop, server);
  ASSERT_FALSE(stream.open(std::move(server_fd)));
  const std::string payload = test::pattern(0, 256 * 1024);
  std::string echoed;
  std::thread peer([&, fd = client_fd.get()] {
    // Blocking writes from another thread: the loop must drain while we send.
    std::size_t sent = 0;
    while (sent < payload.size()) {
      const ssize_t n = ::send(fd, payload.data() + sent, payload.size() - sent, MSG_NOSIGNAL);
      if (n <= 0 && errno != EAGAIN) break;
      if (n > 0) sent += static_cast<std::size_t>(n);
    }
  });
  loop->add_iteration_hook([&] {
    if (server.received.size() >= payload.size()) loop->stop();
  });
  const bool finished = test::run_for_at_most(*loop, 10s);
  peer.join();
  ASSERT_TRUE(finished);
  EXPECT_EQ(server.received, payload);
  // The echo went back through batched sends and, where the socket was full,
  // the backlog: run until the peer has it all.
  std::string back;
  std::thread reader([&, fd = client_fd.get()] { back = test::read_exactly(fd, payload.size(), 10s); });
  loop->add_iteration_hook([&] {
    if (stream.buffered_bytes() == 0) loop->stop();
  });
  const bool drained = test::run_for_at_most(*loop, 10s);
  reader.join();
  EXPECT_TRUE(drained);
  EXPECT_EQ(back, payload);
  stream.close();
}

// Bytes already queued when the receive runs fill three 1 KiB buffers one
// after the other: the completions follow each other in memory and reach the
// handler as one piece (a message crossing a buffer's end needs no
// reassembly). Two streams at once: one stream's bytes never join another's.
TEST_F(uring_test, ABurstThatFillsSeveralBuffersArrivesInOnePiece) {
  event_loop_options options = uring_options();
  options.uring_buffers = 8;
  options.uring_buffer_size = 1024;
  auto loop = test::make_loop(options);
  ASSERT_TRUE(loop);
  auto [client_a, server_a] = test::tcp_pair();
  auto [client_b, server_b] = test::tcp_pair();
  collecting_handler handler_a;
  collecting_handler handler_b;
  tcp_stream stream_a(*loop, handler_a);
  tcp_stream stream_b(*loop, handler_b);
  ASSERT_FALSE(stream_a.open(std::move(server_a)));
  ASSERT_FALSE(stream_b.open(std::move(server_b)));
  const std::string payload_a = test::pattern(0, 3000);
  const std::string payload_b = test::pattern(7, 2500);
  ASSERT_EQ(::send(client_a.get(), payload_a.data(), payload_a.size(), 0),
            static_cast<ssize_t>(payload_a.size()));
  ASSERT_EQ(::send(client_b.get(), payload_b.data(), payload_b.size(), 0),
            static_cast<ssize_t>(payload_b.size()));
  loop->add_iteration_hook([&] {
    if (handler_a.received.size() >= payload_a.size() &&
        handler_b.received.size() >= payload_b.size()) {
      loop->stop();
    }
  });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(handler_a.received, payload_a);
  EXPECT_EQ(handler_b.received, payload_b);
  // The first stream's receive starts at the first buffer's start: 3000
  // bytes take three buffers, in one piece.
  EXPECT_EQ(handler_a.chunks, 1U);
  stream_a.close();
  stream_b.close();
}

// Eight connections send at once to a loop with two buffers: receives stop
// with ENOBUFS and are re-armed as buffers come back; nothing is lost.
TEST_F(uring_test, RunningOutOfReceiveBuffersLosesNothing) {
  event_loop_options options = uring_options();
  options.uring_buffers = 2;
  options.uring_buffer_size = 64;
  auto loop = test::make_loop(options);
  ASSERT_TRUE(loop);
  constexpr std::size_t k_streams = 8;
  std::vector<unique_fd> peers;
  std::vector<std::unique_ptr<collecting_handler>> handlers;
  std::vector<std::unique_ptr<tcp_stream>> streams;
  for (std::size_t i = 0; i < k_streams; ++i) {
    auto [client_fd, server_fd] = test::tcp_pair();
    handlers.push_back(std::make_unique<collecting_handler>());
    streams.push_back(std::make_unique<tcp_stream>(*loop, *handlers.back()));
    ASSERT_FALSE(streams.back()->open(std::move(server_fd)));
    peers.push_back(std::move(client_fd));
  }
  const std::string payload = test::pattern(0, 1000);
  for (auto& peer : peers) {
    ASSERT_EQ(::send(peer.get(), payload.data(), payload.size(), 0),
              static_cast<ssize_t>(payload.size()));
  }
  loop->add_iteration_hook([&] {
    for (auto& h : handlers) {
      if (h->received.size() < payload.size()) return;
    }
    loop->stop();
  });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  for (auto& h : handlers) EXPECT_EQ(h->received, payload);
  for (auto& s : streams) s->close();
}

// Sends to many streams in one iteration go out in one submission, each
// stream's bytes whole and in order.
TEST_F(uring_test, SendsToManyStreamsInOneIterationAllArrive) {
  auto loop = test::make_loop(uring_options());
  ASSERT_TRUE(loop);
  constexpr std::size_t k_streams = 50;
  std::vector<unique_fd> peers;
  collecting_handler handler;
  std::vector<std::unique_ptr<tcp_stream>> streams;
  for (std::size_t i = 0; i < k_streams; ++i) {
    auto [client_fd, server_fd] = test::tcp_pair();
    streams.push_back(std::make_unique<tcp_stream>(*loop, handler));
    ASSERT_FALSE(streams.back()->open(std::move(server_fd)));
    peers.push_back(std::move(client_fd));
  }
  loop->post([&] {
    for (std::size_t i = 0; i < k_streams; ++i) {
      streams[i]->send(as_bytes("one-"));
      streams[(i + 1) % k_streams]->send(as_bytes("x"));
    }
    for (auto& s : streams) s->send(as_bytes("-end"));
    loop->stop();
  });
  const auto before = loop->cork().statistics();
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(loop->cork().statistics().sinks_flushed - before.sinks_flushed, k_streams);
  // Stream i got "x" right after stream i-1's "one-"; stream 0 got it last.
  for (std::size_t i = 0; i < k_streams; ++i) {
    EXPECT_EQ(test::read_exactly(peers[i].get(), 9), i == 0 ? "one-x-end" : "xone--end");
  }
  for (auto& s : streams) s->close();
}

// The multishot receive holds a reference to the socket: closing the stream
// must still end the connection at once, without another loop iteration.
TEST_F(uring_test, ClosingAStreamEndsTheConnectionWithoutAnotherIteration) {
  auto loop = test::make_loop(uring_options());
  ASSERT_TRUE(loop);
  auto [client_fd, server_fd] = test::tcp_pair();
  collecting_handler server;
  tcp_stream stream(*loop, server);
  ASSERT_FALSE(stream.open(std::move(server_fd)));
  loop->post([&] { loop->stop(); });
  ASSERT_TRUE(test::run_for_at_most(*loop));  // the receive is armed
  stream.close();
  // The peer reads the end of the stream (an empty read) while the loop is idle.
  pollfd readable{client_fd.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&readable, 1, 2000), 1);
  char byte = 0;
  EXPECT_EQ(::recv(client_fd.get(), &byte, 1, MSG_DONTWAIT), 0);
}

// A single-thread ring (SINGLE_ISSUER + DEFER_TASKRUN, as loop_group's loops
// get) is created disabled by one thread and belongs to the first thread that
// runs the loop: what was queued before (the stream's receive) goes with that
// thread's first submission, the stream works there, and closing it there
// ends the connection at once. Another thread's run() fails with EEXIST
// instead of submitting to a ring that is not its own.
TEST_F(uring_test, ASingleThreadRingBelongsToTheThreadThatRunsItFirst) {
  event_loop_options options = uring_options();
  options.uring_single_thread = true;
  auto loop = test::make_loop(options);
  ASSERT_TRUE(loop);
  ASSERT_EQ(loop->backend(), io_backend::io_uring);
  auto [client_fd, server_fd] = test::tcp_pair();
  collecting_handler server;
  server.echo = true;
  tcp_stream stream(*loop, server);
  ASSERT_FALSE(stream.open(std::move(server_fd)));  // queued here, not submitted
  const std::string payload = test::pattern(0, 5000);
  ASSERT_EQ(::send(client_fd.get(), payload.data(), payload.size(), 0),
            static_cast<ssize_t>(payload.size()));
  bool echoed = false;
  loop->add_iteration_hook([&] {
    if (echoed || server.received.size() < payload.size()) return;
    echoed = true;
    // Runs in the next iteration, after this one's flush sent the echo.
    loop->post([&] {
      EXPECT_EQ(stream.buffered_bytes(), 0U);
      stream.close();  // from the owner: the socket goes with this submission
      loop->stop();
    });
  });
  bool finished = false;
  std::thread owner([&] { finished = test::run_for_at_most(*loop); });
  owner.join();
  ASSERT_TRUE(finished);
  EXPECT_EQ(server.received, payload);
  EXPECT_EQ(test::read_exactly(client_fd.get(), payload.size(), 5s), payload);
  // The end of the stream reaches the peer without the loop running again.
  pollfd readable{client_fd.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&readable, 1, 2000), 1);
  char byte = 0;
  EXPECT_EQ(::recv(client_fd.get(), &byte, 1, MSG_DONTWAIT), 0);
  // This thread is not the ring's.
  const std::error_code error = loop->run();
  EXPECT_EQ(error, std::error_code(EEXIST, std::system_category())) << error.message();
}

// A peer that resets the connection is reported as an error through the receive.
TEST_F(uring_test, APeerResetClosesTheStreamWithTheError) {
  auto loop = test::make_loop(uring_options());
  ASSERT_TRUE(loop);
  auto [client_fd, server_fd] = test::tcp_pair();
  collecting_handler server;
  tcp_stream stream(*loop, server);
  ASSERT_FALSE(stream.open(std::move(server_fd)));
  const linger reset{1, 0};  // close() then sends RST
  ASSERT_EQ(::setsockopt(client_fd.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset), 0);
  client_fd.reset();
  loop->add_iteration_hook([&] {
    if (server.closed) loop->stop();
  });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(server.close_error, std::errc::connection_reset);
  EXPECT_FALSE(stream.is_open());
}

// The kernel cancels a thread's requests when it exits. A loop run by one
// thread and then another (a test's peer loop, a server restarted on a new
// thread) keeps its streams: the cancelled receive is armed again.
TEST_F(uring_test, AReceiveOutlivesTheThreadThatArmedIt) {
  auto loop = test::make_loop(uring_options());
  ASSERT_TRUE(loop);
  auto [client_fd, server_fd] = test::tcp_pair();
  collecting_handler server;
  tcp_stream stream(*loop, server);
  ASSERT_FALSE(stream.open(std::move(server_fd)));
  std::thread first([&] {
    loop->post([&] { loop->stop(); });
    EXPECT_TRUE(test::run_for_at_most(*loop));  // submits the receive, then exits
  });
  first.join();
  const std::string message = "after the thread left";
  ASSERT_EQ(::send(client_fd.get(), message.data(), message.size(), 0),
            static_cast<ssize_t>(message.size()));
  loop->add_iteration_hook([&] {
    if (server.closed || server.received.size() >= message.size()) loop->stop();
  });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_FALSE(server.closed) << server.close_error.message();
  EXPECT_EQ(server.received, message);
  stream.close();
}

// TLS on completions: records arrive split over many tiny provided buffers
// (and the receives run out of them); both sides decrypt everything, in
// order, and the echo's records leave as queued sends.
TEST_F(uring_test, TlsStreamsOnCompletionsReassembleRecordsFromTinyBuffers) {
  event_loop_options options = uring_options();
  options.uring_buffers = 4;
  options.uring_buffer_size = 256;
  auto loop = test::make_loop(options);
  ASSERT_TRUE(loop);
  ASSERT_TRUE(test::certs().error.empty()) << test::certs().error;
  tls_error error;
  tls_server_options server_options;
  server_options.certificate_chain_file = test::certs().server.cert;
  server_options.private_key_file = test::certs().server.key;
  auto server_ctx = tls_context::server(server_options, error);
  ASSERT_TRUE(server_ctx) << error.text;
  tls_client_options client_options;
  client_options.ca_file = test::certs().ca;
  auto client_ctx = tls_context::client(client_options, error);
  ASSERT_TRUE(client_ctx) << error.text;

  struct handler final : tls_stream_handler {
    void on_handshake(tls_stream& /*stream*/) override { ++handshakes; }
    void on_data(tls_stream& stream, std::span<std::byte> data) override {
      received += as_string(data);
      if (echo) {
        EXPECT_NE(stream.send(data), send_status::dropped);
      }
    }
    void on_close(tls_stream& /*stream*/, std::error_code error) override {
      ADD_FAILURE() << "closed: " << error.message();
    }
    std::string received;
    int handshakes = 0;
    bool echo = false;
  } server_handler, client_handler;
  server_handler.echo = true;
  auto [client_fd, server_fd] = test::tcp_pair();
  tls_stream server(*loop, server_handler, *server_ctx);
  tls_stream client(*loop, client_handler, *client_ctx);
  ASSERT_FALSE(server.open(std::move(server_fd)));
  ASSERT_FALSE(client.open(std::move(client_fd), "localhost"));
  const std::string payload = test::pattern(0, 200 * 1024);
  loop->post([&] { EXPECT_EQ(client.send(as_bytes(payload)), send_status::ok); });
  loop->add_iteration_hook([&] {
    if (client_handler.received.size() >= payload.size()) loop->stop();
  });
  ASSERT_TRUE(test::run_for_at_most(*loop, 10s));
  EXPECT_EQ(server_handler.handshakes, 1);
  EXPECT_EQ(client_handler.handshakes, 1);
  EXPECT_TRUE(server_handler.received == payload) << "server: bytes lost or reordered";
  EXPECT_TRUE(client_handler.received == payload) << "client: bytes lost or reordered";
  EXPECT_EQ(loop->held_write_bytes(), 0u);
  server.close();
  client.close();
}

// Echo until `message` came back on every (client, stream) pair.
bool echo_all(event_loop& loop, std::vector<unique_fd>& peers,
              std::vector<std::unique_ptr<collecting_handler>>& handlers,
              const std::string& message) {
  for (auto& peer : peers) {
    if (::send(peer.get(), message.data(), message.size(), 0) !=
        static_cast<ssize_t>(message.size())) {
      return false;
    }
  }
  const auto hook = loop.add_iteration_hook([&] {
    for (auto& h : handlers) {
      if (h->received.size() < message.size()) return;
    }
    loop.stop();
  });
  const bool done = test::run_for_at_most(loop);
  loop.remove_iteration_hook(hook);
  bool ok = done;
  for (std::size_t i = 0; i < peers.size(); ++i) {
    ok = ok && handlers[i]->received == message &&
         test::read_exactly(peers[i].get(), message.size()) == message;
    handlers[i]->received.clear();
  }
  return ok;
}

// A stream's descriptor gets a registered file (the table is capped at
// RLIMIT_NOFILE, 20,000 here, below the 65,536 slots asked for: a table the
// kernel refused would register none), its sends go through it, and close()
// gives the slot back and ends the connection at once.
TEST_F(uring_test, AStreamUsesARegisteredFileAndGivesItBackAtClose) {
  auto loop = test::make_loop(files_options());
  ASSERT_TRUE(loop);
  std::vector<unique_fd> peers;
  std::vector<std::unique_ptr<collecting_handler>> handlers;
  std::vector<std::unique_ptr<tcp_stream>> streams;
  auto [client_fd, server_fd] = test::tcp_pair();
  handlers.push_back(std::make_unique<collecting_handler>());
  handlers.back()->echo = true;
  streams.push_back(std::make_unique<tcp_stream>(*loop, *handlers.back()));
  ASSERT_FALSE(streams.back()->open(std::move(server_fd)));
  peers.push_back(std::move(client_fd));
  EXPECT_EQ(loop->registered_files(), 0u);  // asked for in the next submission
  ASSERT_TRUE(echo_all(*loop, peers, handlers, "first"));
  EXPECT_EQ(loop->registered_files(), 1u);
  ASSERT_TRUE(echo_all(*loop, peers, handlers, "through the slot"));
  streams.back()->close();
  EXPECT_EQ(loop->registered_files(), 0u);
  pollfd readable{peers.back().get(), POLLIN, 0};
  EXPECT_EQ(::poll(&readable, 1, 2000), 1);
  char byte = 0;
  EXPECT_EQ(::recv(peers.back().get(), &byte, 1, MSG_DONTWAIT), 0);  // the socket is closed
}

// A descriptor number freed by one stream and given to the next connection
// is installed again for the new socket: the new stream's bytes reach its
// own peer, never the old one's.
TEST_F(uring_test, AReusedDescriptorNumberGetsItsOwnRegisteredFile) {
  auto loop = test::make_loop(files_options());
  ASSERT_TRUE(loop);
  std::vector<unique_fd> old_peers;
  std::vector<std::unique_ptr<collecting_handler>> old_handlers;
  auto [old_client, old_server] = test::tcp_pair();
  const int number = old_server.get();
  old_handlers.push_back(std::make_unique<collecting_handler>());
  old_handlers.back()->echo = true;
  auto old_stream = std::make_unique<tcp_stream>(*loop, *old_handlers.back());
  ASSERT_FALSE(old_stream->open(std::move(old_server)));
  old_peers.push_back(std::move(old_client));
  ASSERT_TRUE(echo_all(*loop, old_peers, old_handlers, "old"));
  ASSERT_EQ(loop->registered_files(), 1u);
  old_stream->close();  // the old peer keeps its end open
  // Hold the freed number until the new socket takes it (accept would give
  // it the lowest free number: maybe this one).
  unique_fd placeholder(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  const int held = ::dup3(placeholder.get(), number, O_CLOEXEC);
  ASSERT_EQ(held, number);
  placeholder.reset();

  std::vector<unique_fd> peers;
  std::vector<std::unique_ptr<collecting_handler>> handlers;
  auto [client_fd, new_fd] = test::tcp_pair();
  // The new socket under the old number (what accept would give it when
  // that number is the lowest free one).
  unique_fd server_fd(::dup3(new_fd.get(), held, O_CLOEXEC));  // replaces /dev/null
  ASSERT_EQ(server_fd.get(), number);
  new_fd.reset();
  handlers.push_back(std::make_unique<collecting_handler>());
  handlers.back()->echo = true;
  tcp_stream stream(*loop, *handlers.back());
  ASSERT_FALSE(stream.open(std::move(server_fd)));
  peers.push_back(std::move(client_fd));
  ASSERT_TRUE(echo_all(*loop, peers, handlers, "new, one"));
  ASSERT_TRUE(echo_all(*loop, peers, handlers, "new, two"));
  EXPECT_EQ(loop->registered_files(), 1u);
  // The old peer saw the end of its stream and nothing of the new one's.
  char buffer[64];
  EXPECT_EQ(::recv(old_peers.back().get(), buffer, sizeof buffer, MSG_DONTWAIT), 0);
  stream.close();
}

// Descriptors beyond the table use plain files; all streams work alike.
// And a loop without a table (the default) registers none.
TEST_F(uring_test, DescriptorsBeyondTheRegisteredFileTableUsePlainFiles) {
  std::vector<unique_fd> peers;
  std::vector<unique_fd> server_fds;
  for (int i = 0; i < 6; ++i) {
    auto [client_fd, server_fd] = test::tcp_pair();
    peers.push_back(std::move(client_fd));
    server_fds.push_back(std::move(server_fd));
  }
  event_loop_options options = files_options();
  // Room for the first three server descriptors only.
  options.uring_files = static_cast<std::size_t>(server_fds[2].get()) + 1;
  std::size_t in_table = 0;
  for (const auto& fd : server_fds) {
    in_table += static_cast<std::size_t>(fd.get()) < options.uring_files ? 1 : 0;
  }
  ASSERT_GE(in_table, 3u);
  ASSERT_LT(in_table, server_fds.size());
  auto loop = test::make_loop(options);
  ASSERT_TRUE(loop);
  std::vector<std::unique_ptr<collecting_handler>> handlers;
  std::vector<std::unique_ptr<tcp_stream>> streams;
  for (auto& fd : server_fds) {
    handlers.push_back(std::make_unique<collecting_handler>());
    handlers.back()->echo = true;
    streams.push_back(std::make_unique<tcp_stream>(*loop, *handlers.back()));
    ASSERT_FALSE(streams.back()->open(std::move(fd)));
  }
  ASSERT_TRUE(echo_all(*loop, peers, handlers, "one"));
  ASSERT_TRUE(echo_all(*loop, peers, handlers, "two"));
  EXPECT_EQ(loop->registered_files(), in_table);
  for (auto& s : streams) s->close();
  EXPECT_EQ(loop->registered_files(), 0u);
}

TEST_F(uring_test, ALoopWithoutARegisteredFileTableUsesDescriptors) {
  auto loop = test::make_loop(uring_options());
  ASSERT_TRUE(loop);
  std::vector<unique_fd> peers;
  std::vector<std::unique_ptr<collecting_handler>> handlers;
  std::vector<std::unique_ptr<tcp_stream>> streams;
  auto [client_fd, server_fd] = test::tcp_pair();
  handlers.push_back(std::make_unique<collecting_handler>());
  handlers.back()->echo = true;
  streams.push_back(std::make_unique<tcp_stream>(*loop, *handlers.back()));
  ASSERT_FALSE(streams.back()->open(std::move(server_fd)));
  peers.push_back(std::move(client_fd));
  ASSERT_TRUE(echo_all(*loop, peers, handlers, "one"));
  ASSERT_TRUE(echo_all(*loop, peers, handlers, "two"));
  EXPECT_EQ(loop->registered_files(), 0u);
  streams.back()->close();
}

}  // namespace
}  // namespace switchboard::net
