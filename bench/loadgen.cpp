// loadgen.cpp — switchboard_loadgen: drives a WebSocket (or raw TCP) echo
// server and reports messages/s, latency percentiles, handshakes/s, or holds
// idle connections open so the server's memory per connection can be read.
//
// One net::event_loop per thread (net::loop_group), connections spread over
// them round-robin; each connection is a client_connection
// (loadgen_connection.hpp). Frames are written by
// protocol::message_writer(role::client) — so every frame is masked with a
// fresh key, as a real client's — and read by message_reader.
//
// Timeline: connect everything (at most k_max_pending_per_loop handshakes in
// flight per loop, so the server's accept backlog never overflows), then
// echo traffic starts on every connection at once, `--warmup` seconds
// unmeasured, then `--duration` seconds measured. Only
// replies that arrive inside the measured window are counted. Latency is the
// time from handing a message to the loop's cork to receiving its echo; echoes
// come back in order, so each connection keeps a ring of send times (and of
// which payload was sent: every echo is checked byte for byte).
//
// --payload json sends JSON-like text; --deflate offers permessage-deflate and,
// where the server agrees, compresses every message sent and inflates every
// compressed echo (loadgen_deflate.hpp), counting bytes on the wire against
// payload bytes in both directions for the compression ratio.
//
// wss:// URLs run every mode over TLS (net::transport; loadgen_connection.hpp):
// one tls_context::client per loop thread, verifying the server's certificate
// against --ca-file for the URL's address, or not at all with --insecure.
// Connections and the per-thread worker live in loadgen_connection.*; this
// file runs the phases and prints the report.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "loadgen_connection.hpp"
#include "loadgen_options.hpp"
#include "loadgen_report.hpp"
#include "process_stats.hpp"
#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/loop_group.hpp"
#include "switchboard/net/tls_context.hpp"

namespace switchboard::bench {
namespace {

using namespace std::chrono_literals;

// wss:// only: the client context of one loop thread. Null (after a message)
// when it cannot be built, e.g. an unreadable --ca-file.
std::unique_ptr<net::tls_context> make_client_tls(const loadgen_options& options) {
  net::tls_client_options tls;
  tls.ca_file = options.ca_file;
  tls.insecure_skip_verification = options.insecure;
  net::tls_error error;
  auto context = net::tls_context::client(tls, error);
  if (!context) std::fprintf(stderr, "loadgen: TLS: %s\n", error.text.c_str());
  return context;
}

void sleep_until_ns(std::int64_t deadline) {
  for (std::int64_t left; (left = deadline - now_ns()) > 0;) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(std::min<std::int64_t>(left, 50'000'000)));
  }
}

int run(const loadgen_options& options) {
  raise_fd_limit();  // as many sockets as the hard limit allows
  std::error_code error;
  net::loop_group_options group_options;
  group_options.threads = options.threads;
  auto group = net::loop_group::create(group_options, error);
  if (!group) {
    std::fprintf(stderr, "loadgen: cannot create event loops: %s\n", error.message().c_str());
    return 1;
  }
  shared_state shared;
  std::vector<std::unique_ptr<worker>> workers;
  for (std::size_t i = 0; i < group->size(); ++i) {
    std::unique_ptr<net::tls_context> tls;
    if (options.tls && !(tls = make_client_tls(options))) return 1;
    workers.push_back(std::make_unique<worker>(group->loop(i), options, shared,
                                               static_cast<std::uint32_t>(i), std::move(tls)));
  }
  for (std::size_t i = 0; i < options.connections; ++i) {
    worker& w = *workers[i % workers.size()];
    const net::endpoint* source =
        options.sources.empty() ? nullptr : &options.sources[i % options.sources.size()];
    w.connections.push_back(std::make_unique<client_connection>(w, source));
  }
  for (std::size_t i = 0; i < workers.size(); ++i) {
    group->post(i, [w = workers[i].get()] { w->start_all(); });
  }
  if (auto e = group->start()) {
    std::fprintf(stderr, "loadgen: cannot start threads: %s\n", e.message().c_str());
    return 1;
  }

  // Connect phase (echo, idle): wait until every connection is open or given up.
  const std::int64_t connect_deadline =
      now_ns() + static_cast<std::int64_t>((options.connect_timeout_s + 20) * 1e9);
  if (options.mode != load_mode::connect_storm) {
    while (shared.established.load() + shared.given_up.load() < options.connections &&
           now_ns() < connect_deadline) {
      std::this_thread::sleep_for(5ms);
    }
  }
  const std::uint64_t established = shared.established.load();
  if (options.mode == load_mode::idle) {
    std::fprintf(stderr, "loadgen: idle: %llu of %zu connections open\n",
                 static_cast<unsigned long long>(established), options.connections);
  }
  const std::int64_t start = now_ns() + static_cast<std::int64_t>(options.warmup_s * 1e9);
  const std::int64_t end = start + static_cast<std::int64_t>(options.duration_s * 1e9);
  shared.window_start.store(start);
  shared.window_end.store(end);
  for (std::size_t i = 0; i < workers.size(); ++i) {
    group->post(i, [w = workers[i].get()] { w->start_traffic(); });
  }
  sleep_until_ns(start);
  const double cpu_start = own_cpu_seconds();
  const double server_start = options.server_pid > 0 ? process_cpu_seconds(options.server_pid) : -1;
  sleep_until_ns(end);
  const double cpu_end = own_cpu_seconds();
  const double server_end = options.server_pid > 0 ? process_cpu_seconds(options.server_pid) : -1;
  shared.stopping.store(true);
  group->stop();
  (void)group->join();

  loop_stats total;
  total.cpu_s = own_cpu_seconds();
  total.window_cpu_s = cpu_end - cpu_start;
  if (server_start >= 0 && server_end >= 0) total.window_server_cpu_s = server_end - server_start;
  for (auto& w : workers) {
    total.merge(w->stats);
    if (!w->first_tls_error.empty()) {
      std::fprintf(stderr, "loadgen: first TLS failure: %s\n", w->first_tls_error.c_str());
    }
  }
  report(options, total, shared.established.load(), static_cast<double>(end - start) / 1e9);
  // Loops are stopped: tear the connections down from this thread, before the loops.
  workers.clear();
  // Failure when nothing the mode measures happened at all.
  switch (options.mode) {
    case load_mode::echo:
      return total.messages > 0 ? 0 : 1;
    case load_mode::connect_storm:
      return total.handshakes > 0 ? 0 : 1;
    case load_mode::idle:
      return established > 0 ? 0 : 1;
  }
  return 1;
}

}  // namespace
}  // namespace switchboard::bench

int main(int argc, char** argv) {
  switchboard::bench::loadgen_options options;
  try {
    options = switchboard::bench::parse_loadgen_options(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "switchboard_loadgen: %s\n", e.what());
    return 2;
  }
  return switchboard::bench::run(options);
}
