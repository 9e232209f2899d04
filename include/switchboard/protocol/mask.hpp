// switchboard/protocol/mask.hpp — payload masking (RFC 6455 §5.3).
//
// Masking XORs payload byte i with key[i % 4]. It is its own inverse, so the
// same functions mask (client writer) and unmask (server reader). Both take a
// key offset: the index of the first byte in the frame's payload modulo 4, so
// a payload that arrives in several chunks unmasks chunk by chunk.
//
// The implementation picks the widest vector unit the CPU offers (AVX2 when
// present, SSE2 on every x86-64, 64-bit words elsewhere) and is correct for
// any pointer alignment, length and offset. Expect tens of GB/s on large
// buffers and a few nanoseconds for a 16-byte payload.
//
// Thread-safety: stateless; safe from any thread on disjoint buffers.
#pragma once

#include <cstddef>

#include "switchboard/protocol/export.hpp"
#include "switchboard/protocol/frame.hpp"

namespace switchboard::protocol {

// Masks or unmasks `size` bytes at `data` in place (RFC 6455 §5.3).
//
// data, size: the payload bytes (any alignment; size may be 0).
// key: the frame's masking key, in wire order.
// key_offset: position of data[0] within the frame's payload; only its value
//   modulo 4 matters. Pass the count of payload bytes already processed.
// No errors.
SWITCHBOARD_PROTOCOL_EXPORT void apply_mask(char* data, std::size_t size, const mask_key& key,
                                            std::size_t key_offset = 0) noexcept;

// Writes the masked form of `src` to `dst`: dst[i] = src[i] ^ key[(offset+i) % 4].
//
// REQUIRES: [dst, dst+size) and [src, src+size) are either identical or do
// not overlap. Parameters as for apply_mask(). Used by the client writer to
// mask while copying the payload into the output buffer, and by the reader to
// unmask while appending a fragment to its message buffer. No errors.
SWITCHBOARD_PROTOCOL_EXPORT void mask_copy(char* dst, const char* src, std::size_t size,
                                           const mask_key& key,
                                           std::size_t key_offset = 0) noexcept;

}  // namespace switchboard::protocol
