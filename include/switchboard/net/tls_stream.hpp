// tls_stream.hpp — a TLS connection (server or client side) over a connected
// TCP socket on an event loop, with the interface of tcp_stream: plaintext in
// the loop's shared receive buffer, writes through the loop's cork, and only
// what the kernel refuses kept per connection.
//
// Design: OpenSSL on custom BIOs fed from the loop's buffers, not on the fd.
//
//   Reading. On each readiness report the stream does ONE recv of ciphertext
//   into the upper half of the loop's receive buffer, points its BIO at those
//   bytes, and calls SSL_read until OpenSSL has consumed all of them, decrypting
//   into the lower half. The plaintext reaches on_data() as a mutable span in
//   the shared buffer, exactly as with tcp_stream (the WebSocket layer unmasks
//   in place). The pass ends at WANT_READ or, without asking OpenSSL once
//   more, as soon as the input is used up and SSL_has_pending() says OpenSSL
//   holds nothing (the usual case: whole records arrived). Nothing stays
//   hidden in user space: OpenSSL keeps at most a partial record, which needs
//   more bytes from the kernel anyway, so level-triggered epoll keeps its
//   meaning (with SSL on the fd and read-ahead, bytes OpenSSL had already
//   read would never be reported again). A large read costs one recv instead
//   of two per 16 KiB record.
//
//   Writing. Everything sent during one loop iteration is corked as plaintext
//   (the stream is a cork_sink). At the flush the stream makes it contiguous
//   (only when the cork holds it in more than one segment) and calls SSL_write
//   ONCE; the BIO collects the resulting records in a per-thread buffer, which
//   goes to the kernel with one send. What the kernel refuses is kept as
//   ciphertext in the stream's own buffer and written on EPOLLOUT; while it
//   waits, later flushes append their records there directly. The BIO never
//   refuses bytes, so SSL_write never asks to be retried with the same buffer
//   and the plaintext never has to be kept. buffered_bytes() counts corked
//   plaintext plus waiting ciphertext (records add ~22 bytes per 16 KiB).
//
//   On io_uring (event_loop::completion_io()) the same happens on
//   completions: the ciphertext comes from the loop's multishot receive (in
//   the engine's provided buffers, so the whole receive buffer holds
//   plaintext), and a flush's records leave as a send queued with every
//   other stream's, submitted once at the end of the flush; what the kernel
//   refuses is kept as above. Handshake flights, alerts and close_notify
//   outside a flush are written at once, as on epoll.
//
//   Why not memory BIOs: BIO_s_mem would copy every byte into a growing
//   per-connection buffer (kept while idle) on the way in and out; these BIOs
//   borrow the loop's buffers and cost nothing while idle.
//
// Handshake. It runs inside the stream before any on_data: on_handshake()
// reports its completion (ALPN, version and peer certificate are known then).
// A client's stream starts it in open() (the ClientHello goes out at once).
// Bytes sent before it completes are kept and sent right after it. A failure
// — a certificate refused, plain HTTP or garbage on the TLS port, no common
// version — is on_close(error) with error in tls_category() (see
// tls_error.hpp; `error == tls_failure::not_tls` for plain HTTP) and
// last_error_text() holding OpenSSL's whole story. The alert OpenSSL produced
// is sent before the socket closes, so the peer learns the reason too. The
// handshake has no timer of its own: the owner's handshake timeout (the server
// arms one at accept) bounds it.
//
// Record buffers. OpenSSL needs a ~17 KiB read and a ~17 KiB write buffer per
// connection while it works on records. A quiet connection frees both after
// each read pass and write (SSL_MODE_RELEASE_BUFFERS, and SSL_free_buffers at
// the end of a read pass for what that mode misses, e.g. a session ticket), so
// an idle one holds neither. A busy one — two read passes, or two flushes,
// less than the context's release_buffers_after apart — stops doing so (for a
// small echo the malloc/free of two 17 KiB blocks per message cost ~6% of
// the server's CPU): it keeps them until it has had no TLS I/O for
// release_buffers_after, then frees them and is quiet again. Busy-ness must be
// earned by the second operation, not granted by the first (and the pass that
// completes the handshake does not count), so a connect storm (handshake,
// upgrade request, 101, then nothing) never holds buffers past its last pass
// and the heap does not grow by rate × delay × 34 KiB. One timer per
// stream, armed only while busy, re-armed lazily (an I/O only stores the time).
//
// OpenSSL's error queue. SSL_get_error needs it empty before SSL_read; it is
// checked (ERR_peek_error) and cleared only when something is in it, which
// after our own calls it never is (a failure drains it). SSL_write is not
// preceded by a check: the BIO never refuses, so any failed SSL_write is fatal
// whatever SSL_get_error says, and the queue is drained then.
//
// Closing. A close_notify from the peer is an orderly end: the data before it
// goes to on_data first (what the handler sends from there still goes out),
// then the stream answers with its own close_notify, closes, and calls
// on_close({}). An end of TCP without
// close_notify is on_close(tls_failure::unexpected_eof). shutdown_write()
// sends close_notify after everything sent before, then half-closes TCP.
//
// Thread-safety: none; a stream is used on its loop's thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/export.hpp"
#include "switchboard/net/io_handler.hpp"
#include "switchboard/net/tcp_stream.hpp"
#include "switchboard/net/tls_context.hpp"
#include "switchboard/net/write_cork.hpp"

struct ssl_st;

namespace switchboard::net {

class tls_stream;

namespace detail {
struct tls_stream_access;
}

// What a TLS stream tells its owner: tcp_stream's stream_handler, plus the
// handshake. Reentrancy: each callback may send, close() the stream, or destroy
// it (and other streams of the loop).
class SWITCHBOARD_NET_EXPORT tls_stream_handler {
 public:
  // The handshake completed; on_data may follow. Default: nothing.
  virtual void on_handshake(tls_stream& stream);
  // Decrypted `data`; it lives in the loop's receive buffer until the call returns.
  virtual void on_data(tls_stream& stream, std::span<std::byte> data) = 0;
  // As stream_handler::on_drained: the kernel took every refused byte.
  virtual void on_drained(tls_stream& stream);
  // The stream closed itself: empty `error` after the peer's close_notify,
  // else what went wrong (see above). Not called after the owner's close().
  virtual void on_close(tls_stream& stream, std::error_code error) = 0;

 protected:
  tls_stream_handler() noexcept = default;
  tls_stream_handler(const tls_stream_handler&) = default;
  tls_stream_handler& operator=(const tls_stream_handler&) = default;
  ~tls_stream_handler() = default;
};

class SWITCHBOARD_NET_EXPORT tls_stream final : private io_handler, private cork_sink {
 public:
  using handler_type = tls_stream_handler;

  // A closed stream bound to `loop`, reporting to `handler`, configured by
  // `context` (its side() decides whether the stream accepts or connects).
  // REQUIRES: `context` outlives the stream.
  tls_stream(event_loop& loop, tls_stream_handler& handler, tls_context& context) noexcept;
  // Closes the stream (no on_close, no close_notify). Safe from its callbacks.
  ~tls_stream();

  // Takes ownership of a connected, non-blocking socket and starts the
  // handshake. `server_name` (client side) is the host the certificate must
  // name — a DNS name (also sent as SNI) or an IP address; ignored on the
  // server side. Errors: from epoll_ctl or OpenSSL; std::errc::invalid_argument
  // for a verifying client without a server name. The socket is closed then.
  // REQUIRES: !is_open().
  std::error_code open(unique_fd socket, std::string_view server_name = {});

  [[nodiscard]] bool is_open() const noexcept { return fd_.get() >= 0; }
  [[nodiscard]] int native_handle() const noexcept { return fd_.get(); }
  [[nodiscard]] event_loop& loop() const noexcept { return *loop_; }

  // Sends `data` (or the concatenation of `parts`) after everything sent
  // before; see send_status. The bytes are copied before returning.
  send_status send(std::span<const std::byte> data);
  send_status send(std::initializer_list<std::span<const std::byte>> parts);

  // Bytes accepted by send() and not yet taken by the kernel (plaintext
  // corked or waiting for the handshake, plus refused ciphertext).
  [[nodiscard]] std::size_t buffered_bytes() const noexcept;
  // True while ciphertext refused by the kernel waits for EPOLLOUT.
  [[nodiscard]] bool write_blocked() const noexcept { return pending_head_ < pending_.size(); }

  // Sends close_notify after everything sent so far, then shuts down the
  // socket's write side once it is written. Later sends are dropped; reading
  // goes on until the peer's close_notify or end of stream.
  void shutdown_write();

  // Closes the socket now; buffered bytes are dropped; no on_close. Idempotent.
  void close() noexcept;

  // After on_handshake: the negotiated ALPN protocol ("" if none), the TLS
  // version ("TLSv1.3"), the SNI name the client asked for ("" if none), and
  // the peer certificate's subject ("/CN=localhost"; "" if none).
  [[nodiscard]] bool handshake_complete() const noexcept { return handshake_done_; }
  [[nodiscard]] std::string_view alpn_protocol() const noexcept;
  [[nodiscard]] std::string_view protocol_version() const noexcept;
  [[nodiscard]] std::string_view server_name() const noexcept;
  [[nodiscard]] std::string peer_subject() const;
  // OpenSSL's full account of the last failure (kept after close, for
  // on_close); "" if none.
  [[nodiscard]] const std::string& last_error_text() const noexcept { return error_text_; }
  // SSL_write calls made so far: one per flush that had bytes (for tests).
  [[nodiscard]] std::uint64_t ssl_write_calls() const noexcept { return ssl_writes_; }
  // True while the stream counts as busy and keeps its record buffers between
  // uses (see above); false while it frees them after each use.
  [[nodiscard]] bool keeps_record_buffers() const noexcept { return keep_buffers_; }
  // The OpenSSL object, for anything not covered here; null while closed.
  [[nodiscard]] ssl_st* native_ssl() const noexcept { return ssl_.get(); }

 private:
  friend struct detail::tls_stream_access;
  struct SWITCHBOARD_NET_EXPORT ssl_deleter {
    void operator()(ssl_st* ssl) const noexcept;
  };

  void on_events(std::uint32_t events) override;
  void on_received(std::span<std::byte> data, int error) override;
  void on_sent(std::span<const iovec> data, std::size_t total, int result) override;
  void flush_corked(std::span<const iovec> data, std::size_t total) override;

  send_status send_parts(std::span<const std::span<const std::byte>> parts);
  void receive(std::span<std::byte> plain, detail::lifetime_flag::scope& alive);
  [[nodiscard]] bool finish_handshake(detail::lifetime_flag::scope& alive);
  void encrypt(std::span<const iovec> data, std::size_t total);
  void encrypt(std::span<const std::byte> data);
  void transmit();
  // Completion I/O: the flush's records as a send queued with the others.
  void queue_transmit();
  [[nodiscard]] bool write_pending();  // false if the stream closed and notified
  void count_pending() noexcept;       // tells the loop pending_'s unwritten bytes
  void set_write_interest(bool on);
  [[nodiscard]] std::error_code take_ssl_error(int ssl_error);
  void fail(std::error_code error) noexcept;
  void close_and_notify(std::error_code error);
  void note_use(steady_time& last) noexcept;  // a read pass or a flush: maybe busy now
  void on_release_timer() noexcept;

  event_loop* loop_;
  tls_stream_handler* handler_;
  tls_context* context_;
  unique_fd fd_;
  std::unique_ptr<ssl_st, ssl_deleter> ssl_;
  std::shared_ptr<const detail::tls_snapshot> snapshot_;
  std::span<const std::byte> input_;  // ciphertext the BIO hands OpenSSL (during on_events)
  std::vector<std::byte> pending_;    // ciphertext refused by the kernel, from pending_head_
  std::size_t pending_head_ = 0;
  std::size_t counted_pending_ = 0;  // pending_'s unwritten bytes as the loop counts them
  std::vector<std::byte> early_;  // plaintext sent before the handshake completed
  std::error_code failure_;       // a write error waiting to be reported
  std::string error_text_;
  std::uint64_t ssl_writes_ = 0;
  // The last read pass and flush after the handshake; min(): none yet.
  steady_time last_read_ = steady_time::min();
  steady_time last_write_ = steady_time::min();
  timer_node release_timer_;  // armed while keep_buffers_
  std::uint32_t interest_ = 0;
  bool input_eof_ = false;  // the peer ended TCP; the BIO reports EOF
  bool handshake_done_ = false;
  bool write_shut_ = false;        // close_notify sent; sends are dropped
  bool shut_after_drain_ = false;  // SHUT_WR once pending_ is written
  bool keep_buffers_ = false;      // busy: SSL_MODE_RELEASE_BUFFERS cleared on ssl_
  detail::lifetime_flag lifetime_;
};

}  // namespace switchboard::net
