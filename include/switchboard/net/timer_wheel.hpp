// timer_wheel.hpp — a hashed timing wheel of coarse ticks, for the timeouts of
// many connections (handshake, idle, ping/pong, close, connect).
//
// Timers are intrusive: the owner embeds a timer_node (48 bytes) and the wheel
// links it into one of its slots, so scheduling never allocates and schedule,
// cancel and reschedule are O(1). The wheel never reads a clock: time moves only
// when advance() is called (the event loop does so once per iteration with its
// cached now()), which makes it deterministic under test.
//
// Precision. A timer with a deadline in the future fires at the first tick
// boundary at or after the deadline: never early, at most one tick late (plus
// however late advance() is called). A timer whose deadline is not in the future
// (delay 0) fires at the next advance() call. Delays longer than one rotation
// (tick × slots) wrap around the wheel and are skipped until their tick comes.
//
// Ordering. Timers fire in order of expiry tick; timers of the same tick in the
// order they were (re)scheduled.
//
// Reentrancy. A callback may schedule, cancel or reschedule any timer (its own
// included) and may destroy the object that embeds its node, or other nodes.
// It must not destroy the wheel or call advance().
//
// Thread-safety: none. A wheel and its nodes belong to one thread (the loop's).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "switchboard/net/export.hpp"

namespace switchboard::net {

// Milliseconds on the steady clock: the time base of loops and timers.
using steady_time = std::chrono::time_point<std::chrono::steady_clock, std::chrono::milliseconds>;

class timer_wheel;

namespace detail {
// A link in a circular doubly linked list; a lone link points to itself.
struct timer_link {
  timer_link* prev = this;
  timer_link* next = this;
};
}  // namespace detail

// One timer, embedded in its owner. Inactive until scheduled; inactive again
// after it fired or was cancelled. Destroying an active node cancels it.
class SWITCHBOARD_NET_EXPORT timer_node : private detail::timer_link {
 public:
  using callback_fn = void (*)(void* context);

  timer_node() noexcept = default;
  timer_node(callback_fn fn, void* context) noexcept : fn_(fn), context_(context) {}
  timer_node(const timer_node&) = delete;
  timer_node& operator=(const timer_node&) = delete;
  ~timer_node() { cancel(); }

  // Sets what runs when the timer fires: fn(context).
  void set_callback(callback_fn fn, void* context) noexcept {
    fn_ = fn;
    context_ = context;
  }

  // Makes the timer call `(object->*Method)()`, e.g.
  //   idle_timer_.bind<&connection::on_idle_timeout>(this);
  template <auto Method, class T>
  void bind(T* object) noexcept {
    set_callback([](void* context) { (static_cast<T*>(context)->*Method)(); }, object);
  }

  // True while scheduled (not yet fired, not cancelled).
  [[nodiscard]] bool active() const noexcept { return wheel_ != nullptr; }

  // Cancels the timer if it is active; otherwise does nothing.
  void cancel() noexcept;

 private:
  friend class timer_wheel;
  timer_wheel* wheel_ = nullptr;
  std::uint64_t expiry_tick_ = 0;
  callback_fn fn_ = nullptr;
  void* context_ = nullptr;
};

class SWITCHBOARD_NET_EXPORT timer_wheel {
 public:
  // `tick`: the resolution (≥ 1 ms). `slots`: rounded up to a power of two (≥ 2);
  // tick × slots is one rotation. `now`: the current time; ticks count from here.
  timer_wheel(std::chrono::milliseconds tick, std::size_t slots, steady_time now);
  timer_wheel(const timer_wheel&) = delete;
  timer_wheel& operator=(const timer_wheel&) = delete;
  // Deactivates every scheduled node without firing it.
  ~timer_wheel();

  // Schedules `node` to fire `delay` after now() (negative counts as 0).
  // If the node is already scheduled, it is moved: this is reschedule.
  // REQUIRES: the node has a callback; it is not scheduled on another wheel.
  void schedule(timer_node& node, std::chrono::milliseconds delay) noexcept;

  // Cancels `node` if it is scheduled here; otherwise does nothing.
  void cancel(timer_node& node) noexcept;

  // Moves time forward to `now` (earlier times are ignored) and fires every
  // timer that became due, tick by tick, in order.
  // REQUIRES: not called from a timer callback.
  void advance(steady_time now);

  // Moves time forward to `now` without firing anything (timers that became due
  // fire at the next advance()). Later schedule() calls count from `now`.
  void update_time(steady_time now) noexcept {
    if (now > now_) now_ = now;
  }

  // A lower bound on when the next timer is due, or nullopt when none is
  // scheduled. Returns now() if a zero-delay timer is waiting for advance().
  // Cheap: it rescans the slots at most once per elapsed tick.
  [[nodiscard]] std::optional<steady_time> next_expiry() const noexcept;

  // Number of scheduled timers.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] steady_time now() const noexcept { return now_; }
  [[nodiscard]] std::chrono::milliseconds tick() const noexcept { return tick_; }

 private:
  using link = detail::timer_link;
  static constexpr std::uint64_t k_no_hint = ~std::uint64_t{0};

  void link_tail(link& list, timer_node& node) noexcept;
  static void unlink(timer_node& node) noexcept;
  void fire_list(link& list);
  [[nodiscard]] steady_time tick_time(std::uint64_t tick) const noexcept;

  std::chrono::milliseconds tick_;
  steady_time origin_;  // the boundary of tick 0
  steady_time now_;
  std::uint64_t current_tick_ = 0;  // the last tick whose slot was processed
  std::size_t mask_;                // slots - 1
  std::unique_ptr<link[]> slots_;   // never reallocated: the links point into it
  link due_;                        // zero-delay timers, fired by the next advance()
  std::size_t size_ = 0;
  bool firing_ = false;
  mutable std::uint64_t hint_tick_ = k_no_hint;  // ≤ the earliest expiry tick, or k_no_hint
};

}  // namespace switchboard::net
