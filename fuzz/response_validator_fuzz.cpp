// Fuzzes the client side of the handshake: the server's response arrives in
// fuzzer-chosen chunks, the parser sees the whole growing buffer each time (a
// fresh allocation of exactly that size, so ASan catches reads past it), and
// a complete head is checked by validate_response with a fixed key and fixed
// offers. Invariants are checked with __builtin_trap().
//
// Input layout: byte 0 = control. Bits 0-2: n, the number of schedule bytes
// that follow (0 = feed everything at once); bit 3: small limits; bit 4: offer
// no subprotocols. The next n bytes are chunk sizes minus one, used in a
// cycle. The rest is the response.
#include <switchboard/protocol/extensions.hpp>
#include <switchboard/protocol/handshake.hpp>
#include <switchboard/protocol/http_head.hpp>

#include "head_chunks.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace {

using namespace switchboard::protocol;

// The RFC 6455 §1.3 key, so seeds can carry its accept value.
constexpr std::string_view k_key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view k_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
constexpr std::string_view k_protocols[] = {"chat", "superchat"};
constexpr std::string_view k_extensions[] = {"permessage-deflate", "x-webkit-deflate-frame"};

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool same_head(const response_head& a, const response_head& b) {
  if (a.status() != b.status() || a.reason() != b.reason() ||
      a.version_major() != b.version_major() || a.version_minor() != b.version_minor() ||
      a.headers().size() != b.headers().size())
    return false;
  for (std::size_t i = 0; i < a.headers().size(); ++i)
    if (a.headers()[i].name != b.headers()[i].name || a.headers()[i].value != b.headers()[i].value)
      return false;
  return true;
}

template <class T>
bool contains(std::span<const T> list, const T& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

void validate(const response_head& head, std::span<const std::string_view> protocols) {
  handshake_response out;
  const error e = validate_response(head, k_key, protocols, k_extensions, out);
  check(out.status == head.status());
  std::vector<extension> parsed;
  const error parse_error = parse_extensions(head, parsed);
  if (e != error::none) {
    check(is_handshake_error(e));
    check(out.subprotocol.empty() && out.extensions.empty());
    if (e == error::bad_extension_header) check(parse_error == error::bad_extension_header);
    return;
  }
  check(head.status() == 101);
  check(head.has_token("Upgrade", "websocket") && head.has_token("Connection", "upgrade"));
  check(head.count("Sec-WebSocket-Accept") == 1 && head.find("Sec-WebSocket-Accept") == k_accept);
  check(head.count("Sec-WebSocket-Protocol") <= 1);
  check(out.subprotocol.empty() || contains(protocols, out.subprotocol));
  check(parse_error == error::none);
  for (const auto& ext : parsed) check(contains<std::string_view>(k_extensions, ext.name));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t schedule_len = data[0] & 7;
  const bool small = (data[0] & 8) != 0;
  const bool offer_none = (data[0] & 16) != 0;
  if (size < 1 + schedule_len) return 0;
  const std::uint8_t* schedule = data + 1;
  const std::string_view input(reinterpret_cast<const char*>(data + 1 + schedule_len),
                               size - 1 - schedule_len);
  const http_limits limits = small ? http_limits{512, 8, 128} : http_limits{};

  response_parser chunked(limits);
  std::unique_ptr<char[]> buf;
  const parse_result r = switchboard::fuzz::feed_in_chunks(chunked, input, schedule, schedule_len,
                                                           buf, check);

  // Chunking must not change the outcome.
  response_parser one_shot(limits);
  const auto whole = one_shot.parse(input);
  check(whole.status == r.status && whole.err == r.err && whole.consumed == r.consumed);
  if (r.status != parse_status::complete) return 0;
  check(whole.consumed >= 4 && input.substr(whole.consumed - 4, 4) == "\r\n\r\n");
  check(same_head(chunked.head(), one_shot.head()));
  check(one_shot.head().status() >= 0 && one_shot.head().status() <= 999);
  validate(one_shot.head(), offer_none ? std::span<const std::string_view>{} : k_protocols);
  return 0;
}
