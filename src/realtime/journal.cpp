// journal.cpp — see journal.hpp.
#include "journal.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>

#include "storage.hpp"

namespace switchboard::realtime::detail {

namespace {

constexpr char k_header_type = 'H';
constexpr char k_publish_type = 'P';
constexpr std::size_t k_frame = 8;  // u32 length + u32 crc
// A record is one publication (at most limits.max_publication_size plus a
// channel name); anything claiming more than this is garbage, not a record.
constexpr std::uint32_t k_max_record = 256u << 20;

template <class T>
void put(std::string& out, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    out.push_back(static_cast<char>(static_cast<std::uint64_t>(v) >> (8 * i) & 0xff));
  }
}

template <class T>
bool get(std::string_view& in, T& v) {
  if (in.size() < sizeof(T)) return false;
  std::uint64_t x = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    x |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  }
  v = static_cast<T>(x);
  in.remove_prefix(sizeof(T));
  return true;
}

bool get_bytes(std::string_view& in, std::size_t n, std::string_view& out) {
  if (in.size() < n) return false;
  out = in.substr(0, n);
  in.remove_prefix(n);
  return true;
}

std::uint32_t checksum(std::string_view payload) {
  return static_cast<std::uint32_t>(::crc32(0, reinterpret_cast<const Bytef*>(payload.data()),
                                            static_cast<uInt>(payload.size())));
}

// Frames the payload appended to `out` since `start` (where 8 bytes were reserved).
void frame(std::string& out, std::size_t start) {
  const std::string_view payload(out.data() + start + k_frame, out.size() - start - k_frame);
  std::string head;
  put<std::uint32_t>(head, static_cast<std::uint32_t>(payload.size()));
  put<std::uint32_t>(head, checksum(payload));
  out.replace(start, k_frame, head);
}

bool parse_header(std::string_view p, journal_header& h) {
  char type = 0;
  std::uint8_t n = 0;
  std::string_view base, boot;
  if (!get(p, type) || type != k_header_type || !get(p, h.fsync) || !get(p, n) ||
      !get_bytes(p, n, base) || !get(p, n) || !get_bytes(p, n, boot) || !p.empty()) {
    return false;
  }
  h.base.assign(base);
  h.boot.assign(boot);
  return true;
}

bool parse_record(std::string_view p, journal_record& r) {
  char type = 0;
  std::uint8_t kept = 0, m = 0;
  std::uint16_t n = 0;
  if (!get(p, type) || type != k_publish_type || !get(p, r.offset) || !get(p, r.time_ms) ||
      !get(p, kept) || kept > 1 || !get(p, n) || n == 0 || !get_bytes(p, n, r.channel) ||
      !get(p, m) || m == 0 || !get_bytes(p, m, r.epoch) || r.offset == 0) {
    return false;
  }
  r.kept = kept == 1;
  r.tail = p;
  return r.kept || r.tail.empty();
}

}  // namespace

void encode_journal_header(std::string& out, const journal_header& h) {
  const std::size_t start = out.size();
  out.append(k_frame, '\0');
  out.push_back(k_header_type);
  put<std::uint8_t>(out, h.fsync);
  put<std::uint8_t>(out, static_cast<std::uint8_t>(h.base.size()));
  out.append(h.base.substr(0, 255));
  put<std::uint8_t>(out, static_cast<std::uint8_t>(h.boot.size()));
  out.append(h.boot.substr(0, 255));
  frame(out, start);
}

void encode_journal_record(std::string& out, const journal_record& r) {
  const std::size_t start = out.size();
  out.append(k_frame, '\0');
  out.push_back(k_publish_type);
  put<std::uint64_t>(out, r.offset);
  put<std::int64_t>(out, r.time_ms);
  put<std::uint8_t>(out, r.kept ? 1 : 0);
  put<std::uint16_t>(out, static_cast<std::uint16_t>(r.channel.size()));
  out.append(r.channel);
  put<std::uint8_t>(out, static_cast<std::uint8_t>(r.epoch.size()));
  out.append(r.epoch);
  if (r.kept) out.append(r.tail);
  frame(out, start);
}

journal_scan scan_journal(std::string_view bytes,
                          const std::function<bool(const journal_header&)>& accept,
                          const std::function<void(const journal_record&)>& each) {
  journal_scan s;
  if (bytes.substr(0, k_journal_magic.size()) != k_journal_magic) {
    s.error = "not a switchboard journal (bad magic)";
    return s;
  }
  std::size_t at = k_journal_magic.size();
  // One framed record at `at`: its payload, or why not.
  const auto next = [&](std::string_view& payload) -> std::string_view {
    std::string_view in = bytes.substr(at);
    std::uint32_t length = 0, crc = 0;
    if (!get(in, length) || !get(in, crc)) return "record header cut short";
    if (length > k_max_record) return "record length out of range";
    if (in.size() < length) return "record cut short";
    payload = in.substr(0, length);
    if (checksum(payload) != crc) return "checksum mismatch";
    return {};
  };
  std::string_view payload;
  if (!next(payload).empty() || !parse_header(payload, s.header)) {
    s.error = "not a switchboard journal (bad header)";
    return s;
  }
  at += k_frame + payload.size();
  if (accept && !accept(s.header)) {
    s.valid_bytes = at;
    return s;
  }
  while (at < bytes.size()) {
    std::string_view why = next(payload);
    journal_record r;
    if (why.empty() && !parse_record(payload, r)) why = "malformed record";
    if (!why.empty()) {
      s.bad_reason.assign(why);
      // Torn: nothing whole can follow a record cut short, and a bad record
      // that ends exactly at the end of the file was the last write.
      const bool to_the_end =
          why == "record header cut short" || why == "record cut short" ||
          (why == "checksum mismatch" && at + k_frame + payload.size() == bytes.size());
      (to_the_end ? s.torn : s.corrupt) = true;
      break;
    }
    each(r);
    ++s.records;
    at += k_frame + payload.size();
  }
  s.valid_bytes = at;
  return s;
}

// ---------------------------------------------------------------------------
// journal_writer

journal_writer::journal_writer(std::string path, int fd, std::size_t size)
    : path_(std::move(path)), fd_(fd), size_(size) {}

journal_writer::~journal_writer() {
  ::close(fd_);
}

std::unique_ptr<journal_writer> journal_writer::create(
    const std::string& path, const journal_header& header, std::string& error,
    const std::function<std::string()>& before_rename) {
  const std::string tmp = path + ".tmp";
  std::string bytes(k_journal_magic);
  encode_journal_header(bytes, header);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = "cannot create " + tmp + ": " + std::strerror(errno);
    return nullptr;
  }
  std::string e = write_all(fd, bytes);
  if (e.empty() && ::fchmod(fd, 0600) != 0) e = std::strerror(errno);
  if (e.empty() && ::fsync(fd) != 0) e = std::strerror(errno);
  ::close(fd);
  if (!e.empty()) e = "cannot write " + tmp + ": " + e;
  if (e.empty() && before_rename) e = before_rename();
  if (e.empty() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    e = "cannot rename " + tmp + ": " + std::strerror(errno);
  }
  if (e.empty()) e = sync_directory_of(path);
  if (!e.empty()) {
    ::unlink(tmp.c_str());
    error = e;
    return nullptr;
  }
  fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot open the journal " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<journal_writer>(new journal_writer(path, fd, bytes.size()));
}

std::string journal_writer::append(const journal_record& r, bool sync) {
  buffer_.clear();
  encode_journal_record(buffer_, r);
  const std::size_t before = size_.load(std::memory_order_relaxed);
  std::string e = write_all(fd_, buffer_);
  if (e.empty() && sync && ::fdatasync(fd_) != 0) e = std::strerror(errno);
  if (!e.empty()) {
    // Why: a half-written record must not stay in front of the next one; the
    // reader would stop there and drop every later (acknowledged) record.
    if (::ftruncate(fd_, static_cast<off_t>(before)) != 0) {
      e += "; and it could not be cut back: " + std::string(std::strerror(errno));
    }
    return "journal " + path_ + ": " + e;
  }
  size_.store(before + buffer_.size(), std::memory_order_relaxed);
  if (!sync) dirty_.store(true, std::memory_order_release);
  return {};
}

std::string journal_writer::sync() {
  if (!dirty_.exchange(false, std::memory_order_acq_rel)) return {};
  if (::fdatasync(fd_) != 0) {
    dirty_.store(true, std::memory_order_release);
    return "journal " + path_ + ": fdatasync: " + std::strerror(errno);
  }
  return {};
}

}  // namespace switchboard::realtime::detail
