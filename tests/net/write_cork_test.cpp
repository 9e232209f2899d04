// write_cork_test.cpp — the cork on its own (fake sinks, no sockets): each
// sink's bytes in order, staged bytes shared by reference and merged into one
// span when a sink gets several in a row, take(), discard(), and the staging
// arena ending with the iteration; then staged sends on real streams,
// including queueing behind bytes the kernel refused.
#include "switchboard/net/write_cork.hpp"

#include <sys/socket.h>

#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "switchboard/net/tcp_stream.hpp"
#include "test_support.hpp"

namespace switchboard::net {
namespace {

using namespace std::chrono_literals;
using test::as_bytes;
using test::as_string;

// Records what each flush hands it: one string per iovec.
struct recording_sink final : cork_sink {
  void flush_corked(std::span<const iovec> data, std::size_t total) override {
    std::vector<std::string> spans;
    std::size_t sum = 0;
    for (const iovec& v : data) {
      spans.emplace_back(static_cast<const char*>(v.iov_base), v.iov_len);
      sum += v.iov_len;
    }
    EXPECT_EQ(sum, total);
    flushes.push_back(std::move(spans));
  }
  std::vector<std::vector<std::string>> flushes;
};

std::string joined(const std::vector<std::string>& spans) {
  std::string out;
  for (const auto& s : spans) out += s;
  return out;
}

TEST(write_cork_test, StagedMessagesInARowReachASinkAsOneSpan) {
  write_cork cork(16);  // small: the arenas grow (and move) on the way
  recording_sink a;
  recording_sink b;
  const staged_bytes p1 = cork.stage(as_bytes("<one>"));
  cork.append(a, p1);
  cork.append(b, p1);
  cork.append(b, as_bytes("[direct]"));  // b's own bytes between two publications
  const staged_bytes p2 = cork.stage(as_bytes("<two>"));
  cork.append(a, p2);
  cork.append(b, p2);
  const staged_bytes p3 = cork.stage(as_bytes("<three, longer than the first arena>"));
  cork.append(a, p3);
  cork.append(b, p3);
  EXPECT_EQ(write_cork::corked_bytes(a), 5u + 5u + 36u);
  EXPECT_EQ(write_cork::corked_bytes(b), 5u + 8u + 5u + 36u);
  EXPECT_FALSE(cork.empty());
  cork.flush();
  ASSERT_EQ(a.flushes.size(), 1u);
  // Three publications staged back to back: one iovec, one copy in all.
  EXPECT_EQ(a.flushes[0],
            (std::vector<std::string>{"<one><two><three, longer than the first arena>"}));
  ASSERT_EQ(b.flushes.size(), 1u);
  EXPECT_EQ(b.flushes[0], (std::vector<std::string>{"<one>", "[direct]",
                                                    "<two><three, longer than the first arena>"}));
  EXPECT_TRUE(cork.empty());
  EXPECT_EQ(cork.statistics().sinks_flushed, 2u);
}

TEST(write_cork_test, DirectBytesAfterAStagedMessageAreNotMergedIntoIt) {
  write_cork cork;
  recording_sink a;
  recording_sink b;
  const staged_bytes p = cork.stage(as_bytes("pub"));
  cork.append(a, p);
  cork.append(a, as_bytes("-a"));  // a's own bytes, in the other arena
  cork.append(b, as_bytes("b-"));
  cork.append(b, p);
  cork.append(b, as_bytes("-b"));
  cork.flush();
  ASSERT_EQ(a.flushes.size(), 1u);
  EXPECT_EQ(a.flushes[0], (std::vector<std::string>{"pub", "-a"}));
  ASSERT_EQ(b.flushes.size(), 1u);
  EXPECT_EQ(joined(b.flushes[0]), "b-pub-b");
}

TEST(write_cork_test, TakeAndDiscardHandleStagedBytes) {
  write_cork cork;
  recording_sink a;
  recording_sink b;
  const staged_bytes p = cork.stage(as_bytes("shared"));
  cork.append(a, as_bytes("x"));
  cork.append(a, p);
  cork.append(b, p);
  const std::string big = "BIG";
  const std::span<const std::byte> extra[] = {as_bytes(big)};
  const std::span<const iovec> taken = cork.take(a, extra);
  std::string got;
  for (const iovec& v : taken) got.append(static_cast<const char*>(v.iov_base), v.iov_len);
  EXPECT_EQ(got, "xsharedBIG");
  EXPECT_EQ(write_cork::corked_bytes(a), 0u);
  cork.discard(b);
  EXPECT_TRUE(cork.empty());
  cork.flush();
  EXPECT_TRUE(a.flushes.empty());
  EXPECT_TRUE(b.flushes.empty());
}

TEST(write_cork_test, StagedBytesEndWithTheIterationEvenIfNoSinkTookThem) {
  write_cork cork(64);
  recording_sink a;
  // Staged for subscribers that all refused it: the next iteration starts
  // the staging arena afresh instead of growing it.
  (void)cork.stage(as_bytes(std::string(1000, 'z')));
  EXPECT_TRUE(cork.empty());
  cork.flush();
  const staged_bytes p = cork.stage(as_bytes("next"));
  EXPECT_EQ(p.offset, 0u);
  EXPECT_EQ(as_string(cork.view(p)), "next");
  cork.append(a, p);
  cork.flush();
  ASSERT_EQ(a.flushes.size(), 1u);
  EXPECT_EQ(a.flushes[0], (std::vector<std::string>{"next"}));
}

class staged_stream_test : public test::net_test {
 protected:
  void SetUp() override {
    net_test::SetUp();
    loop = test::make_loop();
    ASSERT_TRUE(loop);
  }
  void TearDown() override {
    loop.reset();
    net_test::TearDown();
  }
  std::unique_ptr<event_loop> loop;
};

struct quiet_handler final : stream_handler {
  void on_data(tcp_stream&, std::span<std::byte>) override {}
  void on_drained(tcp_stream&) override { ++drained; }
  void on_close(tcp_stream&, std::error_code) override { ++closes; }
  int drained = 0;
  int closes = 0;
};

TEST_F(staged_stream_test, OneStagedMessageToManyStreamsOneSendEach) {
  constexpr int k_streams = 4;
  std::vector<unique_fd> peers;
  std::vector<std::unique_ptr<tcp_stream>> streams;
  quiet_handler handler;
  for (int i = 0; i < k_streams; ++i) {
    auto [peer, fd] = test::tcp_pair();
    peers.push_back(std::move(peer));
    streams.push_back(std::make_unique<tcp_stream>(*loop, handler));
    ASSERT_FALSE(streams.back()->open(std::move(fd)));
  }
  loop->post([&] {
    for (int m = 0; m < 3; ++m) {
      std::string text = "m";
      text += std::to_string(m);
      text += ';';
      const staged_bytes p = loop->cork().stage(as_bytes(text));
      for (auto& s : streams) EXPECT_EQ(s->send(p), send_status::ok);
      streams[1]->send(as_bytes("own;"));  // one stream's own bytes between
    }
    loop->stop();
  });
  const auto before = loop->cork().statistics();
  ASSERT_TRUE(test::run_for_at_most(*loop));
  const auto after = loop->cork().statistics();
  EXPECT_EQ(after.sinks_flushed - before.sinks_flushed, static_cast<std::uint64_t>(k_streams));
  for (int i = 0; i < k_streams; ++i) {
    const std::string expected = i == 1 ? "m0;own;m1;own;m2;own;" : "m0;m1;m2;";
    EXPECT_EQ(test::read_exactly(peers[i].get(), expected.size()), expected) << "stream " << i;
  }
  streams.clear();
}

TEST_F(staged_stream_test, StagedBytesQueueBehindWhatTheKernelRefused) {
  unique_fd peer;
  unique_fd fd;
  std::tie(peer, fd) = test::tcp_pair();  // not a structured binding: the lambda below takes peer
  const int small = 16 * 1024;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  ::setsockopt(peer.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  quiet_handler handler;
  tcp_stream stream(*loop, handler);
  ASSERT_FALSE(stream.open(std::move(fd)));
  // The peer does not read: plain sends until the stream is write-blocked,
  // then staged ones, which must queue behind (copied, as the arena ends
  // with the iteration).
  constexpr std::size_t k_chunk = 8 * 1024;
  std::size_t sent = 0;
  std::string expected;
  int staged_sends = 0;
  event_loop::hook_id sender = loop->add_iteration_hook([&] {
    if (!stream.write_blocked()) {
      const std::string chunk = test::pattern(sent, k_chunk);
      ASSERT_NE(stream.send(as_bytes(chunk)), send_status::dropped);
      expected += chunk;
      sent += k_chunk;
    } else {
      std::string text = "staged";
      text += std::to_string(staged_sends);
      text += ';';
      const staged_bytes p = loop->cork().stage(as_bytes(text));
      EXPECT_EQ(stream.send(p), send_status::backpressure);
      expected += text;
      if (++staged_sends == 10) {
        loop->stop();
        return;
      }
    }
    loop->defer([] {});  // next iteration at once
  });
  loop->defer([] {});
  ASSERT_TRUE(test::run_for_at_most(*loop, 10s));
  loop->remove_iteration_hook(sender);
  EXPECT_GT(stream.buffered_bytes(), 0u);
  // Now read everything while the loop drains the stream.
  std::string received;
  std::thread reader([&] { received = test::read_exactly(peer.get(), expected.size(), 10s); });
  loop->add_iteration_hook([&] {
    if (!stream.write_blocked()) loop->stop();
  });
  ASSERT_TRUE(test::run_for_at_most(*loop, 10s));
  reader.join();
  EXPECT_EQ(received.size(), expected.size());
  EXPECT_TRUE(received == expected) << "bytes lost or reordered";
  EXPECT_EQ(handler.closes, 0);
  stream.close();
}

}  // namespace
}  // namespace switchboard::net
