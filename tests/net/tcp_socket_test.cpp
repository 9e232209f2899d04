// tcp_socket_test.cpp — endpoint parsing/formatting and the socket helpers;
// and the lifetime of tcp_stream's backpressure state: allocated only while the
// kernel refuses bytes, freed once they are written, on close and on failure.
#include "switchboard/net/tcp_socket.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "switchboard/net/tcp_stream.hpp"
#include "test_support.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define SWITCHBOARD_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SWITCHBOARD_TEST_ASAN 1
#endif
#endif
#ifdef SWITCHBOARD_TEST_ASAN
#include <sanitizer/allocator_interface.h>
#endif

namespace switchboard::net {
namespace {

TEST(endpoint, ParsesNumericIpv4AndIpv6) {
  auto v4 = endpoint::parse("127.0.0.1", 8080);
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->family(), AF_INET);
  EXPECT_EQ(v4->port(), 8080);
  EXPECT_EQ(v4->to_string(), "127.0.0.1:8080");
  EXPECT_EQ(*v4, endpoint::loopback_v4(8080));

  auto v6 = endpoint::parse("::1", 443);
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->family(), AF_INET6);
  EXPECT_EQ(v6->to_string(), "[::1]:443");
  EXPECT_EQ(*v6, endpoint::loopback_v6(443));
  EXPECT_EQ(endpoint::parse("[::1]", 443), v6);
}

TEST(endpoint, RejectsHostNamesAndGarbage) {
  EXPECT_FALSE(endpoint::parse("localhost", 80));
  EXPECT_FALSE(endpoint::parse("", 80));
  EXPECT_FALSE(endpoint::parse("256.0.0.1", 80));
  EXPECT_FALSE(endpoint::parse("1.2.3.4:80", 80));
  EXPECT_FALSE(endpoint::parse("[::1", 80));
  EXPECT_FALSE(endpoint::parse(std::string(100, '1'), 80));
}

TEST(endpoint, UnspecifiedAndPortChanges) {
  endpoint none;
  EXPECT_EQ(none.family(), AF_UNSPEC);
  EXPECT_EQ(none.size(), 0u);
  EXPECT_EQ(none.to_string(), "");
  EXPECT_EQ(endpoint::any_v4(0).with_port(99).to_string(), "0.0.0.0:99");
  EXPECT_EQ(endpoint::any_v6(1).to_string(), "[::]:1");
  EXPECT_NE(endpoint::loopback_v4(1), endpoint::loopback_v4(2));
  EXPECT_NE(endpoint::loopback_v4(1), endpoint::loopback_v6(1));
}

class tcp_socket_test : public test::net_test {};

TEST_F(tcp_socket_test, SocketsAreNonBlockingAndCloseOnExec) {
  std::error_code error;
  unique_fd fd = open_tcp_socket(AF_INET, error);
  ASSERT_TRUE(fd) << error.message();
  EXPECT_NE(::fcntl(fd.get(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_FALSE(set_no_delay(fd.get()));
  int value = 0;
  socklen_t length = sizeof value;
  ASSERT_EQ(::getsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &value, &length), 0);
  EXPECT_EQ(value, 1);
}

TEST_F(tcp_socket_test, ErrorsComeBackAsErrorCodes) {
  std::error_code error;
  unique_fd fd = open_tcp_socket(AF_UNIX + 1000, error);
  EXPECT_FALSE(fd);
  EXPECT_TRUE(error);
  EXPECT_EQ(set_no_delay(-1), std::errc::bad_file_descriptor);
  std::byte buffer[4];
  EXPECT_EQ(read_some(-1, buffer).error, std::errc::bad_file_descriptor);
}

TEST_F(tcp_socket_test, ReadSomeReportsWouldBlockDataAndEndOfStream) {
  unique_fd client;
  unique_fd server;
  std::tie(client, server) = test::tcp_pair();
  std::byte buffer[64];
  io_result result = read_some(server.get(), buffer);
  EXPECT_TRUE(result.would_block());

  const std::string hello = "hello";
  const iovec parts[] = {{const_cast<char*>(hello.data()), 2},
                         {const_cast<char*>(hello.data()) + 2, 3}};
  result = write_some(client.get(), std::span<const iovec>(parts));
  ASSERT_FALSE(result.error) << result.error.message();
  EXPECT_EQ(result.bytes, 5u);
  EXPECT_EQ(test::read_exactly(server.get(), 5), "hello");

  ::shutdown(client.get(), SHUT_WR);
  EXPECT_EQ(test::read_exactly(server.get(), 1), "");  // waits for the FIN
  result = read_some(server.get(), buffer);
  EXPECT_FALSE(result.error);
  EXPECT_EQ(result.bytes, 0u);
}

TEST_F(tcp_socket_test, WritingToAResetPeerIsAnErrorNotSigpipe) {
  unique_fd client;
  unique_fd server;
  std::tie(client, server) = test::tcp_pair();
  const linger abort_on_close{1, 0};
  ::setsockopt(client.get(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
  client.reset();  // sends RST
  const std::string data(1000, 'x');
  io_result result;
  for (int i = 0; i < 100 && !result.error; ++i)
    result = write_some(server.get(), test::as_bytes(data));
  EXPECT_TRUE(result.error == std::errc::broken_pipe || result.error == std::errc::connection_reset)
      << result.error.message();
}

TEST_F(tcp_socket_test, LocalAndPeerEndpointsOfAConnection) {
  unique_fd client;
  unique_fd server;
  std::tie(client, server) = test::tcp_pair();
  std::error_code error;
  const endpoint client_local = local_endpoint(client.get(), error);
  ASSERT_FALSE(error);
  const endpoint server_peer = peer_endpoint(server.get(), error);
  ASSERT_FALSE(error);
  EXPECT_EQ(client_local, server_peer);
  EXPECT_EQ(client_local.address_string(), "127.0.0.1");
  EXPECT_FALSE(socket_error(server.get()));
}

// ---------------------------------------------------------------------------
// tcp_stream: the backpressure state exists only while it is needed.

using namespace std::chrono_literals;

// Heap bytes this process has in use (malloc arenas plus mmapped chunks).
std::size_t heap_in_use() {
#ifdef SWITCHBOARD_TEST_ASAN
  return __sanitizer_get_current_allocated_bytes();
#else
  const struct mallinfo2 info = ::mallinfo2();
  return info.uordblks + info.hblkhd;
#endif
}

// Byte `offset` of the stream every test below sends: period 251 (prime).
std::byte pattern_byte(std::uint64_t offset) {
  return static_cast<std::byte>('!' + offset % 251 % 90);
}
std::vector<std::byte> pattern_bytes(std::uint64_t offset, std::size_t size) {
  std::vector<std::byte> out(size);
  for (std::size_t i = 0; i < size; ++i) out[i] = pattern_byte(offset + i);
  return out;
}

// Counts what a stream receives and checks it against the pattern, without
// keeping it (so that the heap shows only what the sender holds).
struct pattern_checker final : stream_handler {
  void on_data(tcp_stream& /*stream*/, std::span<std::byte> data) override {
    for (const std::byte b : data) {
      if (b != pattern_byte(received)) in_order = false;
      ++received;
    }
  }
  void on_drained(tcp_stream& /*stream*/) override { ++drained; }
  void on_close(tcp_stream& /*stream*/, std::error_code error) override {
    ++closes;
    close_error = error;
  }
  std::uint64_t received = 0;
  bool in_order = true;
  int drained = 0;
  int closes = 0;
  std::error_code close_error;
};

class tcp_stream_backlog_test : public test::net_test {
 protected:
  void SetUp() override {
    net_test::SetUp();
    loop = test::make_loop();
    ASSERT_TRUE(loop);
  }
  void TearDown() override {
    sender.reset();
    reader.reset();
    peer_fd.reset();
    loop.reset();
    net_test::TearDown();
  }
  // A connected pair with small kernel buffers: `sender` writes to `peer_fd`.
  void connect_sender() {
    unique_fd fd;
    std::tie(peer_fd, fd) = test::tcp_pair();
    const int small = 16 * 1024;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ::setsockopt(peer_fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    if (!sender) sender = std::make_unique<tcp_stream>(*loop, sender_events);
    ASSERT_FALSE(sender->open(std::move(fd)));
  }
  // Sends `size` pattern bytes at stream offset `sent`; advances `sent`.
  send_status send_next(std::size_t size) {
    const std::vector<std::byte> bytes = pattern_bytes(sent, size);
    sent += size;
    return sender->send(bytes);
  }
  // Lets `peer_fd` be read by a stream on the loop until the sender drained
  // and everything sent arrived.
  void drain_into_reader() {
    if (!reader) {
      reader = std::make_unique<tcp_stream>(*loop, reader_events);
      ASSERT_FALSE(reader->open(std::move(peer_fd)));
    }
    const int drained_before = sender_events.drained;
    const auto hook = loop->add_iteration_hook([&] {
      if (sender_events.drained > drained_before && reader_events.received >= sent) loop->stop();
    });
    ASSERT_TRUE(test::run_for_at_most(*loop, 10s));
    loop->remove_iteration_hook(hook);
  }

  std::unique_ptr<event_loop> loop;
  unique_fd peer_fd;
  pattern_checker sender_events;
  pattern_checker reader_events;
  std::unique_ptr<tcp_stream> sender;
  std::unique_ptr<tcp_stream> reader;
  std::uint64_t sent = 0;
};

TEST_F(tcp_stream_backlog_test, AnIdleStreamIsEightyBytes) {
  EXPECT_LE(sizeof(tcp_stream), 80u) << "sizeof(tcp_stream) = " << sizeof(tcp_stream);
}

TEST_F(tcp_stream_backlog_test, AllocatedUnderBackpressureFreedWhenDrainedAgainAndAgain) {
  connect_sender();
  constexpr std::size_t k_big = 1024 * 1024;
  for (int round = 1; round <= 3; ++round) {
    SCOPED_TRACE(round);
    ASSERT_FALSE(sender->write_blocked());
    ASSERT_EQ(sender->buffered_bytes(), 0u);
    const std::size_t heap_before = heap_in_use();
    // A large send goes to the kernel at once; it refuses most of a megabyte.
    {
      const std::vector<std::byte> bytes = pattern_bytes(sent, k_big);
      sent += k_big;
      const std::size_t heap_with_bytes = heap_in_use();
      EXPECT_EQ(sender->send(bytes), send_status::backpressure);
      EXPECT_TRUE(sender->write_blocked());
      EXPECT_GT(sender->buffered_bytes(), k_big / 2);
      EXPECT_LT(sender->buffered_bytes(), k_big);
      // The refused bytes are held once, in one block sized to fit them.
      const std::size_t held = heap_in_use() - heap_with_bytes;
      EXPECT_GE(held, sender->buffered_bytes());
      EXPECT_LE(held, sender->buffered_bytes() + 4096);
    }
    // Later sends, large or small, queue behind them (the block grows).
    const std::size_t before_more = sender->buffered_bytes();
    EXPECT_EQ(send_next(100), send_status::backpressure);
    EXPECT_EQ(send_next(40 * 1024), send_status::backpressure);
    EXPECT_EQ(sender->buffered_bytes(), before_more + 100 + 40 * 1024);

    drain_into_reader();
    EXPECT_EQ(sender_events.drained, round);
    EXPECT_FALSE(sender->write_blocked());
    EXPECT_EQ(sender->buffered_bytes(), 0u);
    EXPECT_EQ(reader_events.received, sent);
    EXPECT_TRUE(reader_events.in_order) << "bytes lost or reordered";
    // Nothing is kept once drained: the stream is back to its idle size.
    EXPECT_LE(heap_in_use(), heap_before + 4096) << "the drained backlog was not freed";
    ASSERT_EQ(reader->buffered_bytes(), 0u);
    // Stop reading, so that the next round meets a full socket again.
    peer_fd = unique_fd(::dup(reader->native_handle()));
    reader->close();
    reader.reset();
    ASSERT_TRUE(peer_fd);
  }
  EXPECT_EQ(sender_events.closes, 0);
}

TEST_F(tcp_stream_backlog_test, ASlowReaderGetsEveryByteInOrderAndMemoryStaysBounded) {
  connect_sender();
  // The sender adds 2-9 KiB per iteration. The peer alternately pauses for 64
  // iterations and reads 16 KiB per iteration for 64: the backlog builds up,
  // is written from its middle while appended to (compacted, grown), drains,
  // is freed, and is allocated again.
  std::vector<char> buffer(16 * 1024);
  std::uint64_t read_total = 0;
  bool in_order = true;
  std::size_t peak_buffered = 0;
  std::size_t peak_heap = 0;
  int backpressured_sends = 0;
  const std::size_t heap_base = heap_in_use();
  std::size_t step = 0;
  constexpr std::uint64_t k_total = 4 * 1024 * 1024;
  const auto hook = loop->add_iteration_hook([&] {
    const bool reading = (loop->iterations() / 64) % 2 == 1 || sent >= k_total;
    const ssize_t n = reading ? ::recv(peer_fd.get(), buffer.data(), buffer.size(), 0) : 0;
    for (ssize_t i = 0; i < n; ++i) {
      if (static_cast<std::byte>(buffer[static_cast<std::size_t>(i)]) != pattern_byte(read_total)) {
        in_order = false;
      }
      ++read_total;
    }
    if (sent < k_total) {
      const std::size_t size = 2048 + (step++ * 7919) % (7 * 1024);
      if (send_next(size) == send_status::backpressure) ++backpressured_sends;
      // Only sends grow the backlog (mallinfo2 is slow: not every iteration).
      peak_buffered = std::max(peak_buffered, sender->buffered_bytes());
      const std::size_t heap = heap_in_use();
      peak_heap = std::max(peak_heap, heap - std::min(heap, heap_base));
    }
    if (sent >= k_total && read_total >= sent) {
      loop->stop();
    } else {
      loop->defer([] {});  // next iteration at once
    }
  });
  loop->defer([] {});
  ASSERT_TRUE(test::run_for_at_most(*loop, 20s))
      << "sent " << sent << ", read " << read_total << ", buffered " << sender->buffered_bytes()
      << ", blocked " << sender->write_blocked();
  loop->remove_iteration_hook(hook);
  EXPECT_TRUE(in_order) << "bytes lost or reordered";
  EXPECT_EQ(read_total, sent);
  EXPECT_GT(backpressured_sends, 100);
  EXPECT_FALSE(sender->write_blocked());
  EXPECT_EQ(sender->buffered_bytes(), 0u);
  EXPECT_GE(sender_events.drained, 3);
  // The block never holds much more than what is waiting (growth doubles,
  // compaction reuses the written prefix); allow the cork's arena besides.
  EXPECT_LE(peak_heap, 4 * peak_buffered + 96 * 1024)
      << "peak buffered " << peak_buffered << ", peak heap delta " << peak_heap;
}

TEST_F(tcp_stream_backlog_test, AResetWhileBackloggedReportsTheErrorAndFreesTheBytes) {
  connect_sender();
  const std::size_t heap_before = heap_in_use();
  EXPECT_EQ(send_next(1024 * 1024), send_status::backpressure);
  ASSERT_TRUE(sender->write_blocked());
  // The peer resets with unread data: the pending write fails on EPOLLOUT/HUP.
  const linger abort_on_close{1, 0};
  ::setsockopt(peer_fd.get(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
  peer_fd.reset();
  const auto hook = loop->add_iteration_hook([&] {
    if (sender_events.closes > 0) loop->stop();
  });
  ASSERT_TRUE(test::run_for_at_most(*loop));
  loop->remove_iteration_hook(hook);
  EXPECT_EQ(sender_events.closes, 1);
  EXPECT_EQ(sender_events.drained, 0);
  EXPECT_TRUE(sender_events.close_error == std::errc::connection_reset ||
              sender_events.close_error == std::errc::broken_pipe)
      << sender_events.close_error.message();
  EXPECT_EQ(sender_events.close_error.category(), std::system_category());
  EXPECT_FALSE(sender->is_open());
  EXPECT_FALSE(sender->write_blocked());
  EXPECT_EQ(sender->buffered_bytes(), 0u);
  EXPECT_EQ(sender->send(pattern_bytes(0, 10)), send_status::dropped);
  // The megabyte is gone. The slack covers the loop's own first-use
  // allocations during the run (hook table, event batch), which are not the
  // stream's and vary with the standard library's growth policy.
  EXPECT_LE(heap_in_use(), heap_before + 16 * 1024);
}

TEST_F(tcp_stream_backlog_test, CloseWhileBackloggedFreesItAndAReopenedStreamStartsClean) {
  connect_sender();
  const std::size_t heap_before = heap_in_use();
  EXPECT_EQ(send_next(1024 * 1024), send_status::backpressure);
  ASSERT_TRUE(sender->write_blocked());
  sender->close();
  EXPECT_FALSE(sender->write_blocked());
  EXPECT_EQ(sender->buffered_bytes(), 0u);
  EXPECT_LE(heap_in_use(), heap_before + 1024);
  EXPECT_EQ(sender_events.closes, 0);

  // Reopened on a new connection, the same stream blocks and drains again
  // (EPOLLOUT is armed afresh: nothing of the old connection's state is left).
  sent = 0;
  connect_sender();
  EXPECT_EQ(send_next(1024 * 1024), send_status::backpressure);
  EXPECT_TRUE(sender->write_blocked());
  drain_into_reader();
  EXPECT_EQ(sender_events.drained, 1);
  EXPECT_EQ(reader_events.received, sent);
  EXPECT_TRUE(reader_events.in_order);
  EXPECT_FALSE(sender->write_blocked());
}

}  // namespace
}  // namespace switchboard::net
