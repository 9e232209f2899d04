// libFuzzer harness for permessage-deflate negotiation: a random
// Sec-WebSocket-Extensions offer goes through parse_extensions, the server's
// negotiate_deflate under a fuzzer-chosen policy, and the client's
// validate_deflate_response of the server's own answer.
//
// Input layout:
//   byte 0      policy flags: bit 0 disabled, bit 1 server_no_context_takeover,
//               bit 2 client_no_context_takeover
//   byte 1      policy server_max_window_bits (8 + b % 8)
//   byte 2      policy client_max_window_bits (8 + b % 8)
//   the rest    the header field value
//
// Invariants (a violation traps):
//   - the accepted offer is the first permessage-deflate offer that is
//     acceptable on its own, and nothing is accepted when disabled
//   - the answer is a valid field value, parses, and names permessage-deflate
//     exactly once
//   - a client that made the accepted offer validates the answer and agrees
//     on the same parameters (except when it offered client_max_window_bits=8,
//     which our client never does: then response_deflate_window_8)
//   - the agreed windows are 8-15 and our deflater is never bound to 8
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "switchboard/protocol/deflate_negotiation.hpp"
#include "switchboard/protocol/http_head.hpp"

namespace {

using namespace switchboard::protocol;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// The client options that would have produced `offer` (parameters already
// known to be valid: the server accepted it).
deflate_client_options options_for(const extension& offer, bool& client_bits_8) {
  deflate_client_options o{.offer_client_max_window_bits = false};
  client_bits_8 = false;
  for (const auto& p : offer.params) {
    if (p.name == "server_no_context_takeover") o.server_no_context_takeover = true;
    if (p.name == "client_no_context_takeover") o.client_no_context_takeover = true;
    if (p.name == "server_max_window_bits")
      o.server_max_window_bits = static_cast<std::uint8_t>(std::stoi(p.value));
    if (p.name == "client_max_window_bits") {
      o.offer_client_max_window_bits = true;
      if (p.has_value) o.client_max_window_bits = static_cast<std::uint8_t>(std::stoi(p.value));
      client_bits_8 = o.client_max_window_bits == 8;
    }
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  deflate_server_policy policy;
  policy.enabled = (data[0] & 1) == 0;
  policy.server_no_context_takeover = data[0] & 2;
  policy.client_no_context_takeover = data[0] & 4;
  policy.server_max_window_bits = static_cast<std::uint8_t>(8 + data[1] % 8);
  policy.client_max_window_bits = static_cast<std::uint8_t>(8 + data[2] % 8);
  const std::string header(reinterpret_cast<const char*>(data + 3), size - 3);

  std::vector<extension> offers;
  if (parse_extensions(header, offers) != error::none) return 0;
  const auto agreement = negotiate_deflate(offers, policy);

  // Which offer should have been taken: the first acceptable on its own.
  const extension* first = nullptr;
  if (policy.enabled) {
    for (const auto& offer : offers) {
      if (negotiate_deflate(std::span<const extension>(&offer, 1), policy)) {
        first = &offer;
        break;
      }
    }
  }
  check(agreement.has_value() == (first != nullptr));
  if (!agreement) return 0;
  check(first->name == k_permessage_deflate);
  const auto again = negotiate_deflate(std::span<const extension>(first, 1), policy);
  check(again && again->params == agreement->params &&
        again->response.view() == agreement->response.view());

  const deflate_params& p = agreement->params;
  check(p.server_max_window_bits >= k_min_deflate_window_bits &&
        p.server_max_window_bits <= k_max_window_bits);
  check(p.client_max_window_bits >= k_min_window_bits &&
        p.client_max_window_bits <= k_max_window_bits);
  if (policy.server_no_context_takeover) check(p.server_no_context_takeover);
  if (policy.client_no_context_takeover) check(p.client_no_context_takeover);

  // The answer is a well-formed header value holding one permessage-deflate.
  const std::string answer(agreement->response.view());
  check(is_field_value(answer));
  std::vector<extension> parsed;
  check(parse_extensions(answer, parsed) == error::none);
  check(parsed.size() == 1 && parsed[0].name == k_permessage_deflate);

  // The client that sent this offer accepts the answer and agrees.
  bool client_bits_8 = false;
  const deflate_client_options options = options_for(*first, client_bits_8);
  std::optional<deflate_params> agreed;
  const error e = validate_deflate_response(parsed, options, agreed);
  if (client_bits_8) {
    check(e == error::response_deflate_window_8 && !agreed);
    return 0;
  }
  check(e == error::none && agreed.has_value());
  check(*agreed == p);

  // Our own client's rendering of the same options is accepted alike.
  const auto offer = write_deflate_offer(options);
  std::vector<extension> own;
  check(parse_extensions(offer.view(), own) == error::none);
  const auto own_agreement = negotiate_deflate(own, policy);
  check(own_agreement.has_value() == (options.server_max_window_bits != 8));
  if (own_agreement) {
    std::optional<deflate_params> own_agreed;
    std::vector<extension> own_answer;
    check(parse_extensions(own_agreement->response.view(), own_answer) == error::none);
    check(validate_deflate_response(own_answer, options, own_agreed) == error::none);
    check(*own_agreed == own_agreement->params);
  }
  return 0;
}
