// loadgen_deflate.hpp — what switchboard_loadgen sends and how it compresses
// it: JSON-like payloads (--payload json) and the client side of
// permessage-deflate (--deflate), on top of protocol/permessage_deflate.hpp.
//
// Offers (--deflate-offer):
//   no-takeover  "permessage-deflate; client_no_context_takeover;
//                server_no_context_takeover; client_max_window_bits": both
//                ends compress every message from scratch, so one deflater and
//                one inflater per loop thread serve every connection (what a
//                server's "shared" mode wants).
//   takeover     "permessage-deflate; client_max_window_bits", as browsers
//                offer: context takeover both ways unless the server's answer
//                drops it; the connection then needs its own codec state.
// The codec used for each direction follows the server's answer, not the
// offer: a server may add *_no_context_takeover unasked (RFC 7692 §7.1.1).
//
// Thread-safety: a deflate_codecs belongs to one loop thread; a
// connection_deflate to one connection on that thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "switchboard/protocol/http_head.hpp"
#include "switchboard/protocol/permessage_deflate.hpp"

namespace switchboard::bench {

// `count` different JSON-like text messages of exactly `size` bytes each:
// batches of ticker updates and chat messages whose keys and many values
// repeat, like a realtime feed. Deterministic for a given seed.
std::vector<std::string> make_json_payloads(std::size_t size, std::size_t count,
                                            std::uint32_t seed);

enum class deflate_offer { no_takeover, takeover };

protocol::deflate_client_options client_offer(deflate_offer offer) noexcept;

// Inflated messages are limited to this (the loadgen never sends more than 1 GiB).
inline constexpr std::size_t k_max_inflated = std::size_t{1} << 30;

// Per loop thread: the codecs shared by every connection that agreed no
// context takeover for that direction, and the buffers results go to.
struct deflate_codecs {
  protocol::deflater deflater{protocol::deflate_options{.no_context_takeover = true}};
  protocol::inflater inflater{protocol::inflate_options{
      .window_bits = 15, .no_context_takeover = true, .max_message_size = k_max_inflated}};
  std::string compressed;  // the message being sent, compressed
  std::string inflated;    // the message received, inflated
};

// Per connection: what was agreed, and codec state of its own where context
// takeover was agreed.
class connection_deflate {
 public:
  // Checks the server's 101 against `offered` (after validate_response()).
  // On success active() says whether permessage-deflate is on.
  protocol::error negotiate(const protocol::header_fields& response,
                            const protocol::deflate_client_options& offered);
  [[nodiscard]] bool active() const noexcept { return params_.has_value(); }

  // Compresses `message` into codecs.compressed (replaced).
  protocol::error compress(std::string_view message, deflate_codecs& codecs) noexcept;
  // Inflates a compressed payload into codecs.inflated (replaced).
  protocol::error inflate(std::string_view payload, bool text, deflate_codecs& codecs) noexcept;

  // The connection ended: forget the agreement and free any own state.
  void reset() noexcept;

 private:
  std::optional<protocol::deflate_params> params_;
  std::unique_ptr<protocol::deflater> deflater_;  // with client context takeover only
  std::unique_ptr<protocol::inflater> inflater_;  // with server context takeover only
};

}  // namespace switchboard::bench
