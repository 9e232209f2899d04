// wire_compact.cpp — the compact publication envelope (see wire.hpp,
// docs/protocol.md "Compact pushes").
//
// The input is always text this server wrote (publication_tail(),
// append_publication(): keys in a fixed order, `data` minified by simdjson),
// so the rewrite is a forward scan, not a JSON parse: skip `data`'s value,
// then copy the optional client and user strings under their short keys.
// Anything else is refused (false), never guessed at.
#include <utility>

#include "json.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

namespace {

constexpr std::size_t k_none = std::string_view::npos;

// The end of the JSON string starting at s[i] ('"'), or k_none.
std::size_t skip_string(std::string_view s, std::size_t i) {
  if (i >= s.size() || s[i] != '"') return k_none;
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;  // the escaped character, whatever it is
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return k_none;  // unterminated
}

// The end of the minified JSON value starting at s[i], or k_none. Objects
// and arrays end at their matching bracket (strings inside skipped); a
// scalar ends before the next ',', '}' or ']'.
std::size_t skip_value(std::string_view s, std::size_t i) {
  if (i >= s.size()) return k_none;
  const char first = s[i];
  if (first == '"') return skip_string(s, i);
  if (first == '{' || first == '[') {
    std::size_t depth = 0;
    while (i < s.size()) {
      const char c = s[i];
      if (c == '"') {
        i = skip_string(s, i);
        if (i == k_none) return k_none;
        continue;
      }
      if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return k_none;  // unbalanced
  }
  std::size_t end = i;
  while (end < s.size() && s[end] != ',' && s[end] != '}' && s[end] != ']') ++end;
  // A scalar (number, true, false, null) is never empty.
  return end == i ? k_none : end;
}

// Rewrites the tail starting at s[i] into `out`; returns where it ends (the
// end of `s`, or the '}' that closes its publication), or k_none.
std::size_t rewrite_tail(std::string& out, std::string_view s, std::size_t i) {
  constexpr std::string_view data_key = "\"data\":";
  constexpr std::string_view client_key = ",\"client\":";
  constexpr std::string_view user_key = ",\"user\":";
  if (s.substr(i, data_key.size()) != data_key) return k_none;
  i += data_key.size();
  const std::size_t data_end = skip_value(s, i);
  if (data_end == k_none) return k_none;
  out.append("\"d\":");
  out.append(s.substr(i, data_end - i));
  i = data_end;
  const std::pair<std::string_view, std::string_view> optional[] = {{client_key, ",\"c\":"},
                                                                    {user_key, ",\"u\":"}};
  for (const auto& [key, short_key] : optional) {
    if (s.substr(i, key.size()) != key) continue;
    const std::size_t end = skip_string(s, i + key.size());
    if (end == k_none) return k_none;
    out.append(short_key);
    out.append(s.substr(i + key.size(), end - i - key.size()));
    i = end;
  }
  return i;
}

}  // namespace

bool append_compact_tail(std::string& out, std::string_view tail) {
  const std::size_t mark = out.size();
  if (rewrite_tail(out, tail, 0) != tail.size()) {
    out.resize(mark);  // another shape: nothing appended
    return false;
  }
  return true;
}

bool append_compact_publications(std::string& out, std::string_view list) {
  constexpr std::string_view offset_key = "{\"offset\":";
  const std::size_t mark = out.size();
  const auto refuse = [&] {
    out.resize(mark);
    return false;
  };
  std::size_t i = 0;
  while (i < list.size()) {
    if (i != 0) {
      if (list[i] != ',') return refuse();  // entries are comma-separated
      out.push_back(',');
      ++i;
    }
    if (list.substr(i, offset_key.size()) != offset_key) return refuse();
    i += offset_key.size();
    const std::size_t digits = i;
    while (i < list.size() && list[i] >= '0' && list[i] <= '9') ++i;
    if (i == digits || i >= list.size() || list[i] != ',') return refuse();
    out.append("{\"o\":");
    out.append(list.substr(digits, i - digits));
    out.push_back(',');
    i = rewrite_tail(out, list, i + 1);
    if (i == k_none || i >= list.size() || list[i] != '}') return refuse();
    out.push_back('}');
    ++i;
  }
  return true;
}

void append_publications(std::string& out, std::string_view list, push_form form) {
  if (form != push_form::compact || !append_compact_publications(out, list)) out.append(list);
}

void compact_publication_push(std::string& out, std::string_view channel, std::uint64_t offset,
                              std::string_view tail) {
  out.clear();
  out.append("{\"m\":");
  append_json_string(out, channel);
  out.append(",\"o\":");
  append_uint(out, offset);
  out.push_back(',');
  // The hub's own publication_tail() never fails this; a reader of compact
  // pushes accepts the long keys too, so nothing is lost if it did.
  if (!append_compact_tail(out, tail)) out.append(tail);
  out.push_back('}');
}

}  // namespace switchboard::realtime::detail
