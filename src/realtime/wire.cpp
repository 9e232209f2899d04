// wire.cpp — the switchboard.v1 envelopes (see wire.hpp).
#include "wire.hpp"

#include "json.hpp"

namespace switchboard::realtime::detail {

void reply_start(std::string& out, std::string_view id) {
  out.clear();
  out.push_back('{');
  if (!id.empty()) {
    out.append("\"id\":");
    out.append(id);
    out.push_back(',');
  }
}

void reply_result(std::string& out, std::string_view id, std::string_view result) {
  reply_start(out, id);
  out.append("\"result\":");
  out.append(result.empty() ? std::string_view("{}") : result);
  out.push_back('}');
}

void reply_error(std::string& out, std::string_view id, const failure& f) {
  reply_start(out, id);
  out.append("\"error\":{\"code\":");
  append_uint(out, static_cast<std::uint64_t>(f.code));
  out.append(",\"message\":");
  append_json_string(out, f.message);
  out.append("}}");
}

void append_stream(std::string& out, std::string_view channel, std::string_view epoch,
                   std::uint64_t offset) {
  out.append("\"channel\":");
  append_json_string(out, channel);
  out.append(",\"epoch\":");
  append_json_string(out, epoch);
  out.append(",\"offset\":");
  append_uint(out, offset);
}

void append_recovery(std::string& out, bool recovered, std::string_view reason) {
  out.append(",\"recovered\":");
  out.append(recovered ? "true" : "false");
  if (!recovered) {
    out.append(",\"reason\":");
    append_json_string(out, reason);
  }
}

void append_publish_result(std::string& out, std::string_view epoch, std::uint64_t offset) {
  out.append("{\"epoch\":");
  append_json_string(out, epoch);
  out.append(",\"offset\":");
  append_uint(out, offset);
  out.push_back('}');
}

std::string publication_tail(std::string_view data, std::string_view client,
                             std::string_view user) {
  std::string tail = "\"data\":";
  tail.append(data);
  if (!client.empty()) {
    tail.append(",\"client\":");
    append_json_string(tail, client);
    if (!user.empty()) {
      tail.append(",\"user\":");
      append_json_string(tail, user);
    }
  }
  return tail;
}

void append_publication(std::string& out, std::uint64_t offset, std::string_view tail) {
  out.append("{\"offset\":");
  append_uint(out, offset);
  out.push_back(',');
  out.append(tail);
  out.push_back('}');
}

void publication_push(std::string& out, std::string_view channel, std::string_view epoch,
                      std::uint64_t offset, std::string_view tail) {
  out.clear();
  out.append("{\"push\":\"message\",");
  append_stream(out, channel, epoch, offset);
  out.push_back(',');
  out.append(tail);
  out.push_back('}');
}

void presence_push(std::string& out, std::string_view channel, std::size_t count,
                   const std::string* joins, const std::string* leaves) {
  out.clear();
  out.append("{\"push\":\"presence\",\"channel\":");
  append_json_string(out, channel);
  out.append(",\"count\":");
  append_uint(out, count);
  if (joins && leaves) {
    out.append(",\"joins\":[");
    out.append(*joins);
    out.append("],\"leaves\":[");
    out.append(*leaves);
    out.push_back(']');
  }
  out.push_back('}');
}

void append_presence_result(std::string& out, std::string_view channel, std::size_t count,
                            const std::string* entries, std::string_view next) {
  out.append("{\"channel\":");
  append_json_string(out, channel);
  out.append(",\"count\":");
  append_uint(out, count);
  if (entries) {
    out.append(",\"clients\":[");
    out.append(*entries);
    out.push_back(']');
    if (!next.empty()) {
      out.append(",\"cursor\":");
      append_json_string(out, next);
    }
  }
  out.push_back('}');
}

std::string_view presence_client(std::string_view presence_json) {
  // presence_json() writes {"client":"ID",… and an id never needs escaping.
  constexpr std::string_view prefix = "{\"client\":\"";
  if (presence_json.substr(0, prefix.size()) != prefix) return {};
  const std::string_view rest = presence_json.substr(prefix.size());
  const std::size_t end = rest.find('"');
  return end == std::string_view::npos ? std::string_view() : rest.substr(0, end);
}

std::string presence_json(std::string_view client, std::string_view user, std::string_view info) {
  std::string p = "{\"client\":";
  append_json_string(p, client);
  if (!user.empty()) {
    p.append(",\"user\":");
    append_json_string(p, user);
  }
  if (!info.empty()) {
    p.append(",\"info\":");
    p.append(info);
  }
  p.push_back('}');
  return p;
}

std::string http_error_body(int status, std::string_view message) {
  std::string body = "{\"error\":{\"code\":";
  append_uint(body, static_cast<std::uint64_t>(status));
  body.append(",\"message\":");
  append_json_string(body, message);
  body.append("}}");
  return body;
}

void refresh_push(std::string& out, std::int64_t exp) {
  out = "{\"push\":\"refresh\",\"exp\":";
  append_uint(out, static_cast<std::uint64_t>(exp < 0 ? 0 : exp));
  out.push_back('}');
}

void unsubscribe_push(std::string& out, std::string_view channel, std::string_view reason) {
  out = "{\"push\":\"unsubscribe\",\"channel\":";
  append_json_string(out, channel);
  out.append(",\"reason\":");
  append_json_string(out, reason);
  out.push_back('}');
}

void subscribe_push(std::string& out, std::string_view channel, std::string_view epoch,
                    std::uint64_t offset) {
  out.clear();
  out.append("{\"push\":\"subscribe\",");
  append_stream(out, channel, epoch, offset);
  out.push_back('}');
}

void close_push(std::string& out, std::uint16_t code, std::string_view reason) {
  out.clear();
  out.append("{\"push\":\"close\",\"code\":");
  append_uint(out, code);
  out.append(",\"reason\":");
  append_json_string(out, reason);
  out.push_back('}');
}

}  // namespace switchboard::realtime::detail
