// switchboard/net/compact_mutex.hpp — locks of 4 and 16 bytes for objects
// that exist once per connection or stream, where std::mutex (40 bytes) and
// std::recursive_mutex (40) would be a large part of an idle client's memory.
//
// compact_mutex is a futex lock in one 32-bit word (0 free, 1 held, 2 held
// with possible waiters): an uncontended lock() and unlock() are one atomic
// operation each; a contended one sleeps in the kernel (std::atomic::wait,
// a futex on Linux) instead of spinning. Not fair, like std::mutex.
// compact_recursive_mutex adds the owning thread and a depth, for locks a
// thread may take again while holding them (a completion that runs inside
// the call that started it).
//
// Both meet the Lockable requirements (std::lock_guard, std::unique_lock,
// std::scoped_lock). Neither may be copied or moved, nor destroyed while
// held; unlocking a lock the calling thread does not hold is undefined,
// as for std::mutex.
//
// Thread-safety: every member may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>

namespace switchboard::net {

class compact_mutex {
 public:
  compact_mutex() = default;
  compact_mutex(const compact_mutex&) = delete;
  compact_mutex& operator=(const compact_mutex&) = delete;

  void lock() noexcept {
    std::uint32_t seen = k_free;
    if (word_.compare_exchange_strong(seen, k_held, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
      return;
    }
    // Contended: announce a waiter (2) so the holder's unlock wakes one, and
    // sleep until the word changes. Whoever takes it from here leaves 2 set:
    // at worst one wake-up too many, never one too few.
    if (seen != k_contended) seen = word_.exchange(k_contended, std::memory_order_acquire);
    while (seen != k_free) {
      word_.wait(k_contended, std::memory_order_relaxed);
      seen = word_.exchange(k_contended, std::memory_order_acquire);
    }
  }

  bool try_lock() noexcept {
    std::uint32_t seen = k_free;
    return word_.compare_exchange_strong(seen, k_held, std::memory_order_acquire,
                                         std::memory_order_relaxed);
  }

  void unlock() noexcept {
    if (word_.exchange(k_free, std::memory_order_release) == k_contended) word_.notify_one();
  }

 private:
  static constexpr std::uint32_t k_free = 0;
  static constexpr std::uint32_t k_held = 1;
  static constexpr std::uint32_t k_contended = 2;
  std::atomic<std::uint32_t> word_{k_free};
};

class compact_recursive_mutex {
 public:
  compact_recursive_mutex() = default;
  compact_recursive_mutex(const compact_recursive_mutex&) = delete;
  compact_recursive_mutex& operator=(const compact_recursive_mutex&) = delete;

  void lock() noexcept {
    const void* me = self();
    // Only this thread can have stored `me`: a relaxed read that finds it is
    // this thread's own earlier store.
    if (owner_.load(std::memory_order_relaxed) == me) {
      ++depth_;
      return;
    }
    mutex_.lock();
    owner_.store(me, std::memory_order_relaxed);
    depth_ = 1;
  }

  bool try_lock() noexcept {
    const void* me = self();
    if (owner_.load(std::memory_order_relaxed) == me) {
      ++depth_;
      return true;
    }
    if (!mutex_.try_lock()) return false;
    owner_.store(me, std::memory_order_relaxed);
    depth_ = 1;
    return true;
  }

  void unlock() noexcept {
    if (--depth_ != 0) return;
    owner_.store(nullptr, std::memory_order_relaxed);
    mutex_.unlock();
  }

 private:
  // A per-thread address: unique among the threads alive, cheaper than
  // std::this_thread::get_id() and as wide as a pointer.
  static const void* self() noexcept {
    static thread_local const char tag = 0;
    return &tag;
  }
  compact_mutex mutex_;
  std::uint32_t depth_ = 0;              // guarded by mutex_
  std::atomic<const void*> owner_{nullptr};  // the holder, or null
};

}  // namespace switchboard::net
