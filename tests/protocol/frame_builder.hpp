// frame_builder.hpp — test support for the protocol suites: one frame as a
// peer would put it on the wire (message_reader_test, small_frame_test).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "switchboard/protocol/frame.hpp"
#include "switchboard/protocol/mask.hpp"

namespace switchboard::protocol::test {

// One frame on the wire. rsv: bit 4 = RSV1, 2 = RSV2, 1 = RSV3.
inline std::string frame(opcode op, std::string_view payload, bool fin = true, bool masked = true,
                         int rsv = 0) {
  frame_header h;
  h.fin = fin;
  h.op = op;
  h.rsv1 = rsv & 4;
  h.rsv2 = rsv & 2;
  h.rsv3 = rsv & 1;
  h.masked = masked;
  h.key = {0x11, 0x22, 0x33, static_cast<std::uint8_t>(payload.size())};
  h.length = payload.size();
  char header[k_max_frame_header_size];
  std::string out(header, encode_frame_header(h, header));
  std::string body(payload);
  if (masked) apply_mask(body.data(), body.size(), h.key);
  return out + body;
}

}  // namespace switchboard::protocol::test
