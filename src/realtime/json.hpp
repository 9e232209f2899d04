// json.hpp — private: the few JSON writing helpers the realtime layer needs.
// Replies and pushes are small and built by appending to one string; values
// that came from clients (`data`, `info`, ids) are stored already minified
// by simdjson, so only strings we write ourselves need escaping here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace switchboard::realtime::detail {

// Appends `s` as a JSON string (quotes included). `s` is UTF-8; control
// characters, '"' and '\' are escaped, everything else is copied.
inline void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        if (c < 0x20) {
          out.append("\\u00");
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 15]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

inline void append_uint(std::string& out, std::uint64_t v) { out.append(std::to_string(v)); }

}  // namespace switchboard::realtime::detail
