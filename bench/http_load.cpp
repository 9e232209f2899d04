// http_load.cpp — switchboard_http_load: publications per second through
// `switchboard serve`'s POST /api/publish from one process, on one event loop
// of ours, with N connections each keeping one request (or --pipeline of
// them) in flight.
//
//   --mode keepalive   every connection is kept open and carries request after
//                      request (HTTP/1.1 keep-alive; with --pipeline P, P
//                      requests are written back to back before the answers)
//   --mode close       one connection per request ("Connection: close"): the
//                      client reads the answer, the server closes, the client
//                      connects again — what every API call cost before
//                      keep-alive
//
// Counts answers with status 200 in the measured window (after --warmup) and
// prints one line of JSON: {"mode":..,"connections":..,"pipeline":..,
// "seconds":..,"ok":..,"errors":..,"unanswered":..,"rate":..} (errors:
// answers other than 200 and failed connects; unanswered: pipelined
// requests the server did not read because it closed after the last
// request of its per-connection limit, sent again). Not a test; run by
// bench/run_http_api_bench.sh.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cli_parse.hpp"
#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/tcp_connector.hpp"
#include "switchboard/net/tcp_stream.hpp"
#include "switchboard/net/timer_wheel.hpp"

namespace switchboard::bench {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

struct options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string key;
  std::string mode = "keepalive";
  std::size_t connections = 32;
  std::size_t pipeline = 1;
  double seconds = 5;
  double warmup = 1;
  std::size_t size = 64;  // bytes of the published data string
};

struct totals {
  std::uint64_t ok = 0;
  std::uint64_t errors = 0;      // answers other than 200, failed connects
  std::uint64_t unanswered = 0;  // in flight when the server closed (sent again)
  bool measuring = false;
  bool stopping = false;
};

class connection final : private net::stream_handler {
 public:
  connection(net::event_loop& loop, const options& o, const net::endpoint& remote,
             const std::string& request, totals& t)
      : loop_(loop), o_(o), remote_(remote), request_(request), t_(t), connector_(loop),
        stream_(loop, *this) {}

  void start() {
    if (t_.stopping) return;
    connector_.connect(remote_, 5000ms, [this](std::error_code error, net::unique_fd socket) {
      if (error) {
        count(false);
        return start();
      }
      if (stream_.open(std::move(socket))) {
        count(false);
        return start();
      }
      in_.clear();
      outstanding_ = 0;
      closing_ = false;
      fill();
    });
  }

 private:
  void count(bool ok) {
    if (!t_.measuring) return;
    if (ok) {
      ++t_.ok;
    } else {
      ++t_.errors;
    }
  }

  // Keeps `pipeline` requests in flight (keep-alive) or sends the one
  // request of this connection (close).
  void fill() {
    const std::size_t want = o_.mode == "close" ? 1 : o_.pipeline;
    while (outstanding_ < want && !t_.stopping && !closing_) {
      stream_.send({reinterpret_cast<const std::byte*>(request_.data()), request_.size()});
      ++outstanding_;
      if (o_.mode == "close") break;
    }
  }

  void on_data(net::tcp_stream&, std::span<std::byte> data) override {
    in_.append(reinterpret_cast<const char*>(data.data()), data.size());
    for (;;) {
      const std::size_t end = in_.find("\r\n\r\n");
      if (end == std::string::npos) return;
      std::size_t length = 0;
      const std::string_view head(in_.data(), end);
      if (const auto at = head.find("Content-Length: "); at != std::string_view::npos) {
        length = std::strtoull(head.data() + at + 16, nullptr, 10);
      }
      if (in_.size() < end + 4 + length) return;
      count(head.size() > 12 && head.compare(9, 3, "200") == 0);
      // The server's last answer on this connection: send nothing more here.
      if (head.find("\r\nConnection: close") != std::string_view::npos) closing_ = true;
      in_.erase(0, end + 4 + length);
      if (outstanding_ > 0) --outstanding_;
      // One connection per request: the server closes after its answer
      // (so TIME_WAIT stays on its side, as before keep-alive); on_close
      // connects again.
      if (o_.mode == "close") return;
      fill();
    }
  }

  void on_close(net::tcp_stream&, std::error_code) override {
    // The server ended the connection: after its answer (--mode close), or
    // after the last request of its per-connection limit — pipelined
    // requests sent behind that one were never read: they go again on the
    // next connection (as an HTTP client retries them), counted apart.
    if (t_.measuring) t_.unanswered += outstanding_;
    start();
  }

  net::event_loop& loop_;
  const options& o_;
  const net::endpoint& remote_;
  const std::string& request_;
  totals& t_;
  net::tcp_connector connector_;
  net::tcp_stream stream_;
  std::string in_;
  std::size_t outstanding_ = 0;
  bool closing_ = false;  // an answer said "Connection: close"
};

struct phase_timer {
  net::timer_node node;
  std::function<void()> fn;
  void fire() { fn(); }
};

int run(const options& o) {
  const auto remote = net::endpoint::parse(o.host, o.port);
  if (!remote) throw std::invalid_argument("--host must be a numeric address");
  std::error_code error;
  auto loop = net::event_loop::create(error, {.timer_tick = 10ms});
  if (!loop) throw std::runtime_error("event loop: " + error.message());

  std::string body = "{\"channel\":\"bench\",\"data\":\"" + std::string(o.size, 'x') + "\"}";
  std::string request;
  request.append("POST /api/publish HTTP/1.1\r\nHost: ").append(o.host).append("\r\n");
  request.append("X-API-Key: ").append(o.key).append("\r\n");
  request.append("Content-Type: application/json\r\n");
  request.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  if (o.mode == "close") request.append("Connection: close\r\n");
  request.append("\r\n").append(body);

  totals t;
  std::vector<std::unique_ptr<connection>> connections;
  for (std::size_t i = 0; i < o.connections; ++i) {
    connections.push_back(std::make_unique<connection>(*loop, o, *remote, request, t));
    connections.back()->start();
  }
  clock_type::time_point begin, end;
  phase_timer warm, done;
  warm.fn = [&] {
    t.measuring = true;
    begin = clock_type::now();
  };
  done.fn = [&] {
    end = clock_type::now();
    t.measuring = false;
    t.stopping = true;
    loop->stop();
  };
  warm.node.bind<&phase_timer::fire>(&warm);
  done.node.bind<&phase_timer::fire>(&done);
  const auto ms = [](double s) { return std::chrono::milliseconds(static_cast<long>(s * 1000)); };
  loop->timers().schedule(warm.node, ms(o.warmup));
  loop->timers().schedule(done.node, ms(o.warmup + o.seconds));
  if (auto e = loop->run()) throw std::runtime_error("event loop: " + e.message());
  connections.clear();
  const double seconds = std::chrono::duration<double>(end - begin).count();
  std::printf(
      "{\"mode\":\"%s\",\"connections\":%zu,\"pipeline\":%zu,\"seconds\":%.3f,\"ok\":%llu,"
      "\"errors\":%llu,\"unanswered\":%llu,\"rate\":%.0f}\n",
      o.mode.c_str(), o.connections, o.mode == "close" ? std::size_t{1} : o.pipeline, seconds,
      static_cast<unsigned long long>(t.ok), static_cast<unsigned long long>(t.errors),
      static_cast<unsigned long long>(t.unanswered), seconds > 0 ? static_cast<double>(t.ok) / seconds : 0.0);
  return t.ok > 0 ? 0 : 1;
}

}  // namespace
}  // namespace switchboard::bench

int main(int argc, char** argv) {
  using namespace switchboard::bench;
  options o;
  CLI::App app{"switchboard_http_load: POST /api/publish throughput, keep-alive against "
               "one connection per request"};
  app.add_option("--host", o.host, "numeric server address");
  app.add_option("--port", o.port, "server port")->required();
  app.add_option("--key", o.key, "X-API-Key")->required();
  app.add_option("--mode", o.mode, "keepalive or close")
      ->check(CLI::IsMember({"keepalive", "close"}));
  app.add_option("--connections", o.connections, "connections at once")
      ->check(CLI::Range(1, 10000));
  app.add_option("--pipeline", o.pipeline, "requests in flight per keep-alive connection")
      ->check(CLI::Range(1, 64));
  app.add_option("--seconds", o.seconds, "measured seconds")->check(CLI::Range(0.1, 600.0));
  app.add_option("--warmup", o.warmup, "seconds before measuring")->check(CLI::Range(0.0, 60.0));
  app.add_option("--size", o.size, "bytes of each publication's data")
      ->check(CLI::Range(1, 60000));
  try {
    cli::parse_or_throw(app, argc, argv);
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "switchboard_http_load: %s\n", e.what());
    return 2;
  }
}
