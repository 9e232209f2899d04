// Fuzzes the client's whole handshake response path as websocket_client runs
// it (src/client/connect.cpp, finish_handshake and accept_deflate): the
// server's response head arrives in fuzzer-chosen chunks, validate_response
// checks status, Upgrade, Connection, the accept value and the subprotocol
// and extension names against what we offered, then validate_deflate_response
// checks the permessage-deflate answer against a fuzzer-chosen offer, and an
// agreement becomes codec settings. response_validator_fuzz covers the first
// half in more depth; this target adds the deflate answer, which no other
// target feeds with arbitrary server bytes.
//
// Input layout:
//   byte 0   bits 0-2: n, the number of schedule bytes (0 = all at once);
//            bit 3: offer permessage-deflate; bit 4: offer no subprotocols
//   byte 1   the deflate offer: bit 0 server_no_context_takeover, bit 1
//            client_no_context_takeover, bit 2 offer client_max_window_bits,
//            bits 3-5 server_max_window_bits - 8
//   byte 2   client_max_window_bits - 8 (bits 0-2)
//   n bytes  chunk sizes minus one, used in a cycle
//   the rest the response
//
// Invariants (a violation traps):
//   - every rejection is a handshake error and leaves no agreement;
//   - both validate_deflate_response overloads (parsed list, head) agree;
//   - an agreement means exactly one permessage-deflate in the answer, only
//     known parameters, windows of 8-15 no larger than we asked or offered
//     (ours 9-15: zlib cannot deflate with 8), our promises kept and the
//     server's requested confirmations present;
//   - no agreement without error means no permessage-deflate in the answer;
//   - the codec settings from an agreement work: a message deflated by each
//     side inflates back on the other.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <switchboard/protocol/deflate_codec.hpp>
#include <switchboard/protocol/deflate_negotiation.hpp>
#include <switchboard/protocol/extensions.hpp>
#include <switchboard/protocol/handshake.hpp>
#include <switchboard/protocol/http_head.hpp>
#include <vector>

#include "head_chunks.hpp"

namespace {

using namespace switchboard::protocol;

constexpr std::string_view k_key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view k_protocols[] = {"chat", "superchat"};
constexpr std::string_view k_offered_extensions[] = {k_permessage_deflate};
constexpr std::string_view k_message = "a message, a message, a message: \xE2\x82\xAC\xE2\x82\xAC";

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool known_param(std::string_view name) {
  return name == "server_no_context_takeover" || name == "client_no_context_takeover" ||
         name == "server_max_window_bits" || name == "client_max_window_bits";
}

// What one side deflates, the other inflates: client to server, then back.
void round_trip(const deflate_params& agreed) {
  for (const role sender : {role::client, role::server}) {
    const role receiver = sender == role::client ? role::server : role::client;
    deflate_options d;
    d.window_bits = deflate_window_bits(agreed, sender);
    d.no_context_takeover = deflate_no_context_takeover(agreed, sender);
    inflate_options i;
    i.window_bits = inflate_window_bits(agreed, receiver);
    i.no_context_takeover = inflate_no_context_takeover(agreed, receiver);
    deflater out(d);
    inflater in(i);
    for (int n = 0; n < 2; ++n) {  // twice: context takeover (or not) holds
      std::string compressed, plain;
      check(out.compress(k_message, compressed) == error::none);
      check(in.inflate_text(compressed, plain) == error::none);
      check(plain == k_message);
    }
  }
}

void check_deflate(const response_head& head, const deflate_client_options& offer) {
  std::optional<deflate_params> agreed;
  const error e = validate_deflate_response(head, offer, agreed);
  std::vector<extension> parsed;
  const error parse_error = parse_extensions(head, parsed);
  if (parse_error != error::none) {
    check(e == error::bad_extension_header && !agreed);
    return;
  }
  std::optional<deflate_params> again;
  check(validate_deflate_response(parsed, offer, again) == e && again == agreed);
  if (e != error::none) {
    check(is_handshake_error(e) && !agreed);
    return;
  }
  const auto named = std::count_if(parsed.begin(), parsed.end(), [](const extension& x) {
    return x.name == k_permessage_deflate;
  });
  if (!agreed) {
    check(named == 0);
    return;
  }
  check(named == 1);
  for (const auto& x : parsed) {
    if (x.name != k_permessage_deflate) continue;
    for (const auto& p : x.params) check(known_param(p.name));
  }
  const deflate_params& p = *agreed;
  check(p.server_max_window_bits >= k_min_window_bits &&
        p.server_max_window_bits <= k_max_window_bits);
  check(p.server_max_window_bits <= offer.server_max_window_bits);
  check(p.client_max_window_bits >= k_min_deflate_window_bits &&
        p.client_max_window_bits <= k_max_window_bits);
  if (!offer.offer_client_max_window_bits) {
    check(p.client_max_window_bits == k_max_window_bits);
  } else {
    // An offer of 8 goes out as 9 (zlib cannot deflate with 8).
    check(p.client_max_window_bits <=
          std::max(offer.client_max_window_bits, k_min_deflate_window_bits));
  }
  if (offer.server_no_context_takeover) check(p.server_no_context_takeover);
  if (offer.client_no_context_takeover) check(p.client_no_context_takeover);
  // What websocket_client builds its codecs from.
  check(deflate_window_bits(p, role::client) == p.client_max_window_bits);
  check(inflate_window_bits(p, role::client) >= p.server_max_window_bits);
  round_trip(p);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const std::size_t schedule_len = data[0] & 7;
  const bool offer_deflate = (data[0] & 8) != 0;
  const bool offer_no_protocols = (data[0] & 16) != 0;
  deflate_client_options offer;
  offer.server_no_context_takeover = (data[1] & 1) != 0;
  offer.client_no_context_takeover = (data[1] & 2) != 0;
  offer.offer_client_max_window_bits = (data[1] & 4) != 0;
  offer.server_max_window_bits = static_cast<std::uint8_t>(8 + ((data[1] >> 3) & 7));
  offer.client_max_window_bits = static_cast<std::uint8_t>(8 + (data[2] & 7));
  if (size < 3 + schedule_len) return 0;
  const std::uint8_t* schedule = data + 3;
  const std::string_view input(reinterpret_cast<const char*>(data + 3 + schedule_len),
                               size - 3 - schedule_len);

  // The client's defaults (client_options::response_limits).
  response_parser parser{http_limits{}};
  std::unique_ptr<char[]> buffer;
  const parse_result r =
      switchboard::fuzz::feed_in_chunks(parser, input, schedule, schedule_len, buffer, check);
  if (r.status != parse_status::complete) return 0;

  const response_head& head = parser.head();
  const auto protocols =
      offer_no_protocols ? std::span<const std::string_view>{} : std::span(k_protocols);
  const auto extensions =
      offer_deflate ? std::span(k_offered_extensions) : std::span<const std::string_view>{};
  handshake_response response;
  const error e = validate_response(head, k_key, protocols, extensions, response);
  if (e != error::none) {
    check(is_handshake_error(e));
    return 0;
  }
  check(response.subprotocol.empty() ||
        std::find(protocols.begin(), protocols.end(), response.subprotocol) != protocols.end());
  if (!offer_deflate) {
    check(head.count(k_extensions_field) == 0);  // nothing offered, nothing may come back
    return 0;
  }
  check_deflate(head, offer);
  return 0;
}
