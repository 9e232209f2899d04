// presence_batch.hpp — private: presence changes coalesced per tick.
//
// The broker reports every join and leave (broker_events::on_presence).
// Pushing each one to every subscriber costs N x N messages when N clients
// join one channel, and that is what let a crowd of clients that never read
// grow the server by gigabytes. The batcher keeps, per channel stream
// (channel and epoch), the net change of each client since the last push —
// a join and a leave of the same client within one tick cancel out — and
// hands the hub's tick the channels that have something to say: one push per
// channel per tick (docs/protocol.md, "Presence").
//
// A channel that reports counts only (more members than its namespace's
// presence_max_members) gets a push at most once per count interval, and only
// when its count moved.
//
// Thread-safety: every member function may be called from any thread; one
// internal mutex, never held while calling out, so add() may be called from
// broker events with a broker lock held.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace switchboard::realtime::detail {

class presence_batcher {
 public:
  // What one channel stream has to say at a tick.
  struct batch {
    std::string channel;
    std::string epoch;
    std::string joins;   // entries that joined since the last push, comma-separated
    std::string leaves;  // entries that left, comma-separated
  };

  // `count_interval_ms`: the least time between two pushes of a channel that
  // reports counts only, and how long an idle channel's state is kept.
  explicit presence_batcher(std::uint64_t count_interval_ms) noexcept
      : count_interval_ms_(count_interval_ms) {}

  // Records that the client of `entry_json` (a presence_json() object) joined
  // or left `channel` in stream `epoch`. An entry without a client id is ignored.
  void add(std::string_view channel, std::string_view epoch, bool join,
           std::string_view entry_json);

  // The channel streams with changes that are due at `now_ms` (monotonic),
  // each with its net joins and leaves; their changes are cleared. Forgets
  // streams that have been quiet for the count interval.
  std::vector<batch> take(std::uint64_t now_ms);

  // After take(): the stream's member count is `count` and it reports counts
  // only (`counts_only`) or not; `has_changes` says whether its batch had
  // joins or leaves. Returns whether a push is worth sending: counts only,
  // when the count moved or the mode changed; listed, when there are changes
  // or the mode changed (so clients know to reload the list).
  bool note_push(std::string_view channel, std::string_view epoch, bool counts_only,
                 std::size_t count, bool has_changes);

  // Channel streams with state (for tests).
  std::size_t size() const;

 private:
  struct change {
    bool was_present;  // before the first change of this tick
    bool present;      // after the last one
    std::string json;
  };
  struct stream_state {
    std::string channel;
    std::string epoch;
    std::unordered_map<std::string, change> changes;  // by client id
    bool dirty = false;
    bool counts_only = false;  // how the last push reported it
    std::size_t last_count = SIZE_MAX;
    std::uint64_t last_push_ms = 0;
  };

  static std::string key_of(std::string_view channel, std::string_view epoch);

  const std::uint64_t count_interval_ms_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, stream_state> streams_;  // by "channel#epoch"
};

}  // namespace switchboard::realtime::detail
