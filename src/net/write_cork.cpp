// write_cork.cpp — see the design notes in write_cork.hpp.
#include "switchboard/net/write_cork.hpp"

#include <cassert>
#include <cstring>

namespace switchboard::net {
namespace {

// An arena that grew past this in a burst is given back after the flush, so one
// burst does not pin memory for the life of the loop.
constexpr std::size_t k_max_retained_arena = std::size_t{4} * 1024 * 1024;

iovec to_iovec(const std::byte* data, std::size_t length) noexcept {
  // iovec is also used for writing, hence the non-const pointer.
  return iovec{const_cast<std::byte*>(data),
               length};  // NOLINT(cppcoreguidelines-pro-type-const-cast)
}

}  // namespace

cork_sink::~cork_sink() {
  assert(slot_ == k_none && "a cork_sink was destroyed with bytes still corked");
}

write_cork::write_cork(std::size_t initial_capacity) noexcept
    : initial_capacity_(initial_capacity == 0 ? 1 : initial_capacity) {}

write_cork::~write_cork() {
  assert(live_sinks_ == 0 && "write_cork destroyed while sinks still have corked bytes");
}

void write_cork::arena::reserve(std::size_t more, std::size_t initial_capacity) {
  if (capacity - size >= more) return;
  std::size_t grown_capacity = capacity == 0 ? initial_capacity : capacity * 2;
  while (grown_capacity - size < more) grown_capacity *= 2;
  // make_unique_for_overwrite: the arena is always written before it is read,
  // so do not pay for zeroing it.
  auto grown = std::make_unique_for_overwrite<std::byte[]>(grown_capacity);
  if (size != 0) std::memcpy(grown.get(), data.get(), size);
  data = std::move(grown);
  capacity = grown_capacity;
}

void write_cork::arena::reset() noexcept {
  size = 0;
  if (capacity > k_max_retained_arena) {
    data.reset();
    capacity = 0;
  }
}

const std::byte* write_cork::address(std::size_t offset) const noexcept {
  if ((offset & k_staged_bit) != 0) return staged_.data.get() + (offset & ~k_staged_bit);
  return arena_.data.get() + offset;
}

void write_cork::link(cork_sink& sink, std::size_t offset, std::size_t length) {
  if (sink.slot_ == cork_sink::k_none) {
    sink.slot_ = static_cast<std::uint32_t>(dirty_.size());
    dirty_.push_back(&sink);
    ++live_sinks_;
  }
  sink.corked_bytes_ += length;
  if (sink.tail_ != cork_sink::k_none) {
    segment& tail = segments_[sink.tail_];
    // The bytes follow on from the sink's last ones, in the same arena (the
    // staged bit is part of both offsets): extend that segment.
    if (tail.offset + tail.length == offset) {
      tail.length += length;
      return;
    }
  }
  const auto index = static_cast<std::uint32_t>(segments_.size());
  segments_.push_back(segment{offset, length, cork_sink::k_none});
  if (sink.tail_ == cork_sink::k_none) {
    sink.head_ = index;
  } else {
    segments_[sink.tail_].next = index;
  }
  sink.tail_ = index;
}

void write_cork::append(cork_sink& sink, std::span<const std::byte> bytes) {
  assert(!flushing_ && "write_cork::append called from within flush()");
  if (bytes.empty()) return;
  arena_.reserve(bytes.size(), initial_capacity_);
  std::memcpy(arena_.data.get() + arena_.size, bytes.data(), bytes.size());
  const std::size_t offset = arena_.size;
  arena_.size += bytes.size();
  link(sink, offset, bytes.size());
}

staged_bytes write_cork::stage(std::span<const std::byte> bytes) {
  assert(!flushing_ && "write_cork::stage called from within flush()");
  staged_.reserve(bytes.size(), initial_capacity_);
  if (!bytes.empty()) std::memcpy(staged_.data.get() + staged_.size, bytes.data(), bytes.size());
  const staged_bytes out{staged_.size, bytes.size(), flushes_};
  staged_.size += bytes.size();
  return out;
}

void write_cork::append(cork_sink& sink, const staged_bytes& bytes) {
  assert(!flushing_ && "write_cork::append called from within flush()");
  assert(bytes.flush == flushes_ && "staged bytes used after the flush that ended them");
  assert(bytes.offset + bytes.length <= staged_.size);
  if (bytes.length == 0) return;
  link(sink, bytes.offset | k_staged_bit, bytes.length);
}

std::span<const std::byte> write_cork::view(const staged_bytes& bytes) const noexcept {
  assert(bytes.flush == flushes_ && "staged bytes used after the flush that ended them");
  return {staged_.data.get() + bytes.offset, bytes.length};
}

void write_cork::detach(cork_sink& sink) noexcept {
  assert(sink.slot_ != cork_sink::k_none);
  dirty_[sink.slot_] = nullptr;
  --live_sinks_;
  sink.head_ = sink.tail_ = sink.slot_ = cork_sink::k_none;
  sink.corked_bytes_ = 0;
}

std::span<const iovec> write_cork::take(cork_sink& sink,
                                        std::span<const std::span<const std::byte>> extra) {
  assert(!flushing_ && "write_cork::take called from within flush()");
  iov_.clear();
  if (sink.slot_ != cork_sink::k_none) {
    for (std::uint32_t i = sink.head_; i != cork_sink::k_none; i = segments_[i].next) {
      iov_.push_back(to_iovec(address(segments_[i].offset), segments_[i].length));
    }
    detach(sink);  // its segments become dead space until the flush resets the arena
  }
  for (const auto& part : extra) {
    if (!part.empty()) iov_.push_back(to_iovec(part.data(), part.size()));
  }
  return iov_;
}

void write_cork::discard(cork_sink& sink) noexcept {
  if (sink.slot_ != cork_sink::k_none) detach(sink);
}

void write_cork::add_flush_hook(flush_hook fn, void* context) {
  hooks_.emplace_back(fn, context);
}

void write_cork::remove_flush_hook(void* context) noexcept {
  std::erase_if(hooks_, [context](const auto& h) { return h.second == context; });
}

void write_cork::flush() {
  assert(!flushing_ && "write_cork::flush is not reentrant");
  // Before flushing_ is set: a hook appends like any other writer.
  for (const auto& [fn, context] : hooks_) fn(context);
  if (dirty_.empty()) {
    // Bytes may have been staged for sinks that then refused them (closed,
    // over their cap): they end with the iteration all the same.
    if (staged_.size != 0) {
      staged_.reset();
      ++flushes_;
    }
    return;
  }
  flushing_ = true;
  if (live_sinks_ != 0) ++stats_.flushes;
  for (cork_sink* sink : dirty_) {
    if (sink == nullptr) continue;  // discarded, or taken for a direct write
    iov_.clear();
    for (std::uint32_t i = sink->head_; i != cork_sink::k_none; i = segments_[i].next) {
      iov_.push_back(to_iovec(address(segments_[i].offset), segments_[i].length));
    }
    const std::size_t total = sink->corked_bytes_;
    detach(*sink);
    ++stats_.sinks_flushed;
    stats_.bytes_flushed += total;
    sink->flush_corked(iov_, total);
  }
  if (barrier_.first != nullptr) barrier_.first(barrier_.second);
  assert(live_sinks_ == 0);
  dirty_.clear();
  segments_.clear();
  arena_.reset();
  staged_.reset();
  ++flushes_;
  flushing_ = false;
}

}  // namespace switchboard::net
