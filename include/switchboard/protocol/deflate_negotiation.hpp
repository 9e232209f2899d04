// switchboard/protocol/deflate_negotiation.hpp — negotiating permessage-deflate
// (RFC 7692 §5, §7.1) in the opening handshake, for both roles.
//
// Server: negotiate_deflate() takes the client's offers (parsed with
// parse_extensions, in order) and the server's policy, accepts the first offer
// it can honour and returns the agreed parameters with the exact
// Sec-WebSocket-Extensions value to answer with. An offer with an unknown,
// repeated or out-of-range parameter is declined (skipped), never an error:
// the handshake then goes on with the next offer, or without compression.
//
// Client: write_deflate_offer() builds the offer from deflate_client_options;
// validate_deflate_response() checks the server's answer against what was
// offered and returns the agreed parameters, or a distinct error for each way
// the answer can be wrong (the client must then fail the connection, §5).
//
// Names and parameters are compared case-sensitively, like every extension
// name in this layer (extensions.hpp).
//
// zlib cannot deflate with an 8-bit (256-byte) window: deflateInit2() refuses
// raw windowBits -8. Where 8 would bind the side this end compresses, the rule
// (implemented in deflate_negotiation.cpp) is:
//   - server, client offered server_max_window_bits=8: the answer must carry a
//     value <= 8 (§7.1.2.1), so 9 is not allowed there: the offer is declined.
//   - server, policy asks for 8 on its own deflater: answered as 9, which
//     §7.1.2.1 allows when the offer did not name server_max_window_bits.
//   - client, asked to limit itself to 8: offered as 9 (the value in an offer
//     is ours to choose, §7.1.2.2).
//   - client, server answers client_max_window_bits=8: cannot be honoured and
//     cannot be declined; error::response_deflate_window_8.
// Inflating is unaffected: an inflater with a larger window decodes anything
// a smaller one does, and inflaters here never use fewer than 9 bits.
//
// Thread-safety: stateless; safe from any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "switchboard/protocol/error.hpp"
#include "switchboard/protocol/export.hpp"
#include "switchboard/protocol/extensions.hpp"
#include "switchboard/protocol/frame.hpp"
#include "switchboard/protocol/http_head.hpp"

namespace switchboard::protocol {

// The extension token (RFC 7692 §5).
inline constexpr std::string_view k_permessage_deflate = "permessage-deflate";

// LZ77 window sizes as base-2 logarithms: 8-15 on the wire (§7.1.2), 9-15 for
// a zlib deflater; 15 (32 KiB) when a parameter is absent.
inline constexpr std::uint8_t k_min_window_bits = 8;
inline constexpr std::uint8_t k_min_deflate_window_bits = 9;
inline constexpr std::uint8_t k_max_window_bits = 15;

// What both ends agreed, named by direction as on the wire.
struct deflate_params {
  // The server resets its compression context after every message (§7.1.1.1):
  // the server may compress with a shared, per-thread deflater, and the
  // client may inflate each message with a fresh context.
  bool server_no_context_takeover = false;
  // The client resets its context after every message (§7.1.1.2): the server
  // may inflate with a shared, per-thread inflater.
  bool client_no_context_takeover = false;
  // Largest window the server deflates with (§7.1.2.1), 8-15.
  std::uint8_t server_max_window_bits = k_max_window_bits;
  // Largest window the client deflates with (§7.1.2.2), 8-15.
  std::uint8_t client_max_window_bits = k_max_window_bits;

  bool operator==(const deflate_params&) const = default;
};

// A Sec-WebSocket-Extensions value for one permessage-deflate element, held
// inline (the longest possible one is 126 bytes), so negotiating allocates
// nothing and the result can be passed around by value.
class SWITCHBOARD_PROTOCOL_EXPORT deflate_header {
 public:
  std::string_view view() const noexcept { return {data_.data(), size_}; }
  // Appends `text`; REQUIRES: it fits (the writers here never overflow).
  void append(std::string_view text) noexcept;

 private:
  std::array<char, 128> data_{};
  std::uint8_t size_ = 0;
};

// --- Server -----------------------------------------------------------------

struct deflate_server_policy {
  // False: never negotiate permessage-deflate.
  bool enabled = true;
  // Always answer server_no_context_takeover (§7.1.1.1 lets the server add it
  // unasked). The server then compresses every message from scratch and can
  // use one shared deflater per thread. When false, the server still agrees
  // to it whenever the client asks for it.
  bool server_no_context_takeover = false;
  // Always answer client_no_context_takeover (§7.1.1.2 lets the server add it
  // unasked). The server then inflates with one shared inflater per thread:
  // an idle connection holds no zlib state. When false, the server echoes it
  // whenever the client offers it (the client promised it anyway).
  bool client_no_context_takeover = false;
  // Largest window the server's deflater uses, 9-15 (8 is treated as 9).
  // Answered as server_max_window_bits when below 15 or below the client's
  // request. Deflater memory is about 4 << bits bytes plus memLevel's share.
  std::uint8_t server_max_window_bits = k_max_window_bits;
  // Largest window the client may deflate with, 9-15 (8 is treated as 9,
  // because most clients deflate with zlib and would fail on 8). Only sent
  // when the client offered client_max_window_bits (§7.1.2.2: the server
  // MUST NOT send it otherwise). Bounds the server's inflater window
  // (1 << bits bytes) for connections with context takeover.
  std::uint8_t client_max_window_bits = k_max_window_bits;

  // "Shared" mode: no context takeover in either direction, so one deflater
  // and one inflater per event-loop thread serve every connection.
  static constexpr deflate_server_policy shared() noexcept {
    return {.server_no_context_takeover = true, .client_no_context_takeover = true};
  }
  // "Dedicated" mode: context takeover both ways where the client agrees,
  // with per-connection zlib state of the given window sizes.
  static constexpr deflate_server_policy dedicated(std::uint8_t server_bits = 15,
                                                   std::uint8_t client_bits = 15) noexcept {
    return {.server_max_window_bits = server_bits, .client_max_window_bits = client_bits};
  }
};

struct deflate_agreement {
  deflate_params params;
  deflate_header response;  // the Sec-WebSocket-Extensions value to answer with
};

// Picks the first permessage-deflate offer in `offers` (the client's order of
// preference, RFC 6455 §9.1, RFC 7692 §5.1) that the server can honour under
// `policy` and returns what was agreed, or nullopt to answer without the
// extension. Offers of other extensions are skipped. An offer is declined
// when a parameter is unknown, repeated, has a value where none is allowed
// (*_no_context_takeover) or lacks one where one is required
// (server_max_window_bits), when a window value is not 8-15 written without
// leading zeros (§7.1.2.1-2), or when it asks for server_max_window_bits=8.
// Does not allocate.
SWITCHBOARD_PROTOCOL_EXPORT std::optional<deflate_agreement> negotiate_deflate(
    std::span<const extension> offers, const deflate_server_policy& policy) noexcept;

// The same over a request head: parses every Sec-WebSocket-Extensions field.
// Returns nullopt also when there is none or it does not parse (validate_upgrade
// already rejects the latter). Allocates the parsed list.
SWITCHBOARD_PROTOCOL_EXPORT std::optional<deflate_agreement> negotiate_deflate(
    const header_fields& request, const deflate_server_policy& policy);

// --- Client -----------------------------------------------------------------

struct deflate_client_options {
  // Ask the server to compress every message from scratch (§7.1.1.1): the
  // client may then drop its inflate context between messages.
  bool server_no_context_takeover = false;
  // Promise to compress every message from scratch (§7.1.1.2); lets the
  // server use a shared inflater for us.
  bool client_no_context_takeover = false;
  // Ask the server to limit its window (§7.1.2.1), 8-15; 15 sends nothing.
  std::uint8_t server_max_window_bits = k_max_window_bits;
  // Offer client_max_window_bits (§7.1.2.2), telling the server it may limit
  // our window: bare when client_max_window_bits is 15, else with that value
  // (9-15; 8 is sent as 9 because zlib cannot deflate with 8).
  bool offer_client_max_window_bits = true;
  std::uint8_t client_max_window_bits = k_max_window_bits;
};

// The offer for `options`, e.g. "permessage-deflate; client_max_window_bits".
// Pass it as client_request_options::extensions.
SWITCHBOARD_PROTOCOL_EXPORT deflate_header
write_deflate_offer(const deflate_client_options& options) noexcept;

// Checks the server's answer (every extension of every Sec-WebSocket-
// Extensions field of the 101, parsed in order) against the offer we sent
// with `offered`, and sets `agreed` to the parameters both ends now use, or
// to nullopt when the server did not accept permessage-deflate. Run it after
// validate_response() (which rejects extensions we did not offer at all).
// Errors (RFC 7692 §5, §7.1), the client must fail the connection:
//   response_deflate_repeated      — permessage-deflate named more than once
//   response_deflate_bad_param     — an unknown or repeated parameter, a value
//     on *_no_context_takeover, a window parameter without a value or outside
//     8-15 (or with leading zeros), server_max_window_bits above what we
//     asked for, client_max_window_bits when we did not offer it or above the
//     value we offered
//   response_deflate_missing_param — we asked for server_no_context_takeover
//     or server_max_window_bits and the answer does not confirm it
//   response_deflate_window_8      — client_max_window_bits=8 (see above)
// Does not allocate.
SWITCHBOARD_PROTOCOL_EXPORT error
validate_deflate_response(std::span<const extension> answer, const deflate_client_options& offered,
                          std::optional<deflate_params>& agreed) noexcept;

// The same over the response head. bad_extension_header if a field does not
// parse. Allocates the parsed list.
SWITCHBOARD_PROTOCOL_EXPORT error validate_deflate_response(const header_fields& response,
                                                            const deflate_client_options& offered,
                                                            std::optional<deflate_params>& agreed);

// --- Codec settings from an agreement ---------------------------------------

// Window bits this end deflates with: the agreed limit for our direction,
// raised to 9 (REQUIRES: never 8 for a server, which declines such offers, nor
// for a client, which fails on them — so this only matters for hand-built
// params). No context takeover when agreed for our direction.
SWITCHBOARD_PROTOCOL_EXPORT std::uint8_t deflate_window_bits(const deflate_params& agreed,
                                                             role ours) noexcept;
SWITCHBOARD_PROTOCOL_EXPORT bool deflate_no_context_takeover(const deflate_params& agreed,
                                                             role ours) noexcept;
// Window bits this end inflates the peer's messages with (at least 9), and
// whether the peer resets its context after every message.
SWITCHBOARD_PROTOCOL_EXPORT std::uint8_t inflate_window_bits(const deflate_params& agreed,
                                                             role ours) noexcept;
SWITCHBOARD_PROTOCOL_EXPORT bool inflate_no_context_takeover(const deflate_params& agreed,
                                                             role ours) noexcept;

}  // namespace switchboard::protocol
