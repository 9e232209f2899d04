// loadgen_connection.hpp — one switchboard_loadgen connection and the loop
// thread's state its connections share (see loadgen.cpp for the timeline).
//
// A connection runs on net::transport, so the same code drives ws:// (plain
// TCP) and wss:// (TLS): with TLS the worker holds one tls_context::client
// shared by all of its connections, the transport runs the handshake after
// connect(), and the upgrade request goes out from on_handshake. Connect-storm
// over TLS is therefore connect + full TLS handshake (no session resumption:
// the client keeps no sessions) + upgrade + close, per iteration.
//
// Thread-safety: a worker and its connections belong to one loop thread;
// shared_state is written by main() and read by every loop thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "loadgen_deflate.hpp"
#include "loadgen_options.hpp"
#include "loadgen_report.hpp"
#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/tls_context.hpp"
#include "switchboard/net/transport.hpp"
#include "switchboard/protocol/handshake.hpp"
#include "switchboard/protocol/http_head.hpp"
#include "switchboard/protocol/message_reader.hpp"
#include "switchboard/protocol/message_writer.hpp"

namespace switchboard::bench {

inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Written by main(), read by every loop thread.
struct shared_state {
  std::atomic<std::int64_t> window_start{std::numeric_limits<std::int64_t>::max()};
  std::atomic<std::int64_t> window_end{std::numeric_limits<std::int64_t>::max()};
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> established{0};  // first successful open of each connection
  std::atomic<std::uint64_t> given_up{0};     // connections that will never open (echo, idle)
};

class client_connection;

// Everything one loop thread shares between its connections.
struct worker {
  // `tls`: the thread's client context for wss://, null for ws:// and raw.
  worker(net::event_loop& l, const loadgen_options& o, shared_state& s, std::uint32_t index,
         std::unique_ptr<net::tls_context> tls);
  ~worker();
  void start_all();
  void start_traffic();       // echo mode: every open connection starts sending
  void handshake_finished();  // frees a pending slot and starts queued connections

  net::event_loop& loop;
  const loadgen_options& options;
  shared_state& shared;
  std::unique_ptr<net::tls_context> tls;  // outlives `connections` (declared before them)
  std::vector<std::string> payloads;      // sent in turn by each connection
  protocol::opcode op;
  protocol::deflate_client_options offer;  // sent when options.deflate
  protocol::deflate_header offer_header;
  deflate_codecs codecs;
  std::vector<char> scratch;  // frames are written here, then copied into the cork
  std::string request;        // the upgrade request being written
  protocol::response_parser parser;
  protocol::message_writer writer{protocol::role::client};
  std::vector<std::unique_ptr<client_connection>> connections;
  std::deque<client_connection*> queued;  // waiting for a handshake slot
  std::size_t pending = 0;
  bool traffic = false;  // echo traffic has started (after every connection opened)
  std::string first_tls_error;  // OpenSSL's account of this thread's first TLS failure
  loop_stats stats;
};

class client_connection final : private net::io_handler, private net::transport_handler {
 public:
  client_connection(worker& w, const net::endpoint* source);
  ~client_connection();

  void start();
  void start_traffic(std::int64_t now);

 private:
  enum class state { idle, connecting, tls_handshake, upgrading, open, closing, retry_wait };

  void on_events(std::uint32_t events) override;  // the non-blocking connect finished
  void on_handshake(net::transport& t) override;  // wss:// only
  void on_data(net::transport& t, std::span<std::byte> data) override;
  void on_close(net::transport& t, std::error_code error) override;
  void on_timer();

  void on_connected();  // TCP connected (ws://) or TLS handshake done (wss://)
  void on_upgrade_bytes(std::span<std::byte> data, std::int64_t now);
  void on_open(std::int64_t now);
  void on_frames(std::span<char> input, std::int64_t now);
  void on_raw_bytes(std::size_t bytes, std::int64_t now);
  void on_echo(std::int64_t now);
  void on_message(const protocol::reader_event& event, std::int64_t now);
  void count_open();
  void send_message(std::int64_t now);
  void fail(std::uint64_t loop_stats::*counter);
  [[nodiscard]] bool in_window(std::int64_t t) const noexcept {
    return t >= w_.shared.window_start.load(std::memory_order_relaxed) &&
           t < w_.shared.window_end.load(std::memory_order_relaxed);
  }

  worker& w_;
  const net::endpoint* source_;
  net::unique_fd connecting_fd_;
  net::transport stream_;
  net::timer_node timer_;
  protocol::message_reader reader_;
  std::array<char, 24> key_{};
  std::string head_;                       // the 101 response received so far
  std::vector<std::int64_t> sent_at_;      // ring of send times of the messages in flight
  std::vector<std::uint32_t> sent_index_;  // and of their indexes in worker::payloads
  connection_deflate deflate_;
  std::size_t next_payload_ = 0;
  std::size_t idle_echoes_ = 0;  // idle mode: echoes received before going idle
  std::size_t ring_head_ = 0;
  std::size_t ring_size_ = 0;
  std::size_t raw_partial_ = 0;  // raw mode: bytes of the next echo received so far
  state state_ = state::idle;
  bool counted_open_ = false;  // added to shared.established once
  bool holds_slot_ = false;    // counts against worker::pending
};

}  // namespace switchboard::bench
