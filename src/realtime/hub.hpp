// hub.hpp — private: this node's channels. Which channels have local
// subscribers (and how many), the server topic each one is delivered on, the
// fan-out of the broker's events to this node's connections, and the one
// publish path that WebSocket and HTTP publishers share.
//
// Delivery: a publication goes out as server::publish(topic, push, sequence =
// offset, queued): through every loop's FIFO queue, so each loop sees a
// channel's publications in the broker's order, and a subscriber that caught
// up to offset H (websocket::subscribe(topic, H)) gets every later one once.
// The topic is "channel#epoch": a new epoch is a new topic, so offsets of an
// old epoch never filter a new one.
//
// Presence: the broker's joins and leaves are not pushed one by one but
// coalesced per channel (presence_batch.hpp) and pushed by tick_presence(),
// which the service's housekeeping calls every 200 ms: one push per channel
// per tick, {"push":"presence",…} (wire.hpp presence_push()).
//
// Thread-safety: every member function may be called from any thread. The
// hub's mutex is taken before the broker's, never after: on_publication and
// on_presence do not take it (the presence batcher has its own lock);
// on_stream_lost does, and only a broker that calls events without holding a
// lock of its own (the Redis broker) calls it.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <switchboard/realtime/config.hpp>
#include <switchboard/server/server.hpp>

#include "broker.hpp"
#include "compact_strings.hpp"
#include "metrics.hpp"
#include "presence_batch.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

// A channel with subscribers on this node. Owned by the hub; connections
// hold pointers to the ones they are subscribed to (valid while subscribed).
// 80 bytes: the hub's set node with it is one 96-byte chunk, the only block
// a channel costs the hub (its topic, "name#epoch", is built when needed).
struct local_channel {
  local_channel() = default;
  local_channel(std::string_view n, const namespace_options& o) : name(n), ns(&o) {}

  std::string name;  // the hub's key: never changes while the hub holds it
  // The broker's epoch; empty until the first attach() (or on_stream_lost).
  // Held inline (compact_strings.hpp), not as a copy of "name#epoch".
  epoch_text epoch;
  const namespace_options* ns = nullptr;
  std::size_t subscribers = 0;
  // Connections attached (attach()), so a lost stream can tell them
  // (on_stream_lost); empty when the broker never loses a stream
  // (broker::loses_streams), so null until the first one: 8 bytes, not a
  // vector's 24, in every channel. Guarded by the hub's mutex.
  std::unique_ptr<std::vector<server::connection_id>> members;
};

// An HTTP peer (http_peer.hpp) as the hub delivers to it. WebSocket
// subscribers get publications through server topics; HTTP ones through a
// per-channel list of these (hub_http.cpp), so the WebSocket path has no
// virtual call or allocation per delivery.
// REQUIRES: these run with the hub's HTTP lock held, maybe under a broker
// lock too: they only queue output, never call the hub or the broker.
class http_subscriber {
 public:
  // A push of `channel`: a publication at `offset`, or (offset 0) presence.
  virtual void deliver(std::string_view channel, std::string_view epoch, std::uint64_t offset,
                       const std::string& push) = 0;
  // The channel's stream was lost (on_stream_lost): the peer must close 1012.
  virtual void stream_lost(std::string_view channel) = 0;

 protected:
  ~http_subscriber() = default;
};

class hub final : public broker_events {
 public:
  // `srv` and `b` must outlive the hub; `publications` counts accepted ones.
  hub(const realtime_config& config, server::server& srv, broker& b, counter& publications);

  broker& backend() noexcept { return broker_; }

  // A connection of this node subscribes / stops. The first local subscriber
  // subscribes the node in the broker; the last one unsubscribes it.
  // `form`: the envelope the subscriber reads publications in (counted from
  // join, before the broker read, so on_publication builds it for every
  // publication the subscriber may get); leave() with the same form.
  local_channel& join(std::string_view name, const namespace_options& ns,
                      push_form form = push_form::full);
  void leave(local_channel& ch, push_form form = push_form::full);
  // The server topic a subscriber of `form` joins for the channel's topic
  // (ch.topic for full; "~" + it for compact, "!" + it for sse: neither is
  // in any channel name).
  // The compact one is built in a thread-local buffer, valid until the
  // thread's next call.
  static const std::string& topic_for(const std::string& topic, push_form form);
  // The same for an attached channel, whose topic ("ch.topic" above) is
  // "name#epoch", built from its name and epoch in a thread-local buffer
  // valid until the thread's next call of either.
  static const std::string& topic_for(const local_channel& ch, push_form form);
  // A subscriber's read reported `epoch`: attaches connection `id` (the
  // first one sets the channel's epoch) and returns the channel's topic
  // (topic_for(ch, push_form::full): the thread-local buffer, valid until the
  // thread's next topic_for). Null if the channel's stream changed since that
  // read (on_stream_lost): the read is stale and the connection must
  // subscribe again.
  // REQUIRES: the caller joined `ch`; detach() before leave().
  const std::string* attach(local_channel& ch, std::string_view epoch, server::connection_id id);
  void detach(local_channel& ch, server::connection_id id);

  // HTTP subscribers (hub_http.cpp), in the order of peer.hpp: http_prepare()
  // before the broker read (pushes are held from then on), http_attach() with
  // the read's epoch (false: stale, as attach()), http_start() after the
  // reply (held pushes past `after` are delivered, the rest dropped), and
  // http_remove() to stop (also undoes a prepare).
  void http_prepare(const local_channel& ch, http_subscriber& s);
  bool http_attach(local_channel& ch, std::string_view epoch);
  void http_start(const local_channel& ch, http_subscriber& s, std::uint64_t after);
  // `pending_only`: only a member not started yet (a cancelled prepare; the
  // same peer may hold a live one of the channel meanwhile); else the
  // started one first.
  void http_remove(const local_channel& ch, http_subscriber& s, bool pending_only = false);
  // HTTP subscriptions on this node (each peer once per channel).
  std::size_t http_subscriptions() const noexcept {
    return http_count_.load(std::memory_order_relaxed);
  }
  // Subscribers on this node, by channel name (0 if none).
  std::size_t subscribers(std::string_view name);
  // This node's `limit` channels with the most subscribers, most first (ties
  // by name): what a node tells the others in its statistics (info).
  std::vector<std::pair<std::string, std::size_t>> top_channels(std::size_t limit);
  // Subscriptions on this node, over every channel.
  std::size_t subscriptions() const noexcept {
    return subscriptions_.load(std::memory_order_relaxed);
  }
  void count_subscription(int delta) noexcept {
    subscriptions_.fetch_add(static_cast<std::size_t>(delta), std::memory_order_relaxed);
  }

  // The publish path of every transport: checks the size limit, publishes
  // through the broker, counts it. `client`/`user` name the publisher (empty
  // for the HTTP API). `done` runs once, maybe before this returns.
  void publish(std::string_view channel, const namespace_options& ns, std::string_view data,
               std::string_view client, std::string_view user,
               broker::completion<publish_result> done);

  static std::string topic_of(std::string_view channel, std::string_view epoch);

  // Pushes the presence changes collected since the last call: one push per
  // channel that has any, with its member count; a channel over its
  // namespace's presence_max_members gets its count only, at most once a
  // second. `now_ms`: a monotonic clock.
  void tick_presence(std::uint64_t now_ms);
  // Presence pushes sent since start (each counts once, whatever the number
  // of subscribers).
  std::uint64_t presence_pushes() const noexcept {
    return presence_pushes_.load(std::memory_order_relaxed);
  }

  // How often a counts-only channel may be pushed.
  static constexpr std::uint64_t k_presence_count_interval_ms = 1000;

  // broker_events: fan-out to this node's subscribers.
  void on_publication(std::string_view channel, std::string_view epoch, std::uint64_t offset,
                      std::string_view tail) override;
  void on_presence(std::string_view channel, std::string_view epoch, bool join,
                   std::string_view entry_json) override;
  // Closes the channel's attached connections with 1012: they reconnect,
  // subscribe with `since` and are told `recovered: false`.
  void on_stream_lost(std::string_view channel, std::string_view epoch) override;
  // Hands the server API's control messages to `handler` (set before the
  // broker starts; the sessions act on them).
  void on_control(std::string_view message) override {
    if (control_) control_(message);
  }
  void set_control_handler(std::function<void(std::string_view)> handler) {
    control_ = std::move(handler);
  }
  // Hands messages of other nodes to this one (broker::send_node) to
  // `handler` (set before the broker starts; the HTTP transports forward
  // session requests with them).
  void on_node_message(std::string_view message) override {
    if (node_message_) node_message_(message);
  }
  void set_node_message_handler(std::function<void(std::string_view)> handler,
                                std::function<void()> lost) {
    node_message_ = std::move(handler);
    node_messages_lost_ = std::move(lost);
  }
  void on_node_messages_lost() override {
    if (node_messages_lost_) node_messages_lost_();
  }

  // Publish latency (hub::publish to the broker's completion), for the
  // admin dashboard: the sum in microseconds and the count, since start.
  std::uint64_t publish_latency_us() const noexcept {
    return publish_latency_us_.load(std::memory_order_relaxed);
  }
  std::uint64_t publish_latency_count() const noexcept {
    return publish_latency_count_.load(std::memory_order_relaxed);
  }

 private:
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };

  const realtime_config& config_;
  server::server& srv_;
  broker& broker_;
  counter& publications_;
  const bool track_members_;  // broker_.loses_streams(): keep local_channel::members
  // channels_ is a set of channels found by name.
  struct channel_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const noexcept {
      return std::hash<std::string_view>{}(name);
    }
    std::size_t operator()(const local_channel& ch) const noexcept { return (*this)(ch.name); }
  };
  struct channel_equal {
    using is_transparent = void;
    static std::string_view key(std::string_view name) noexcept { return name; }
    static std::string_view key(const local_channel& ch) noexcept { return ch.name; }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const noexcept {
      return key(a) == key(b);
    }
  };
  // The set hands out const channels so their key can't change; the name
  // never does, so the hub writes the other members (hub.cpp, mut()).
  static local_channel& mut(const local_channel& ch) noexcept {
    return const_cast<local_channel&>(ch);
  }
  std::mutex mutex_;
  // The channel lives in its node (a node does not move) and is keyed by
  // its own name: one heap block and one copy of the name per channel, no
  // view of it beside it.
  std::unordered_set<local_channel, channel_hash, channel_equal> channels_;
  std::atomic<std::size_t> subscriptions_{0};
  // Subscriptions on this node by push_form (join()/leave()): a publication
  // is built and published in the forms somebody on this node reads (a
  // node-wide count: a channel read only in one form on a node that has both
  // is built and framed twice, once per loop, never per subscriber).
  std::atomic<std::size_t> form_subscriptions_[3] = {0, 0, 0};
  presence_batcher presence_{k_presence_count_interval_ms};
  std::atomic<std::uint64_t> presence_pushes_{0};
  std::function<void(std::string_view)> control_;
  std::function<void(std::string_view)> node_message_;
  std::function<void()> node_messages_lost_;
  std::atomic<std::uint64_t> publish_latency_us_{0};
  std::atomic<std::uint64_t> publish_latency_count_{0};

  // The HTTP subscribers of each channel. Its own lock, taken after the
  // broker's (deliver_http runs inside on_publication) and never before it.
  struct http_member {
    http_subscriber* sub = nullptr;
    std::uint64_t after = 0;  // last offset delivered
    bool live = false;        // false: between prepare and start, pushes are held
    // {offset, push}; null while none is held (one per idle HTTP subscriber:
    // 8 bytes, not an empty vector's 24).
    std::unique_ptr<std::vector<std::pair<std::uint64_t, std::string>>> held;
  };
  void deliver_http(std::string_view channel, std::string_view epoch, std::uint64_t offset,
                    const std::string& push);
  void lose_http(std::string_view channel);
  std::mutex http_mutex_;
  std::unordered_map<std::string, std::vector<http_member>, string_hash, std::equal_to<>> http_;
  std::atomic<std::size_t> http_count_{0};
};

}  // namespace switchboard::realtime::detail
