// http_peer.hpp — private: a switchboard.v1 client carried over plain HTTP
// (docs/protocol.md, "HTTP transports"): the base of an HTTP session
// (http_session.hpp: commands up by POST, messages down by SSE or
// long-poll) and of a plain SSE stream (sse_stream.hpp: GET /sse). It is a
// `peer` to the session logic (the same commands, limits and replies as
// /ws) and an `http_subscriber` to the hub (its own per-channel list).
// Subclasses say how messages go down: the "sink".
//
// Locks. A command lock (recursive: a memory-broker completion runs inside
// the command that started it) serializes everything the session logic
// does with the peer; the subclass's output lock is a leaf taken by
// deliver() and send(), which never call the hub or the broker. Order:
// command lock → hub → broker → hub HTTP lock → output lock.
//
// Lifetime: owned by shared_ptr (the transports' registry and in-flight
// requests); completions hold a weak_ptr (peer_ref). close() leaves every
// channel, once; after it run() hands completions nullptr.
//
// Thread-safety: every public member may be called from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <switchboard/net/compact_mutex.hpp>

#include "peer.hpp"
#include "session.hpp"

namespace switchboard::realtime::detail {

class http_peer : public peer,
                  public http_subscriber,
                  public std::enable_shared_from_this<http_peer> {
 public:
  http_peer(sessions& s, hub& h) : sessions_(s), hub_(h) { conn_.is_http = true; }
  virtual ~http_peer() = default;
  http_peer(const http_peer&) = delete;
  http_peer& operator=(const http_peer&) = delete;

  // After sessions::admit() filled state(): links the peer for tick().
  // `decided`: as sessions::open()'s (the connect hook asked at open).
  void opened(net::unique_function<void(const failure*)> decided = {});

  connection_state& state() override { return conn_; }
  peer_ref ref() override { return peer_ref::http(weak_from_this()); }
  void prepare(local_channel& ch) override;
  void cancel(local_channel& ch) override;
  bool attach(local_channel& ch, std::string_view epoch) override;
  void start(local_channel& ch, std::uint64_t after) override;
  void detach(local_channel& ch, bool closing) override;
  // Leaves everything, then tells the sink (on_closed). Idempotent.
  void close(std::uint16_t code, std::string_view reason) override;
  bool is_open() override { return !is_closed(); }

  // Runs `f` under the command lock, with this peer or nullptr once closed.
  void run(net::unique_function<void(peer*)> f);
  // One line of a POST batch, as a /ws text message.
  void command(std::string_view line);
  // A line over limits.max_message_size: the /ws 1009 becomes a 400 reply.
  void refuse_line();

  void stream_lost(std::string_view channel) override;
  // The hub lost a channel of this peer, or the sink overflowed: the
  // registry's tick() closes it (not from inside a delivery).
  bool must_close(std::uint16_t& code, std::string& reason) const;
  bool is_closed() const noexcept { return closed_.load(std::memory_order_acquire); }

 protected:
  // The sink: the peer was closed with `code` (a /ws close code).
  virtual void on_closed(std::uint16_t code, std::string_view reason) = 0;
  // Asks tick() to close the peer (called from a delivery: no lock but the sink's).
  // REQUIRES: `reason` outlives the peer (a literal): it is kept as a view.
  void request_close(std::uint16_t code, std::string_view reason);

  sessions& sessions_;
  hub& hub_;

 private:
  // One peer per idle SSE subscriber: its locks are the compact ones (16 and
  // 4 bytes, not 40 each), and the small members share one word.
  net::compact_recursive_mutex cmd_mutex_;
  connection_state conn_;
  channel_list pending_;  // prepared, not started (one inline: no block)
  std::string_view close_reason_;        // guarded by close_mutex_ (a literal)
  mutable net::compact_mutex close_mutex_;  // guards close_code_ and close_reason_
  std::uint16_t close_code_ = 0;            // set: tick() closes with it
  std::atomic<bool> closed_{false};
};

// For sessions::tick(): a refresh push and a close (token expiry, connect timeout).
void send_http_peer(http_peer& p, const std::string& text);
void close_http_peer(http_peer& p, std::uint16_t code, std::string_view reason);

}  // namespace switchboard::realtime::detail
