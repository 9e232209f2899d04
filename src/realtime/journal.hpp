// journal.hpp — private: the memory broker's append-only journal
// ([history] journal): every publication is appended before anyone sees it,
// so a restart rebuilds the exact state from the snapshot plus the journal.
//
// File format (all integers little-endian):
//   "SBJOURN1"                                   8-byte magic
//   record*                                      the first one is a header
//   record  = u32 length, u32 crc32(payload), payload[length]
//   header  = u8 'H', u8 fsync, u8 n, base[n], u8 m, boot[m]
//   publish = u8 'P', u64 offset, i64 time_ms, u8 kept, u16 n, channel[n],
//             u8 m, epoch[m], tail[rest]   (tail empty when not kept)
//
// `base` is the id of the snapshot the journal continues (snapshot.hpp): a
// journal is replayed only over the snapshot it was started from. `boot` is
// the kernel's boot id when the journal was started; with it a restart can
// tell a process crash (the page cache, and so every written record, survived)
// from a machine crash (only fsynced records did).
//
// A record is written with one write(2) before the publication is delivered
// or acknowledged, so a record that is cut short or garbled can only be the
// last one, and one nobody saw: scan_journal() stops there ("torn") and the
// broker cuts the file back. A bad record followed by good ones is damage
// ("corrupt"), which the broker reports and treats as lost history.
//
// Thread-safety: scan_journal() and encode functions use only their
// arguments. A journal_writer's append() is called by one thread at a time
// (the broker's mutex); sync() may run meanwhile on another thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace switchboard::realtime::detail {

inline constexpr std::string_view k_journal_magic = "SBJOURN1";

struct journal_header {
  std::uint8_t fsync = 0;  // realtime::fsync_policy of the run that wrote it
  std::string base;        // id of the snapshot this journal continues
  std::string boot;        // boot id of the machine when it was started
};

// One publication as the journal keeps it. Views into the scanned bytes.
struct journal_record {
  std::uint64_t offset = 0;
  std::int64_t time_ms = 0;
  bool kept = false;  // false: only the position (history is off)
  std::string_view channel;
  std::string_view epoch;
  std::string_view tail;  // "data":…[,"client":…] (wire.hpp publication_tail())
};

// Appends the framed encoding of a header / a record to `out`.
void encode_journal_header(std::string& out, const journal_header& h);
void encode_journal_record(std::string& out, const journal_record& r);

struct journal_scan {
  std::string error;  // set: not a journal (bad magic or header); nothing else is valid
  journal_header header;
  std::size_t valid_bytes = 0;  // magic, header and every whole record before the first bad one
  std::size_t records = 0;
  // Bytes after valid_bytes: `torn` when the bad record is the last thing in
  // the file (a write cut short), otherwise `corrupt` (good bytes follow).
  bool torn = false;
  bool corrupt = false;
  std::string bad_reason;  // why the record at valid_bytes was refused
};

// Reads a whole journal held in memory: checks the magic and the header,
// asks `accept` whether to go on (false: stop, the records are not wanted),
// then calls `each` for every whole, well-formed publication record in file
// order and stops at the first record that is not. Never reads outside
// `bytes`.
journal_scan scan_journal(std::string_view bytes,
                          const std::function<bool(const journal_header&)>& accept,
                          const std::function<void(const journal_record&)>& each);

// An open journal file being appended to.
class journal_writer {
 public:
  // Writes PATH.tmp (mode 0600) holding the magic and `header`, fsyncs it,
  // runs `before_rename` (the broker writes the snapshot the journal
  // continues there; an error from it stops here and leaves PATH as it was),
  // renames PATH.tmp over PATH, fsyncs the directory and opens PATH to append.
  // Returns null and sets `error` when any step fails.
  static std::unique_ptr<journal_writer> create(
      const std::string& path, const journal_header& header, std::string& error,
      const std::function<std::string()>& before_rename = {});
  ~journal_writer();
  journal_writer(const journal_writer&) = delete;
  journal_writer& operator=(const journal_writer&) = delete;

  // Appends one record with one write(2); with `sync`, fdatasyncs before
  // returning. On failure the file is cut back to its last whole record and
  // the error returned; nothing was appended.
  std::string append(const journal_record& r, bool sync);
  // fdatasync if anything was appended since the last sync. Returns "" or the error.
  std::string sync();
  std::size_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
  const std::string& path() const noexcept { return path_; }

 private:
  journal_writer(std::string path, int fd, std::size_t size);
  std::string path_;
  int fd_;
  std::atomic<std::size_t> size_;
  std::atomic<bool> dirty_{false};
  std::string buffer_;
};

}  // namespace switchboard::realtime::detail
