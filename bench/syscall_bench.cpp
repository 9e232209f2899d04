// What one small write costs the kernel through send() and through sendmsg()
// with a one-element iovec, on a loopback TCP connection: the choice
// net::write_some() makes for a single buffer (an echo reply, one corked
// write). Both run in one process, alternately, so they see the same machine.
//
// Figures and the command are in docs/benchmarks.md ("Echo against
// uWebSockets"). Nothing here asserts a time.
#include <benchmark/benchmark.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdlib>

namespace {

// A connected loopback pair: the benchmark writes on `out`, and drains `in`
// every 16 writes so the socket buffers never fill.
struct loopback_pair {
  int out = -1;
  int in = -1;
  loopback_pair() {
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listener, 1) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      std::abort();
    }
    out = ::socket(AF_INET, SOCK_STREAM, 0);
    if (out < 0 || ::connect(out, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::abort();
    in = ::accept(listener, nullptr, nullptr);
    ::close(listener);
    const int one = 1;
    ::setsockopt(out, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~loopback_pair() {
    ::close(out);
    ::close(in);
  }
  void drain() const {
    std::array<char, 65536> sink{};
    while (::recv(in, sink.data(), sink.size(), MSG_DONTWAIT) > 0) {
    }
  }
};

// An 18-byte frame: a server's echo of a 16-byte message.
constexpr std::array<char, 18> k_frame{};

void BM_send_one_buffer(benchmark::State& state) {
  const loopback_pair pair;
  std::size_t n = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(::send(pair.out, k_frame.data(), k_frame.size(), MSG_NOSIGNAL));
    if (++n % 16 == 0) pair.drain();
  }
}

void BM_sendmsg_one_buffer(benchmark::State& state) {
  const loopback_pair pair;
  std::size_t n = 0;
  for (auto _ : state) {
    iovec v{const_cast<char*>(k_frame.data()), k_frame.size()};  // NOLINT: sendmsg does not write it
    msghdr m{};
    m.msg_iov = &v;
    m.msg_iovlen = 1;
    benchmark::DoNotOptimize(::sendmsg(pair.out, &m, MSG_NOSIGNAL));
    if (++n % 16 == 0) pair.drain();
  }
}

}  // namespace

BENCHMARK(BM_send_one_buffer)->UseRealTime();
BENCHMARK(BM_sendmsg_one_buffer)->UseRealTime();
BENCHMARK_MAIN();
