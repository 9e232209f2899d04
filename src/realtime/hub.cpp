// hub.cpp — this node's channels and fan-out (see hub.hpp).
#include "hub.hpp"

#include <algorithm>
#include <chrono>

#include "channel.hpp"
#include "sse_wire.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

// A channel and the set's next pointer in one 96-byte malloc chunk (88 B
// asked): at 81 B and up the node would take a 112-byte one.
static_assert(sizeof(void*) != 8 || sizeof(local_channel) <= 80);

hub::hub(const realtime_config& config, server::server& srv, broker& b, counter& publications)
    : config_(config),
      srv_(srv),
      broker_(b),
      publications_(publications),
      track_members_(b.loses_streams()) {
  // As the broker's streams (memory_broker.cpp): half the bucket array per
  // channel; looked up on join and leave only.
  channels_.max_load_factor(2.0f);
}

std::string hub::topic_of(std::string_view channel, std::string_view epoch) {
  std::string t;
  t.reserve(channel.size() + 1 + epoch.size());
  t.append(channel);
  t.push_back('#');
  t.append(epoch);
  return t;
}

const std::string& hub::topic_for(const local_channel& ch, push_form form) {
  thread_local std::string topic;
  const std::string_view epoch = ch.epoch;
  topic.clear();
  topic.reserve(ch.name.size() + 1 + epoch.size());
  topic.append(ch.name);
  topic.push_back('#');
  topic.append(epoch);
  // Every form's prefix is added in one place.
  return topic_for(topic, form);
}

const std::string& hub::topic_for(const std::string& topic, push_form form) {
  if (form == push_form::full) return topic;
  thread_local std::string marked;
  marked.clear();
  marked.push_back(form == push_form::compact ? '~' : '!');
  marked.append(topic);
  return marked;
}

local_channel& hub::join(std::string_view name, const namespace_options& ns, push_form form) {
  form_subscriptions_[static_cast<int>(form)].fetch_add(1);
  std::lock_guard lock(mutex_);
  auto it = channels_.find(name);
  if (it == channels_.end()) it = channels_.emplace(name, ns).first;
  local_channel& ch = mut(*it);
  // Under the hub's lock, so a concurrent last leave can't unsubscribe the
  // node between this subscribe and the caller's read.
  if (ch.subscribers++ == 0) broker_.subscribe_node(name, ns);
  return ch;
}

void hub::leave(local_channel& ch, push_form form) {
  form_subscriptions_[static_cast<int>(form)].fetch_sub(1);
  std::lock_guard lock(mutex_);
  if (--ch.subscribers != 0) return;
  broker_.unsubscribe_node(ch.name);
  channels_.erase(channels_.find(std::string_view(ch.name)));  // by iterator: the key is ch
}

const std::string* hub::attach(local_channel& ch, std::string_view epoch,
                               server::connection_id id) {
  std::lock_guard lock(mutex_);
  if (ch.epoch.empty()) {
    ch.epoch = epoch;
  } else if (ch.epoch.view() != epoch) {
    return nullptr;  // read before on_stream_lost moved the channel on
  }
  if (track_members_) {
    if (!ch.members) ch.members = std::make_unique<std::vector<server::connection_id>>();
    ch.members->push_back(id);
  }
  return &topic_for(ch, push_form::full);
}

void hub::detach(local_channel& ch, server::connection_id id) {
  std::lock_guard lock(mutex_);
  if (!ch.members) return;
  auto& members = *ch.members;
  const auto it = std::find(members.begin(), members.end(), id);
  if (it != members.end()) {
    *it = members.back();
    members.pop_back();
  }
}

void hub::on_stream_lost(std::string_view channel, std::string_view epoch) {
  std::vector<server::connection_id> lost;
  {
    std::lock_guard lock(mutex_);
    const auto it = channels_.find(channel);
    if (it == channels_.end()) return;
    local_channel& ch = mut(*it);
    ch.epoch = epoch;
    if (ch.members) lost.swap(*ch.members);
  }
  // The protocol has no "resubscribe" push: a reconnect is how a client
  // learns (subscribe with since → recovered: false) that it missed data.
  for (const server::connection_id& id : lost) {
    srv_.close(id, 1012, "channel stream lost: reconnect and subscribe again");
  }
  if (http_count_.load(std::memory_order_relaxed) != 0) lose_http(channel);
}

std::size_t hub::subscribers(std::string_view name) {
  std::lock_guard lock(mutex_);
  const auto it = channels_.find(name);
  return it == channels_.end() ? 0 : it->subscribers;
}

std::vector<std::pair<std::string, std::size_t>> hub::top_channels(std::size_t limit) {
  const auto more = [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  };
  std::vector<std::pair<std::string, std::size_t>> top;
  // Views while the lock holds the names; only the `limit` kept are copied
  // (this runs every second, whatever the number of channels).
  std::vector<std::pair<std::string_view, std::size_t>> all;
  std::lock_guard lock(mutex_);
  all.reserve(channels_.size());
  for (const local_channel& ch : channels_) {
    if (ch.subscribers != 0) all.emplace_back(ch.name, ch.subscribers);
  }
  const std::size_t n = std::min(limit, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(), more);
  top.reserve(n);
  for (std::size_t i = 0; i < n; ++i) top.emplace_back(std::string(all[i].first), all[i].second);
  return top;
}

void hub::publish(std::string_view channel, const namespace_options& ns, std::string_view data,
                  std::string_view client, std::string_view user,
                  broker::completion<publish_result> done) {
  if (data.size() > config_.max_publication_size) {
    done(publish_result{make_failure(errors::publication_too_large), {}, 0});
    return;
  }
  const auto started = std::chrono::steady_clock::now();
  broker_.publish(channel, ns, publication_tail(data, client, user),
                  [this, started, done = std::move(done)](publish_result r) mutable {
                    if (!r.error) {
                      publications_.inc();
                      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - started);
                      publish_latency_us_.fetch_add(static_cast<std::uint64_t>(us.count()),
                                                    std::memory_order_relaxed);
                      publish_latency_count_.fetch_add(1, std::memory_order_relaxed);
                    }
                    done(std::move(r));
                  });
}

void hub::on_publication(std::string_view channel, std::string_view epoch, std::uint64_t offset,
                         std::string_view tail) {
  thread_local std::string push;
  thread_local std::string topic;
  // Each form somebody on this node reads is built once here (the full one
  // also when nobody reads either, as before compact pushes existed).
  const bool compact = form_subscriptions_[1].load() != 0;
  const bool sse = form_subscriptions_[2].load() != 0;
  const bool full = (!compact && !sse) || form_subscriptions_[0].load() != 0;
  // One relaxed load when no HTTP peer listens (the WebSocket path pays nothing more).
  const bool http = http_count_.load(std::memory_order_relaxed) != 0;
  topic.assign(channel);
  topic.push_back('#');
  topic.append(epoch);
  if (full || http || sse) publication_push(push, channel, epoch, offset, tail);
  if (full) {
    srv_.publish(topic, push, protocol::opcode::text, offset, server::publish_delivery::queued);
  }
  if (http) deliver_http(channel, epoch, offset, push);
  if (compact) {
    thread_local std::string compact_push;
    compact_publication_push(compact_push, channel, offset, tail);
    srv_.publish(topic_for(topic, push_form::compact), compact_push, protocol::opcode::text, offset,
                 server::publish_delivery::queued);
  }
  if (sse) {
    // One-channel SSE streams (sse_peer.hpp): the whole event, the same
    // bytes for each, framed once per loop as an HTTP chunk by the server.
    thread_local std::string event;
    event.clear();
    append_sse_publication(event, epoch, offset, push);
    srv_.publish(topic_for(topic, push_form::sse), event, protocol::opcode::text, offset,
                 server::publish_delivery::queued);
  }
}

void hub::on_presence(std::string_view channel, std::string_view epoch, bool join,
                      std::string_view entry_json) {
  // Coalesced: pushed by the next tick_presence().
  presence_.add(channel, epoch, join, entry_json);
}

void hub::tick_presence(std::uint64_t now_ms) {
  for (presence_batcher::batch& b : presence_.take(now_ms)) {
    const auto ns = config_.namespaces.find(namespace_of(b.channel, k_default_namespace));
    if (ns == config_.namespaces.end()) continue;
    broker::presence_request count_only;
    count_only.limit = 0;
    const std::size_t max_members = ns->second.presence_max_members;
    // The count comes from the broker (it knows every node's members); the
    // push goes out from its completion. (The name is copied first: the
    // completion takes `b` by move.)
    const std::string channel = b.channel;
    broker_.presence(
        channel, std::move(count_only),
        [this, b = std::move(b), max_members](broker::presence_result r) {
          if (r.error) return;
          const bool counts_only = r.count > max_members;
          const bool has_changes = !b.joins.empty() || !b.leaves.empty();
          if (!presence_.note_push(b.channel, b.epoch, counts_only, r.count, has_changes)) return;
          std::string push;
          presence_push(push, b.channel, r.count, counts_only ? nullptr : &b.joins,
                        counts_only ? nullptr : &b.leaves);
          presence_pushes_.fetch_add(1, std::memory_order_relaxed);
          // Unsequenced: presence is not part of the channel's history.
          const std::string topic = topic_of(b.channel, b.epoch);
          srv_.publish(topic, push, protocol::opcode::text, 0, server::publish_delivery::queued);
          // Compact subscribers get the same presence push, on their topic.
          if (form_subscriptions_[1].load() != 0) {
            srv_.publish(topic_for(topic, push_form::compact), push, protocol::opcode::text, 0,
                         server::publish_delivery::queued);
          }
          if (form_subscriptions_[2].load() != 0) {
            std::string event;
            append_sse_event(event, "presence", {}, push);
            srv_.publish(topic_for(topic, push_form::sse), event, protocol::opcode::text, 0,
                         server::publish_delivery::queued);
          }
          if (http_count_.load(std::memory_order_relaxed) != 0) {
            deliver_http(b.channel, b.epoch, 0, push);
          }
        });
  }
}

}  // namespace switchboard::realtime::detail
