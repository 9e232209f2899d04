// redis_broker.hpp — private: the broker shared by many nodes through Redis.
// Streams are Redis streams, offsets and epochs a hash beside them, live
// publications and presence changes Redis pub/sub, presence a sorted set of
// leased entries; every write is one Lua script (redis_scripts.hpp). Several
// Redis URLs are shards: a channel lives on the shard its name hashes to
// (consistent hashing, so adding a shard moves few channels).
//
// Threads: the broker owns one event loop and its thread; every Redis
// connection (per shard, one for commands, one for SUBSCRIBE) lives there,
// every call is posted there, and every completion and broker_events call
// runs there. Why not the server's loops: the broker starts before them and
// stops after them (leave pushes of a shutdown go out), its connections are
// shared by every loop, and one thread keeps each channel's state free of
// locks and its pub/sub order exactly the order of one socket. The cost is
// one cross-thread hop per delivery, which the server pays for every other
// loop anyway.
//
// No gap, no duplicate (the memory broker's guarantee, across nodes): see
// redis_broker.cpp, "Joining live delivery".
//
// Thread-safety: as broker (any thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <switchboard/realtime/config.hpp>
#include <switchboard/realtime/service.hpp>

#include "broker.hpp"

namespace switchboard::net {
class event_loop;
}

namespace switchboard::realtime::detail {

struct redis_broker_options {
  std::vector<std::string> urls;  // one per shard; every node lists the same ones
  std::string key_prefix = "switchboard:";
  double presence_lease = 30;    // seconds an entry outlives its node's last refresh
  double presence_refresh = 10;  // seconds between refreshes
  bool packed_publish = true;    // several publications of a channel per PUBLISH
  log_function log;
};

class redis_broker final : public broker {
 public:
  redis_broker(const realtime_config& config, redis_broker_options options);
  ~redis_broker() override;

  // Parses the URLs and starts connecting; never waits for Redis (health()
  // says it is not there yet). Returns "" or what is wrong with a URL.
  std::string start(broker_events& events) override;
  void stop() override;
  std::string health() const override;

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
  // Channels this node is subscribed to.
  std::size_t channel_count() const override { return count_.load(std::memory_order_relaxed); }
  void tick() override;
  // DEL of the channel's stream (its meta keeps epoch and offset).
  void remove_history(std::string_view channel, completion<std::optional<failure>> done) override;
  // PUBLISH on P x:control (one shard, the same for every node), which every
  // node subscribes to.
  void send_control(std::string message, completion<std::optional<failure>> done) override;
  // SET P n:<id> with a 5 s lease, and the id in the set P nodes (that
  // shard); nodes() lists the ids whose key is still there.
  void publish_node(std::string_view node_id, std::string json) override;
  void nodes(completion<nodes_result> done) override;
  // PUBLISH on P x:node:<id> (the server API's shard), which the node with
  // that id subscribes to: one node, in order, and PUBLISH's count of
  // receivers says whether it is still there.
  bool reaches_other_nodes() const override { return true; }
  void listen_node(std::string node_id) override { node_id_ = std::move(node_id); }
  void send_node(std::string_view node_id, std::string message,
                 completion<node_send_result> done) override;

  struct state;  // everything that lives on the broker's thread (redis_broker.cpp)

 private:
  // Runs `fn` on the broker's thread. False (and `fn` dropped) once stopped.
  bool post(net::unique_function<void()> fn);

  const realtime_config& config_;
  redis_broker_options options_;
  std::unique_ptr<net::event_loop> loop_;
  std::unique_ptr<state> state_;
  std::thread thread_;
  mutable std::mutex mutex_;  // running_, health_
  bool running_ = false;
  std::string health_ = "redis: not started";
  std::atomic<std::size_t> count_{0};
  std::string node_id_;  // listen_node(); set before start()

  friend struct state;
};

}  // namespace switchboard::realtime::detail
