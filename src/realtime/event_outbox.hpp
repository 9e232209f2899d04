// event_outbox.hpp — private: lifecycle events (docs/hooks.md, "Lifecycle
// events") delivered at least once to the application's webhook.
//
// Every event (connect, disconnect, subscribe, unsubscribe, presence.join,
// presence.leave) gets a sequence number and an id, and is appended to the
// outbox — an append-only file in the journal's format (journal.hpp: one
// record per event, its offset the sequence number, its tail the event's
// JSON) — before it is queued for sending. The sender, on the hook thread
// (hook_caller), POSTs batches in sequence order, one batch at a time, and
// retries a batch with exponential backoff until the webhook answers 2xx;
// then the highest acknowledged sequence number is written to PATH.acked
// (atomically: write, fsync, rename). At start, the events of the outbox
// after the acknowledged number are sent again, so a restart or a crash of
// the process (kill -9) loses none. Duplicates: a batch acknowledged just
// before a crash, whose .acked write did not happen, is sent again; ids
// let the receiver drop them.
//
// Order: one sequence for the whole node, one batch in flight: every
// client's events arrive in the order they happened.
//
// Memory: at most events.memory_window events are held (pending_); past
// it, events are only in the file, and refill() reads them back a window at
// a time as acknowledgements come (read_back_events(), fuzzed).
//
// With the Redis broker: events.store = redis (or auto) hands the batches
// to a Redis stream instead of the webhook (event_stream_redis.hpp: "2xx"
// means Redis has them), and this node's clients are recorded in Redis so
// that a survivor emits their disconnects if the node is lost
// (event_orphans.hpp; emit_lost()).
//
// Thread-safety: emit() from any thread (a mutex orders the appends and the
// hand-over to the hook thread); start() and stop() from the service.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <switchboard/net/timer_wheel.hpp>
#include <switchboard/realtime/config.hpp>
#include <switchboard/realtime/service.hpp>
#include <utility>
#include <vector>

#include "event_orphans.hpp"
#include "event_stream_redis.hpp"
#include "hooks.hpp"
#include "journal.hpp"

namespace switchboard::realtime::detail {

struct lifecycle_event {
  std::string_view
      type;  // connect, disconnect, subscribe, unsubscribe, presence.join, presence.leave
  std::string_view client;
  std::string_view user;
  std::string_view channel;  // subscribe, unsubscribe, presence.*
  int code = -1;             // disconnect: the close code
  std::string_view reason;   // disconnect: the close reason
  // A disconnect emitted for a lost node (event_orphans.hpp): its id (the
  // event's `node`), and the event's id, the same whoever emits it.
  std::string_view lost_node;
  std::string_view id;
};

// Reading events back from the outbox file (the memory window), without
// I/O so that it is fuzzed (fuzz/event_outbox_fuzz.cpp): `head` is the
// file's magic and header record, `chunk` bytes from a record boundary on.
// Takes at most `want` whole records and calls `each` with their sequence
// number and event JSON, in file order. `bytes` is how far that reached in
// `chunk` (records that do not fit are left for the next read); on damage
// (a bad header, a record that fails its CRC or is not an event) `error`
// is set and bytes = records = 0 (`each` may have run for good records
// before the bad one).
struct outbox_readback {
  std::size_t bytes = 0;
  std::size_t records = 0;
  std::string error;
};
outbox_readback read_back_events(std::string_view head, std::string_view chunk, std::size_t want,
                                 const std::function<void(std::uint64_t, std::string_view)>& each);

class event_outbox {
 public:
  // REQUIRES: `hooks` started and outliving the outbox; config.events_url set.
  event_outbox(const realtime_config& config, hook_caller& hooks, log_function log);
  ~event_outbox();
  event_outbox(const event_outbox&) = delete;
  event_outbox& operator=(const event_outbox&) = delete;

  // Reads the outbox and its .acked file, rewrites the outbox with the
  // events not yet acknowledged, and queues them. "" or why not.
  std::string start();
  // Stops sending (what is unsent stays in the outbox for the next start).
  void stop();

  // Records one event. Any thread.
  void emit(const lifecycle_event& e);

  // Figures for /metrics (any thread).
  struct statistics {
    std::uint64_t emitted = 0;       // events recorded since start
    std::uint64_t acknowledged = 0;  // events the webhook acknowledged since start
    std::uint64_t pending = 0;       // recorded, not acknowledged yet
    std::uint64_t retries = 0;       // batches sent again
    std::uint64_t outbox_bytes = 0;  // the outbox file's size
    std::uint64_t orphaned = 0;      // disconnects emitted for lost nodes
    std::uint64_t tracked = 0;       // clients in this node's Redis record
    std::uint64_t in_memory = 0;     // events held in memory (events.memory_window at most)
    // events.store = redis: `acknowledged` counts events Redis took; these
    // count what this node, as the stream's sender, got acknowledged.
    std::uint64_t delivered = 0;
    std::uint64_t stream_retries = 0;
    bool sender = false;  // this node sends the stream now
  };
  statistics stats() const;

 private:
  struct queued {
    std::uint64_t seq;
    std::string json;
  };
  // Hook thread.
  void kick();
  void on_sent(std::uint64_t last, std::size_t count, const http_result& r);
  void on_retry();
  std::string write_acked(std::uint64_t seq);
  // Hook thread: one event recorded (`end`: its record's end in the file,
  // 0 if the append failed) into memory, or left in the file past the window.
  void queue(std::uint64_t seq, std::size_t end, std::string json);
  // Hook thread: reads events back from the file up to the window.
  void refill();
  // REQUIRES: mutex_ held. Appends one event and hands it to the hook thread.
  void record(const lifecycle_event& e, bool sync);
  // Hook thread: a lost node's disconnects, durable when it returns.
  bool emit_lost(std::string_view node,
                 const std::vector<std::pair<std::string, std::string>>& clients);

  const realtime_config& config_;
  hook_caller& hooks_;
  log_function log_;
  http_url url_;
  std::string node_;  // random per start: ids are node-seq, unique across restarts

  mutable std::mutex mutex_;  // the writer and the sequence
  std::unique_ptr<journal_writer> writer_;
  std::uint64_t next_seq_ = 1;
  bool stopped_ = true;
  std::uint64_t first_seq_ = 1;  // next_seq_ at start (emitted = next_seq_ - first_seq_)

  std::atomic<std::uint64_t> acked_count_{0};
  std::atomic<std::uint64_t> acked_seq_{0};  // acked_, for stats()
  std::atomic<std::uint64_t> retries_{0};
  std::atomic<std::uint64_t> orphaned_{0};
  std::atomic<std::uint64_t> tracked_{0};
  // With the Redis broker: this node's record and the lost nodes' clients.
  std::unique_ptr<orphan_tracker> orphans_;  // hook thread only
  redis_url orphan_url_;
  // events.store = redis: the stream the outbox hands its events to.
  bool use_stream_ = false;
  std::unique_ptr<event_stream> stream_;  // hook thread only
  event_stream_counters stream_counters_;

  // Hook thread only.
  std::deque<queued> pending_;
  bool in_flight_ = false;
  std::uint32_t attempt_ = 0;
  std::uint64_t acked_ = 0;
  // Memory bound (events.memory_window): pending_ holds the events after
  // acked_ up to loaded_upto_; when spilled_, later ones are only in the
  // file, from byte loaded_end_ on, and refill() reads them back.
  std::uint64_t loaded_upto_ = 0;
  std::size_t loaded_end_ = 0;
  bool spilled_ = false;
  std::atomic<std::uint64_t> in_memory_{0};
  net::timer_node retry_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace switchboard::realtime::detail
