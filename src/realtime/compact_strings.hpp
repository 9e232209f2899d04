// compact_strings.hpp — private: two string holders for members that exist
// once per connection (connection_state), where a std::string costs 32
// bytes inline, and a heap block more past 15 characters.
//
// inline_id: a short identifier held inline (up to 16 characters in 16
// bytes, never a heap block): the client id, 16 hex digits, which a
// std::string would put in a 32-byte heap block of its own.
//
// rare_string: a string most connections leave empty (the user of an
// anonymous client, the address of a server without per-address limits):
// one pointer, null while empty, so the empty case costs 8 bytes instead
// of 32.
//
// epoch_text: a channel epoch, held once per channel by the hub and the
// memory broker: 16 hex digits as the brokers make them inline (24 bytes,
// no heap block), any other (longer, or with a NUL: from a snapshot or
// journal written elsewhere) in a heap string.
//
// All three read as a std::string_view (and rare_string as a const
// std::string&), so code that reads them is written as for a std::string.
//
// Thread-safety: plain values; no synchronization.
#pragma once

#include <cassert>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace switchboard::realtime::detail {

class inline_id {
 public:
  static constexpr std::size_t k_capacity = 16;

  inline_id() = default;
  // REQUIRES: id.size() <= k_capacity (the ids this node makes are 16 hex
  // digits) and no NUL in it: the length is where the first NUL is, or 16,
  // so that 16 characters take 16 bytes. A longer id is cut, which no
  // caller does.
  inline_id& operator=(std::string_view id) noexcept {
    assert(id.size() <= k_capacity);
    const std::size_t n = id.size() < k_capacity ? id.size() : k_capacity;
    if (n != 0) std::memcpy(chars_, id.data(), n);  // an empty view's data() may be null
    std::memset(chars_ + n, 0, k_capacity - n);
    return *this;
  }

  std::string_view view() const noexcept { return {chars_, size()}; }
  operator std::string_view() const noexcept { return view(); }  // NOLINT: reads as a string
  operator std::string() const { return std::string(view()); }   // NOLINT
  std::size_t size() const noexcept {
    const void* nul = std::memchr(chars_, 0, k_capacity);
    return nul ? static_cast<std::size_t>(static_cast<const char*>(nul) - chars_) : k_capacity;
  }
  bool empty() const noexcept { return chars_[0] == 0; }

  friend bool operator==(const inline_id& a, std::string_view b) noexcept { return a.view() == b; }
  friend bool operator==(const inline_id& a, const inline_id& b) noexcept {
    return a.view() == b.view();
  }
  friend std::string operator+(std::string_view a, const inline_id& b) {
    std::string s(a);
    s.append(b.view());
    return s;
  }

 private:
  char chars_[k_capacity] = {};
};
static_assert(sizeof(inline_id) == 16);

class rare_string {
 public:
  rare_string() = default;
  rare_string(const rare_string& other)
      : s_(other.s_ ? std::make_unique<std::string>(*other.s_) : nullptr) {}
  rare_string(rare_string&&) noexcept = default;
  rare_string& operator=(const rare_string& other) {
    if (this != &other) *this = other.str();
    return *this;
  }
  rare_string& operator=(rare_string&&) noexcept = default;
  // An empty value frees the block.
  rare_string& operator=(std::string value) {
    if (value.empty()) {
      s_.reset();
    } else if (s_) {
      *s_ = std::move(value);
    } else {
      s_ = std::make_unique<std::string>(std::move(value));
    }
    return *this;
  }
  rare_string& operator=(std::string_view value) { return *this = std::string(value); }
  rare_string& operator=(const char* value) { return *this = std::string(value); }

  const std::string& str() const noexcept { return s_ ? *s_ : empty_string(); }
  operator const std::string&() const noexcept { return str(); }        // NOLINT
  operator std::string_view() const noexcept { return std::string_view(str()); }  // NOLINT
  bool empty() const noexcept { return !s_; }
  std::size_t size() const noexcept { return s_ ? s_->size() : 0; }
  void clear() noexcept { s_.reset(); }

  friend bool operator==(const rare_string& a, std::string_view b) noexcept {
    return std::string_view(a.str()) == b;
  }
  friend bool operator==(const rare_string& a, const rare_string& b) noexcept {
    return a.str() == b.str();
  }

 private:
  static const std::string& empty_string() noexcept {
    static const std::string empty;
    return empty;
  }
  std::unique_ptr<std::string> s_;  // null while empty
};
static_assert(sizeof(rare_string) == sizeof(void*));

class epoch_text {
 public:
  epoch_text() = default;
  epoch_text(std::string_view s) { assign(s); }  // NOLINT: converts like a string
  epoch_text(const epoch_text& other) { assign(other.view()); }
  epoch_text& operator=(const epoch_text& other) {
    if (this != &other) assign(other.view());
    return *this;
  }
  epoch_text& operator=(std::string_view s) {
    assign(s);
    return *this;
  }
  void assign(std::string_view s) {
    // Inline only when the length can be told back (the first NUL, or 16)
    // and no NUL inside would cut it short.
    if (s.size() <= k_inline && s.find('\0') == std::string_view::npos) {
      long_.reset();
      if (!s.empty()) std::memcpy(inline_, s.data(), s.size());  // an empty view's data() may be null
      std::memset(inline_ + s.size(), 0, k_inline - s.size());
    } else {
      long_ = std::make_unique<std::string>(s);
      std::memset(inline_, 0, k_inline);
    }
  }

  std::string_view view() const noexcept {
    if (long_) return *long_;
    const void* nul = std::memchr(inline_, 0, k_inline);
    return {inline_, nul ? static_cast<std::size_t>(static_cast<const char*>(nul) - inline_)
                         : k_inline};
  }
  operator std::string_view() const noexcept { return view(); }  // NOLINT: reads as a string
  bool empty() const noexcept { return !long_ && inline_[0] == 0; }
  // True when the text is held in a heap block (what tests check).
  bool on_heap() const noexcept { return long_ != nullptr; }

  friend bool operator==(const epoch_text& a, std::string_view b) noexcept {
    return a.view() == b;
  }

 private:
  static constexpr std::size_t k_inline = 16;
  char inline_[k_inline] = {};
  std::unique_ptr<std::string> long_;  // null unless the text does not fit inline
};
static_assert(sizeof(epoch_text) == 24);

}  // namespace switchboard::realtime::detail
