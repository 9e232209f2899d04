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

void write_cork::reserve(std::size_t more) {
  if (capacity_ - size_ >= more) return;
  std::size_t capacity = capacity_ == 0 ? initial_capacity_ : capacity_ * 2;
  while (capacity - size_ < more) capacity *= 2;
  // make_unique_for_overwrite: the arena is always written before it is read,
  // so do not pay for zeroing it.
  auto grown = std::make_unique_for_overwrite<std::byte[]>(capacity);
  if (size_ != 0) std::memcpy(grown.get(), arena_.get(), size_);
  arena_ = std::move(grown);
  capacity_ = capacity;
}

void write_cork::append(cork_sink& sink, std::span<const std::byte> bytes) {
  assert(!flushing_ && "write_cork::append called from within flush()");
  if (bytes.empty()) return;
  reserve(bytes.size());
  std::memcpy(arena_.get() + size_, bytes.data(), bytes.size());

  if (sink.slot_ == cork_sink::k_none) {
    sink.slot_ = static_cast<std::uint32_t>(dirty_.size());
    dirty_.push_back(&sink);
    ++live_sinks_;
  }
  sink.corked_bytes_ += bytes.size();

  if (sink.tail_ != cork_sink::k_none) {
    segment& tail = segments_[sink.tail_];
    if (tail.offset + tail.length == size_) {  // the sink wrote last: extend its segment
      tail.length += bytes.size();
      size_ += bytes.size();
      return;
    }
  }
  const auto index = static_cast<std::uint32_t>(segments_.size());
  segments_.push_back(segment{size_, bytes.size(), cork_sink::k_none});
  if (sink.tail_ == cork_sink::k_none) {
    sink.head_ = index;
  } else {
    segments_[sink.tail_].next = index;
  }
  sink.tail_ = index;
  size_ += bytes.size();
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
      iov_.push_back(to_iovec(arena_.get() + segments_[i].offset, segments_[i].length));
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

void write_cork::flush() {
  assert(!flushing_ && "write_cork::flush is not reentrant");
  if (dirty_.empty()) return;
  flushing_ = true;
  if (live_sinks_ != 0) ++stats_.flushes;
  for (cork_sink* sink : dirty_) {
    if (sink == nullptr) continue;  // discarded, or taken for a direct write
    iov_.clear();
    for (std::uint32_t i = sink->head_; i != cork_sink::k_none; i = segments_[i].next) {
      iov_.push_back(to_iovec(arena_.get() + segments_[i].offset, segments_[i].length));
    }
    const std::size_t total = sink->corked_bytes_;
    detach(*sink);
    ++stats_.sinks_flushed;
    stats_.bytes_flushed += total;
    sink->flush_corked(iov_, total);
  }
  assert(live_sinks_ == 0);
  dirty_.clear();
  segments_.clear();
  size_ = 0;
  if (capacity_ > k_max_retained_arena) {
    arena_.reset();
    capacity_ = 0;
  }
  flushing_ = false;
}

}  // namespace switchboard::net
