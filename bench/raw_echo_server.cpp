// raw_echo_server.cpp — switchboard_raw_echo: a TCP echo server with no
// WebSocket at all, on the same net::event_loop, tcp_listener and tcp_stream
// the real server uses. Whatever a connection reads it writes back. It marks
// the physical ceiling of the benchmarks: a WebSocket echo server on this loop
// can approach it but not pass it. With --fanout it is the fan-out ceiling
// instead (raw_fanout.hpp): switchboard_fanout's subscribe and publish
// messages, each publication framed once and written to every subscriber
// with one send per socket per iteration.
//
//   switchboard_raw_echo --host 127.0.0.1 --port 0 [--threads N] [--fanout]
//
// Prints "listening on HOST:PORT" once listening; SIGINT / SIGTERM exit 0.
// One loop per thread, each with its own SO_REUSEPORT listener.
#include <signal.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "raw_fanout.hpp"
#include "switchboard/net/loop_group.hpp"
#include "switchboard/net/signal_watcher.hpp"
#include "switchboard/net/tcp_listener.hpp"
#include "switchboard/net/tcp_stream.hpp"

namespace {

using namespace switchboard;

// An echo is bounded by what the client keeps in flight; a client that never
// reads is cut off here instead of growing the buffer without limit.
constexpr std::size_t k_max_buffered = 8 * 1024 * 1024;

class echo_connection;

// One loop's listener and connections (an intrusive list: no per-connection
// node allocation besides the connection itself).
struct loop_state {
  std::unique_ptr<switchboard::bench::raw_fanout_loop> fanout;  // --fanout
  std::unique_ptr<net::tcp_listener> listener;
  echo_connection* head = nullptr;
  ~loop_state();
};

class echo_connection final : private net::stream_handler {
 public:
  echo_connection(net::event_loop& loop, loop_state& owner) : stream_(loop, *this), owner_(owner) {
    next_ = owner.head;
    if (next_ != nullptr) next_->prev_ = this;
    owner.head = this;
  }
  ~echo_connection() {
    if (prev_ != nullptr) prev_->next_ = next_;
    if (next_ != nullptr) next_->prev_ = prev_;
    if (owner_.head == this) owner_.head = next_;
  }
  echo_connection(const echo_connection&) = delete;
  echo_connection& operator=(const echo_connection&) = delete;

  std::error_code open(net::unique_fd socket) { return stream_.open(std::move(socket)); }
  [[nodiscard]] echo_connection* next() const noexcept { return next_; }

 private:
  void on_data(net::tcp_stream& stream, std::span<std::byte> data) override {
    stream.send(data);
    if (stream.buffered_bytes() > k_max_buffered) delete this;
  }
  void on_close(net::tcp_stream& /*stream*/, std::error_code /*error*/) override { delete this; }

  net::tcp_stream stream_;
  loop_state& owner_;
  echo_connection* prev_ = nullptr;
  echo_connection* next_ = nullptr;
};

loop_state::~loop_state() {
  while (head != nullptr) delete head;
  fanout.reset();
  listener.reset();
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::size_t threads = 1;
  bool fanout = false;
  CLI::App app{"switchboard_raw_echo: raw TCP echo (or --fanout) on the bare event loop",
               "switchboard_raw_echo"};
  app.option_defaults()->always_capture_default();
  app.add_option("--host", host, "numeric address to listen on");
  app.add_option("--port", port, "port (0: any)");
  app.add_option("--threads", threads, "event loops")->check(CLI::Range(1, 256));
  app.add_flag("--fanout", fanout,
               "the fan-out ceiling for switchboard_fanout instead of an echo");
  CLI11_PARSE(app, argc, argv);
  auto local = net::endpoint::parse(host, port);
  if (!local) {
    std::fprintf(stderr, "switchboard_raw_echo: --host must be a numeric address\n");
    return 2;
  }

  // Before any thread exists, so that every thread inherits the mask.
  if (net::signal_watcher::block({SIGINT, SIGTERM})) return 1;

  std::error_code error;
  net::loop_group_options group_options;
  group_options.threads = threads;
  auto group = net::loop_group::create(group_options, error);
  if (!group) {
    std::fprintf(stderr, "switchboard_raw_echo: %s\n", error.message().c_str());
    return 1;
  }
  std::vector<std::unique_ptr<loop_state>> states;
  for (std::size_t i = 0; i < group->size(); ++i) {
    auto state = std::make_unique<loop_state>();
    net::event_loop& loop = group->loop(i);
    loop_state* owner = state.get();
    if (fanout) state->fanout = std::make_unique<switchboard::bench::raw_fanout_loop>(loop);
    net::listener_options listen_options;
    listen_options.reuse_port = group->size() > 1;
    state->listener = net::tcp_listener::listen(
        loop, *local, listen_options,
        [&loop, owner](net::unique_fd socket, const net::endpoint& /*peer*/) {
          if (owner->fanout) return owner->fanout->accept(std::move(socket));
          auto* connection = new echo_connection(loop, *owner);
          if (connection->open(std::move(socket))) delete connection;
        },
        error);
    if (!state->listener) {
      std::fprintf(stderr, "switchboard_raw_echo: listen: %s\n", error.message().c_str());
      return 1;
    }
    // Every further loop binds the port the first one got.
    local = local->with_port(state->listener->port());
    states.push_back(std::move(state));
  }
  std::printf("listening on %s\n", local->to_string().c_str());
  std::fflush(stdout);

  if (auto e = group->start()) {
    std::fprintf(stderr, "switchboard_raw_echo: %s\n", e.message().c_str());
    return 1;
  }
  sigset_t wait_for;
  sigemptyset(&wait_for);
  sigaddset(&wait_for, SIGINT);
  sigaddset(&wait_for, SIGTERM);
  int signal_number = 0;
  sigwait(&wait_for, &signal_number);
  group->stop();
  (void)group->join();
  states.clear();  // loops stopped: connections are torn down from this thread
  return 0;
}
