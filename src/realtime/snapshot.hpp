// snapshot.hpp — private: the memory broker's history file, written at a
// clean shutdown and read at start. One JSON object per line per channel:
//   {"channel":"chat:a","epoch":"…","offset":42,"history":[[41,TIME_MS,{…}],…]}
// where each history entry is [offset, wall-clock ms, the publication as
// history lists it ({"offset":41,…})].
//
// Writing goes to PATH.tmp and is renamed over PATH, so a crash while writing
// leaves the previous file.
//
// Thread-safety: a snapshot_writer belongs to one thread; read_snapshot()
// uses only its arguments.
#pragma once

#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>

namespace switchboard::realtime::detail {

// One kept publication as the snapshot stores it.
struct snapshot_publication {
  std::uint64_t offset = 0;
  std::int64_t time_ms = 0;
  std::string json;  // {"offset":N,…}, minified
};

// One channel read back from a snapshot line; its history arrives through
// the `publication` callback of read_snapshot().
struct snapshot_channel {
  std::string name;
  std::string epoch;
  std::uint64_t offset = 0;
};

// Reads PATH. A missing file is not an error (first start). Calls `channel`
// for each line, then `publication` for each of its history entries (in file
// order, offsets checked to be 1..offset). Returns "" or "PATH:LINE: reason".
std::string read_snapshot(
    const std::string& path, const std::function<void(const snapshot_channel&)>& channel,
    const std::function<void(snapshot_publication&&)>& publication);

class snapshot_writer {
 public:
  // Opens PATH.tmp; ok() says whether that worked.
  explicit snapshot_writer(std::string path);
  bool ok() const { return static_cast<bool>(out_); }
  // One channel line: begin, add each kept publication oldest first, end.
  void begin_channel(std::string_view name, std::string_view epoch, std::uint64_t offset);
  void add(std::uint64_t offset, std::int64_t time_ms, std::string_view json);
  void end_channel();
  // Flushes and renames PATH.tmp over PATH. Returns "" or the error.
  std::string commit();

 private:
  std::string path_;
  std::ofstream out_;
  std::string line_;
  bool first_ = true;
};

}  // namespace switchboard::realtime::detail
