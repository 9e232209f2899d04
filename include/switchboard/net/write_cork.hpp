// write_cork.hpp — the per-loop buffer that coalesces everything written to
// connections during one loop iteration, so that each connection gets at most
// one send system call per iteration, however many messages it was sent.
//
// Design
//   * One arena per loop, shared by all its connections. A send copies the bytes
//     into the arena (append()). Consecutive appends for the same sink extend one
//     segment; when writes to several sinks interleave (a fan-out of message 1 to
//     A, B, C, then message 2 to A, B, C) each append adds a segment, chained to
//     the sink's previous one. A sink's bytes therefore stay in order, and no
//     sink's bytes are ever flushed with another's.
//   * The event loop calls flush() once per iteration, after every I/O callback,
//     timer, deferred task and hook of that iteration. Each dirty sink, in the
//     order of its first write, receives all its segments as one iovec array and
//     hands them to the kernel with one sendmsg (writev). The arena is then reset;
//     its memory is reused by the next iteration, so steady-state sends allocate
//     nothing.
//   * Only what the kernel refuses leaves the arena: the sink copies that tail
//     into its own buffer (the only per-connection copy) and writes it when the
//     socket is writable again. An idle connection therefore owns no buffer.
//   * Bytes many sinks send alike (a publication fanned out to its subscribers)
//     are staged once (stage()) into a second arena of their own, and each sink
//     then appends a reference to them (append(sink, staged_bytes)): one copy
//     per iteration, not one per sink. Because staged bytes are laid out back to
//     back, whatever else is appended meanwhile, a sink that gets several
//     staged messages in a row gets them as one segment, so a subscriber sent
//     every publication of an iteration receives them in one iovec.
//   * Large writes (tcp_stream::k_direct_write_min and up) skip the arena: the
//     sink takes its corked segments with take() and writes them and the large
//     buffer at once, keeping the order without copying the large buffer.
//   * flush_corked() must not run user callbacks or append to the cork: a sink
//     that fails records the error and reports it on a later iteration. This
//     keeps flush() simple and non-reentrant (asserted).
//
// Thread-safety: none; a cork belongs to its loop's thread.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "switchboard/net/export.hpp"

namespace switchboard::net {

class write_cork;

// Bytes staged in a cork for the current iteration (write_cork::stage). A
// plain value: valid until the end of the iteration's flush, whoever holds it.
struct staged_bytes {
  std::size_t offset = 0;
  std::size_t length = 0;
  std::uint64_t flush = 0;  // the cork's flush count when staged (checked by asserts)
};

// Base of anything that writes through a cork (tcp_stream; later a TLS stream).
// Holds the sink's place in the cork: 24 bytes, no allocation.
class SWITCHBOARD_NET_EXPORT cork_sink {
 public:
  cork_sink(const cork_sink&) = delete;
  cork_sink& operator=(const cork_sink&) = delete;

 protected:
  cork_sink() noexcept = default;
  // REQUIRES: nothing corked (call write_cork::discard first).
  ~cork_sink();

  // Called by write_cork::flush() with all of this sink's corked bytes, in order.
  // `total` is the sum of the lengths. The sink is already detached from the
  // cork when called. Must not run user callbacks nor append to the cork.
  virtual void flush_corked(std::span<const iovec> data, std::size_t total) = 0;

 private:
  friend class write_cork;
  static constexpr std::uint32_t k_none = ~std::uint32_t{0};
  std::uint32_t head_ = k_none;  // first segment
  std::uint32_t tail_ = k_none;  // last segment
  std::uint32_t slot_ = k_none;  // index in write_cork::dirty_
  std::size_t corked_bytes_ = 0;
};

class SWITCHBOARD_NET_EXPORT write_cork {
 public:
  struct stats {
    std::uint64_t flushes = 0;        // flush() calls that had something to send
    std::uint64_t sinks_flushed = 0;  // flush_corked() calls, i.e. send system calls
    std::uint64_t bytes_flushed = 0;
  };

  // `initial_capacity` bytes of arena are allocated on first use and kept.
  explicit write_cork(std::size_t initial_capacity = 64 * 1024) noexcept;
  write_cork(const write_cork&) = delete;
  write_cork& operator=(const write_cork&) = delete;
  ~write_cork();

  // Copies `bytes` into the arena, to be flushed to `sink` at the end of the
  // iteration after whatever the sink already has corked.
  // REQUIRES: not called from within flush().
  void append(cork_sink& sink, std::span<const std::byte> bytes);

  // Copies `bytes` into the staging arena, for any number of sinks to append
  // by reference until the end of this iteration's flush.
  // REQUIRES: not called from within flush().
  [[nodiscard]] staged_bytes stage(std::span<const std::byte> bytes);

  // Appends the staged bytes to what `sink` has corked, without copying them.
  // REQUIRES: `bytes` was staged in this iteration (before the last flush()
  // nothing staged is valid any more); not called from within flush().
  void append(cork_sink& sink, const staged_bytes& bytes);

  // The staged bytes themselves, until the next stage() or flush().
  [[nodiscard]] std::span<const std::byte> view(const staged_bytes& bytes) const noexcept;

  // Detaches everything `sink` has corked and returns it as iovecs, followed by
  // `extra` (which is not copied). The iovecs stay valid until the next append()
  // or flush(). Used to write corked bytes and a large buffer in one call.
  [[nodiscard]] std::span<const iovec> take(cork_sink& sink,
                                            std::span<const std::span<const std::byte>> extra);

  // Drops whatever `sink` has corked (the connection is closing).
  void discard(cork_sink& sink) noexcept;

  // Bytes `sink` has corked in this iteration.
  [[nodiscard]] static std::size_t corked_bytes(const cork_sink& sink) noexcept {
    return sink.corked_bytes_;
  }
  // True when no sink has anything corked.
  [[nodiscard]] bool empty() const noexcept { return live_sinks_ == 0; }
  // True when nothing at all was written through the cork this iteration:
  // no sink has bytes corked and nothing is staged (a topic batch stages its
  // frames before its flush hook hands them to the subscribers).
  [[nodiscard]] bool idle() const noexcept { return live_sinks_ == 0 && staged_.size == 0; }

  // Registers `fn(context)` to run at the start of every flush(), before any
  // sink is written: the place for a writer that held bytes back during the
  // iteration (the server's topic batches) to append and stage them. Hooks
  // run in the order added. REQUIRES: `context` is not registered already.
  using flush_hook = void (*)(void* context);
  void add_flush_hook(flush_hook fn, void* context);
  // Removes the hook registered with `context`; unknown contexts are ignored.
  void remove_flush_hook(void* context) noexcept;

  // Sets `fn(context)` to run in flush() after every sink was handed its
  // bytes and before the arenas are reset: the io_uring loop submits the
  // sends its sinks queued there. One at most; nullptr removes it.
  void set_flush_barrier(flush_hook fn, void* context) noexcept {
    barrier_ = {fn, context};
  }

  // Runs the flush hooks, then hands every dirty sink its bytes (one
  // flush_corked call each) and resets the arenas. Called by the event loop
  // once per iteration.
  void flush();

  [[nodiscard]] const stats& statistics() const noexcept { return stats_; }

 private:
  // A segment's offset has this bit set when it points into staged_.
  static constexpr std::size_t k_staged_bit = std::size_t{1} << (sizeof(std::size_t) * 8 - 1);

  struct segment {
    std::size_t offset;  // into arena_, or (k_staged_bit set) into staged_
    std::size_t length;
    std::uint32_t next;
  };

  // A growable byte buffer that is reset, not freed, after each flush.
  struct arena {
    std::unique_ptr<std::byte[]> data;
    std::size_t size = 0;
    std::size_t capacity = 0;
    void reserve(std::size_t more, std::size_t initial_capacity);
    void reset() noexcept;
  };

  // Links [offset, offset + length) to the end of `sink`'s chain, extending
  // its last segment when the bytes follow on from it.
  void link(cork_sink& sink, std::size_t offset, std::size_t length);
  [[nodiscard]] const std::byte* address(std::size_t offset) const noexcept;
  void detach(cork_sink& sink) noexcept;

  arena arena_;   // bytes copied for one sink (append(sink, bytes))
  arena staged_;  // bytes staged for many (stage())
  std::size_t initial_capacity_;
  std::uint64_t flushes_ = 0;  // flush() calls, to date staged_bytes
  std::vector<segment> segments_;
  std::vector<cork_sink*> dirty_;  // in order of first write; nullptr once discarded
  std::size_t live_sinks_ = 0;     // non-null entries of dirty_
  std::vector<iovec> iov_;         // scratch for flush() and take()
  std::vector<std::pair<flush_hook, void*>> hooks_;
  std::pair<flush_hook, void*> barrier_{nullptr, nullptr};
  bool flushing_ = false;
  stats stats_;
};

}  // namespace switchboard::net
