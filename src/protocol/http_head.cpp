// HTTP/1.1 head parsing: one pass over each line, found with memchr and
// checked against a 256-entry character table. The parser keeps offsets, not
// pointers, until the head is complete, because the caller's buffer may move
// when it grows between calls.
#include <switchboard/protocol/http_head.hpp>

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <limits>

namespace switchboard::protocol {
namespace {

enum : std::uint8_t {
  k_tchar = 1,   // RFC 9110 §5.6.2 token character
  k_target = 2,  // request-target byte: visible ASCII or obs-text
  k_value = 4,   // field value / reason byte: visible, obs-text, SP, HT
};

constexpr std::array<std::uint8_t, 256> make_table() {
  std::array<std::uint8_t, 256> t{};
  for (int i = 0; i < 256; ++i) {
    std::uint8_t f = 0;
    if (is_tchar(static_cast<char>(i))) f |= k_tchar;
    if ((i > 0x20 && i < 0x7f) || i >= 0x80) f |= k_target | k_value;
    if (i == ' ' || i == '\t') f |= k_value;
    t[static_cast<std::size_t>(i)] = f;
  }
  return t;
}
constexpr auto k_table = make_table();

constexpr bool has(char c, std::uint8_t flag) {
  return (k_table[static_cast<unsigned char>(c)] & flag) != 0;
}
constexpr bool is_ows(char c) {
  return c == ' ' || c == '\t';
}
constexpr bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
constexpr char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3); HTTP-name is case-sensitive.
bool parse_version(std::string_view v, int& major, int& minor) {
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !is_digit(v[5]) || v[6] != '.' ||
      !is_digit(v[7]))
    return false;
  major = v[5] - '0';
  minor = v[7] - '0';
  return true;
}

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// REQUIRES: the span lies inside `buf` (it was recorded while scanning it).
std::string_view view_of(std::string_view buf, detail::text_span s) {
  return {buf.data() + s.off, s.len};
}

std::uint32_t u32(std::size_t v) {
  return static_cast<std::uint32_t>(v);
}

constexpr std::size_t k_max_limit = std::size_t{1} << 31;

}  // namespace

bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return has(c, k_tchar); });
}

bool is_field_value(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(), [](char c) { return has(c, k_value); });
}

bool ascii_iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool list_cursor::next(std::string_view& out) noexcept {
  while (!rest_.empty()) {
    auto comma = rest_.find(',');
    auto element = trim_ows(rest_.substr(0, comma));
    rest_ = comma == std::string_view::npos ? std::string_view{} : rest_.substr(comma + 1);
    if (!element.empty()) {
      out = element;
      return true;
    }
  }
  return false;
}

std::optional<std::string_view> header_fields::find(std::string_view name) const noexcept {
  for (const auto& f : fields_)
    if (ascii_iequals(f.name, name)) return f.value;
  return std::nullopt;
}

std::size_t header_fields::count(std::string_view name) const noexcept {
  std::size_t n = 0;
  for (const auto& f : fields_) n += ascii_iequals(f.name, name) ? 1 : 0;
  return n;
}

bool header_fields::has_token(std::string_view name, std::string_view token) const noexcept {
  for (const auto& f : fields_) {
    if (!ascii_iequals(f.name, name)) continue;
    list_cursor list(f.value);
    for (std::string_view element; list.next(element);)
      if (ascii_iequals(element, token)) return true;
  }
  return false;
}

std::optional<std::string_view> request_head::cookie(std::string_view name) const noexcept {
  for (const auto& f : headers()) {
    if (!ascii_iequals(f.name, "cookie")) continue;
    // cookie-string = cookie-pair *( ";" SP cookie-pair ); be lenient on spacing.
    std::string_view rest = f.value;
    while (!rest.empty()) {
      auto semi = rest.find(';');
      auto pair = rest.substr(0, semi);
      rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
      auto eq = pair.find('=');
      if (eq == std::string_view::npos) continue;
      if (trim_ows(pair.substr(0, eq)) != name) continue;
      auto value = trim_ows(pair.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
        value = value.substr(1, value.size() - 2);
      return value;
    }
  }
  return std::nullopt;
}

body_length request_body_length(const request_head& head) noexcept {
  constexpr std::uint64_t k_max = std::numeric_limits<std::uint64_t>::max();
  // RFC 9112 §6.3 rule 3: Transfer-Encoding overrides Content-Length; the
  // caller refuses or decodes, but never reads a length next to it.
  if (head.count("Transfer-Encoding") != 0) return {body_framing::transfer_coded, 0};
  body_length out;
  for (const http_header& field : head.headers()) {
    if (!ascii_iequals(field.name, "Content-Length")) continue;
    list_cursor list(field.value);
    std::string_view element;
    bool any = false;
    while (list.next(element)) {
      any = true;
      std::uint64_t value = 0;
      for (const char c : element) {
        // Content-Length = 1*DIGIT (RFC 9110 §8.6): no sign, no space, no hex.
        if (!is_digit(c)) return {body_framing::bad, 0};
        const auto digit = static_cast<std::uint64_t>(c - '0');
        value = value > (k_max - digit) / 10 ? k_max : value * 10 + digit;
      }
      // Two lengths that disagree: the request-smuggling vector (RFC 9112 §6.3 rule 5).
      if (out.framing == body_framing::content_length && value != out.bytes) {
        return {body_framing::bad, 0};
      }
      out = {body_framing::content_length, value};
    }
    // "Content-Length:" or "Content-Length: ," names no length at all.
    if (!any) return {body_framing::bad, 0};
  }
  return out;
}

namespace detail {

head_scanner::head_scanner(const http_limits& limits, kind k)
    : max_head_(std::min(limits.max_head_size, k_max_limit)),
      max_line_(std::min(limits.max_line_length, k_max_limit)),
      max_fields_(std::min(limits.max_headers, k_max_limit)),
      kind_(k) {
  fields_ = std::make_unique<field_span[]>(max_fields_);
}

void head_scanner::reset() noexcept {
  line_start_ = scan_pos_ = head_len_ = field_count_ = 0;
  state_ = state::start_line;
  err_ = error::none;
}

parse_result head_scanner::fail(error e) noexcept {
  state_ = state::failed;
  err_ = e;
  return {0, parse_status::error, e};
}

parse_result head_scanner::scan(std::string_view received) noexcept {
  if (state_ == state::failed) return {0, parse_status::error, err_};
  if (state_ == state::complete) return {head_len_, parse_status::complete, error::none};
  assert(received.size() >= scan_pos_ && "received must only grow");
  if (received.size() < scan_pos_) return {0, parse_status::need_more, error::none};

  const char* data = received.data();
  const std::size_t n = received.size();
  for (;;) {
    // A line may hold max_line_ bytes plus CR LF; the head may not pass max_head_.
    const std::size_t line_cap = line_start_ + max_line_ + 2;
    const std::size_t stop = std::min({n, line_cap, max_head_});
    const void* lf =
        scan_pos_ < stop ? std::memchr(data + scan_pos_, '\n', stop - scan_pos_) : nullptr;
    if (lf == nullptr) {
      scan_pos_ = stop;
      // Head limit: fail as soon as it is passed without the end of the head.
      if (stop == max_head_ && max_head_ <= line_cap) return fail(error::head_too_large);
      // Line limit: the LF could only come after max_line_ + CR.
      if (stop == line_cap) {
        return fail(state_ == state::start_line && kind_ == kind::request
                        ? error::request_line_too_long
                        : error::header_line_too_long);
      }
      return {0, parse_status::need_more, error::none};
    }
    const auto pos = static_cast<std::size_t>(static_cast<const char*>(lf) - data);
    // RFC 9112 §2.2: lines end in CRLF; a lone LF is rejected, not tolerated.
    if (pos == line_start_ || data[pos - 1] != '\r') return fail(error::bare_lf);
    const std::string_view line(data + line_start_, pos - 1 - line_start_);
    const std::size_t next = pos + 1;

    error e = error::none;
    if (state_ == state::start_line) {
      // RFC 9112 §2.2: a server should ignore empty lines before the request line.
      if (!(line.empty() && kind_ == kind::request)) {
        e = kind_ == kind::request ? request_line(line) : status_line(line);
        state_ = state::fields;
      }
    } else if (line.empty()) {
      state_ = state::complete;
      head_len_ = next;
      line_start_ = scan_pos_ = next;
      return {next, parse_status::complete, error::none};
    } else {
      e = field_line(line);
    }
    if (e != error::none) return fail(e);
    line_start_ = scan_pos_ = next;
  }
}

error head_scanner::request_line(std::string_view line) noexcept {
  const std::size_t base = line_start_;
  // request-line = method SP request-target SP HTTP-version (RFC 9112 §3)
  std::size_t i = 0;
  while (i < line.size() && has(line[i], k_tchar)) ++i;
  // The method is a token followed by exactly one SP.
  if (i == 0 || i == line.size() || line[i] != ' ') return error::bad_request_line;
  std::size_t j = i + 1;
  while (j < line.size() && has(line[j], k_target)) ++j;
  // The target is non-empty, has no whitespace or controls, and is followed by one SP.
  if (j == i + 1 || j == line.size() || line[j] != ' ') return error::bad_request_line;
  const auto version = line.substr(j + 1);
  if (!parse_version(version, version_major_, version_minor_)) {
    // A control byte anywhere in the line is a request-line error, not a version one.
    return has_control(version) ? error::bad_request_line : error::bad_http_version;
  }
  parts_[0] = {u32(base), u32(i)};
  parts_[1] = {u32(base + i + 1), u32(j - i - 1)};
  parts_[2] = {u32(base + j + 1), u32(version.size())};
  return error::none;
}

error head_scanner::status_line(std::string_view line) noexcept {
  const std::size_t base = line_start_;
  // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4)
  const auto sp = line.find(' ');
  const auto version = line.substr(0, sp);
  if (!parse_version(version, version_major_, version_minor_)) {
    // Something that starts like a version but is not one is a version error.
    return version.substr(0, 5) == "HTTP/" ? error::bad_http_version : error::bad_status_line;
  }
  // The status code is exactly three digits after one SP.
  if (sp == std::string_view::npos || line.size() < sp + 4 || !is_digit(line[sp + 1]) ||
      !is_digit(line[sp + 2]) || !is_digit(line[sp + 3]))
    return error::bad_status_line;
  std::size_t reason = sp + 4;
  // After the code: end of line (tolerated) or SP then the reason phrase.
  if (reason < line.size() && line[reason++] != ' ') return error::bad_status_line;
  for (std::size_t k = reason; k < line.size(); ++k)
    // reason-phrase = *( HTAB / SP / VCHAR / obs-text )
    if (!has(line[k], k_value)) return error::bad_status_line;
  status_ = (line[sp + 1] - '0') * 100 + (line[sp + 2] - '0') * 10 + (line[sp + 3] - '0');
  parts_[0] = {u32(base), u32(version.size())};
  parts_[1] = {u32(base + sp + 1), 3};
  const std::size_t reason_len = reason < line.size() ? line.size() - reason : 0;
  parts_[2] = {u32(base + std::min(reason, line.size())), u32(reason_len)};
  return error::none;
}

error head_scanner::field_line(std::string_view line) noexcept {
  const std::size_t base = line_start_;
  // RFC 9112 §5.2: obs-fold (a line starting with SP or HT) is rejected.
  if (is_ows(line.front())) return error::obs_fold;
  std::size_t i = 0;
  while (i < line.size() && has(line[i], k_tchar)) ++i;
  // field-line = field-name ":" OWS field-value OWS (RFC 9112 §5)
  if (i == line.size()) return error::missing_header_colon;
  if (line[i] != ':') {
    std::size_t k = i;
    while (k < line.size() && is_ows(line[k])) ++k;
    if (k > i && k < line.size() && line[k] == ':') {
      // RFC 9112 §5.1: whitespace between name and colon must be rejected.
      return error::whitespace_before_colon;
    }
    // A name ending in whitespace without a colon after it lacks the colon.
    if (k > i && k == line.size()) return error::missing_header_colon;
    // Field names are tokens (RFC 9110 §5.1).
    return error::bad_header_name;
  }
  // Field names are non-empty tokens (RFC 9110 §5.1).
  if (i == 0) return error::bad_header_name;
  // Bounded by http_limits::max_headers.
  if (field_count_ == max_fields_) return error::too_many_headers;

  std::size_t v = i + 1;
  while (v < line.size() && is_ows(line[v])) ++v;
  std::size_t end = v;
  for (std::size_t k = v; k < line.size(); ++k) {
    // RFC 9110 §5.5: no NUL, CR, LF or other control byte (HT allowed) in a value.
    if (!has(line[k], k_value)) return error::bad_header_value;
    if (!is_ows(line[k])) end = k + 1;
  }
  fields_[field_count_++] = {{u32(base), u32(i)}, {u32(base + v), u32(end - v)}};
  return error::none;
}

}  // namespace detail

request_parser::request_parser(http_limits limits)
    : scanner_(limits, detail::head_scanner::kind::request),
      views_(std::make_unique<http_header[]>(std::min(limits.max_headers, k_max_limit))) {}

void request_parser::reset() noexcept {
  scanner_.reset();
  head_ = request_head{};
}

parse_result request_parser::parse(std::string_view received) noexcept {
  // Once complete, the head stays pointed at the buffer it was parsed from.
  if (scanner_.complete()) return scanner_.scan(received);
  const auto r = scanner_.scan(received);
  if (r.status != parse_status::complete) return r;
  const auto* p = scanner_.parts();
  head_.method_ = view_of(received, p[0]);
  head_.target_ = view_of(received, p[1]);
  const auto q = head_.target_.find('?');
  head_.path_ = head_.target_.substr(0, q);
  head_.query_ = q == std::string_view::npos ? std::string_view{} : head_.target_.substr(q + 1);
  head_.version_major_ = scanner_.version_major();
  head_.version_minor_ = scanner_.version_minor();
  const auto fields = scanner_.fields();
  for (std::size_t k = 0; k < fields.size(); ++k)
    views_[k] = {view_of(received, fields[k].name), view_of(received, fields[k].value)};
  head_.fields_ = {views_.get(), fields.size()};
  return r;
}

response_parser::response_parser(http_limits limits)
    : scanner_(limits, detail::head_scanner::kind::response),
      views_(std::make_unique<http_header[]>(std::min(limits.max_headers, k_max_limit))) {}

void response_parser::reset() noexcept {
  scanner_.reset();
  head_ = response_head{};
}

parse_result response_parser::parse(std::string_view received) noexcept {
  // Once complete, the head stays pointed at the buffer it was parsed from.
  if (scanner_.complete()) return scanner_.scan(received);
  const auto r = scanner_.scan(received);
  if (r.status != parse_status::complete) return r;
  head_.status_ = scanner_.status();
  head_.reason_ = view_of(received, scanner_.parts()[2]);
  head_.version_major_ = scanner_.version_major();
  head_.version_minor_ = scanner_.version_minor();
  const auto fields = scanner_.fields();
  for (std::size_t k = 0; k < fields.size(); ++k)
    views_[k] = {view_of(received, fields[k].name), view_of(received, fields[k].value)};
  head_.fields_ = {views_.get(), fields.size()};
  return r;
}

}  // namespace switchboard::protocol
