// presence_batch.cpp — presence changes coalesced per tick (see
// presence_batch.hpp).
#include "presence_batch.hpp"

#include "wire.hpp"

namespace switchboard::realtime::detail {

std::string presence_batcher::key_of(std::string_view channel, std::string_view epoch) {
  std::string key;
  key.reserve(channel.size() + 1 + epoch.size());
  key.append(channel);
  key.push_back('#');
  key.append(epoch);
  return key;
}

void presence_batcher::add(std::string_view channel, std::string_view epoch, bool join,
                           std::string_view entry_json) {
  const std::string_view client = presence_client(entry_json);
  if (client.empty()) return;  // not an entry this server wrote
  std::lock_guard lock(mutex_);
  auto [it, fresh] = streams_.try_emplace(key_of(channel, epoch));
  stream_state& s = it->second;
  if (fresh) {
    s.channel.assign(channel);
    s.epoch.assign(epoch);
  }
  auto [c, first] = s.changes.try_emplace(std::string(client));
  // The first change of a tick tells what subscribers last heard: a join
  // means the client was absent, a leave that it was present.
  if (first) c->second.was_present = !join;
  c->second.present = join;
  c->second.json.assign(entry_json);
  s.dirty = true;
}

std::vector<presence_batcher::batch> presence_batcher::take(std::uint64_t now_ms) {
  std::vector<batch> due;
  std::lock_guard lock(mutex_);
  for (auto it = streams_.begin(); it != streams_.end();) {
    stream_state& s = it->second;
    const bool interval_over = now_ms - s.last_push_ms >= count_interval_ms_;
    if (!s.dirty) {
      // Quiet for a whole interval: nothing to remember (a counts-only
      // channel that wakes up again is pushed at once, then throttled).
      it = interval_over ? streams_.erase(it) : std::next(it);
      continue;
    }
    // Counts only: one push per interval whatever the churn.
    if (s.counts_only && !interval_over) {
      ++it;
      continue;
    }
    batch b{s.channel, s.epoch, {}, {}};
    for (const auto& [client, c] : s.changes) {
      if (c.was_present == c.present) continue;  // joined and left (or back) within the tick
      std::string& list = c.present ? b.joins : b.leaves;
      if (!list.empty()) list.push_back(',');
      list.append(c.json);
    }
    s.changes.clear();
    s.dirty = false;
    s.last_push_ms = now_ms;
    due.push_back(std::move(b));
    ++it;
  }
  return due;
}

bool presence_batcher::note_push(std::string_view channel, std::string_view epoch,
                                 bool counts_only, std::size_t count, bool has_changes) {
  std::lock_guard lock(mutex_);
  const auto it = streams_.find(key_of(channel, epoch));
  if (it == streams_.end()) {
    // Forgotten meanwhile (a slow broker): say what there is to say.
    return counts_only || has_changes;
  }
  stream_state& s = it->second;
  const bool mode_changed = s.counts_only != counts_only;
  s.counts_only = counts_only;
  const bool worth = counts_only ? (mode_changed || count != s.last_count)
                                 : (mode_changed || has_changes);
  if (worth) s.last_count = count;
  return worth;
}

std::size_t presence_batcher::size() const {
  std::lock_guard lock(mutex_);
  return streams_.size();
}

}  // namespace switchboard::realtime::detail
