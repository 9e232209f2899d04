// snapshot.hpp — private: the memory broker's history file, written at start
// (the state just loaded), when the journal is compacted, and at a clean
// shutdown; read at start. A header line, then one JSON object per line per
// channel:
//   {"snapshot":{"id":"…","clean":true}}
//   {"channel":"chat:a","epoch":"…","offset":42,"history":[[41,TIME_MS,{…}],…]}
// where each history entry is [offset, wall-clock ms, the publication as
// history lists it ({"offset":41,…})].
//
// `clean` is true only in the file a clean shutdown writes: a start that finds
// it false (or no header: a file of an older version) cannot prove that the
// file is the last state, and gives every channel a new epoch. `id` is fresh
// in every file; the journal names the id of the snapshot it continues.
//
// Writing goes to PATH.tmp (mode 0600), is fsynced and renamed over PATH, and
// the directory is fsynced: a crash while writing leaves the previous file.
//
// Thread-safety: a snapshot_writer belongs to one thread; read_snapshot()
// uses only its arguments.
#pragma once

#include <cstdint>
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

// What the header line says; `found` false when the file has none (or there
// is no file).
struct snapshot_header {
  bool found = false;
  std::string id;
  bool clean = false;
};

// Reads PATH. A missing file is not an error (first start). Fills `header`,
// calls `channel` for each channel line, then `publication` for each of its
// history entries (in file order, offsets checked to be 1..offset). Returns ""
// or "PATH:LINE: reason".
std::string read_snapshot(const std::string& path, snapshot_header& header,
                          const std::function<void(const snapshot_channel&)>& channel,
                          const std::function<void(snapshot_publication&&)>& publication);

class snapshot_writer {
 public:
  // Opens PATH.tmp (mode 0600) and writes the header line; ok() says whether
  // that worked, error() why not.
  snapshot_writer(std::string path, std::string_view id, bool clean);
  ~snapshot_writer();
  snapshot_writer(const snapshot_writer&) = delete;
  snapshot_writer& operator=(const snapshot_writer&) = delete;
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  // One channel line: begin, add each kept publication oldest first, end.
  void begin_channel(std::string_view name, std::string_view epoch, std::uint64_t offset);
  void add(std::uint64_t offset, std::int64_t time_ms, std::string_view json);
  void end_channel();
  // Writes what is buffered, fsyncs, renames PATH.tmp over PATH and fsyncs
  // the directory. Returns "" or the error (PATH is then unchanged).
  std::string commit();

 private:
  void flush(bool all);
  std::string path_;
  int fd_ = -1;
  std::string error_;
  std::string buffer_;
  bool first_ = true;
};

}  // namespace switchboard::realtime::detail
