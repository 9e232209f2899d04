// snapshot.cpp — see snapshot.hpp.
#include "snapshot.hpp"

#include <simdjson.h>

#include <cstdio>

#include "channel.hpp"
#include "json.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

std::string read_snapshot(const std::string& path,
                          const std::function<void(const snapshot_channel&)>& channel,
                          const std::function<void(snapshot_publication&&)>& publication) {
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

snapshot_writer::snapshot_writer(std::string path)
    : path_(std::move(path)), out_(path_ + ".tmp", std::ios::trunc) {}

void snapshot_writer::begin_channel(std::string_view name, std::string_view epoch,
                                    std::uint64_t offset) {
  line_.clear();
  line_.push_back('{');
  append_stream(line_, name, epoch, offset);
  line_.append(",\"history\":[");
  first_ = true;
}

void snapshot_writer::add(std::uint64_t offset, std::int64_t time_ms, std::string_view json) {
  if (!first_) line_.push_back(',');
  first_ = false;
  line_.push_back('[');
  append_uint(line_, offset);
  line_.push_back(',');
  line_.append(std::to_string(time_ms));
  line_.push_back(',');
  line_.append(json);
  line_.push_back(']');
}

void snapshot_writer::end_channel() {
  line_.append("]}\n");
  out_ << line_;
}

std::string snapshot_writer::commit() {
  const std::string tmp = path_ + ".tmp";
  out_.flush();
  if (!out_) return "write failed: " + tmp;
  out_.close();
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    return "cannot rename " + tmp + " to " + path_;
  }
  return {};
}

}  // namespace switchboard::realtime::detail
