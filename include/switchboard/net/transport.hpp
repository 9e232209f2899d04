// transport.hpp — one connection that is either plain TCP (tcp_stream) or TLS
// (tls_stream), chosen at construction (or by set_tls() while closed), behind
// one interface and one handler. A WebSocket connection holds a transport and serves ws:// and
// wss:// with the same code.
//
// Dispatch. Calls into the transport switch on the mode (a predictable branch)
// and call the stream directly: no virtual call is added on the way down. On
// the way up the transport is the stream's handler and forwards each callback
// to the owner's transport_handler: one extra virtual call per callback, never
// per byte.
//
// Memory. A plain transport holds its tcp_stream inline and allocates
// nothing while idle: sizeof(transport) is the tcp_stream plus a vtable
// pointer, the owner pointer, a pointer for a pending half-close and the mode
// flags — 112 bytes with tcp_stream's 80 (bounded by a static_assert in
// transport.cpp). A TLS transport keeps its tls_stream in one
// heap block, allocated by open(): the tls_stream is three times the size of a
// tcp_stream, and holding it inline would make every idle plain connection
// pay for it, while a TLS connection already holds OpenSSL state many times
// larger than the block.
//
// Half-close. shutdown_write() means "after every byte sent so far, end the
// write side": TLS sends close_notify and then shuts the socket's write side
// (tls_stream::shutdown_write); plain TCP flushes and then calls
// ::shutdown(SHUT_WR) on native_handle(). tcp_stream has no call of its own
// for this, so the transport waits for its bytes to leave: at once if nothing
// is buffered; after on_drained if the kernel refused bytes; after the loop's
// end-of-iteration cork flush if bytes are corked (a zero-delay timer, which
// fires at the start of the next iteration, in a small block allocated for
// that wait only). Sends after shutdown_write() are dropped in both modes.
//
// Thread-safety: none; a transport is used on its loop's thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/export.hpp"
#include "switchboard/net/io_handler.hpp"
#include "switchboard/net/tcp_stream.hpp"
#include "switchboard/net/tls_context.hpp"
#include "switchboard/net/tls_stream.hpp"

namespace switchboard::net {

class transport;

// What a transport tells its owner, whichever stream it runs on. Reentrancy:
// each callback may send, shutdown_write(), close() the transport, or destroy
// it (and other transports of the loop).
class SWITCHBOARD_NET_EXPORT transport_handler {
 public:
  // TLS only: the handshake completed (ALPN, version and the peer certificate
  // are known now); on_data may follow. Never called for plain TCP, whose
  // bytes flow from open(). Default: nothing.
  virtual void on_handshake(transport& t);
  // `data` arrived (decrypted, for TLS). It lives in the loop's receive buffer
  // and may be modified in place; valid until the call returns.
  virtual void on_data(transport& t, std::span<std::byte> data) = 0;
  // The kernel had refused bytes (write_blocked() was true) and has now taken
  // all of them. Default: nothing.
  virtual void on_drained(transport& t);
  // The transport closed itself: `error` is empty after an orderly end from
  // the peer (TCP end of stream; TLS close_notify), else what went wrong —
  // errno values in the system category, TLS failures in tls_category()
  // (compare with tls_failure; last_error_text() has OpenSSL's account).
  // Not called after the owner's close().
  virtual void on_close(transport& t, std::error_code error) = 0;

 protected:
  transport_handler() noexcept = default;
  transport_handler(const transport_handler&) = default;
  transport_handler& operator=(const transport_handler&) = default;
  ~transport_handler() = default;
};

class SWITCHBOARD_NET_EXPORT transport final : private stream_handler {
 public:
  // A closed transport on `loop` reporting to `handler`: plain TCP if `tls`
  // is null, else TLS configured by `*tls` (its side() decides whether open()
  // accepts or connects). Allocates nothing.
  // REQUIRES: `*tls` outlives the transport.
  transport(event_loop& loop, transport_handler& handler, tls_context* tls = nullptr) noexcept;
  // Closes the transport (no on_close). Safe from within its callbacks.
  ~transport();
  transport(const transport&) = delete;
  transport& operator=(const transport&) = delete;

  // Takes ownership of a connected, non-blocking socket and starts reading
  // (TLS: starts the handshake; a client sends its ClientHello at once).
  // `server_name` is used by a TLS client only: the host its certificate must
  // name (a DNS name, also sent as SNI, or an IP address). Errors: from
  // epoll_ctl; TLS: from OpenSSL (last_error_text() says more),
  // std::errc::invalid_argument for a verifying client without a server
  // name, std::errc::not_enough_memory if the TLS block cannot be allocated.
  // The socket is closed on error.
  // REQUIRES: !is_open().
  std::error_code open(unique_fd socket, std::string_view server_name = {});

  // Changes the mode of a closed transport: TLS with `*tls`, or plain TCP if
  // null (a client picks it per URL: ws:// or wss://). The TLS block is
  // freed, last_error_text() with it, unless the mode and context stay the
  // same. May be called from the transport's on_close.
  // REQUIRES: !is_open(); `*tls` outlives the transport.
  void set_tls(tls_context* tls) noexcept;

  [[nodiscard]] bool is_tls() const noexcept { return tls_mode_; }
  [[nodiscard]] bool is_open() const noexcept;
  // The socket, or -1 while closed.
  [[nodiscard]] int native_handle() const noexcept;
  [[nodiscard]] event_loop& loop() const noexcept;

  // Sends `data` (or the concatenation of `parts`) after everything sent
  // before; see send_status. The bytes are copied or written before
  // returning. Dropped when closed, failed, or after shutdown_write().
  send_status send(std::span<const std::byte> data);
  send_status send(std::initializer_list<std::span<const std::byte>> parts);
  // Sends bytes staged in the loop's cork in this iteration (write_cork::stage):
  // plain TCP refers to them without copying (tcp_stream::send(staged_bytes));
  // TLS encrypts them like any other send.
  send_status send(const staged_bytes& bytes);

  // Bytes accepted by send() and not yet taken by the kernel (TLS: plaintext
  // not yet encrypted plus ciphertext refused by the kernel).
  [[nodiscard]] std::size_t buffered_bytes() const noexcept;
  // True while bytes refused by the kernel wait for EPOLLOUT.
  [[nodiscard]] bool write_blocked() const noexcept;

  // Ends the write side after everything sent so far (see the top of this
  // file): TLS close_notify then SHUT_WR; TCP SHUT_WR once the bytes left.
  // Reading goes on until the peer ends its side (on_close). Later sends are
  // dropped. No effect if closed or already called.
  void shutdown_write();

  // Closes the socket now; buffered bytes are dropped; no on_close. Idempotent.
  void close() noexcept;

  // True once application bytes flow: TLS after the handshake, TCP while open.
  [[nodiscard]] bool handshake_complete() const noexcept;
  // TLS, after on_handshake: the negotiated ALPN protocol, the version
  // ("TLSv1.3"), the SNI name the client asked for, and the peer
  // certificate's subject ("/CN=localhost"). "" for TCP, or when absent.
  [[nodiscard]] std::string_view alpn_protocol() const noexcept;
  [[nodiscard]] std::string_view protocol_version() const noexcept;
  [[nodiscard]] std::string_view server_name() const noexcept;
  [[nodiscard]] std::string peer_subject() const;
  // TLS: OpenSSL's account of the last failure, kept after close for
  // on_close and the owner's log. "" for TCP, or none.
  [[nodiscard]] std::string_view last_error_text() const noexcept;
  // The TLS stream, for anything not covered here (native_ssl()); null for
  // TCP and for TLS before the first open().
  [[nodiscard]] tls_stream* tls() const noexcept;

 private:
  struct tls_block;  // the tls_stream and its relay (transport.cpp)
  struct SWITCHBOARD_NET_EXPORT tls_block_deleter {
    void operator()(tls_block* block) const noexcept;
  };
  struct flush_wait;  // a timer for a TCP half-close after the cork flush
  struct SWITCHBOARD_NET_EXPORT flush_wait_deleter {
    void operator()(flush_wait* wait) const noexcept;
  };
  // The TLS mode's state: the block exists from the first open() on.
  struct tls_state {
    std::unique_ptr<tls_block, tls_block_deleter> block;
    event_loop* loop;
    tls_context* context;
  };

  // stream_handler: the TCP mode's callbacks.
  void on_data(tcp_stream& stream, std::span<std::byte> data) override;
  void on_drained(tcp_stream& stream) override;
  void on_close(tcp_stream& stream, std::error_code error) override;

  void construct(event_loop& loop, tls_context* tls) noexcept;
  void destroy() noexcept;
  void half_close_tcp() noexcept;
  void after_flush();

  // Exactly one member is live, as tls_mode_ says (construct() / destroy()).
  union {
    tcp_stream tcp_;
    tls_state tls_;
  };
  transport_handler* handler_;
  std::unique_ptr<flush_wait, flush_wait_deleter> flush_wait_;  // TCP: waiting for the flush
  bool tls_mode_;
  bool write_shut_ = false;     // TCP: shutdown_write() called; sends are dropped
  bool shut_on_drain_ = false;  // TCP: half-close when on_drained fires
};

}  // namespace switchboard::net
