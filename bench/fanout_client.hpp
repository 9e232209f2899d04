// fanout_client.hpp — the connections of switchboard_fanout (fanout.cpp runs
// the phases): subscribers, which subscribe and time every publication pushed
// to them, and one publisher, which publishes at a paced rate.
//
// Time. Every publication carries {"t": T} in its data: T is the time it was
// *meant* to be sent (steady clock, ns; the publisher and the subscribers are
// threads of one process, so they share the clock). A publisher held back —
// by its in-flight cap or by a server that reads it slowly — sends late with
// the original T, so the wait shows in the latency instead of being hidden
// (no coordinated omission). A subscriber measures now - T when the bytes
// reach it, so its latency includes the load generator's own queueing: with
// 10,000 sockets ready at once, the last one is read after the other 9,999.
//
// Steps. Main plans steps (rate, times) in fanout_shared::steps and announces
// each with steps_published; T says which step a publication belongs to, so
// a subscriber files each delivery under its step with no other signal.
//
// Thread-safety: a worker and its connections belong to one loop thread.
// fanout_shared's atomics are written by main() and read by every loop
// thread (steps[i] is written before steps_published becomes > i). Per-step
// stats are read by main() from a task posted to the worker's own loop.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fanout_options.hpp"
#include "latency_histogram.hpp"
#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/io_handler.hpp"
#include "switchboard/net/transport.hpp"
#include "switchboard/protocol/http_head.hpp"
#include "switchboard/protocol/message_reader.hpp"
#include "switchboard/protocol/message_writer.hpp"

namespace switchboard::bench {

std::int64_t fanout_now_ns() noexcept;

inline constexpr std::size_t k_max_steps = 64;

// One measured step. Publications are meant for times start + k / rate in
// [start, end); those in [window_start, window_end) are the measured ones.
struct step_plan {
  double rate = 0;
  std::int64_t start = 0;
  std::int64_t window_start = 0;
  std::int64_t window_end = 0;
  std::int64_t end = 0;
};

struct fanout_shared {
  std::array<step_plan, k_max_steps> steps{};
  std::atomic<std::size_t> steps_published{0};
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> opened{0};      // subscribers upgraded
  std::atomic<std::uint64_t> subscribed{0};  // subscribers with every subscribe answered OK
  std::atomic<std::uint64_t> given_up{0};    // subscribers that failed before subscribing
};

// What subscribers received of one step (summed over a worker's connections).
struct delivery_stats {
  std::uint64_t delivered = 0;        // publications of this step received (any time)
  std::uint64_t in_window = 0;        // deliveries received inside the measured window
  std::uint64_t bytes_in_window = 0;  // their WebSocket payload bytes
  latency_histogram latency;          // publications meant for the window: receive - T

  void merge(const delivery_stats& o) {
    delivered += o.delivered;
    in_window += o.in_window;
    bytes_in_window += o.bytes_in_window;
    latency.merge(o.latency);
  }
};

// What the publisher did in one step.
struct publish_stats {
  std::uint64_t planned = 0;  // publications meant for the step
  std::uint64_t sent = 0;     // of those, sent
  std::uint64_t sent_in_window = 0;
  std::uint64_t acked = 0;     // answered with a result
  std::uint64_t refused = 0;   // answered with an error
  std::uint64_t expected = 0;  // deliveries the acked ones owe (their audiences)
};

// Counts over the whole run, per worker.
struct client_counters {
  std::uint64_t connect_errors = 0;
  std::uint64_t protocol_errors = 0;  // bad 101, bad frames, unparsable pushes
  std::uint64_t closed = 0;           // closed by the server after opening
  std::uint64_t timeouts = 0;
  std::uint64_t refused = 0;  // error replies (subscribe)
  std::uint64_t joins = 0;    // presence pushes (join/leave)
  std::uint64_t pings = 0;
  std::uint64_t late = 0;   // deliveries of a step that ended before the last drain
  std::string first_error;  // the server's first error reply, verbatim
  void merge(const client_counters& o);
};

class ws_client;

// One loop thread's connections and what they share.
struct client_worker {
  client_worker(net::event_loop& l, const fanout_options& o, fanout_shared& s);
  ~client_worker();
  void start_all();           // connects every connection, a bounded number at a time
  void handshake_finished();  // frees a pending slot and starts queued connections

  net::event_loop& loop;
  const fanout_options& options;
  fanout_shared& shared;
  std::vector<char> scratch;  // frames are written here, then handed to the transport
  std::string request;        // the upgrade request being written
  protocol::response_parser parser;
  protocol::message_writer writer{protocol::role::client};
  std::vector<std::unique_ptr<ws_client>> connections;
  std::deque<ws_client*> queued;
  std::size_t pending = 0;
  client_counters counters;
  std::size_t made = 0;  // connections made so far (--compact-every picks by it)
  std::vector<delivery_stats> steps{k_max_steps};  // subscribers only
  // Deliveries per step so far, for main()'s drain check (the same counts as
  // steps[i].delivered, readable from main()).
  std::array<std::atomic<std::uint64_t>, k_max_steps> step_received{};
};

// A switchboard.v1 connection: connect, upgrade (offering the subprotocol),
// then text messages both ways; pings are answered.
class ws_client : private net::io_handler, private net::transport_handler {
 public:
  ws_client(client_worker& w, const net::endpoint* source);
  virtual ~ws_client();
  ws_client(const ws_client&) = delete;
  ws_client& operator=(const ws_client&) = delete;

  void start();
  [[nodiscard]] bool is_open() const noexcept { return state_ == state::open; }

 protected:
  // Frames `payload` as one masked text message and sends it (corked).
  void send_text(std::string_view payload);
  // True while the kernel refuses bytes: send nothing more for now.
  [[nodiscard]] bool write_blocked() const noexcept { return stream_.write_blocked(); }
  // The upgrade succeeded.
  virtual void on_ready() = 0;
  // A whole text message arrived at `now` (ns).
  virtual void on_text(std::string_view payload, std::int64_t now) = 0;
  // Called once when the connection ends before being done; after this the
  // connection is closed for good.
  virtual void on_failed() {}
  void fail(std::uint64_t client_counters::*counter);
  // The connection finished its set-up (subscribed): the handshake slot is free.
  void release_slot();

  client_worker& w_;

 private:
  enum class state { idle, connecting, upgrading, open, failed };

  void on_events(std::uint32_t events) override;  // the non-blocking connect finished
  void on_data(net::transport& t, std::span<std::byte> data) override;
  void on_close(net::transport& t, std::error_code error) override;
  void on_timer();
  void on_upgrade_bytes(std::span<std::byte> data, std::int64_t now);
  void on_frames(std::span<char> input, std::int64_t now);

  const net::endpoint* source_;
  net::unique_fd connecting_fd_;
  net::transport stream_;
  net::timer_node timer_;
  protocol::message_reader reader_;
  std::array<char, 24> key_{};
  std::string head_;  // the 101 response received so far
  state state_ = state::idle;
  bool holds_slot_ = false;
  bool compact_ = false;  // offers switchboard.v1.compact (--compact, --compact-every)
};

// Subscribes to its channels (at once, or when told: the memory scenario) and
// files every publication pushed to it under its step.
class subscriber final : public ws_client {
 public:
  // `channels`: subscribed in this order, one command each.
  subscriber(client_worker& w, const net::endpoint* source, std::vector<std::string> channels,
             bool subscribe_on_open);
  void subscribe();  // memory scenario: now (no-op unless open and not yet subscribing)

 private:
  void on_ready() override;
  void on_text(std::string_view payload, std::int64_t now) override;
  void on_failed() override;
  void on_delivery(std::string_view payload, std::int64_t now);

  std::vector<std::string> channels_;
  std::size_t replies_ = 0;
  bool subscribe_on_open_;
  bool subscribing_ = false;
  bool done_ = false;  // counted in shared.subscribed or given_up
};

// The one publisher: publishes at the current step's rate, paced by a
// 1 ms timerfd, at most options.inflight publishes awaiting their reply.
class publisher final : public ws_client {
 public:
  // `subscribers`: how many subscribers there are (all of them subscribed):
  // a publication to NS:fan or NS:all reaches that many, one to NS:c<i> one.
  publisher(client_worker& w, std::size_t subscribers);
  ~publisher() override;

  void begin_step(std::size_t step);  // on the publisher's loop
  [[nodiscard]] bool ready() const noexcept { return ready_.load(std::memory_order_acquire); }
  [[nodiscard]] const publish_stats& stats(std::size_t step) const { return stats_[step]; }
  // Read by main() during the drain.
  // Per step, for main()'s drain check: the step's publishing is over (no
  // more sends), publications sent and answered, deliveries the answered
  // ones owe.
  std::array<std::atomic<bool>, k_max_steps> step_finished{};
  std::array<std::atomic<std::uint64_t>, k_max_steps> step_sent{};
  std::array<std::atomic<std::uint64_t>, k_max_steps> step_answered{};
  std::array<std::atomic<std::uint64_t>, k_max_steps> step_expected{};

 private:
  struct pacer final : net::io_handler {
    explicit pacer(publisher& p) : owner(p) {}
    void on_events(std::uint32_t events) override;
    publisher& owner;
  };
  struct in_flight {
    std::uint32_t step;
    std::uint32_t audience;
  };

  void on_ready() override;
  void on_text(std::string_view payload, std::int64_t now) override;
  void on_tick();
  void publish_one(std::size_t step, std::uint64_t k, std::int64_t t);

  std::size_t subscribers_;
  net::unique_fd timer_fd_;
  pacer pacer_{*this};
  std::vector<publish_stats> stats_{k_max_steps};
  std::vector<in_flight> ring_;  // capacity options.inflight
  std::size_t ring_head_ = 0;
  std::size_t ring_size_ = 0;
  std::string message_;
  std::string pad_;
  std::size_t step_ = 0;
  bool active_ = false;
  std::atomic<bool> ready_{false};  // read by main()
  std::uint64_t individual_ = 0;    // round-robin position over NS:c<i>
};

}  // namespace switchboard::bench
