// switchboard/server/compression.hpp — permessage-deflate (RFC 7692) for one
// WebSocket endpoint: the mode, what it costs per connection, and the knobs.
//
// Set ws_behavior::compression. The offer is read from the upgrade request,
// the answer goes into the 101 (protocol/deflate_negotiation.hpp), and from
// then on the connection inflates compressed messages before on_message /
// on_fragment (the inflated size bounded by server_options::max_message_size
// while inflating: a decompression bomb fails with 1009; corrupt data and
// invalid UTF-8 after inflating with 1007), and compresses every data message
// it sends that is at least `threshold` bytes (RSV1 on its only frame).
// Control frames are never compressed. A client that offers nothing, or only
// offers we decline, gets an uncompressed connection.
//
// Modes and memory per connection (zlib 1.2.13, x86-64; the websocket object
// itself is unchanged by the mode):
//   off        nothing. The library default: compression costs CPU on every
//              message and, when secrets and attacker-chosen text share a
//              message, leaks the secret through the compressed length
//              (CRIME/BREACH). Turn it on where the data is known to benefit.
//   shared     no context takeover in either direction: the answer always
//              carries server_no_context_takeover and client_no_context_takeover
//              (RFC 7692 §7.1.1.1-2 let the server add both unasked). One
//              inflater and one deflater per event loop (one deflater per
//              window size in use) serve every connection, so an open
//              connection, idle or busy, holds no zlib state: 0 bytes. Per loop:
//              ~40 KiB inflater + ~262 KiB deflater (window 15). Each message
//              is compressed from scratch: a worse ratio for streams of small
//              similar messages, the same for large ones.
//   dedicated  context takeover both ways where the client agrees: each
//              connection gets its own deflater and inflater, created on the
//              first message that needs them and freed when the connection
//              ends. Sized to stay under 64 KiB per connection by default,
//              whatever the client offers (measured, after messages both ways,
//              websocket::compression_memory()):
//                our deflater, window 11, memLevel 4:        22,472 B
//                our inflater, when the client offered client_max_window_bits
//                  (browsers, python websockets, node ws, our client) and so
//                  is held to window 11:                        9,344 B
//                  total 31,904 B (~31 KiB) with the codec object
//                our inflater, when it did not: the client may use window 15
//                  (RFC 7692 §7.1.2.2: we may not limit it), 40,064 B
//                  total 62,624 B (~61 KiB), the worst case
//              deflater ≈ (4 << window) + (512 << mem_level) + 6 KiB; inflater
//              ≈ (1 << window) + 7.4 KiB (protocol/deflate_codec.hpp). Window
//              11 (2 KiB of history) still reaches the previous message or two
//              of a chat-like stream: 1 KiB JSON messages shrink to 0.37 of
//              their size against 0.31 with 15/8 (~301 KiB per connection)
//              and 0.52 without context takeover; window 10 falls to 0.50.
//              Lower: window 10 / memLevel 3 (server and client) is 14,280 +
//              8,320 B (~22 KiB, ~53 KiB worst case) but barely beats shared
//              on 1 KiB messages; window 9 / memLevel 1 is 9,160 + 7,808 B
//              (~17 KiB, ~48 KiB worst case). Higher, for ratio: window 15 /
//              memLevel 8 (zlib's own defaults) costs ~301 KiB. The deflater
//              also works less per message with a small window (zlib's match
//              search ranges over the window): at level 6, window 11 /
//              memLevel 4 runs ~0.74x the instructions of 15 / 8 on those
//              messages. To bound idle cost, the deflater's
//              state is freed when the connection has received nothing for
//              server_options::ping_interval (at the keepalive ping): the next
//              message starts a fresh history, which the peer decodes as usual
//              (a sender may always stop referring to its history). The
//              inflater must keep the peer's history for as long as the
//              connection lives.
//
// Topics: server::publish() compresses a message once per event loop (once
// per window size in use) with that loop's shared deflater and writes the
// same frame to every subscriber that negotiated compression; the others get
// the uncompressed frame. A subscriber in dedicated mode then forgets its
// deflater's history (the peer's window now holds the published message,
// ours does not), which costs ratio on its next direct send only. A loop's
// deflater for window 11 (dedicated subscribers with the defaults) holds
// ~142 KiB once, per loop, not per connection.
//
// Thread-safety: plain values, copied into the server with the behaviour.
#pragma once

#include <cstddef>
#include <cstdint>

#include <switchboard/protocol/deflate_codec.hpp>
#include <switchboard/protocol/deflate_negotiation.hpp>

namespace switchboard::server {

enum class compression_mode : std::uint8_t {
  off,        // never negotiate permessage-deflate
  shared,     // no context takeover; per-loop zlib state only
  dedicated,  // context takeover; per-connection zlib state
};

struct compression_options {
  compression_mode mode = compression_mode::off;
  // Messages shorter than this are sent uncompressed (deflate's fixed cost
  // per message outweighs what it saves on short messages; RFC 7692 §6 lets
  // a sender decide per message). 0 compresses everything.
  std::size_t threshold = protocol::k_default_compress_threshold;
  // zlib level 1-9 (6 is zlib's balance of speed and ratio). Also the level
  // of shared mode and of topics. In dedicated mode with the default windows,
  // 4 runs ~0.8x the instructions of 6 for ~2% more bytes on 1 KiB chat
  // messages (0.374 vs 0.366 of their size); 1 ~0.7x for 16% more (0.425).
  std::uint8_t level = 6;

  // Dedicated mode only (defaults: ~31 KiB per connection, at most ~61 KiB;
  // see "dedicated" above):
  // Window of our per-connection deflater, 9-15 (answered as
  // server_max_window_bits when below 15, or when the client asked for a
  // limit). Memory 4 << bits bytes.
  std::uint8_t server_max_window_bits = 11;
  // Window we ask the client to limit itself to, 9-15, when it offered
  // client_max_window_bits (RFC 7692 §7.1.2.2). Bounds our per-connection
  // inflater: 1 << bits bytes; a client that did not offer it may use 15
  // (32 KiB).
  std::uint8_t client_max_window_bits = 11;
  // zlib memLevel 1-9 of the per-connection deflater: 512 << mem_level bytes
  // (4: 8 KiB). Below the window's needs it costs CPU (more hash collisions)
  // before it costs ratio.
  std::uint8_t mem_level = 4;
};

// The negotiation policy a mode stands for (enabled = false for off).
constexpr protocol::deflate_server_policy policy_for(const compression_options& c) noexcept {
  switch (c.mode) {
    case compression_mode::shared:
      return protocol::deflate_server_policy::shared();
    case compression_mode::dedicated:
      return protocol::deflate_server_policy::dedicated(c.server_max_window_bits,
                                                        c.client_max_window_bits);
    case compression_mode::off:
      break;
  }
  protocol::deflate_server_policy off;
  off.enabled = false;
  return off;
}

}  // namespace switchboard::server
