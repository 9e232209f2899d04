// memory_broker.hpp — private: the embedded broker, for one node. Streams,
// history and presence live in this process behind one mutex; every call
// completes before it returns. History survives a clean restart through the
// snapshot file (snapshot.hpp).
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
#include <string>
#include <unordered_map>

#include <switchboard/realtime/config.hpp>
#include <switchboard/realtime/service.hpp>

#include "broker.hpp"

namespace switchboard::realtime::detail {

struct memory_broker_options {
  std::string snapshot_file;  // empty: history does not survive a restart
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
  void stop() override;
  std::string health() const override { return {}; }

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

 private:
  struct stream;
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };

  std::int64_t now() const;
  // The channel's stream, created (new epoch) if it has none. REQUIRES: mutex_.
  stream& stream_of(std::string_view name, const namespace_options& ns);
  stream* find(std::string_view name);
  void prune(stream& s, std::int64_t now_wall);
  void maybe_drop(stream& s);
  std::string load_snapshot();
  void save_snapshot();

  const realtime_config& config_;
  memory_broker_options options_;
  broker_events* events_ = nullptr;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::unique_ptr<stream>, string_hash, std::equal_to<>> streams_;
  std::atomic<std::size_t> count_{0};
  bool stopped_ = false;
};

}  // namespace switchboard::realtime::detail
