// command.cpp — the switchboard.v1 command parser (see command.hpp).
#include "command.hpp"

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
  // Every command names itself; a non-string cmd is as good as none.
  if (obj["cmd"].get(out.cmd)) return make_failure(errors::no_cmd);
  read_command_fields(obj, out);
  return std::nullopt;
}

void read_command_fields(simdjson::dom::object obj, command& out) {
  // A non-string channel or token counts as absent: the command then says
  // "no channel", or connects anonymously.
  out.has_channel = !obj["channel"].get(out.channel);
  out.has_token = !obj["token"].get(out.token);

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
