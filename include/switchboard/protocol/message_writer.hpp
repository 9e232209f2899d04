// switchboard/protocol/message_writer.hpp — turns messages into frames
// (RFC 6455 §5.2-5.7).
//
// Writes straight into a caller-provided buffer (size it with
// max_frame_size() / max_message_wire_size()), or appends to a std::string.
// A client-role writer masks every frame with a fresh key from OpenSSL's
// CSPRNG (RFC 6455 §5.3, §10.3); a server-role writer never masks. Keys are
// drawn from a per-thread pool of 4 KiB refilled by one RAND_bytes call per
// 1024 frames: RAND_bytes has a fixed cost of ~0.5 us per call, so this
// keeps the key at ~1 ns per frame, and the writer itself holds no state.
//
// The writer does not check message semantics it is handed (that a text
// payload is UTF-8, that a close code is valid): those are the caller's
// preconditions, asserted in debug builds where cheap.
//
// Thread-safety: a message_writer holds only its role; any number of threads
// may use writers concurrently (each thread has its own key pool).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "switchboard/protocol/export.hpp"
#include "switchboard/protocol/frame.hpp"

namespace switchboard::protocol {

class SWITCHBOARD_PROTOCOL_EXPORT message_writer {
 public:
  // role::client masks every frame; role::server never does (RFC 6455 §5.1).
  explicit message_writer(role r) noexcept : role_(r) {}

  // Upper bound on the bytes one frame with `payload` bytes takes, header and
  // masking key included, whatever the role.
  static constexpr std::size_t max_frame_size(std::size_t payload) noexcept {
    return payload + k_max_frame_header_size;
  }

  // Upper bound on the bytes write_message(…, fragment_size) produces for a
  // payload of `payload` bytes.
  static constexpr std::size_t max_message_wire_size(std::size_t payload,
                                                     std::size_t fragment_size = 0) noexcept {
    const std::size_t frames =
        fragment_size == 0 || payload == 0 ? 1 : (payload + fragment_size - 1) / fragment_size;
    return payload + frames * k_max_frame_header_size;
  }

  // Largest close frame write_close() produces: header, key, code, reason.
  static constexpr std::size_t k_max_close_frame_size = 6 + k_max_control_payload;

  // Writes one frame (RFC 6455 §5.2).
  //
  // out: room for max_frame_size(payload.size()) bytes.
  // op: any opcode; continuation for the 2nd..nth fragment of a message.
  // fin: false for all but the last fragment.
  // rsv1: set RSV1 (first frame of a permessage-deflate compressed message).
  // REQUIRES: for control opcodes, fin and payload.size() <= 125 (§5.5).
  // Returns the bytes written. No errors.
  std::size_t write_frame(char* out, opcode op, std::string_view payload, bool fin = true,
                          bool rsv1 = false) noexcept;

  // Writes a whole data message (RFC 6455 §5.4): one frame, or when
  // fragment_size > 0, frames of at most fragment_size payload bytes each
  // (the first with `op`, the rest continuations, FIN on the last). rsv1 goes
  // on the first frame only (RFC 7692 §6.1).
  // out: room for max_message_wire_size(payload.size(), fragment_size) bytes.
  // REQUIRES: op is text or binary. Returns the bytes written.
  std::size_t write_message(char* out, opcode op, std::string_view payload,
                            std::size_t fragment_size = 0, bool rsv1 = false) noexcept;

  // Writes a ping / pong (RFC 6455 §5.5.2-3). Payloads over 125 bytes are
  // truncated to 125, the most a control frame may carry.
  // out: room for max_frame_size(125). Returns the bytes written.
  std::size_t write_ping(char* out, std::string_view payload) noexcept;
  std::size_t write_pong(char* out, std::string_view payload) noexcept;

  // Writes a close frame (RFC 6455 §5.5.1, §7.4). code 1005 (no_status) or 0
  // means "no code": the payload is empty and `reason` is ignored. Otherwise
  // the payload is the code and the reason, cut to 123 bytes at a UTF-8 code
  // point boundary.
  // out: room for k_max_close_frame_size bytes.
  // REQUIRES: code is 0, 1005 or is_valid_on_wire(code); reason is UTF-8.
  // Returns the bytes written.
  std::size_t write_close(char* out, std::uint16_t code, std::string_view reason = {}) noexcept;

  // Conveniences: the same frames appended to `out`.
  void append_frame(std::string& out, opcode op, std::string_view payload, bool fin = true,
                    bool rsv1 = false);
  void append_message(std::string& out, opcode op, std::string_view payload,
                      std::size_t fragment_size = 0, bool rsv1 = false);
  void append_ping(std::string& out, std::string_view payload);
  void append_pong(std::string& out, std::string_view payload);
  void append_close(std::string& out, std::uint16_t code, std::string_view reason = {});

  role writer_role() const noexcept { return role_; }

 private:
  role role_;
};

}  // namespace switchboard::protocol
