// switchboard/protocol/utf8.hpp — UTF-8 validation for text messages and
// close reasons (RFC 6455 §5.6, §8.1; UTF-8 as defined by RFC 3629).
//
// Valid means well-formed UTF-8 per RFC 3629: no overlong forms, no UTF-16
// surrogates (U+D800-U+DFFF), nothing above U+10FFFF, no 5- or 6-byte forms,
// no stray continuation bytes, no truncated sequence at the end.
//
// is_valid_utf8() checks a complete buffer. utf8_validator checks a message
// that arrives in pieces (fragments, network chunks), where a code point may
// be split anywhere, and fails fast: feed() returns false as soon as the bytes
// seen so far cannot be the beginning of valid UTF-8, even when the offending
// sequence is cut off at the end of the piece (0xC0, 0xF5, 0xE0 0x80, 0xED 0xA0
// are rejected at once). Long runs are validated with SIMD (simdjson); short
// inputs take a scalar path that costs a few nanoseconds for 16 ASCII bytes.
//
// Thread-safety: the free function is stateless. A utf8_validator is a plain
// value with no shared state; use one per message per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "switchboard/protocol/export.hpp"

namespace switchboard::protocol {

// True if [data, data+size) is complete, well-formed UTF-8 (RFC 3629).
// An empty input is valid. No errors beyond the return value.
SWITCHBOARD_PROTOCOL_EXPORT bool is_valid_utf8(const char* data, std::size_t size) noexcept;

inline bool is_valid_utf8(std::string_view text) noexcept {
  return is_valid_utf8(text.data(), text.size());
}

// Incremental validator for a text message delivered in pieces (RFC 6455 §8.1:
// "when an endpoint is to interpret a byte stream as UTF-8 but finds that the
// byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST Fail
// the WebSocket Connection").
//
// Usage: feed() every piece in order; after the last piece call complete().
// State is at most one incomplete code point (<= 3 bytes), kept inside the
// object, so the caller's pieces need not outlive the call.
class SWITCHBOARD_PROTOCOL_EXPORT utf8_validator {
 public:
  // Checks the next piece of the message.
  // Returns false if the bytes fed so far can never be the prefix of valid
  // UTF-8; the failure is sticky (later calls return false too) until reset().
  // Returns true otherwise, including when the piece ends inside a code point.
  bool feed(const char* data, std::size_t size) noexcept;
  bool feed(std::string_view piece) noexcept { return feed(piece.data(), piece.size()); }

  // True if everything fed so far is complete, valid UTF-8: no failure and
  // no code point left unfinished. Call after the message's last piece.
  bool complete() const noexcept { return !failed_ && pending_size_ == 0; }

  // True once feed() has returned false.
  bool failed() const noexcept { return failed_; }

  // Forgets all state; ready for a new message.
  void reset() noexcept {
    pending_size_ = 0;
    pending_length_ = 0;
    failed_ = false;
  }

 private:
  bool fail() noexcept {
    failed_ = true;
    return false;
  }

  std::uint8_t pending_[4] = {};     // the incomplete code point's bytes so far
  std::uint8_t pending_size_ = 0;    // how many of them we hold (0-3)
  std::uint8_t pending_length_ = 0;  // its full length once complete (2-4)
  bool failed_ = false;
};

}  // namespace switchboard::protocol
