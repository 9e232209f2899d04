// hub_http.cpp — the hub's HTTP subscribers (see hub.hpp, http_subscriber):
// per channel, the HTTP peers that get its pushes, and the holding of pushes
// while a subscriber's broker read is in flight, so it gets every
// publication after its read once: no gap, no duplicate (as a WebSocket gets
// from websocket::subscribe(topic, after)).
#include <algorithm>

#include "hub.hpp"

namespace switchboard::realtime::detail {

void hub::http_prepare(const local_channel& ch, http_subscriber& s) {
  std::lock_guard lock(http_mutex_);
  auto& members = http_[ch.name];
  members.push_back(http_member{&s, 0, false, {}});
  http_count_.fetch_add(1, std::memory_order_relaxed);
}

bool hub::http_attach(local_channel& ch, std::string_view epoch) {
  std::lock_guard lock(mutex_);
  if (ch.epoch.empty()) {
    ch.epoch = epoch;
    return true;
  }
  // A read from before on_stream_lost moved the channel on is stale.
  return ch.epoch.view() == epoch;
}

void hub::http_start(const local_channel& ch, http_subscriber& s, std::uint64_t after) {
  std::lock_guard lock(http_mutex_);
  const auto it = http_.find(ch.name);
  if (it == http_.end()) return;
  for (http_member& m : it->second) {
    if (m.sub != &s || m.live) continue;
    m.after = after;
    m.live = true;
    const std::string_view epoch = ch.epoch;
    if (m.held) {
      for (auto& [offset, push] : *m.held) {
        // What the read already returned is dropped; presence (0) always goes.
        if (offset != 0 && offset <= m.after) continue;
        if (offset != 0) m.after = offset;
        s.deliver(ch.name, epoch, offset, push);
      }
      m.held.reset();
    }
    return;
  }
}

void hub::http_remove(const local_channel& ch, http_subscriber& s, bool pending_only) {
  std::lock_guard lock(http_mutex_);
  const auto it = http_.find(ch.name);
  if (it == http_.end()) return;
  auto& members = it->second;
  // A started member is the subscription (detach); a pending one a prepare
  // to undo: the same peer may hold both while a second subscribe is read.
  const bool want_live = !pending_only;
  auto m = std::find_if(members.begin(), members.end(), [&](const http_member& x) {
    return x.sub == &s && x.live == want_live;
  });
  if (m == members.end() && !pending_only) {
    m = std::find_if(members.begin(), members.end(),
                     [&](const http_member& x) { return x.sub == &s; });
  }
  if (m == members.end()) return;
  *m = std::move(members.back());
  members.pop_back();
  http_count_.fetch_sub(1, std::memory_order_relaxed);
  if (members.empty()) http_.erase(it);
}

void hub::deliver_http(std::string_view channel, std::string_view epoch, std::uint64_t offset,
                       const std::string& push) {
  std::lock_guard lock(http_mutex_);
  const auto it = http_.find(channel);
  if (it == http_.end()) return;
  for (http_member& m : it->second) {
    if (!m.live) {
      if (!m.held) m.held = std::make_unique<std::vector<std::pair<std::uint64_t, std::string>>>();
      m.held->emplace_back(offset, push);
      continue;
    }
    if (offset != 0) {
      if (offset <= m.after) continue;  // already in the subscriber's read
      m.after = offset;
    }
    m.sub->deliver(channel, epoch, offset, push);
  }
}

void hub::lose_http(std::string_view channel) {
  std::lock_guard lock(http_mutex_);
  const auto it = http_.find(channel);
  if (it == http_.end()) return;
  for (http_member& m : it->second) m.sub->stream_lost(channel);
}

}  // namespace switchboard::realtime::detail
