// sse_peer.cpp — GET /sse of one channel on a server connection (see
// sse_peer.hpp).
#include "sse_peer.hpp"

#include "json.hpp"
#include "session.hpp"
#include "sse_wire.hpp"
#include "support.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

namespace {

void write(server::websocket& ws, std::string_view event) {
  ws.send(event, protocol::opcode::text);
}

}  // namespace

connection_state& sse_ws_peer::state() { return ws_.data<connection_state>(); }

void sse_ws_peer::send(const std::string& text) {
  thread_local std::string event;
  event.clear();
  append_sse_event(event, "message", {}, text);
  write(ws_, event);
}

std::string sse_ws_peer::subscribe_command(std::string_view channel,
                                           const channel_position& since) {
  // The id: "CHANNEL" or "CHANNEL EPOCH:OFFSET" as a JSON string. Neither
  // needs escaping: a valid channel name and an id parse_sse_id accepted
  // (an epoch of [A-Za-z0-9_-], digits) hold no quote, backslash or space.
  std::string c = "{\"id\":\"";
  c.append(channel);
  if (since) {
    c.push_back(' ');
    c.append(since->epoch);
    c.push_back(':');
    append_uint(c, since->offset);
  }
  c.push_back('"');
  append_sse_subscribe_tail(c, channel, since);
  return c;
}

namespace {
// The parts of a subscribe_command() id as echoed (with its quotes).
struct command_id {
  std::string_view channel, since;
};
command_id split_id(std::string_view id) {
  if (id.size() < 2 || id.front() != '"' || id.back() != '"') return {};
  id = id.substr(1, id.size() - 2);
  const std::size_t space = id.find(' ');
  if (space == std::string_view::npos) return {id, {}};
  return {id.substr(0, space), id.substr(space + 1)};
}
}  // namespace

void sse_ws_peer::reply_subscribed(std::string_view id, const local_channel& ch,
                                   const read_result& r) {
  const bool recovered = r.recovered && *r.recovered;
  // The stream's position: the read's, or (recovered) the one it resumes
  // from, which the publications below then move on.
  std::string sse_id;
  const command_id parts = split_id(id);
  if (recovered && !parts.since.empty()) {
    sse_id.assign(parts.since);
  } else {
    sse_id.assign(r.epoch);
    sse_id.push_back(':');
    append_uint(sse_id, r.offset);
  }
  std::string data = "{";
  append_stream(data, ch.name, r.epoch, r.offset);
  if (r.recovered) append_recovery(data, *r.recovered, r.reason);
  data.push_back('}');
  std::string event;
  append_sse_event(event, "subscribed", sse_id, data);
  write(ws_, event);
  if (!recovered) return;
  std::string push;
  for_each_publication(r.publications, [&](std::uint64_t offset, std::string_view tail) {
    publication_push(push, ch.name, r.epoch, offset, tail);
    event.clear();
    append_sse_publication(event, r.epoch, offset, push);
    write(ws_, event);
  });
}

void sse_ws_peer::reply_error(std::string_view id, const failure& f) {
  std::string data = "{";
  if (const command_id parts = split_id(id); !parts.channel.empty()) {
    data.append("\"channel\":");
    append_json_string(data, parts.channel);
    data.push_back(',');
  }
  data.append("\"code\":");
  append_uint(data, static_cast<std::uint64_t>(f.code));
  data.append(",\"error\":");
  append_json_string(data, f.message);
  data.push_back('}');
  std::string event;
  append_sse_event(event, "error", {}, data);
  write(ws_, event);
}

bool sse_ws_peer::attach(local_channel& ch, std::string_view epoch) {
  return hub_.attach(ch, epoch, ws_.id()) != nullptr;
}

void sse_ws_peer::start(local_channel& ch, std::uint64_t after) {
  ws_.subscribe(hub::topic_for(ch, push_form::sse), after);
}

void sse_ws_peer::detach(local_channel& ch, bool closing) {
  if (!closing) ws_.unsubscribe(hub::topic_for(ch, push_form::sse));
  hub_.detach(ch, ws_.id());
}

}  // namespace switchboard::realtime::detail
