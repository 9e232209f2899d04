// command.cpp — the switchboard.v1 command parser (see command.hpp).
#include "command.hpp"

#include <algorithm>
#include <vector>

#include "wire.hpp"

namespace switchboard::realtime::detail {

std::optional<failure> parse_command(simdjson::dom::parser& parser, std::string_view payload,
                                     command& out) {
  out = command{};
  simdjson::dom::element root;
  simdjson::dom::object obj;
  // Protocol: a command is one JSON object (docs/protocol.md, "Commands and replies").
  if (parser.parse(payload.data(), payload.size()).get(root) || root.get(obj)) {
    return make_failure(errors::not_an_object);
  }
  simdjson::dom::element id;
  if (!obj["id"].get(id)) {
    // The id is echoed verbatim in the reply, so it must be a JSON scalar we can copy.
    if (!id.is_number() && !id.is_string()) {
      return make_failure(errors::bad_id);
    }
    out.id = simdjson::minify(id);
  }
  // One meaning per key: the JWT path refuses repeated names too.
  if (auto key = find_duplicate_key(obj)) return make_failure(errors::duplicate_key, *key);
  // Every command names itself; a non-string cmd is as good as none.
  if (obj["cmd"].get(out.cmd)) return make_failure(errors::no_cmd);
  read_command_fields(obj, out);
  return std::nullopt;
}

std::optional<std::string_view> find_duplicate_key(simdjson::dom::object obj) {
  // A command has a handful of keys: compare pairwise; past that, sort.
  constexpr std::size_t k_small = 16;
  std::string_view keys[k_small];
  std::size_t n = 0;
  std::vector<std::pair<std::string_view, std::size_t>> many;
  for (auto field : obj) {
    const std::string_view key = field.key;
    if (n < k_small) {
      for (std::size_t i = 0; i < n; ++i) {
        if (keys[i] == key) return key;
      }
      keys[n++] = key;
      continue;
    }
    if (many.empty()) {
      for (std::size_t i = 0; i < n; ++i) many.emplace_back(keys[i], i);
    }
    many.emplace_back(key, many.size());
  }
  if (many.empty()) return std::nullopt;
  std::sort(many.begin(), many.end());
  // Report the repeated key that appears first in the object.
  std::optional<std::pair<std::size_t, std::string_view>> first;
  for (std::size_t i = 1; i < many.size(); ++i) {
    if (many[i].first != many[i - 1].first) continue;
    const std::size_t at = many[i - 1].second;
    if (!first || at < first->first) first.emplace(at, many[i].first);
  }
  if (!first) return std::nullopt;
  return first->second;
}

void read_command_fields(simdjson::dom::object obj, command& out) {
  // A non-string channel or token counts as absent: the command then says
  // "no channel", or connects anonymously.
  out.has_channel = !obj["channel"].get(out.channel);
  out.has_token = !obj["token"].get(out.token);
  // rpc's "method": a non-string counts as absent ("no method").
  out.has_method = !obj["method"].get(out.method);

  simdjson::dom::element e;
  if (!obj["since"].get(e)) {
    simdjson::dom::object s;
    std::string_view epoch;
    std::uint64_t offset = 0;
    // since = {"epoch": string, "offset": unsigned integer}; other keys are ignored.
    if (e.get(s) || s["epoch"].get(epoch) || s["offset"].get(offset)) {
      out.since_error = make_failure(errors::bad_since);
    } else {
      out.since = stream_position{std::string(epoch), offset};
    }
  }

  if (!obj["data"].get(e)) {
    out.has_data = true;
    out.data = simdjson::minify(e);
  }

  if (!obj["limit"].get(e)) {
    std::uint64_t limit = 0;
    // limit 0 would ask for nothing; refuse it rather than guess.
    if (e.get(limit) || limit == 0) {
      out.limit_error = make_failure(errors::bad_limit);
    } else {
      out.limit = limit;
    }
  }

  if (!obj["cursor"].get(e)) {
    std::string_view cursor;
    // A cursor is a client id from a presence reply; anything long is not one.
    if (e.get(cursor) || cursor.size() > 128) {
      out.cursor_error = make_failure(errors::bad_cursor);
    } else {
      out.cursor.assign(cursor);
    }
  }

  if (!obj["info"].get(e)) {
    // Presence info is shown to others as an object; anything else is refused.
    if (!e.is_object()) {
      out.info_error = make_failure(errors::bad_info);
    } else {
      out.has_info = true;
      out.info = simdjson::minify(e);
    }
  }
}

}  // namespace switchboard::realtime::detail
