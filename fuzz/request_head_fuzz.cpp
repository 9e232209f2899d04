// Fuzzes the server side of the handshake as a server runs it: the request
// arrives in fuzzer-chosen chunks, the parser sees the whole growing buffer
// each time (a fresh allocation of exactly that size, so ASan catches any read
// past it and any view kept from an older buffer), and a complete head goes
// through validate_upgrade, select_subprotocol, parse_extensions and the
// writers. Invariants are checked with __builtin_trap().
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
  serve(one_shot.head());
  return 0;
}
