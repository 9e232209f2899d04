// Fuzzes the server side of the handshake as a server runs it: the request
// arrives in fuzzer-chosen chunks, the parser sees the whole growing buffer
// each time (a fresh allocation of exactly that size, so ASan catches any read
// past it and any view kept from an older buffer), and a complete head goes
// through validate_upgrade, select_subprotocol, parse_extensions, the
// writers, and request_body_length (checked against a model that reads
// Content-Length as decimal strings, not numbers). Invariants are checked
// with __builtin_trap().
//
// Input layout: byte 0 = control. Bits 0-2: n, the number of schedule bytes
// that follow (0 = feed everything at once); bit 3: small limits. The next n
// bytes are chunk sizes minus one, used in a cycle. The rest is the request.
#include <switchboard/protocol/extensions.hpp>
#include <switchboard/protocol/handshake.hpp>
#include <switchboard/protocol/http_head.hpp>

#include "head_chunks.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace switchboard::protocol;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool same_head(const request_head& a, const request_head& b) {
  if (a.method() != b.method() || a.target() != b.target() || a.path() != b.path() ||
      a.query() != b.query() || a.version_major() != b.version_major() ||
      a.version_minor() != b.version_minor() || a.headers().size() != b.headers().size())
    return false;
  for (std::size_t i = 0; i < a.headers().size(); ++i)
    if (a.headers()[i].name != b.headers()[i].name || a.headers()[i].value != b.headers()[i].value)
      return false;
  return true;
}

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

// What a complete head promises, whatever the input was.
void check_head(const request_head& head, std::string_view input, std::size_t consumed,
                const http_limits& limits) {
  check(consumed >= 4 && consumed <= input.size() && consumed <= limits.max_head_size);
  check(input.substr(consumed - 4, 4) == "\r\n\r\n");
  check(is_token(head.method()));
  check(!head.target().empty() && head.target().find(' ') == std::string_view::npos);
  check(head.path().size() <= head.target().size());
  check(head.headers().size() <= limits.max_headers);
  for (const auto& h : head.headers()) {
    check(is_token(h.name) && is_field_value(h.value));
    check(h.value.empty() || (!is_ows(h.value.front()) && !is_ows(h.value.back())));
    check(head.count(h.name) >= 1 && head.find(h.name).has_value());
  }
}

// The decimal value of a Content-Length element as request_body_length must
// read it: leading zeros dropped, and anything past 2^64 - 1 saturated to it.
// Strings, not arithmetic, so the model shares no overflow logic with the code.
std::string saturated_decimal(std::string_view digits) {
  constexpr std::string_view k_max = "18446744073709551615";
  while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
  if (digits.size() > k_max.size() || (digits.size() == k_max.size() && digits > k_max))
    return std::string(k_max);
  return std::string(digits);
}

// request_body_length against the rules of RFC 9112 §6.3 as its header states them.
void check_body_length(const request_head& head) {
  const body_length body = request_body_length(head);
  bool transfer_coded = false;
  bool any_length = false;
  bool bad = false;
  std::optional<std::string> value;  // the one decimal value every element has
  for (const auto& h : head.headers()) {
    if (ascii_iequals(h.name, "Transfer-Encoding")) transfer_coded = true;
    if (!ascii_iequals(h.name, "Content-Length")) continue;
    any_length = true;
    bool elements = false;
    // The list, split by hand: elements between commas, OWS trimmed, empty ones skipped.
    std::size_t start = 0;
    while (start <= h.value.size()) {
      std::size_t comma = h.value.find(',', start);
      if (comma == std::string_view::npos) comma = h.value.size();
      std::string_view e = h.value.substr(start, comma - start);
      while (!e.empty() && is_ows(e.front())) e.remove_prefix(1);
      while (!e.empty() && is_ows(e.back())) e.remove_suffix(1);
      start = comma + 1;
      if (e.empty()) continue;
      elements = true;
      if (e.find_first_not_of("0123456789") != std::string_view::npos) {
        bad = true;
        continue;
      }
      const std::string v = saturated_decimal(e);
      if (value && *value != v) bad = true;
      value = v;
    }
    if (!elements) bad = true;
  }
  if (transfer_coded) {
    check(body.framing == body_framing::transfer_coded && body.bytes == 0);
  } else if (!any_length) {
    check(body.framing == body_framing::none && body.bytes == 0);
  } else if (bad) {
    check(body.framing == body_framing::bad && body.bytes == 0);
  } else {
    check(body.framing == body_framing::content_length && value.has_value());
    check(std::to_string(body.bytes) == *value);
  }
}

// Runs everything a server does with a complete head.
void serve(const request_head& head) {
  std::vector<extension> extensions;
  const error parsed = parse_extensions(head, extensions);
  upgrade_request up;
  const error e = validate_upgrade(head, up);
  std::string out;
  if (e != error::none) {
    check(is_handshake_error(e));
    write_rejection(out, e);
    response_parser rp;
    check(rp.parse(out).status == parse_status::complete);
    check(rp.head().status() == http_status_for(e));
    return;
  }
  check(up.head == &head && is_valid_key(up.key) && parsed == error::none);
  check(head.has_token("Upgrade", "websocket") && head.has_token("Connection", "upgrade"));
  const std::string_view supported[] = {"chat", "superchat", "v2.switchboard"};
  const auto chosen = select_subprotocol(head, supported);
  if (chosen) check(head.count("Sec-WebSocket-Protocol") > 0);
  (void)head.cookie("session");
  const std::string_view extension_names[] = {"permessage-deflate"};
  // A parsed value is always safe to echo; an echoed Sec-WebSocket-* name would not be.
  const http_header extra[] = {{"X-Echo", head.headers().front().value}};
  check(write_accept_response(out, up.key,
                              {.subprotocol = chosen.value_or(""),
                               .extensions = "permessage-deflate",
                               .extra_headers = extra}));
  // Our own 101 must satisfy a client that offered what we support.
  response_parser rp;
  check(rp.parse(out).status == parse_status::complete);
  handshake_response hr;
  check(validate_response(rp.head(), up.key, supported, extension_names, hr) == error::none);
  check(hr.subprotocol == chosen.value_or(""));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t schedule_len = data[0] & 7;
  const bool small = (data[0] & 8) != 0;
  if (size < 1 + schedule_len) return 0;
  const std::uint8_t* schedule = data + 1;
  const std::string_view input(reinterpret_cast<const char*>(data + 1 + schedule_len),
                               size - 1 - schedule_len);
  const http_limits limits = small ? http_limits{512, 8, 128} : http_limits{};

  request_parser chunked(limits);
  std::unique_ptr<char[]> buf;
  const parse_result r = switchboard::fuzz::feed_in_chunks(chunked, input, schedule, schedule_len,
                                                           buf, check);

  // Chunking must not change the outcome.
  request_parser one_shot(limits);
  const auto whole = one_shot.parse(input);
  check(whole.status == r.status && whole.err == r.err && whole.consumed == r.consumed);
  if (r.status == parse_status::error) {
    check(is_handshake_error(r.err));
    check(chunked.parse(input).err == r.err);  // sticky
    return 0;
  }
  if (r.status != parse_status::complete) return 0;
  check(same_head(chunked.head(), one_shot.head()));
  check_head(one_shot.head(), input, whole.consumed, limits);
  // Parsing only the head gives the same head: the bytes after it are not read.
  request_parser head_only(limits);
  check(head_only.parse(input.substr(0, whole.consumed)).consumed == whole.consumed);
  check(same_head(head_only.head(), one_shot.head()));
  check_body_length(one_shot.head());
  serve(one_shot.head());
  return 0;
}
