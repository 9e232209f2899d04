// Sec-WebSocket-Extensions parsing. One scanner walks the grammar and reports
// what it finds to a sink; the sinks decide whether to build a vector, only
// validate, or check names against the offers, so the validators share the
// exact grammar without allocating.
#include <switchboard/protocol/extensions.hpp>

#include <algorithm>

namespace switchboard::protocol {
namespace {

constexpr bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

class scanner {
 public:
  explicit scanner(std::string_view v) : v_(v) {}

  // Walks the whole list; calls sink.on_extension(name) and
  // sink.on_param(name, raw_value, has_value, quoted). False on a syntax error
  // or when a sink callback returns false.
  template <class Sink>
  bool run(Sink& sink) {
    bool any = false;
    for (;;) {
      skip_ows();
      if (pos_ == v_.size()) break;
      // RFC 9110 §5.6.1: empty list elements are skipped.
      if (v_[pos_] == ',') {
        ++pos_;
        continue;
      }
      const auto name = token();
      // extension-token = registered-token = token (RFC 6455 §9.1).
      if (name.empty() || !sink.on_extension(name)) return false;
      any = true;
      skip_ows();
      while (pos_ < v_.size() && v_[pos_] == ';') {
        ++pos_;
        if (!param(sink)) return false;
      }
      // Extensions are separated by commas; anything else is a syntax error.
      if (pos_ < v_.size() && v_[pos_++] != ',') return false;
    }
    // extension-list = 1#extension: at least one element.
    return any;
  }

 private:
  template <class Sink>
  bool param(Sink& sink) {
    skip_ows();
    const auto name = token();
    // extension-param = token [ "=" (token | quoted-string) ]
    if (name.empty()) return false;
    skip_ows();
    std::string_view value;
    bool has_value = false;
    bool quoted = false;
    if (pos_ < v_.size() && v_[pos_] == '=') {
      ++pos_;
      skip_ows();
      has_value = true;
      if (pos_ < v_.size() && v_[pos_] == '"') {
        quoted = true;
        value = quoted_string();
      } else {
        value = token();
      }
      // A value after "=" is a non-empty token, also once unquoted (RFC 6455 §9.1).
      if (value.empty()) return false;
      skip_ows();
    }
    return sink.on_param(name, value, has_value, quoted);
  }

  // Returns the raw contents between the quotes (escapes kept), or "" if the
  // string is malformed or would not unescape to a token.
  std::string_view quoted_string() {
    const std::size_t start = ++pos_;
    while (pos_ < v_.size() && v_[pos_] != '"') {
      if (v_[pos_] == '\\') ++pos_;
      // After unescaping, every character must be a tchar (RFC 6455 §9.1).
      if (pos_ == v_.size() || !is_tchar(v_[pos_])) return {};
      ++pos_;
    }
    // An unterminated quoted-string is malformed.
    if (pos_ == v_.size()) return {};
    return v_.substr(start, pos_++ - start);
  }

  std::string_view token() {
    const std::size_t start = pos_;
    while (pos_ < v_.size() && is_tchar(v_[pos_])) ++pos_;
    return v_.substr(start, pos_ - start);
  }

  void skip_ows() {
    while (pos_ < v_.size() && is_ows(v_[pos_])) ++pos_;
  }

  std::string_view v_;
  std::size_t pos_ = 0;
};

struct check_sink {
  bool on_extension(std::string_view) { return true; }
  bool on_param(std::string_view, std::string_view, bool, bool) { return true; }
};

struct names_sink {
  std::span<const std::string_view> allowed;
  bool unexpected = false;
  bool on_extension(std::string_view name) {
    unexpected = std::find(allowed.begin(), allowed.end(), name) == allowed.end();
    return !unexpected;
  }
  bool on_param(std::string_view, std::string_view, bool, bool) { return true; }
};

struct build_sink {
  std::vector<extension>& out;
  bool on_extension(std::string_view name) {
    out.push_back({name, {}});
    return true;
  }
  bool on_param(std::string_view name, std::string_view raw, bool has_value, bool quoted) {
    extension_param p{name, {}, has_value};
    if (quoted) {
      p.value.reserve(raw.size());
      for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '\\') ++i;  // quoted-pair: keep the escaped character
        p.value.push_back(raw[i]);
      }
    } else {
      p.value.assign(raw);
    }
    out.back().params.push_back(std::move(p));
    return true;
  }
};

}  // namespace

error parse_extensions(std::string_view field_value, std::vector<extension>& out) {
  const auto size_before = out.size();
  build_sink sink{out};
  if (scanner(field_value).run(sink)) return error::none;
  out.resize(size_before);
  return error::bad_extension_header;
}

error parse_extensions(const header_fields& head, std::vector<extension>& out) {
  const auto size_before = out.size();
  for (const auto& f : head.headers()) {
    if (!ascii_iequals(f.name, k_extensions_field)) continue;
    if (const auto e = parse_extensions(f.value, out); e != error::none) {
      out.resize(size_before);
      return e;
    }
  }
  return error::none;
}

error check_extensions(std::string_view field_value) noexcept {
  check_sink sink;
  return scanner(field_value).run(sink) ? error::none : error::bad_extension_header;
}

error check_extension_names(std::string_view field_value,
                            std::span<const std::string_view> allowed) noexcept {
  names_sink sink{allowed};
  if (scanner(field_value).run(sink)) return error::none;
  // An offer we never made is reported as such, even if the rest is malformed.
  return sink.unexpected ? error::response_unexpected_extension : error::bad_extension_header;
}

}  // namespace switchboard::protocol
