// presence_batch.cpp — presence changes coalesced per tick (see
// presence_batch.hpp).
#include "presence_batch.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <new>

#include "wire.hpp"

namespace switchboard::realtime::detail {

namespace {

std::size_t whole_pages(std::size_t bytes) noexcept {
  static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

// Chunks of at least this many bytes (a pool's chunks grow from there):
// whole pages, few mappings.
constexpr std::size_t k_pool_chunk = 64 * 1024;

std::pmr::pool_options pool_options_for_pages() {
  std::pmr::pool_options o;
  // Blocks up to this size come from the pool's chunks; a larger one (a
  // presence entry of over 16 KiB) is mapped on its own.
  o.largest_required_pool_block = 16 * 1024;
  return o;
}

}  // namespace

// A block is `size` bytes (whole pages) at an address aligned to
// `alignment`: mmap gives page alignment; a larger one (a pool asks for its
// chunks aligned to their block size) is cut out of a mapping one
// alignment larger, the rest unmapped.
void* presence_batcher::page_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  const std::size_t size = whole_pages(bytes < k_pool_chunk ? k_pool_chunk : bytes);
  const std::size_t extra = alignment > whole_pages(1) ? alignment : 0;
  void* p = ::mmap(nullptr, size + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                   0);
  // As operator new: the one failure a memory resource can report.
  if (p == MAP_FAILED) throw std::bad_alloc();
  auto* base = static_cast<char*>(p);
  if (extra != 0) {
    const auto at = reinterpret_cast<std::uintptr_t>(base);
    const std::size_t head = (alignment - at % alignment) % alignment;
    if (head != 0) ::munmap(base, head);
    if (extra - head != 0) ::munmap(base + head + size, extra - head);
    base += head;
  }
  mapped_ += size;
  return base;
}

void presence_batcher::page_resource::do_deallocate(void* p, std::size_t bytes, std::size_t) {
  const std::size_t size = whole_pages(bytes < k_pool_chunk ? k_pool_chunk : bytes);
  ::munmap(p, size);
  mapped_ -= size;
}

presence_batcher::presence_batcher(std::uint64_t count_interval_ms)
    : count_interval_ms_(count_interval_ms),
      pool_(pool_options_for_pages(), &pages_),
      streams_(&pool_) {}

std::string_view presence_batcher::key_of(std::string_view channel, std::string_view epoch) {
  thread_local std::string key;
  key.clear();
  key.append(channel);
  key.push_back('#');
  key.append(epoch);
  return key;
}

void presence_batcher::release_if_empty() {
  if (!streams_.empty() || pages_.mapped_bytes() == 0) return;
  // The map's bucket array is in the pool too: an empty map holds none.
  decltype(streams_)(&pool_).swap(streams_);
  pool_.release();
}

std::size_t presence_batcher::mapped_bytes() const {
  std::lock_guard lock(mutex_);
  return pages_.mapped_bytes();
}

void presence_batcher::add(std::string_view channel, std::string_view epoch, bool join,
                           std::string_view entry_json) {
  const std::string_view client = presence_client(entry_json);
  if (client.empty()) return;  // not an entry this server wrote
  std::lock_guard lock(mutex_);
  const std::string_view key = key_of(channel, epoch);
  auto it = streams_.find(key);
  if (it == streams_.end()) {
    it = streams_.try_emplace(text(key, streams_.get_allocator())).first;
    it->second.channel.assign(channel);
    it->second.epoch.assign(epoch);
  }
  stream_state& s = it->second;
  auto c = s.changes.find(client);
  const bool first = c == s.changes.end();
  if (first) c = s.changes.try_emplace(text(client, s.changes.get_allocator())).first;
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
    batch b{std::string(s.channel), std::string(s.epoch), {}, {}};
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
  release_if_empty();
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
