// assets.hpp — private: the files of web/ compiled into the library
// (cmake/embed_assets.cmake), served by `switchboard serve` at / when the
// demo is on.
#pragma once

#include <string_view>
#include <vector>

namespace switchboard::realtime::detail {

struct asset {
  std::string_view path;  // "/index.html", "/switchboard.js"
  std::string_view body;
};

// Every embedded file, in the order of the CMake list.
const std::vector<asset>& embedded_assets();
// The admin dashboard's files (web/admin/), at /admin/<name> (admin.hpp).
const std::vector<asset>& admin_assets();

// The Content-Type for a path, by its extension.
constexpr std::string_view content_type_of(std::string_view path) noexcept {
  if (path.ends_with(".html")) return "text/html; charset=utf-8";
  if (path.ends_with(".js") || path.ends_with(".mjs")) return "text/javascript; charset=utf-8";
  if (path.ends_with(".css")) return "text/css; charset=utf-8";
  if (path.ends_with(".svg")) return "image/svg+xml";
  if (path.ends_with(".png")) return "image/png";
  return "application/octet-stream";
}

}  // namespace switchboard::realtime::detail
