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
// Both read as a std::string_view (and rare_string as a const std::string&),
// so code that reads them is written as for a std::string.
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

}  // namespace switchboard::realtime::detail
