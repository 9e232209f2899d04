// timer_wheel.cpp — slots are circular lists with a sentinel; a node's slot is
// its expiry tick modulo the slot count. Nodes of a later rotation share a slot
// with nearer ones and are skipped (kept) when the slot comes round early.
#include "switchboard/net/timer_wheel.hpp"

#include <bit>
#include <cassert>

namespace switchboard::net {

void timer_node::cancel() noexcept {
  if (wheel_ != nullptr) wheel_->cancel(*this);
}

timer_wheel::timer_wheel(std::chrono::milliseconds tick, std::size_t slots, steady_time now)
    : tick_(tick < std::chrono::milliseconds{1} ? std::chrono::milliseconds{1} : tick),
      origin_(now),
      now_(now),
      mask_(std::bit_ceil(slots < 2 ? std::size_t{2} : slots) - 1),
      slots_(std::make_unique<link[]>(mask_ + 1)) {}

timer_wheel::~timer_wheel() {
  auto detach_all = [](link& list) {
    while (list.next != &list) {
      auto& node = static_cast<timer_node&>(*list.next);
      unlink(node);
      node.wheel_ = nullptr;
    }
  };
  detach_all(due_);
  for (std::size_t i = 0; i <= mask_; ++i) detach_all(slots_[i]);
}

void timer_wheel::link_tail(link& list, timer_node& node) noexcept {
  node.prev = list.prev;
  node.next = &list;
  list.prev->next = &node;
  list.prev = &node;
}

void timer_wheel::unlink(timer_node& node) noexcept {
  node.prev->next = node.next;
  node.next->prev = node.prev;
  node.prev = &node;
  node.next = &node;
}

steady_time timer_wheel::tick_time(std::uint64_t tick) const noexcept {
  return origin_ + tick_ * static_cast<std::int64_t>(tick);
}

void timer_wheel::schedule(timer_node& node, std::chrono::milliseconds delay) noexcept {
  assert(node.fn_ != nullptr && "a timer needs a callback before it is scheduled");
  assert((node.wheel_ == nullptr || node.wheel_ == this) && "timer scheduled on two wheels");
  if (node.wheel_ == this) {
    unlink(node);
  } else {
    node.wheel_ = this;
    ++size_;
  }
  if (delay.count() <= 0) {
    node.expiry_tick_ = current_tick_;
    link_tail(due_, node);
    return;
  }
  // Round the deadline up to a tick boundary so that a timer never fires early.
  const auto deadline = static_cast<std::uint64_t>((now_ - origin_ + delay).count());
  const auto tick = static_cast<std::uint64_t>(tick_.count());
  std::uint64_t expiry = (deadline + tick - 1) / tick;
  if (expiry <= current_tick_) expiry = current_tick_ + 1;  // that slot is already done
  node.expiry_tick_ = expiry;
  link_tail(slots_[expiry & mask_], node);
  if (hint_tick_ != k_no_hint && expiry < hint_tick_) hint_tick_ = expiry;
}

void timer_wheel::cancel(timer_node& node) noexcept {
  if (node.wheel_ == nullptr) return;
  assert(node.wheel_ == this && "timer cancelled on a wheel it is not scheduled on");
  unlink(node);
  node.wheel_ = nullptr;
  --size_;
  // hint_tick_ stays a valid lower bound: removing a timer cannot make the
  // next one earlier.
}

void timer_wheel::fire_list(link& list) {
  // Move the list aside first: callbacks may schedule into this very list (a
  // zero delay, or a delay of exactly one rotation), and those must wait for
  // their own turn. Callbacks may also cancel nodes still in `pending`; that
  // works because unlinking needs only the node's neighbours.
  link pending;
  if (list.next == &list) return;
  pending.next = list.next;
  pending.prev = list.prev;
  pending.next->prev = &pending;
  pending.prev->next = &pending;
  list.next = list.prev = &list;

  while (pending.next != &pending) {
    auto& node = static_cast<timer_node&>(*pending.next);
    unlink(node);
    if (node.expiry_tick_ > current_tick_) {  // a later rotation: keep it
      link_tail(list, node);
      continue;
    }
    node.wheel_ = nullptr;
    --size_;
    node.fn_(node.context_);  // may destroy `node`: do not touch it again
  }
}

void timer_wheel::advance(steady_time now) {
  assert(!firing_ && "timer_wheel::advance called from a timer callback");
  firing_ = true;
  if (now > now_) now_ = now;
  fire_list(due_);
  const auto target = static_cast<std::uint64_t>((now_ - origin_) / tick_);
  while (current_tick_ < target) {
    if (size_ == 0) {  // nothing can fire in between: jump ahead
      current_tick_ = target;
      break;
    }
    ++current_tick_;
    fire_list(slots_[current_tick_ & mask_]);
  }
  if (hint_tick_ != k_no_hint && hint_tick_ <= current_tick_) hint_tick_ = k_no_hint;
  firing_ = false;
}

std::optional<steady_time> timer_wheel::next_expiry() const noexcept {
  if (size_ == 0) return std::nullopt;
  if (due_.next != &due_) return now_;
  if (hint_tick_ == k_no_hint) {
    // The first non-empty slot ahead bounds every expiry from below (a node in
    // it may belong to a later rotation; then the loop wakes once for nothing).
    for (std::uint64_t t = current_tick_ + 1; t <= current_tick_ + mask_ + 1; ++t) {
      const link& slot = slots_[t & mask_];
      if (slot.next != &slot) {
        hint_tick_ = t;
        break;
      }
    }
    assert(hint_tick_ != k_no_hint && "size_ > 0 but every slot is empty");
  }
  return tick_time(hint_tick_);
}

}  // namespace switchboard::net
