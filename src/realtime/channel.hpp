// channel.hpp — private: channel names and their namespaces
// (docs/protocol.md, "Channels and namespaces").
//
// A name is 1-128 bytes of A-Z a-z 0-9 _ - . @ = :; the part before the
// first ':' is its namespace, and a name without ':' belongs to the default
// namespace. Checked on every command, so it is a single pass with a table.
#pragma once

#include <cstddef>
#include <string_view>

namespace switchboard::realtime {

inline constexpr std::size_t k_max_channel_name = 128;
// A namespace leaves room for ':' and at least one character of a name.
inline constexpr std::size_t k_max_namespace_name = k_max_channel_name - 2;

// True for a character allowed in a channel name (':' included).
constexpr bool is_channel_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.' || c == '@' || c == '=' || c == ':';
}

// True if `name` is a valid channel name. An empty namespace (":x") is not.
constexpr bool valid_channel_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > k_max_channel_name || name.front() == ':') return false;
  for (char c : name) {
    if (!is_channel_char(c)) return false;
  }
  return true;
}

// valid_namespace_name() is public: <switchboard/realtime/config.hpp>.

// The namespace of a valid channel name; `fallback` (the default namespace's
// name) when the name has no ':'.
constexpr std::string_view namespace_of(std::string_view channel,
                                        std::string_view fallback) noexcept {
  const std::size_t colon = channel.find(':');
  return colon == std::string_view::npos ? fallback : channel.substr(0, colon);
}

}  // namespace switchboard::realtime
