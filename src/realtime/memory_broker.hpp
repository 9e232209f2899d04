// memory_broker.hpp — private: the embedded broker, for one node. Streams,
// history and presence live in this process behind one mutex; every call
// completes before it returns. History survives a clean restart through the
// snapshot file (snapshot.hpp), and a crash through the journal (journal.hpp)
// when there is one.
//
// Epochs are never reused for different data: a start keeps the saved epochs
// only when it can prove the state it loaded is the last one — a snapshot
// written by a clean shutdown, or a journal that holds every publication
// anyone saw (fsync "always", or the same boot: the page cache survived).
// Otherwise every channel starts a new epoch (docs/durability.md).
//
// Global bounds: limits.max_channels streams at once (a new one past it is
// refused), limits.history_memory bytes of kept publications over all
// channels (past it the oldest publications of the server go first).
//
// A channel has state while the node is subscribed to it, it keeps
// publications or it has presence members; when the last of those goes, the
// state goes, and the next use starts a new epoch at offset 0.
//
// Thread-safety: as broker (any thread). broker_events are called with the
// mutex held, so publications of all channels reach the node in one order.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <switchboard/realtime/config.hpp>
#include <switchboard/realtime/service.hpp>

#include "broker.hpp"
#include "journal.hpp"

namespace switchboard::realtime::detail {

struct memory_broker_options {
  std::string snapshot_file;  // empty: history does not survive a restart
  std::string journal_file;   // empty: no journal; needs snapshot_file
  fsync_policy journal_fsync = fsync_policy::everysec;
  // The machine's boot id; empty: read it from the kernel. Tests set it to
  // play a machine restart.
  std::string boot_id;
  // Milliseconds since the Unix epoch; tests pass their own clock to check
  // TTLs without sleeping.
  std::function<std::int64_t()> wall_clock;
  log_function log;
};

class memory_broker final : public broker {
 public:
  // `config`'s namespaces must outlive the broker (streams point at them).
  memory_broker(const realtime_config& config, memory_broker_options options);
  ~memory_broker() override;

  std::string start(broker_events& events) override;
  bool loses_streams() const noexcept override { return false; }  // one process: never
  void stop() override;
  std::string health() const override;
  broker_stats stats() const override;

  void subscribe_node(std::string_view channel, const namespace_options& ns) override;
  void unsubscribe_node(std::string_view channel) override;
  void publish(std::string_view channel, const namespace_options& ns, std::string tail,
               completion<publish_result> done) override;
  void read(std::string_view channel, const namespace_options& ns, read_request request,
            completion<read_result> done) override;
  void presence_add(std::string_view channel, std::shared_ptr<const presence_entry> entry) override;
  void presence_remove(std::string_view channel, std::string_view client) override;
  void presence(std::string_view channel, presence_request request,
                completion<presence_result> done) override;
  void channels(completion<channels_result> done) override;
  std::size_t channel_count() const override;
  void tick() override;
  // With a journal, the removal is made durable by a compaction at once (the
  // journal would otherwise bring the removed publications back).
  void remove_history(std::string_view channel, completion<std::optional<failure>> done) override;
  // One node: the message goes straight to on_control.
  void send_control(std::string message, completion<std::optional<failure>> done) override;
  void publish_node(std::string_view node_id, std::string json) override;
  void nodes(completion<nodes_result> done) override;

 private:
  struct stream;
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  // streams_ is a set of streams found by their name (memory_broker.cpp).
  struct stream_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const noexcept;
    std::size_t operator()(const stream& s) const noexcept;
  };
  struct stream_equal {
    using is_transparent = void;
    bool operator()(const stream& a, const stream& b) const noexcept;
    bool operator()(std::string_view a, const stream& b) const noexcept;
    bool operator()(const stream& a, std::string_view b) const noexcept;
  };

  std::int64_t now() const;
  // The channel's stream, created (new epoch) if it has none; null when it
  // has none and limits.max_channels are in use. REQUIRES: mutex_.
  stream* stream_of(std::string_view name, const namespace_options& ns);
  stream& create_stream(std::string_view name, const namespace_options& ns, std::string epoch);
  stream* find(std::string_view name);
  void prune(stream& s, std::int64_t now_wall);
  void maybe_drop(stream& s);
  // History with the global accounting (bytes, the server-wide oldest).
  void push_kept(stream& s, std::uint64_t offset, std::int64_t time_ms, std::string json);
  void pop_kept(stream& s);
  void clear_kept(stream& s);
  void evict_over_budget();

  // Durability (memory_broker.cpp, end).
  std::string load_state();
  void replay(const journal_record& r, std::int64_t now_wall);
  std::string write_snapshot(const std::string& id, bool clean);
  // `force`: whatever the journal's size (history_remove). False: a
  // compaction was due and failed.
  bool maybe_compact(bool force = false);
  void save_snapshot();

  const realtime_config& config_;
  memory_broker_options options_;
  broker_events* events_ = nullptr;
  mutable std::mutex mutex_;
  // The streams themselves, found by name: one heap block per channel (the
  // set's node, which does not move: stream* stays valid until erased),
  // keyed by the name the stream holds (no second copy, no view beside it).
  // The set hands out const streams; memory_broker.cpp's mut() drops that
  // const, which only the name (the key) needs and which never changes.
  std::unordered_set<stream, stream_hash, stream_equal> streams_;
  std::atomic<std::size_t> count_{0};
  bool stopped_ = false;

  // Channels the node subscribed to while max_channels were in use: reads of
  // them are refused until the node unsubscribes.
  std::unordered_set<std::string, string_hash, std::equal_to<>> refused_nodes_;
  // Streams with history by the sequence number of their oldest kept
  // publication: the first one holds the oldest publication of the server.
  std::set<std::pair<std::uint64_t, stream*>> oldest_;
  std::uint64_t next_seq_ = 0;
  std::size_t history_bytes_ = 0;
  std::atomic<std::size_t> history_bytes_gauge_{0};
  std::atomic<std::uint64_t> evictions_{0};
  std::atomic<std::uint64_t> refused_{0};

  std::shared_ptr<journal_writer> journal_;
  std::string journal_error_;  // the last append's failure; "" while it works
  std::size_t compact_floor_ = 0;
  std::uint64_t last_sync_ms_ = 0;
  std::string node_json_;  // publish_node(); guarded by mutex_
};

}  // namespace switchboard::realtime::detail
