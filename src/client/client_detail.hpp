// client_detail.hpp — small helpers shared by the client's source files.
// Private to src/client.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "switchboard/protocol/close_code.hpp"

namespace switchboard::client::detail {

// The close code reported when a connection ends without a close frame.
inline constexpr std::uint16_t k_abnormal =
    protocol::to_underlying(protocol::close_code::abnormal);

inline std::span<const std::byte> as_bytes(std::string_view text) noexcept {
  return std::as_bytes(std::span(text.data(), text.size()));
}

}  // namespace switchboard::client::detail
