// switchboard/protocol/http_head.hpp — incremental parsers for HTTP/1.1 heads.
//
// The WebSocket opening handshake is one HTTP/1.1 request head and one
// response head (RFC 6455 §4, syntax from RFC 9112 §2-5). request_parser reads
// the client's head on the server; response_parser reads the server's head on
// the client. Both are sans-I/O: the caller hands in every byte received so far
// and gets back {consumed, status, err}. They stop at the blank line that ends
// the head, so bytes after it (pipelined WebSocket frames) stay with the caller.
//
// Parsing never allocates: each parser owns two fixed arrays sized by
// http_limits::max_headers, allocated once at construction and reused after
// reset(). Parsed heads hold string_views into the caller's buffer.
//
// Thread-safety: a parser, and the head it exposes, is used by one thread at a
// time; distinct parsers are independent. The free functions are stateless.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <switchboard/protocol/error.hpp>
#include <switchboard/protocol/export.hpp>

namespace switchboard::protocol {

// Bounds that keep a hostile peer from making the parser buffer without end.
// Defaults fit every browser handshake with room for large cookies.
struct http_limits {
  // Whole head, first byte through the final CRLF CRLF. Over it: head_too_large.
  std::size_t max_head_size = 16384;
  // Header fields in one head. Over it: too_many_headers.
  std::size_t max_headers = 64;
  // One line, CRLF excluded. Over it: request_line_too_long for the request
  // line, header_line_too_long for the status line and header lines.
  std::size_t max_line_length = 8192;
};

// One header field. `value` has its leading and trailing OWS removed.
struct http_header {
  std::string_view name;
  std::string_view value;
};

enum class parse_status : std::uint8_t { complete, need_more, error };

// consumed: the head's length in bytes (final CRLF CRLF included) when status is
// complete, else 0. err: error::none unless status is error.
struct parse_result {
  std::size_t consumed;
  parse_status status;
  error err;
};

// True for an RFC 9110 §5.6.2 tchar: ALPHA / DIGIT / one of !#$%&'*+-.^_`|~
constexpr bool is_tchar(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != '\0' && std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// True if `s` is a non-empty token (RFC 9110 §5.6.2).
SWITCHBOARD_PROTOCOL_EXPORT bool is_token(std::string_view s) noexcept;

// True if `s` may be sent as a header field value (RFC 9110 §5.5): visible
// ASCII, obs-text, SP and HT only, so no CR, LF, NUL or other control. Used to
// refuse header injection in everything the writers put on the wire.
SWITCHBOARD_PROTOCOL_EXPORT bool is_field_value(std::string_view s) noexcept;

// ASCII case-insensitive equality, as HTTP field names and most tokens use.
SWITCHBOARD_PROTOCOL_EXPORT bool ascii_iequals(std::string_view a, std::string_view b) noexcept;

// Walks a comma-separated list (RFC 9110 §5.6.1): each element with OWS
// trimmed, empty elements skipped. Holds a view; the list must outlive it.
class SWITCHBOARD_PROTOCOL_EXPORT list_cursor {
 public:
  explicit list_cursor(std::string_view list) noexcept : rest_(list) {}
  // Stores the next non-empty element in `out`; false when none is left.
  bool next(std::string_view& out) noexcept;

 private:
  std::string_view rest_;
};

// Header lookup shared by request and response heads. Views point into the
// buffer that was parsed.
class SWITCHBOARD_PROTOCOL_EXPORT header_fields {
 public:
  // Every field in wire order, duplicates included.
  std::span<const http_header> headers() const noexcept { return fields_; }
  // The value of the first field named `name` (ASCII case-insensitive), or
  // nullopt. Use count() to detect repeated fields.
  std::optional<std::string_view> find(std::string_view name) const noexcept;
  // How many fields are named `name` (ASCII case-insensitive).
  std::size_t count(std::string_view name) const noexcept;
  // True if any field named `name` holds `token` as an element of its comma-
  // separated list, both compared ASCII case-insensitively, OWS tolerated:
  // has_token("Connection", "upgrade") is true for "keep-alive, Upgrade".
  bool has_token(std::string_view name, std::string_view token) const noexcept;

 private:
  friend class request_parser;
  friend class response_parser;
  std::span<const http_header> fields_;
};

// A parsed request head. Valid while its parser is neither reset nor fed
// again and the parsed buffer is unchanged and alive.
class SWITCHBOARD_PROTOCOL_EXPORT request_head : public header_fields {
 public:
  std::string_view method() const noexcept { return method_; }
  // The request-target as sent; path() is the part before the first '?',
  // query() the part after it ("" if there is no '?').
  std::string_view target() const noexcept { return target_; }
  std::string_view path() const noexcept { return path_; }
  std::string_view query() const noexcept { return query_; }
  int version_major() const noexcept { return version_major_; }
  int version_minor() const noexcept { return version_minor_; }
  // The value of the cookie named `name` (case-sensitive) from the Cookie
  // fields (RFC 6265 §5.4), first match wins; one pair of surrounding DQUOTEs
  // is removed. nullopt if no such cookie.
  std::optional<std::string_view> cookie(std::string_view name) const noexcept;

 private:
  friend class request_parser;
  std::string_view method_, target_, path_, query_;
  int version_major_ = 0;
  int version_minor_ = 0;
};

// How a request head says its body is delimited (RFC 9112 §6.1-6.3).
enum class body_framing : std::uint8_t {
  none,            // neither Content-Length nor Transfer-Encoding: no body (§6.3 rule 7)
  content_length,  // Content-Length fields that all agree: `bytes` long
  transfer_coded,  // a Transfer-Encoding field: the body is chunked or otherwise coded
  bad,             // a Content-Length that is malformed or disagrees with itself
};

// The outcome of request_body_length.
struct body_length {
  body_framing framing = body_framing::none;
  // The body's size when framing is content_length, else 0. A value past
  // 2^64 - 1 reads as 2^64 - 1, more than any limit can allow.
  std::uint64_t bytes = 0;
};

// Decides how long the body after `head` is, from its Content-Length and
// Transfer-Encoding fields (RFC 9112 §6.3, RFC 9110 §8.6). The rules:
//   - any Transfer-Encoding field (whatever its value, even empty) gives
//     transfer_coded, with or without Content-Length: it overrides that field
//     (§6.3 rule 3), and a request carrying both is a smuggling attempt;
//   - every Content-Length field is a comma-separated list (RFC 9110 §5.6.1)
//     of elements that are 1*DIGIT: no sign, no space inside, no hex; leading
//     zeros are allowed ("005" is 5);
//   - all elements of all Content-Length fields must have the same value, else
//     bad (two lengths are the classic request-smuggling vector); values that
//     differ only past 2^64 - 1 count as the same, since both saturate;
//   - a Content-Length field with no element ("" or ",") is bad.
// Pure: reads only `head`, which must be valid (see request_head).
SWITCHBOARD_PROTOCOL_EXPORT body_length request_body_length(const request_head& head) noexcept;

// A parsed response head, with the same lifetime rules as request_head.
class response_head : public header_fields {
 public:
  int status() const noexcept { return status_; }
  std::string_view reason() const noexcept { return reason_; }
  int version_major() const noexcept { return version_major_; }
  int version_minor() const noexcept { return version_minor_; }

 private:
  friend class response_parser;
  std::string_view reason_;
  int status_ = 0;
  int version_major_ = 0;
  int version_minor_ = 0;
};

namespace detail {

// Offsets into the received buffer: the buffer may move between calls (the
// caller appends), so nothing is kept as a pointer until the head is complete.
struct text_span {
  std::uint32_t off = 0;
  std::uint32_t len = 0;
};

struct field_span {
  text_span name;
  text_span value;
};

// The line scanner shared by both parsers: finds each CRLF-terminated line
// once, validates it, and records offsets. Internal; use the parsers.
class SWITCHBOARD_PROTOCOL_EXPORT head_scanner {
 public:
  enum class kind : std::uint8_t { request, response };

  head_scanner(const http_limits& limits, kind k);
  parse_result scan(std::string_view received) noexcept;
  void reset() noexcept;
  bool complete() const noexcept { return state_ == state::complete; }

  // Valid after scan() returned complete. Request: method, target, version.
  // Response: version, status code, reason.
  const text_span* parts() const noexcept { return parts_; }
  int version_major() const noexcept { return version_major_; }
  int version_minor() const noexcept { return version_minor_; }
  int status() const noexcept { return status_; }
  std::span<const field_span> fields() const noexcept { return {fields_.get(), field_count_}; }

 private:
  enum class state : std::uint8_t { start_line, fields, complete, failed };

  parse_result fail(error e) noexcept;
  error request_line(std::string_view line) noexcept;
  error status_line(std::string_view line) noexcept;
  error field_line(std::string_view line) noexcept;

  std::unique_ptr<field_span[]> fields_;
  std::size_t max_head_;
  std::size_t max_line_;
  std::size_t max_fields_;
  std::size_t line_start_ = 0;  // first byte of the line being scanned
  std::size_t scan_pos_ = 0;    // where the search for LF resumes
  std::size_t head_len_ = 0;
  std::size_t field_count_ = 0;
  text_span parts_[3];
  int version_major_ = 0;
  int version_minor_ = 0;
  int status_ = 0;
  kind kind_;
  state state_ = state::start_line;
  error err_ = error::none;
};

}  // namespace detail

// Incremental request-head parser (RFC 9112 §2-5), server side.
//
// Rejected, each with its own error: a head over max_head_size (as soon as
// more than that many bytes have arrived without its end), more than
// max_headers fields, a line over max_line_length, a method or field name that
// is not a token, a field line without ':', whitespace before the colon, an
// obs-fold continuation line, LF without CR (as soon as it arrives), NUL or
// another control character in the request line or a value (HT is allowed in
// values), and a version that is not HTTP/DIGIT.DIGIT. Empty lines before the
// request line are skipped (RFC 9112 §2.2). Non-ASCII bytes are accepted in
// the target and in values (obs-text).
class SWITCHBOARD_PROTOCOL_EXPORT request_parser {
 public:
  // Limits are clamped to 2^31 so offsets fit in 32 bits.
  explicit request_parser(http_limits limits = {});
  request_parser(request_parser&&) noexcept = default;
  request_parser& operator=(request_parser&&) noexcept = default;

  // Parses `received`: every byte received so far, starting at the head's
  // first byte. Call again with the same bytes plus more after need_more;
  // scanning resumes where it stopped, so feeding N bytes costs O(N) overall.
  // complete: head() is valid and `consumed` is the head's length; keep the
  // bytes after it. need_more: consumed is 0. error: `err` names the rule
  // broken and http_status_for(err) the answer; the error is sticky until
  // reset(). After complete, calling again returns the same result without
  // reading `received`; head() keeps pointing into the buffer that completed it.
  // REQUIRES: bytes given before are unchanged and received.size() never shrinks.
  parse_result parse(std::string_view received) noexcept;

  // The parsed head; valid after parse() returned complete, while the buffer
  // passed to it stays unchanged. Empty before that.
  const request_head& head() const noexcept { return head_; }

  // Forgets the current head and error, keeping the arrays, for the next head.
  void reset() noexcept;

 private:
  detail::head_scanner scanner_;
  std::unique_ptr<http_header[]> views_;
  request_head head_;
};

// Incremental response-head parser, client side. Same contract and rules as
// request_parser, with a status line "HTTP/x.y SP 3DIGIT [SP reason]" instead
// of a request line (bad_status_line, bad_http_version; the missing SP before
// an empty reason is tolerated). An over-long status line is
// header_line_too_long. No empty lines are skipped before the status line.
class SWITCHBOARD_PROTOCOL_EXPORT response_parser {
 public:
  explicit response_parser(http_limits limits = {});
  response_parser(response_parser&&) noexcept = default;
  response_parser& operator=(response_parser&&) noexcept = default;

  // As request_parser::parse.
  parse_result parse(std::string_view received) noexcept;
  const response_head& head() const noexcept { return head_; }
  void reset() noexcept;

 private:
  detail::head_scanner scanner_;
  std::unique_ptr<http_header[]> views_;
  response_head head_;
};

}  // namespace switchboard::protocol
