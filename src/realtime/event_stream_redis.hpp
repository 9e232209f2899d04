// event_stream_redis.hpp — private: lifecycle events through a Redis stream
// (docs/hooks.md, "With the Redis broker"), so that a node's crash — its
// disk gone with it — loses nothing Redis has.
//
// Two jobs, both on the hook thread (hook_caller's loop):
//
// - append(): the node's outbox (event_outbox.hpp) hands its events here
//   instead of to the webhook. One Lua script XADDs a whole batch to
//   P events:stream, unless the stream already holds events.stream_max
//   events (the webhook has been down for long): then it refuses, and the
//   events wait in the node's outbox file (retried with backoff, counted in
//   switchboard_events_pending), so nothing is trimmed unsent and no client
//   is refused.
//
// - the sender role: one node at a time holds P events:sender (SET NX PX
//   presence_lease, renewed every lease/3 with a check that it is still
//   ours). The holder reads the stream after P events:acked (XRANGE, at most
//   events.batch), POSTs the batch to the webhook (signed, as the file
//   outbox does), and on 2xx moves P events:acked to the batch's last entry
//   and trims the stream below it — one Lua script that first checks the
//   role is still ours. A holder that dies stops renewing; within one lease
//   another node takes the role and resends from P events:acked: the batch
//   in flight may arrive twice (same ids).
//
// Order: the stream has one order; each node appends its events in its own
// sequence, one batch at a time, so each client's events (all emitted by
// its node) keep theirs.
//
// Thread-safety: hook thread only, construction included.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <switchboard/net/timer_wheel.hpp>
#include <switchboard/realtime/service.hpp>
#include <vector>

#include "hook_http.hpp"
#include "redis_connection.hpp"

namespace switchboard::realtime::detail {

class hook_caller;

struct event_stream_options {
  std::string key_prefix;
  std::string node;                 // this node's id (the sender role's value)
  double lease = 30;                // seconds the sender role outlives its holder
  std::size_t batch = 100;          // events per POST
  std::size_t max_len = 1'000'000;  // events in the stream past which append() refuses
  double retry_max = 30;            // seconds: the longest wait between two POSTs of a batch
  double timeout = 5;               // seconds a POST may take
};

// What /metrics shows of the stream (read from any thread).
struct event_stream_counters {
  std::atomic<std::uint64_t> delivered{0};  // events the webhook acknowledged to this node
  std::atomic<std::uint64_t> retries{0};    // batches this node POSTed again
  std::atomic<bool> sender{false};          // this node holds the sender role
};

class event_stream {
 public:
  // REQUIRES: on the hook thread; `url` (the webhook) and `hooks` outlive it.
  event_stream(hook_caller& hooks, const http_url& url, redis_url redis,
               event_stream_options options, log_function log, event_stream_counters& counters);
  ~event_stream();
  event_stream(const event_stream&) = delete;
  event_stream& operator=(const event_stream&) = delete;

  void start();
  // Gives the sender role up (another node takes it at once), then `done`.
  void finish(std::function<void()> done);

  // XADDs `events` (JSON objects, in order) as one batch; `done(true)` once
  // Redis holds every one, `done(false)` if none was added (Redis away, or
  // the stream full).
  void append(std::vector<std::string> events, std::function<void(bool)> done);

 private:
  std::string key(std::string_view name) const;
  void set_holder(bool holder);
  void on_tick();
  void schedule(std::chrono::milliseconds delay);
  void acquire();
  void renew();
  void read_next();
  void post();
  void on_posted(bool ok, const std::string& why);
  void say(log_level level, const std::string& m) const {
    if (log_) log_(level, m);
  }

  hook_caller& hooks_;
  const http_url& url_;
  event_stream_options options_;
  log_function log_;
  std::unique_ptr<redis_connection> conn_;
  net::timer_node timer_;
  bool finishing_ = false;
  bool refused_logged_ = false;

  // The sender role.
  bool holder_ = false;
  bool busy_ = false;  // a read, POST or ack in progress
  std::uint64_t next_renew_ms_ = 0;
  std::uint64_t next_acquire_ms_ = 0;
  std::string acked_;                                       // the last acknowledged entry id
  std::vector<std::pair<std::string, std::string>> batch_;  // id, event
  std::uint32_t attempt_ = 0;
  std::uint64_t retry_at_ms_ = 0;
  event_stream_counters& counters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace switchboard::realtime::detail
