// broker.hpp — private: the seam between this node and everything that
// crosses nodes. A broker owns each channel's stream (epoch, offsets,
// history) and its presence, and tells the node about publications and
// presence changes through broker_events — its own and, for a broker shared
// by several nodes, the other nodes'.
//
// The hub (hub.hpp) is the broker's only caller on a node. The memory broker
// (memory_broker.hpp) is the embedded default; a networked broker implements
// the same contract with its calls answered later, from its own thread.
//
// Ordering: the broker assigns offsets, so a channel has one order, the same
// on every node; broker_events::on_publication is called for one channel in
// that order, one call at a time.
//
// Completions: every call that answers does so through a completion, exactly
// once, possibly before the call returns (the memory broker always does) and
// possibly on another thread (a networked broker). A completion is never run
// with a broker lock held, so it may call the broker again.
//
// Thread-safety: every member function may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <switchboard/net/unique_function.hpp>
#include <switchboard/realtime/config.hpp>

#include "command.hpp"

namespace switchboard::realtime::detail {

// How presence shows one client; shared by every channel the client is in.
struct presence_entry {
  std::string client;  // the client id (unique in the cluster)
  std::string json;    // {"client":"…","user":"…","info":{…}} (wire.hpp presence_json())
};

struct publish_result {
  std::optional<failure> error;  // set: nothing was published
  std::string epoch;
  std::uint64_t offset = 0;
};

// What to read from a channel's stream.
struct read_request {
  // Set: recovery — what came after this position, and whether that can be
  // told exactly (same epoch, position not ahead, nothing missing between).
  std::optional<stream_position> since;
  std::size_t limit = SIZE_MAX;  // at most this many publications, oldest first
  // When `since` cannot be served: false, no publications (subscribe tells
  // the client it did not recover); true, the latest `limit` (history).
  bool latest_when_lost = false;
};

struct read_result {
  std::optional<failure> error;  // set: the stream could not be read
  std::string epoch;             // the stream's position now
  std::uint64_t offset = 0;
  // Set when the request had `since`: whether it was recovered, and if not why.
  std::optional<bool> recovered;
  std::string_view reason;
  // Kept publications, oldest first, each {"offset":N,…} (wire.hpp
  // append_publication), comma-separated: what recovery sent, or the latest.
  std::string publications;
};

struct channel_info {
  std::string name;
  std::string epoch;
  std::uint64_t offset = 0;
};

struct broker_stats {
  std::size_t history_bytes = 0;        // kept publications, over every channel
  std::uint64_t history_evictions = 0;  // dropped to stay under limits.history_memory
  std::uint64_t channels_refused = 0;   // new channels refused by limits.max_channels
};

// The node's side of the broker: what it hears about channels it subscribed
// to (subscribe_node). REQUIRES: an implementation never calls back into the
// broker from these (they may run with a broker lock held).
class broker_events {
 public:
  // A publication of `channel`, in offset order. `tail` is the publication
  // after its offset (wire.hpp publication_tail()).
  virtual void on_publication(std::string_view channel, std::string_view epoch,
                              std::uint64_t offset, std::string_view tail) = 0;
  // A client joined (`join`) or left the presence of `channel`. The node
  // coalesces these per tick (hub.hpp); `entry_json` is presence_json()'s,
  // so it starts with the client id.
  virtual void on_presence(std::string_view channel, std::string_view epoch, bool join,
                           std::string_view entry_json) = 0;
  // The node can no longer deliver `channel` without a gap: its stream was
  // lost (a new `epoch`) or publications were missed that the stream no
  // longer keeps (same epoch). The node's subscribers of the channel must
  // subscribe again (and learn that recovery failed). Called before any
  // read of the channel that reports `epoch` completes. The memory broker
  // never calls it; a networked broker does after a reconnect.
  virtual void on_stream_lost(std::string_view channel, std::string_view epoch) {
    (void)channel;
    (void)epoch;
  }
  // A control message of the server API (broker::send_control), from this
  // node or another: every node acts on its own connections.
  virtual void on_control(std::string_view message) { (void)message; }
  // A message broker::send_node addressed to this node (listen_node).
  virtual void on_node_message(std::string_view message) { (void)message; }
  // Messages addressed to this node may have been lost (the connection that
  // receives them dropped); those sent from now on arrive again.
  virtual void on_node_messages_lost() {}

 protected:
  ~broker_events() = default;
};

class broker {
 public:
  template <class T>
  using completion = net::unique_function<void(T)>;

  virtual ~broker() = default;

  // Whether broker_events::on_stream_lost can ever be called (a networked
  // broker, whose store may restart empty or trim). False lets the hub keep
  // no per-channel list of attached connections: only a lost stream needs it.
  virtual bool loses_streams() const noexcept { return true; }

  // Starts the broker (loads saved state, connects). Returns "" or why it
  // cannot start. `events` must outlive the broker.
  virtual std::string start(broker_events& events) = 0;
  // Stops it (saves state). Idempotent.
  virtual void stop() = 0;
  // "" while the broker can serve; otherwise why not (/healthz says it).
  virtual std::string health() const = 0;

  // The node has its first local subscriber of `channel` / its last one left.
  // While subscribed, the node gets the channel's events and the channel's
  // stream keeps its epoch.
  virtual void subscribe_node(std::string_view channel, const namespace_options& ns) = 0;
  virtual void unsubscribe_node(std::string_view channel) = 0;

  // Publishes: takes the next offset, keeps the publication as the namespace
  // says (history size, TTL), emits on_publication, then completes.
  virtual void publish(std::string_view channel, const namespace_options& ns, std::string tail,
                       completion<publish_result> done) = 0;

  // Reads the channel's position and kept publications (see read_request).
  virtual void read(std::string_view channel, const namespace_options& ns, read_request request,
                    completion<read_result> done) = 0;

  // Presence: `entry` joins / leaves `channel` (on_presence follows).
  virtual void presence_add(std::string_view channel, std::shared_ptr<const presence_entry> entry) = 0;
  virtual void presence_remove(std::string_view channel, std::string_view client) = 0;
  // A page of the members of `channel`, in client-id order: those whose
  // client id sorts after `cursor` ("" for the first page), at most `limit`.
  // A channel with more than `max_members` members is listed by its count
  // only (docs/protocol.md, "Presence"); `limit` 0 asks for the count only.
  struct presence_request {
    std::string cursor;
    std::size_t limit = SIZE_MAX;
    std::size_t max_members = SIZE_MAX;
  };
  struct presence_result {
    std::optional<failure> error;
    std::size_t count = 0;  // members now
    bool listed = false;    // false: over max_members (or limit 0), no entries
    std::string entries;    // the page's entries, comma-separated JSON objects
    std::string next;       // the cursor of the next page; empty on the last one
  };
  virtual void presence(std::string_view channel, presence_request request,
                        completion<presence_result> done) = 0;

  // Every channel with state (subscribers or kept history), in no set order.
  struct channels_result {
    std::optional<failure> error;
    std::vector<channel_info> channels;
  };
  virtual void channels(completion<channels_result> done) = 0;
  // Channels with state now (a gauge; may lag).
  virtual std::size_t channel_count() const = 0;
  // Gauges and counters for /metrics (may lag). A broker that keeps no
  // history here reports zeros.
  virtual broker_stats stats() const { return {}; }

  // Periodic upkeep (history TTL); called about every 200 ms.
  virtual void tick() = 0;

  // --- the server API (http_api_methods.cpp) ------------------------------

  // Drops the kept publications of `channel`. Its epoch and offset stay
  // while the channel has other state (the Redis broker keeps them anyway):
  // the next publication continues the offsets, and a recovery from before
  // the removal is told "too far behind". On the memory broker a channel
  // left with no state goes, like any other, and comes back with a new
  // epoch. Completes with a failure or nullopt.
  virtual void remove_history(std::string_view channel,
                              completion<std::optional<failure>> done) = 0;
  // Hands `message` to broker_events::on_control of every node sharing the
  // broker, this one included, once each (no order with publications).
  // Completes once it is sent (not once every node acted).
  virtual void send_control(std::string message, completion<std::optional<failure>> done) = 0;
  // This node's statistics for nodes(): `json` is one JSON object, called
  // about once a second. A networked broker keeps it for a few seconds only,
  // so a node that died drops out of the list.
  virtual void publish_node(std::string_view node_id, std::string json) = 0;
  struct nodes_result {
    std::optional<failure> error;
    std::vector<std::string> nodes;  // the JSON objects of publish_node()
  };
  // Every live node's latest publish_node() object.
  virtual void nodes(completion<nodes_result> done) = 0;

  // --- node to node (HTTP sessions across nodes, session_forward.hpp) -----

  // Whether send_node() can reach other nodes (false: the memory broker,
  // which serves one node).
  virtual bool reaches_other_nodes() const { return false; }
  // This node takes the messages send_node() addresses to `node_id`
  // (broker_events::on_node_message). Call before start().
  virtual void listen_node(std::string node_id) { (void)node_id; }
  struct node_send_result {
    std::optional<failure> error;
    std::size_t receivers = 0;  // 0: no node listens under that id (gone)
  };
  // Hands `message` to the node listening under `node_id`. Messages sent
  // from one thread to one node arrive in the order sent. Completes once
  // sent, on any thread (may be null: fire and forget).
  virtual void send_node(std::string_view node_id, std::string message,
                         completion<node_send_result> done) {
    (void)node_id;
    (void)message;
    if (done) {
      done(node_send_result{failure{503, "broker unavailable: it does not reach other nodes"}, 0});
    }
  }
};

}  // namespace switchboard::realtime::detail
