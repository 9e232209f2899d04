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
// Memory: the state lives from a join until a quiet count interval after its
// push, and is made on the loop thread that handles the subscribe, between
// that subscription's lasting blocks. From the general heap, a burst of
// subscribes left it behind as thousands of small holes among them (~0.8 MB
// after 2,500 presence subscribes) that malloc_trim cannot give back: the
// fixed step of `serve` with presence on. So it is allocated from a pool of
// its own over pages mapped for it (page_resource), and the pool is released
// — its pages unmapped — whenever no stream has state left.
//
// Thread-safety: every member function may be called from any thread; one
// internal mutex, never held while calling out, so add() may be called from
// broker events with a broker lock held.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory_resource>
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
  explicit presence_batcher(std::uint64_t count_interval_ms);

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
  // Bytes of pages the state's pool holds mapped now (for tests: 0 once no
  // stream has state and the pool was released; the pool's own table, a
  // page of it touched, is mapped from its construction to its first release).
  std::size_t mapped_bytes() const;

  // A memory resource that maps its blocks from the kernel (mmap) and unmaps
  // them when they are given back, so that what it gave out never stays in
  // the process as heap holes. For a pool's chunks, not for small blocks:
  // every block is a whole number of pages. Public for its test.
  // Thread-safety: none (the batcher's mutex guards its use).
  class page_resource final : public std::pmr::memory_resource {
   public:
    std::size_t mapped_bytes() const noexcept { return mapped_; }

   private:
    void* do_allocate(std::size_t bytes, std::size_t alignment) override;
    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
    bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
      return this == &other;
    }
    std::size_t mapped_ = 0;
  };

 private:
  using text = std::pmr::string;
  struct text_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  using text_map_key = std::equal_to<>;
  struct change {
    using allocator_type = std::pmr::polymorphic_allocator<>;
    explicit change(const allocator_type& a) : json(a) {}
    change(const change& other, const allocator_type& a)
        : was_present(other.was_present), present(other.present), json(other.json, a) {}
    change(change&& other, const allocator_type& a)
        : was_present(other.was_present), present(other.present), json(std::move(other.json), a) {}

    bool was_present = false;  // before the first change of this tick
    bool present = false;      // after the last one
    text json;
  };
  struct stream_state {
    using allocator_type = std::pmr::polymorphic_allocator<>;
    explicit stream_state(const allocator_type& a) : channel(a), epoch(a), changes(a) {}
    stream_state(const stream_state& other, const allocator_type& a)
        : channel(other.channel, a),
          epoch(other.epoch, a),
          changes(other.changes, a),
          dirty(other.dirty),
          counts_only(other.counts_only),
          last_count(other.last_count),
          last_push_ms(other.last_push_ms) {}
    stream_state(stream_state&& other, const allocator_type& a)
        : channel(std::move(other.channel), a),
          epoch(std::move(other.epoch), a),
          changes(std::move(other.changes), a),
          dirty(other.dirty),
          counts_only(other.counts_only),
          last_count(other.last_count),
          last_push_ms(other.last_push_ms) {}

    text channel;
    text epoch;
    std::pmr::unordered_map<text, change, text_hash, text_map_key> changes;  // by client id
    bool dirty = false;
    bool counts_only = false;  // how the last push reported it
    std::size_t last_count = SIZE_MAX;
    std::uint64_t last_push_ms = 0;
  };

  // "channel#epoch" in the thread's buffer, valid until its next call.
  static std::string_view key_of(std::string_view channel, std::string_view epoch);
  // The pool's pages go back to the kernel when no stream has state.
  void release_if_empty();

  const std::uint64_t count_interval_ms_;
  mutable std::mutex mutex_;
  // Declared before the map, so destroyed after it.
  page_resource pages_;
  std::pmr::unsynchronized_pool_resource pool_;
  // By "channel#epoch", every block of it (nodes, buckets, strings) from pool_.
  std::pmr::unordered_map<text, stream_state, text_hash, text_map_key> streams_;
};

}  // namespace switchboard::realtime::detail
