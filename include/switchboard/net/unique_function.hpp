// unique_function.hpp — a move-only, type-erased callable with inline storage.
//
// Used for tasks posted to an event_loop (`task`), deferred work, iteration
// hooks and one-shot completion callbacks. Unlike std::function it accepts
// move-only callables (a lambda that owns a unique_fd or a buffer), and it stores
// any callable of up to k_inline_size bytes in place, so posting a lambda that
// captures a few pointers, a span or a shared_ptr allocates nothing.
// Larger callables are moved to the heap.
//
// Thread-safety: a plain value; one object is used by one thread at a time.
#pragma once

#include <cassert>
#include <cstddef>
#include <functional>
#include <new>
#include <type_traits>
#include <utility>

namespace switchboard::net {

template <class Signature>
class unique_function;

template <class R, class... Args>
class unique_function<R(Args...)> {
 public:
  // Callables of at most this size (and nothrow-movable, not over-aligned) are
  // stored without a heap allocation. 48 bytes make the whole object 64.
  static constexpr std::size_t k_inline_size = 48;

  unique_function() noexcept = default;
  unique_function(std::nullptr_t) noexcept {}  // NOLINT(google-explicit-constructor)

  // Wraps `f`. Implicit, like std::function, so that `loop.post([] { ... })` reads well.
  template <class F, class D = std::decay_t<F>>
  requires(!std::is_same_v<D, unique_function> && std::is_invocable_r_v<R, D&, Args...>)
      unique_function(F&& f) {  // NOLINT(google-explicit-constructor)
    if constexpr (stored_inline<D>) {
      ::new (static_cast<void*>(storage_)) D(std::forward<F>(f));
      ops_ = &inline_ops<D>;
    } else {
      ::new (static_cast<void*>(storage_)) D*(new D(std::forward<F>(f)));
      ops_ = &heap_ops<D>;
    }
  }

  unique_function(unique_function&& other) noexcept { take(other); }
  unique_function& operator=(unique_function&& other) noexcept {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }
  unique_function& operator=(std::nullptr_t) noexcept {
    reset();
    return *this;
  }
  unique_function(const unique_function&) = delete;
  unique_function& operator=(const unique_function&) = delete;
  ~unique_function() { reset(); }

  [[nodiscard]] explicit operator bool() const noexcept { return ops_ != nullptr; }

  // REQUIRES: *this holds a callable.
  R operator()(Args... args) {
    assert(ops_ != nullptr && "calling an empty unique_function");
    return ops_->invoke(storage_, std::forward<Args>(args)...);
  }

 private:
  struct ops_table {
    R (*invoke)(void* storage, Args&&... args);
    // Move-constructs the callable into `to` and destroys the one in `from`.
    void (*relocate)(void* to, void* from) noexcept;
    void (*destroy)(void* storage) noexcept;
  };

  template <class D>
  static constexpr bool stored_inline =
      sizeof(D) <= k_inline_size &&
      alignof(D) <= alignof(std::max_align_t) && std::is_nothrow_move_constructible_v<D>;

  template <class D>
  static D& object(void* storage) noexcept {
    return *std::launder(static_cast<D*>(storage));
  }

  template <class D>
  static constexpr ops_table inline_ops{
      [](void* s, Args&&... args) -> R {
        return std::invoke(object<D>(s), std::forward<Args>(args)...);
      },
      [](void* to, void* from) noexcept {
        D& source = object<D>(from);
        ::new (to) D(std::move(source));
        source.~D();
      },
      [](void* s) noexcept { object<D>(s).~D(); },
  };

  template <class D>
  static constexpr ops_table heap_ops{
      [](void* s, Args&&... args) -> R {
        return std::invoke(*object<D*>(s), std::forward<Args>(args)...);
      },
      [](void* to, void* from) noexcept { ::new (to) D*(object<D*>(from)); },
      [](void* s) noexcept { delete object<D*>(s); },
  };

  void take(unique_function& other) noexcept {
    if (other.ops_ != nullptr) {
      other.ops_->relocate(storage_, other.storage_);
      ops_ = other.ops_;
      other.ops_ = nullptr;
    }
  }

  void reset() noexcept {
    if (ops_ != nullptr) {
      const ops_table* ops = ops_;
      ops_ = nullptr;
      ops->destroy(storage_);
    }
  }

  alignas(std::max_align_t) std::byte storage_[k_inline_size];
  const ops_table* ops_ = nullptr;
};

// A unit of work run on an event loop's thread.
using task = unique_function<void()>;

}  // namespace switchboard::net
