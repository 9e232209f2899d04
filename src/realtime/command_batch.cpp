// command_batch.cpp — a POST body into command lines (see command_batch.hpp).
#include "command_batch.hpp"

namespace switchboard::realtime::detail {

std::size_t split_command_batch(std::string_view body, std::size_t max_line,
                                std::vector<batch_line>& out) {
  out.clear();
  std::size_t start = 0;
  while (start < body.size()) {
    std::size_t end = body.find('\n', start);
    if (end == std::string_view::npos) end = body.size();
    std::string_view line = body.substr(start, end - start);
    start = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    out.push_back(batch_line{line, line.size() > max_line});
  }
  return out.size();
}

}  // namespace switchboard::realtime::detail
