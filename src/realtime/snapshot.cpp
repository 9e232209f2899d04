// snapshot.cpp — see snapshot.hpp.
#include "snapshot.hpp"

#include <fcntl.h>
#include <simdjson.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "channel.hpp"
#include "json.hpp"
#include "storage.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

std::string read_snapshot(const std::string& path, snapshot_header& header,
                          const std::function<void(const snapshot_channel&)>& channel,
                          const std::function<void(snapshot_publication&&)>& publication) {
  header = {};
  std::ifstream in(path);
  if (!in) return {};  // first start: nothing saved yet
  simdjson::dom::parser parser;
  std::string line;
  std::size_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty()) continue;
    const std::string where = path + ":" + std::to_string(line_number) + ": ";
    simdjson::dom::object obj;
    if (line_number == 1 && line.starts_with("{\"snapshot\":")) {
      simdjson::dom::object h;
      std::string_view id;
      bool clean = false;
      if (parser.parse(line).get(obj) || obj["snapshot"].get(h) || h["id"].get(id) ||
          h["clean"].get(clean)) {
        return where + "not a snapshot header";
      }
      header = snapshot_header{true, std::string(id), clean};
      continue;
    }
    std::string_view name, epoch;
    std::uint64_t top = 0;
    simdjson::dom::array history;
    if (parser.parse(line).get(obj) || obj["channel"].get(name) || obj["epoch"].get(epoch) ||
        obj["offset"].get(top) || obj["history"].get(history)) {
      return where + "not a snapshot line";
    }
    if (!valid_channel_name(name)) return where + "invalid channel name";
    snapshot_channel ch{std::string(name), std::string(epoch), top};
    // Check every entry before handing the channel on: a bad line changes nothing.
    for (simdjson::dom::element e : history) {
      simdjson::dom::array entry;
      std::uint64_t offset = 0;
      std::int64_t time = 0;
      simdjson::dom::element pub;
      if (e.get(entry) || entry.at(0).get(offset) || entry.at(1).get(time) ||
          entry.at(2).get(pub) || !pub.is_object() || offset == 0 || offset > top) {
        return where + "bad history entry";
      }
    }
    channel(ch);
    for (simdjson::dom::element e : history) {
      simdjson::dom::array entry = e.get_array().value_unsafe();
      snapshot_publication p;
      p.offset = entry.at(0).get_uint64().value_unsafe();
      p.time_ms = entry.at(1).get_int64().value_unsafe();
      p.json = simdjson::minify(entry.at(2).value_unsafe());
      publication(std::move(p));
    }
  }
  return {};
}

snapshot_writer::snapshot_writer(std::string path, std::string_view id, bool clean)
    : path_(std::move(path)) {
  const std::string tmp = path_ + ".tmp";
  fd_ = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  // O_CREAT keeps the mode of a PATH.tmp left behind; history is private.
  if (fd_ < 0 || ::fchmod(fd_, 0600) != 0) {
    error_ = "cannot write " + tmp + ": " + std::strerror(errno);
    return;
  }
  buffer_ = "{\"snapshot\":{\"id\":";
  append_json_string(buffer_, id);
  buffer_.append(clean ? ",\"clean\":true}}\n" : ",\"clean\":false}}\n");
}

snapshot_writer::~snapshot_writer() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink((path_ + ".tmp").c_str());  // not committed: leave PATH as it was
  }
}

void snapshot_writer::flush(bool all) {
  if (!error_.empty() || (!all && buffer_.size() < (256u << 10))) return;
  if (std::string e = write_all(fd_, buffer_); !e.empty()) error_ = "write failed: " + e;
  buffer_.clear();
}

void snapshot_writer::begin_channel(std::string_view name, std::string_view epoch,
                                    std::uint64_t offset) {
  buffer_.push_back('{');
  append_stream(buffer_, name, epoch, offset);
  buffer_.append(",\"history\":[");
  first_ = true;
}

void snapshot_writer::add(std::uint64_t offset, std::int64_t time_ms, std::string_view json) {
  if (!first_) buffer_.push_back(',');
  first_ = false;
  buffer_.push_back('[');
  append_uint(buffer_, offset);
  buffer_.push_back(',');
  buffer_.append(std::to_string(time_ms));
  buffer_.push_back(',');
  buffer_.append(json);
  buffer_.push_back(']');
  flush(false);
}

void snapshot_writer::end_channel() {
  buffer_.append("]}\n");
  flush(false);
}

std::string snapshot_writer::commit() {
  const std::string tmp = path_ + ".tmp";
  flush(true);
  if (error_.empty() && ::fsync(fd_) != 0) error_ = std::string("fsync: ") + std::strerror(errno);
  if (!error_.empty()) return error_ + " (" + tmp + ")";
  ::close(fd_);
  fd_ = -1;
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return "cannot rename " + tmp + " to " + path_ + ": " + why;
  }
  return sync_directory_of(path_);
}

}  // namespace switchboard::realtime::detail
