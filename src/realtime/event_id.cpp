// event_id.cpp — transport query strings and event ids (see event_id.hpp).
#include "event_id.hpp"

#include <algorithm>

#include "channel.hpp"

namespace switchboard::realtime::detail {

namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool epoch_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// A value from a client, fit for an error line: at most 64 bytes, printable
// ASCII, the rest '?'.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (s.size() > 64) out.append("...");
  return out;
}

// a + b (GCC 12 warns, wrongly, on "literal" + std::string when inlined).
std::string concat(std::string_view a, std::string_view b) {
  std::string out;
  out.reserve(a.size() + b.size());
  out.append(a);
  out.append(b);
  return out;
}

}  // namespace

std::optional<std::string> form_decode_strict(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      // A lone '%' is not a form encoding: refuse rather than guess.
      if (i + 2 >= in.size()) return std::nullopt;
      const int hi = hex_value(in[i + 1]);
      const int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<std::uint64_t> parse_seq(std::string_view text) noexcept {
  if (text.empty() || text.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto d = static_cast<std::uint64_t>(c - '0');
    // 20 digits may pass 2^64 - 1: refuse rather than wrap.
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

std::string parse_transport_query(std::string_view query, std::size_t max_channels,
                                  transport_query& out) {
  out = transport_query{};
  std::string_view rest = query;
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (pair.empty()) continue;  // "a=1&&b=2": an empty pair says nothing
    const auto eq = pair.find('=');
    const auto name = form_decode_strict(pair.substr(0, eq));
    const auto value = form_decode_strict(eq == std::string_view::npos ? std::string_view{}
                                                                       : pair.substr(eq + 1));
    if (!name || !value) return "bad %-escape in the query string";
    if (*name == "channel") {
      // Why: the name is checked here so the stream never starts for a typo.
      if (!valid_channel_name(*value)) return concat("invalid channel name: ", printable(*value));
      if (std::find(out.channels.begin(), out.channels.end(), *value) != out.channels.end()) {
        continue;  // duplicates are ignored (docs/protocol.md)
      }
      if (out.channels.size() >= max_channels) {
        return "too many channels (limits.max_subscriptions)";
      }
      out.channels.push_back(*value);
    } else if (*name == "last_event_id") {
      if (out.last_event_id) return "last_event_id given twice";
      if (value->size() > k_max_event_id) return "last_event_id too long";
      out.last_event_id = *value;
    } else if (*name == "after") {
      if (out.after) return "after given twice";
      out.after = parse_seq(*value);
      if (!out.after) return "after must be a sequence number";
    } else if (*name == "token" || *name == "_") {
      continue;  // the token is find_token()'s; "_" is a cache-buster
    } else {
      return concat("unknown query parameter: ", printable(*name));
    }
  }
  return {};
}

void append_sse_id(std::string& out, const std::vector<channel_position>& positions) {
  bool first = true;
  for (const channel_position& p : positions) {
    if (!first) out.push_back(',');
    first = false;
    if (!p) {
      out.push_back('-');
      continue;
    }
    out.append(p->epoch);
    out.push_back(':');
    out.append(std::to_string(p->offset));
  }
}

std::string parse_sse_id(std::string_view id, std::size_t channels,
                         std::vector<channel_position>& out) {
  out.clear();
  if (id.size() > k_max_event_id) return "last event id too long";
  std::string_view rest = id;
  bool more = true;
  while (more) {
    const auto comma = rest.find(',');
    const std::string_view entry = rest.substr(0, comma);
    more = comma != std::string_view::npos;
    rest = more ? rest.substr(comma + 1) : std::string_view{};
    // Why: an id for another channel list would recover the wrong channels.
    if (out.size() == channels) return "last event id does not match the stream's channels";
    if (entry == "-") {
      out.emplace_back();
      continue;
    }
    const auto colon = entry.rfind(':');
    if (colon == std::string_view::npos) return "malformed last event id";
    const std::string_view epoch = entry.substr(0, colon);
    if (epoch.empty() || epoch.size() > k_max_id_epoch ||
        !std::all_of(epoch.begin(), epoch.end(), epoch_char)) {
      return "malformed epoch in the last event id";
    }
    const auto offset = parse_seq(entry.substr(colon + 1));
    if (!offset) return "malformed offset in the last event id";
    out.push_back(stream_position{std::string(epoch), *offset});
  }
  if (out.size() != channels) return "last event id does not match the stream's channels";
  return {};
}

}  // namespace switchboard::realtime::detail
