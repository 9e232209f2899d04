// permessage-deflate payload codec on zlib (RFC 7692 §7.2). zlib's memory is
// counted through our own zalloc/zfree; the z_stream lives on the heap next
// to its counter because zlib keeps a pointer back to it (the objects that
// own it can then move freely).
#include <zlib.h>

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <switchboard/protocol/deflate_codec.hpp>

namespace switchboard::protocol {

namespace detail {

struct zlib_stream {
  z_stream z{};
  std::size_t bytes = 0;  // held by zlib now
  std::size_t peak = 0;   // most ever held by zlib
  bool is_deflate = false;
  bool initialized = false;
};

namespace {

// Each block carries its size in front, so zfree can count it back.
constexpr std::size_t k_header = alignof(std::max_align_t);

voidpf counting_alloc(voidpf opaque, uInt items, uInt size) {
  auto* s = static_cast<zlib_stream*>(opaque);
  const std::size_t n = static_cast<std::size_t>(items) * size;  // both 32-bit: no overflow
  auto* p = static_cast<unsigned char*>(std::malloc(n + k_header));
  if (p == nullptr) return Z_NULL;
  std::memcpy(p, &n, sizeof n);
  s->bytes += n;
  s->peak = std::max(s->peak, s->bytes);
  return p + k_header;
}

void counting_free(voidpf opaque, voidpf address) {
  if (address == Z_NULL) return;
  auto* s = static_cast<zlib_stream*>(opaque);
  auto* p = static_cast<unsigned char*>(address) - k_header;
  std::size_t n = 0;
  std::memcpy(&n, p, sizeof n);
  s->bytes -= n;
  std::free(p);
}

zlib_stream_ptr new_stream(bool is_deflate) noexcept {
  zlib_stream_ptr s(new (std::nothrow) zlib_stream);
  if (!s) return s;
  s->is_deflate = is_deflate;
  s->z.zalloc = counting_alloc;
  s->z.zfree = counting_free;
  s->z.opaque = s.get();
  return s;
}

std::size_t held(const zlib_stream_ptr& s) noexcept {
  return s ? sizeof(zlib_stream) + s->bytes : 0;
}

}  // namespace

void zlib_stream_deleter::operator()(zlib_stream* s) const noexcept {
  if (s->initialized) {
    if (s->is_deflate) {
      deflateEnd(&s->z);
    } else {
      inflateEnd(&s->z);
    }
  }
  delete s;
}

}  // namespace detail

namespace {

// zlib counts in uInt; longer inputs are fed in slices of this size.
constexpr std::size_t k_max_slice = std::size_t{1} << 30;
// The empty stored block Z_SYNC_FLUSH ends with, stripped by the sender and
// appended by the receiver (§7.2.1, §7.2.2).
constexpr unsigned char k_tail[4] = {0x00, 0x00, 0xff, 0xff};

Bytef* bytes_at(std::string& s, std::size_t pos) {
  return reinterpret_cast<Bytef*>(s.data() + pos);
}

}  // namespace

// --- deflater -----------------------------------------------------------------

deflater::deflater(const deflate_options& options) noexcept : options_(options) {
  options_.window_bits = std::clamp<std::uint8_t>(options_.window_bits, 9, 15);
  options_.mem_level = std::clamp<std::uint8_t>(options_.mem_level, 1, 9);
  options_.level = std::min<std::uint8_t>(options_.level, 9);
}

bool deflater::ensure_state() noexcept {
  if (stream_) return true;
  auto s = detail::new_stream(true);
  if (!s) return false;
  // Raw DEFLATE (negative windowBits): no zlib header or trailer (§7.2.1).
  if (deflateInit2(&s->z, options_.level, Z_DEFLATED, -static_cast<int>(options_.window_bits),
                   options_.mem_level, Z_DEFAULT_STRATEGY) != Z_OK)
    return false;
  s->initialized = true;
  stream_ = std::move(s);
  return true;
}

error deflater::run(std::string_view input, int flush, std::string& out) noexcept {
  z_stream& z = stream_->z;
  const std::size_t base = out.size();
  std::size_t used = base;
  const auto* next = reinterpret_cast<const Bytef*>(input.data());
  std::size_t left = input.size();
  // First guess: enough for the whole input even if it does not compress,
  // so a whole message normally takes one deflate() call.
  std::size_t want = deflateBound(&z, static_cast<uLong>(std::min(left, k_max_slice))) + 16;
  try {
    for (;;) {
      if (z.avail_in == 0 && left > 0) {
        const std::size_t n = std::min(left, k_max_slice);
        z.next_in = const_cast<Bytef*>(next);
        z.avail_in = static_cast<uInt>(n);
        next += n;
        left -= n;
      }
      // zlib: with Z_SYNC_FLUSH keep avail_out above 6, or it may repeat
      // the flush marker.
      if (out.size() - used < 64) {
        out.resize(used + std::max<std::size_t>(want, 64));
        want = std::min(want * 2, k_max_slice);
      }
      z.next_out = bytes_at(out, used);
      z.avail_out = static_cast<uInt>(std::min(out.size() - used, k_max_slice));
      const uInt room = z.avail_out;
      const int r = ::deflate(&z, left > 0 ? Z_NO_FLUSH : flush);
      used += room - z.avail_out;
      assert(r == Z_OK || r == Z_BUF_ERROR);
      (void)r;
      // Done when zlib took all input and did not fill the output.
      if (z.avail_in == 0 && left == 0 && z.avail_out != 0) break;
    }
  } catch (const std::bad_alloc&) {
    out.resize(base);
    reset();
    return error::deflate_failed;
  }
  out.resize(used);
  z.next_in = nullptr;
  z.next_out = nullptr;
  return error::none;
}

error deflater::write(std::string_view piece, std::string& out) noexcept {
  if (!ensure_state()) return error::deflate_failed;
  in_message_ = true;
  if (piece.empty()) return error::none;
  return run(piece, Z_NO_FLUSH, out);
}

error deflater::end_message(std::string& out, std::size_t base) noexcept {
  in_message_ = false;
  const std::size_t n = out.size() - base;
  if (n >= 4 && std::memcmp(out.data() + out.size() - 4, k_tail, 4) == 0) {
    // The flush ends the output with an empty stored block, whose last four
    // bytes the sender removes (§7.2.1). Only this call's flush wrote them.
    out.resize(out.size() - 4);
  } else if (n == 0) {
    // zlib skips a flush that follows a flush with no input in between (an
    // empty message with context takeover). The empty message is 0x00: an
    // empty stored block minus the tail (§7.2.3.6), valid after a flush.
    try {
      out.push_back('\0');
    } catch (const std::bad_alloc&) {
      reset();
      return error::deflate_failed;
    }
  } else {
    assert(false && "Z_SYNC_FLUSH output must end with 00 00 FF FF");
    out.resize(base);
    reset();
    return error::deflate_failed;
  }
  // no_context_takeover: the next message must not refer to this one (§7.1.1).
  if (options_.no_context_takeover) deflateReset(&stream_->z);
  return error::none;
}

error deflater::finish(std::string& out) noexcept {
  if (!ensure_state()) return error::deflate_failed;
  const std::size_t base = out.size();
  if (const error e = run({}, Z_SYNC_FLUSH, out); e != error::none) return e;
  return end_message(out, base);
}

error deflater::compress(std::string_view message, std::string& out) noexcept {
  assert(!in_message_);
  if (!ensure_state()) return error::deflate_failed;
  const std::size_t base = out.size();
  if (const error e = run(message, Z_SYNC_FLUSH, out); e != error::none) return e;
  return end_message(out, base);
}

void deflater::reset() noexcept {
  in_message_ = false;
  if (stream_) deflateReset(&stream_->z);
}

void deflater::release() noexcept {
  in_message_ = false;
  stream_.reset();
}

std::size_t deflater::memory_bytes() const noexcept {
  return detail::held(stream_);
}

// --- inflater -----------------------------------------------------------------

inflater::inflater(const inflate_options& options) noexcept : options_(options) {
  // 9 bits, not 8: a 9-bit window decodes any stream an 8-bit one does, and
  // some zlib versions mishandle raw inflate with 8.
  options_.window_bits = std::clamp<std::uint8_t>(options_.window_bits, 9, 15);
}

bool inflater::ensure_state() noexcept {
  if (stream_) return true;
  auto s = detail::new_stream(false);
  if (!s) return false;
  // Raw DEFLATE, no zlib header (§7.2.2). The window is allocated by zlib
  // only once a message produces output.
  if (inflateInit2(&s->z, -static_cast<int>(options_.window_bits)) != Z_OK) return false;
  s->initialized = true;
  stream_ = std::move(s);
  return true;
}

error inflater::fail(error e) noexcept {
  // Forget the message and the history: the stream is unusable, and a shared
  // inflater must be ready for another connection's next message.
  in_message_ = false;
  ended_ = false;
  if (stream_) inflateReset(&stream_->z);
  return e;
}

bool inflater::restart_keeping_window() noexcept {
  // A block with BFINAL set ended the DEFLATE stream (§7.2.3.4); what
  // follows starts a new one that may still refer to the bytes before it.
  z_stream& z = stream_->z;
  const std::size_t window = std::size_t{1} << options_.window_bits;
  std::unique_ptr<Bytef[]> dict(new (std::nothrow) Bytef[window]);
  if (!dict) return false;
  uInt size = 0;
  if (inflateGetDictionary(&z, dict.get(), &size) != Z_OK) return false;
  if (inflateReset(&z) != Z_OK) return false;
  return size == 0 || inflateSetDictionary(&z, dict.get(), size) == Z_OK;
}

error inflater::feed(const unsigned char* data, std::size_t size, bool tail,
                     std::string& out) noexcept {
  z_stream& z = stream_->z;
  const std::size_t limit = options_.max_message_size;
  std::size_t used = out.size();
  const unsigned char* next = data;
  std::size_t left = size;
  error result = error::none;
  try {
    for (;;) {
      if (z.avail_in == 0 && left > 0) {
        const std::size_t n = std::min(left, k_max_slice);
        z.next_in = const_cast<Bytef*>(next);
        z.avail_in = static_cast<uInt>(n);
        next += n;
        left -= n;
      }
      if (z.avail_in == 0 && left == 0 && !more_output_) break;
      ended_ = false;
      // At most limit + 1 bytes in all: the extra byte tells "exactly at
      // the limit" from "over it", without ever holding more.
      const std::size_t room =
          limit - produced_ < k_max_slice ? limit - produced_ + 1 : k_max_slice;
      if (out.size() == used) {
        const std::size_t guess = std::max<std::size_t>({produced_, 4 * size, 4096});
        out.resize(used + std::min({guess, room, k_max_slice}));
      }
      z.next_out = bytes_at(out, used);
      z.avail_out = static_cast<uInt>(std::min({out.size() - used, room, k_max_slice}));
      const uInt avail = z.avail_out;
      const int r = ::inflate(&z, Z_SYNC_FLUSH);
      const std::size_t n = avail - z.avail_out;
      if (text_ && n != 0 && !utf8_.feed(out.data() + used, n)) result = error::invalid_utf8;
      used += n;
      produced_ += n;
      // A full output buffer may hide more output inside zlib.
      more_output_ = z.avail_out == 0;
      if (result != error::none) break;
      if (produced_ > limit) {
        result = error::message_too_big;  // a decompression bomb stops here
        break;
      }
      if (r == Z_STREAM_END) {
        more_output_ = false;
        // The rest of our own tail after a final block is padding.
        if (tail || (z.avail_in == 0 && left == 0)) {
          if (!restart_keeping_window()) result = error::message_too_big;
          ended_ = true;
          break;
        }
        if (!restart_keeping_window()) {
          result = error::message_too_big;
          break;
        }
        continue;
      }
      if (r != Z_OK && r != Z_BUF_ERROR) {
        // Z_DATA_ERROR (bad block, distance too far back), Z_NEED_DICT (cannot
        // happen raw), Z_MEM_ERROR (window allocation failed).
        result = r == Z_MEM_ERROR ? error::message_too_big : error::inflate_failed;
        break;
      }
    }
  } catch (const std::bad_alloc&) {
    result = error::message_too_big;
  }
  out.resize(used);
  z.next_in = nullptr;
  z.next_out = nullptr;
  z.avail_in = 0;
  return result == error::none ? result : fail(result);
}

void inflater::begin_message(bool text) noexcept {
  in_message_ = true;
  text_ = text;
  utf8_.reset();
  produced_ = 0;
  fed_ = 0;
  ended_ = false;
  more_output_ = false;
}

error inflater::write(std::string_view piece, std::string& out) noexcept {
  if (!in_message_) begin_message(false);
  if (piece.empty()) return error::none;
  if (!ensure_state()) return fail(error::message_too_big);
  fed_ += piece.size();
  return feed(reinterpret_cast<const unsigned char*>(piece.data()), piece.size(), false, out);
}

error inflater::finish(std::string& out) noexcept {
  if (!in_message_) begin_message(false);
  // An empty payload is not what any deflater produces (an empty message is
  // 0x00), but it can only mean an empty message: accept it.
  if (fed_ != 0) {
    if (!ensure_state()) return fail(error::message_too_big);
    if (!ended_) {
      if (const error e = feed(k_tail, sizeof k_tail, true, out); e != error::none) return e;
      // A sync-flushed message ends on a block boundary; anything else is
      // a truncated or corrupt message.
      if (!ended_ && (stream_->z.data_type & 128) == 0) return fail(error::inflate_failed);
    }
  }
  if (text_ && !utf8_.complete()) return fail(error::invalid_utf8);
  in_message_ = false;
  // No context takeover: the peer's next message starts from nothing (§7.1.1).
  if (options_.no_context_takeover && stream_) inflateReset(&stream_->z);
  return error::none;
}

error inflater::inflate(std::string_view payload, std::string& out) noexcept {
  begin_message(false);
  if (const error e = write(payload, out); e != error::none) return e;
  return finish(out);
}

error inflater::inflate_text(std::string_view payload, std::string& out) noexcept {
  begin_message(true);
  if (const error e = write(payload, out); e != error::none) return e;
  return finish(out);
}

void inflater::reset() noexcept {
  in_message_ = false;
  ended_ = false;
  more_output_ = false;
  if (stream_) inflateReset(&stream_->z);
}

void inflater::release() noexcept {
  peak_ = peak_memory_bytes();
  in_message_ = false;
  ended_ = false;
  more_output_ = false;
  stream_.reset();
}

std::size_t inflater::memory_bytes() const noexcept {
  return detail::held(stream_);
}

std::size_t inflater::peak_memory_bytes() const noexcept {
  return std::max(peak_, stream_ ? sizeof(detail::zlib_stream) + stream_->peak : 0);
}

}  // namespace switchboard::protocol
