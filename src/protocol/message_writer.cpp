// message_writer: messages in, frames out (RFC 6455 §5.2-5.7).
//
// Masking keys (client role) come from OpenSSL's CSPRNG. RFC 6455 §5.3 asks
// for keys an intermediary cannot predict, fresh per frame. RAND_bytes costs
// about half a microsecond per call almost regardless of size (measured: 256
// bytes ~0.54 us, 4096 bytes ~1.0 us), so keys come from a per-thread pool of
// 4 KiB: ~1 ns per frame, no state in the writer, no locking. Key bytes are
// used once and in order. (A child created by fork() inherits the unused
// rest of the forking thread's pool; parent and child would then share up to
// 1023 keys. Keys only need to be unpredictable to the page's script, which
// that does not change, so we accept it rather than check the pid per frame.)
#include "switchboard/protocol/message_writer.hpp"

#include <openssl/rand.h>

#include <array>
#include <cassert>
#include <cstdlib>
#include <cstring>

#include "switchboard/protocol/close_code.hpp"
#include "switchboard/protocol/mask.hpp"

namespace switchboard::protocol {

namespace {

// Zero-initialized (constant initialization: no guard on thread_local access).
struct key_pool {
  std::array<unsigned char, 4096> bytes;
  std::size_t left;  // unused bytes at the end of `bytes`; 0 = refill
};

thread_local key_pool t_keys{};

mask_key next_key() noexcept {
  key_pool& pool = t_keys;
  if (pool.left == 0) {
    // Without a working CSPRNG we cannot mask safely (RFC 6455 §10.3), and
    // predictable keys must never reach the wire: stop the process.
    if (RAND_bytes(pool.bytes.data(), static_cast<int>(pool.bytes.size())) != 1) std::abort();
    pool.left = pool.bytes.size();
  }
  mask_key key;
  std::memcpy(key.data(), pool.bytes.data() + pool.bytes.size() - pool.left, key.size());
  pool.left -= key.size();
  return key;
}

// Longest close reason: 125 payload bytes minus the 2-byte code (§5.5.1).
constexpr std::size_t k_max_close_reason = k_max_control_payload - 2;

// `text` cut to at most `limit` bytes without splitting a UTF-8 code point.
// REQUIRES: text is valid UTF-8.
std::string_view truncate_utf8(std::string_view text, std::size_t limit) noexcept {
  if (text.size() <= limit) return text;
  std::size_t cut = limit;
  // text[cut] is the first byte dropped; if it continues a code point, drop
  // that code point's earlier bytes too.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut);
}

}  // namespace

std::size_t message_writer::write_frame(char* out, opcode op, std::string_view payload, bool fin,
                                        bool rsv1) noexcept {
  // REQUIRES: control frames are final and carry at most 125 bytes (§5.5).
  assert(!is_control(op) || (fin && payload.size() <= k_max_control_payload));
  frame_header h;
  h.fin = fin;
  h.rsv1 = rsv1;
  h.op = op;
  h.length = payload.size();
  h.masked = role_ == role::client;
  if (h.masked) h.key = next_key();
  const std::size_t n = encode_frame_header(h, out);
  if (h.masked) {
    mask_copy(out + n, payload.data(), payload.size(), h.key);
  } else if (!payload.empty()) {
    std::memcpy(out + n, payload.data(), payload.size());
  }
  return n + payload.size();
}

std::size_t message_writer::write_message(char* out, opcode op, std::string_view payload,
                                          std::size_t fragment_size, bool rsv1) noexcept {
  // REQUIRES: a data message starts with text or binary (§5.6).
  assert(op == opcode::text || op == opcode::binary);
  if (fragment_size == 0 || payload.size() <= fragment_size) {
    return write_frame(out, op, payload, true, rsv1);
  }
  std::size_t written = 0;
  std::size_t offset = 0;
  bool first = true;
  while (offset < payload.size()) {
    const std::string_view piece = payload.substr(offset, fragment_size);
    offset += piece.size();
    const bool fin = offset == payload.size();
    written +=
        write_frame(out + written, first ? op : opcode::continuation, piece, fin, first && rsv1);
    first = false;
  }
  return written;
}

std::size_t message_writer::write_ping(char* out, std::string_view payload) noexcept {
  return write_frame(out, opcode::ping, payload.substr(0, k_max_control_payload));
}

std::size_t message_writer::write_pong(char* out, std::string_view payload) noexcept {
  return write_frame(out, opcode::pong, payload.substr(0, k_max_control_payload));
}

std::size_t message_writer::write_close(char* out, std::uint16_t code,
                                        std::string_view reason) noexcept {
  if (code == 0 || code == to_underlying(close_code::no_status)) {
    // 1005 means "no code": it is reported locally, never sent (§7.4.1).
    return write_frame(out, opcode::close, {});
  }
  // REQUIRES: a code that may travel on the wire (§7.4).
  assert(is_valid_on_wire(code));
  char payload[k_max_control_payload];
  payload[0] = static_cast<char>(code >> 8);
  payload[1] = static_cast<char>(code & 0xFF);
  const std::string_view text = truncate_utf8(reason, k_max_close_reason);
  if (!text.empty()) std::memcpy(payload + 2, text.data(), text.size());
  return write_frame(out, opcode::close, {payload, 2 + text.size()});
}

// The append_ forms size the string for the worst case, write in place, and
// trim: one resize up and one down, no temporary buffer.

void message_writer::append_frame(std::string& out, opcode op, std::string_view payload, bool fin,
                                  bool rsv1) {
  const std::size_t old = out.size();
  out.resize(old + max_frame_size(payload.size()));
  out.resize(old + write_frame(out.data() + old, op, payload, fin, rsv1));
}

void message_writer::append_message(std::string& out, opcode op, std::string_view payload,
                                    std::size_t fragment_size, bool rsv1) {
  const std::size_t old = out.size();
  out.resize(old + max_message_wire_size(payload.size(), fragment_size));
  out.resize(old + write_message(out.data() + old, op, payload, fragment_size, rsv1));
}

void message_writer::append_ping(std::string& out, std::string_view payload) {
  const std::size_t old = out.size();
  out.resize(old + max_frame_size(k_max_control_payload));
  out.resize(old + write_ping(out.data() + old, payload));
}

void message_writer::append_pong(std::string& out, std::string_view payload) {
  const std::size_t old = out.size();
  out.resize(old + max_frame_size(k_max_control_payload));
  out.resize(old + write_pong(out.data() + old, payload));
}

void message_writer::append_close(std::string& out, std::uint16_t code, std::string_view reason) {
  const std::size_t old = out.size();
  out.resize(old + k_max_close_frame_size);
  out.resize(old + write_close(out.data() + old, code, reason));
}

}  // namespace switchboard::protocol
