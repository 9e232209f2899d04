// support.cpp — see support.hpp.
#include "support.hpp"

#include <openssl/rand.h>

#include <algorithm>

namespace switchboard::realtime::detail {

std::string random_hex(std::size_t bytes) {
  static constexpr char hex[] = "0123456789abcdef";
  unsigned char raw[16] = {};
  bytes = std::min(bytes, sizeof raw);
  if (RAND_bytes(raw, static_cast<int>(bytes)) != 1) {
    // The CSPRNG failing is not recoverable in any useful way; ids only need
    // to be unique, so fall back to the clock rather than crash.
    const auto t = static_cast<std::uint64_t>(wall_ms()) ^ mono_ms() << 20;
    for (std::size_t i = 0; i < bytes; ++i) raw[i] = static_cast<unsigned char>(t >> (8 * (i % 8)));
  }
  std::string out;
  out.reserve(2 * bytes);
  for (std::size_t i = 0; i < bytes; ++i) {
    out.push_back(hex[raw[i] >> 4]);
    out.push_back(hex[raw[i] & 15]);
  }
  return out;
}

}  // namespace switchboard::realtime::detail
