// switchboard/server/websocket.hpp — one server-side WebSocket connection, as
// the application's callbacks see it: send, ping, close, terminate, topics,
// and the per-connection user data.
//
// A websocket object is created by the server when a client connects and
// destroyed by it after on_close; the application only ever gets a reference
// inside a callback. Memory: the object is small (see sizeof in the tests) and
// owns nothing while idle; the endpoint's user data lives inline right after
// it, in the same allocation. The same object serves ws:// and wss://: its
// net::transport holds a plain TCP stream inline, or (server_options::tls)
// a TLS stream in one heap block allocated at accept.
//
// Thread-safety: every member function must be called on the connection's
// loop thread, i.e. from a callback of this server on that loop. From any
// other thread use server::send() / server::close() with id(): they post the
// call to the owning loop.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <string_view>
#include <switchboard/net/timer_wheel.hpp>
#include <switchboard/net/transport.hpp>
#include <switchboard/protocol/frame.hpp>
#include <switchboard/protocol/http_head.hpp>
#include <switchboard/protocol/message_reader.hpp>
#include <switchboard/server/export.hpp>
#include <vector>

namespace switchboard::server {

class http_response;

struct ws_behavior;
enum class handshake_failure : std::uint8_t;  // options.hpp

namespace detail {
class loop_context;
struct handshake_state;
struct http_answer;
struct parked_stream;
struct stream_state;
struct route;
struct connection_codec;
struct topic;

// The topics one connection is subscribed to. Most connections have one, so
// one is held inline and only a second one allocates a list: 8 bytes and no
// allocation for a connection of one topic (a unique_ptr to a vector cost
// two allocations, 64 bytes of heap). Loop thread only (topics.cpp).
class topic_set {
 public:
  topic_set() = default;
  topic_set(const topic_set&) = delete;
  topic_set& operator=(const topic_set&) = delete;
  ~topic_set() { clear(); }

  bool empty() const noexcept { return bits_ == 0; }
  bool contains(const topic* t) const noexcept;
  void insert(topic* t);  // REQUIRES: !contains(t)
  bool erase(const topic* t) noexcept;
  void clear() noexcept;
  // Calls f(topic*) for each topic; f must not change the set.
  template <class F>
  void for_each(F f) const {
    if (bits_ == 0) return;
    if ((bits_ & 1) == 0) return f(reinterpret_cast<topic*>(bits_));
    for (topic* t : *list()) f(t);
  }

 private:
  // Low bit clear: the one topic (or 0: none); set: a list of two or more.
  std::vector<topic*>* list() const noexcept {
    return reinterpret_cast<std::vector<topic*>*>(bits_ & ~std::uintptr_t{1});
  }
  std::uintptr_t bits_ = 0;
};
}  // namespace detail

// The outcome of a send.
enum class send_status : std::uint8_t {
  ok,            // accepted; nothing is waiting for the socket
  backpressure,  // accepted, but bytes wait for a slow reader (on_drain follows)
  dropped,       // not accepted: not open, closing, or over max_backpressure
};

// Names a connection across threads. Stale ids (connection gone, slot reused)
// are recognised by the generation and ignored.
struct connection_id {
  std::uint32_t loop = 0;
  std::uint32_t slot = 0;
  std::uint32_t generation = 0;
  friend bool operator==(const connection_id&, const connection_id&) = default;
};

class SWITCHBOARD_SERVER_EXPORT websocket final : private net::transport_handler {
 public:
  websocket(const websocket&) = delete;
  websocket& operator=(const websocket&) = delete;

  // Sends one data message (RFC 6455 §5.6) as a single unmasked frame,
  // compressed (RSV1) when permessage-deflate was negotiated and the payload
  // is at least the endpoint's compression threshold.
  // op: text (payload must be UTF-8, asserted nowhere — the caller's contract)
  // or binary. Returns dropped if the connection is not open (closing
  // included) or its queue is over max_backpressure (then, with the close
  // policy, the connection is closed with 1008). Written through the loop's
  // cork: all sends of one callback leave in one system call.
  send_status send(std::string_view payload, protocol::opcode op = protocol::opcode::binary);

  // Sends a ping (RFC 6455 §5.5.2); payloads over 125 bytes are cut to 125.
  // On an event-stream connection: the SSE comment ":" payload "\n\n" as
  // one chunk instead (what the heartbeat sends).
  send_status ping(std::string_view payload = {});

  // Starts the close handshake (RFC 6455 §7.1.2): sends a close frame with
  // `code` and `reason` (cut to 123 bytes), stops accepting sends, waits up
  // to close_timeout for the peer's close, then closes TCP. code 1005 or 0
  // sends an empty close. REQUIRES: code is 0, 1005 or valid on the wire;
  // reason is UTF-8. No effect if already closing.
  void close(std::uint16_t code = 1000, std::string_view reason = {});

  // Closes TCP now, without a close frame; on_close gets 1006. Safe inside
  // any callback of this connection.
  void terminate() noexcept;

  // Topics (RFC-independent pub/sub): messages published with
  // server::publish() to `topic` reach every subscriber. Returns false if
  // already (un)subscribed or not open; subscribing again does not change
  // `after`.
  // `after`: of the publications with a sequence (server::publish's
  // `sequence` != 0), only those with a sequence greater than `after` reach
  // this connection; unsequenced ones always do. A subscriber that caught up
  // on history up to H subscribes with after = H and so never gets a
  // message twice, even one published before this call and still queued for
  // this loop. 0 (the default) takes every publication.
  // Memory: 24 bytes per subscription (a 16-byte {connection, after} entry
  // in the topic's list, an 8-byte topic pointer in the connection's) plus
  // the lists' spare capacity; the topic itself (name, list) is one entry
  // per loop, shared by its subscribers there.
  bool subscribe(std::string_view topic, std::uint64_t after = 0);
  bool unsubscribe(std::string_view topic);

  // Bytes accepted by send and not yet taken by the kernel.
  std::size_t buffered_amount() const noexcept { return stream_.buffered_bytes(); }
  // True if permessage-deflate was negotiated for this connection.
  bool compressed() const noexcept { return deflate_; }
  // True for an event-stream connection (http_response::open_event_stream):
  // sends are HTTP chunks, not frames.
  bool event_stream() const noexcept { return event_stream_; }
  // True if the connection runs over TLS (wss://).
  bool secure() const noexcept { return stream_.is_tls(); }
  // Heap bytes of this connection's own zlib state (dedicated mode; always 0
  // in shared mode, whose state belongs to the loop).
  std::size_t compression_memory() const noexcept;
  // The code of the close frame this side sent (ours, or the echo of the
  // peer's), 0 before one was sent. on_close reports 1006 when the peer went
  // away without answering ours; this says what we sent.
  std::uint16_t close_code_sent() const noexcept { return close_sent_; }
  // True between on_open and the start of the close handshake.
  bool is_open() const noexcept { return state_ == state::open; }
  // For server::send() / server::close() from other threads.
  connection_id id() const noexcept;

  // The endpoint's user data (ws_behavior::with_user_data<T>()), constructed
  // before on_upgrade and destroyed after on_close.
  // REQUIRES: T is the endpoint's user-data type.
  template <class T>
  T& data() noexcept {
    return *std::launder(static_cast<T*>(user_data()));
  }
  void* user_data() noexcept;

 private:
  friend class detail::loop_context;
  friend class upgrade_request;
  friend class http_response;
  enum class state : std::uint8_t {
    handshake,  // reading the request head
    upgrading,  // on_upgrade deferred its answer
    open,       // upgraded; frames flow both ways
    closing,    // our close frame is out; waiting for the peer's
    lingering,  // finished: our side is shut down after the flush; waiting for EOF
    closed,     // TCP closed; waiting to be freed at the end of the iteration
  };

  websocket(detail::loop_context& ctx, std::uint32_t slot, std::uint32_t generation) noexcept;
  ~websocket();

  // net::transport_handler (for TLS, on_data starts after the TLS handshake)
  void on_data(net::transport& stream, std::span<std::byte> data) override;
  void on_drained(net::transport& stream) override;
  void on_close(net::transport& stream, std::error_code error) override;

  // handshake.cpp
  void on_head_complete();
  // REQUIRES: `route` is the request's (null: looked up again).
  void start_upgrade(const detail::route* route = nullptr);
  void reject_handshake(handshake_failure reason, int status, std::string_view body);
  void reject_handshake(protocol::error err);
  void drop_handshake(handshake_failure reason);
  void finish_upgrade(std::string_view subprotocol,
                      std::span<const protocol::http_header> headers);
  void start_open();
  void reject_upgrade(int status, std::string_view body);
  void respond_http(std::string_view response);

  // event_stream.cpp: event-stream connections (http_response::open_event_stream).
  // REQUIRES for all but the first: event_stream_.
  bool begin_event_stream(const ws_behavior& endpoint, std::uint32_t seq);
  void start_event_stream(const http_response& head);
  send_status send_chunk(std::string_view payload);
  send_status write_chunk_admitted(const net::staged_bytes& chunk);
  send_status write_chunk_admitted(std::string_view payload);
  void close_event_stream(std::uint16_t code, std::string_view reason);
  void on_event_stream_data();
  void on_event_stream_timer();
  void schedule_heartbeat();
  // An event stream holds the loop time of its last write in last_receive_
  // (its client sends nothing): the heartbeat's silence is measured from it.
  void note_stream_write() noexcept;

  // http_exchange.cpp: plain HTTP requests, keep-alive, pipelining, streams.
  void on_handshake_data(std::span<std::byte> data);
  void drive_http();
  bool read_request();
  void start_http();
  void serve_request();
  void finish_request();
  void start_answer_stream(detail::http_answer& a, const http_response& head,
                           std::shared_ptr<detail::stream_state> stream);
  void complete_answer(std::uint32_t seq, const http_response& response,
                       std::shared_ptr<detail::stream_state> stream);
  void on_stream_task(detail::stream_state& stream);
  void flush_answers();
  bool pump_stream(detail::http_answer& a);
  void close_slow_stream(bool memory);
  void arm_http_timer();
  void on_http_drained();
  // Server shutdown of a plain HTTP connection: true if handled (an idle
  // keep-alive connection closed, a stream finished); false: drop it.
  bool stop_http(bool graceful);
  bool http_streaming() const noexcept;
  // A keep-alive connection between requests (it holds no request state).
  bool http_idle() const noexcept;
  void end_http_streams() noexcept;
  // A connection whose only business is one started stream, with nothing
  // else read, parks it: the stream's answer moves to a small block and the
  // pooled request state (~4.5 KB with its parser) goes back to the loop.
  // unpark_stream() brings the state back when more than the stream's own
  // output needs it (bytes from the client, the stream's end, shutdown).
  void park_stream();
  void unpark_stream();
  // Destroys parked_ wherever it lies. REQUIRES: parked_stream_.
  void free_parked() noexcept;

  // websocket.cpp
  void on_frames(std::span<char> input);
  bool on_compressed(const protocol::reader_event& ev);
  void on_compressed_part(const protocol::reader_event& ev);
  detail::connection_codec& codec();
  void on_peer_close(std::uint16_t code, std::string_view reason);
  void fail(protocol::error err);
  send_status send_frame(protocol::opcode op, std::string_view payload);
  // Topic fan-out (topics.cpp): admit_send() applies send()'s rules (open,
  // under max_backpressure — or the policy acts) and says whether a message
  // may be written; write_admitted() then writes a ready frame.
  bool admit_send();
  // Before anything is written to this connection: publications its topics
  // hold back in the loop's batch go first (topics.cpp).
  void before_write() {
    if (!topics_.empty()) flush_topic_batch();
  }
  void flush_topic_batch();
  send_status write_admitted(std::span<const std::byte> framed);
  send_status write_admitted(const net::staged_bytes& framed);
  send_status send_compressed(protocol::opcode op, std::string_view payload);
  bool wants_compression(std::size_t size) const noexcept;
  bool over_backpressure();
  // outbound.cpp: closed for max_outbound_memory, its queue dropped at once.
  void shed();
  void linger(bool wait_for_fin);
  void after_flush();
  void notify_close(std::uint16_t code, std::string_view reason);
  void on_timer();
  void schedule_keepalive();
  std::uint32_t now_ms() const noexcept;

  net::transport stream_;  // plain TCP inline, or TLS in a heap block
  net::timer_node timer_;
  detail::loop_context* ctx_;
  const ws_behavior* behavior_ = nullptr;
  // Pooled per loop and borrowed only while needed, so an idle open
  // connection holds neither: the request-head state until the upgrade is
  // answered, the frame reader while a frame or message is incomplete.
  // Never both: has_handshake_ says which member is live. A plain HTTP
  // connection that only streams holds parked_ instead (parked_stream_).
  union {
    detail::handshake_state* handshake_ = nullptr;
    protocol::message_reader* reader_;
    detail::parked_stream* parked_;
  };
  detail::topic_set topics_;  // no allocation until a second topic
  // Dedicated compression state (and, in shared mode, the inflater of a
  // streamed compressed message); null otherwise, so shared-mode and
  // uncompressed connections hold no zlib state.
  std::unique_ptr<detail::connection_codec> codec_;
  std::uint32_t slot_;
  std::uint32_t generation_;
  std::uint32_t last_receive_ = 0;  // now_ms() of the last bytes received
  // now_ms() of the unanswered keepalive ping; before an upgrade, the number
  // of plain HTTP requests a keep-alive connection served while it is idle.
  std::uint32_t ping_sent_ = 0;
  std::uint16_t close_sent_ = 0;    // the code of our close frame, 0 before
  state state_ = state::handshake;
  bool awaiting_pong_ : 1 = false;
  bool counted_ : 1 = false;        // holds one of max_connections
  bool close_pending_ : 1 = false;  // on_open ran, on_close not yet
  bool linger_armed_ : 1 = false;   // the linger deadline is scheduled
  bool write_shut_ : 1 = false;     // shutdown_write() done (TLS: close_notify sent)
  bool wait_for_fin_ : 1 = false;  // lingering: half-close and wait for the peer's FIN
  bool has_handshake_ : 1 = false;  // handshake_ (not reader_) is the live member
  bool parked_stream_ : 1 = false;  // parked_ is the live member (HTTP streaming)
  bool parked_inline_ : 1 = false;  // parked_ lies in the (unused) user data's space
  // permessage-deflate, as agreed in the upgrade (RFC 7692):
  bool deflate_ : 1 = false;           // negotiated
  bool deflate_takeover_ : 1 = false;  // we keep our compression context: dedicated deflater
  bool inflate_takeover_ : 1 = false;  // the client keeps its context: dedicated inflater
  bool event_stream_ : 1 = false;   // open as an event stream (event_stream.cpp)
  std::uint8_t deflate_window_ : 4 = 15;  // our agreed window, 9-15
  std::uint8_t inflate_window_ : 4 = 15;  // the client's agreed window, 9-15
};

}  // namespace switchboard::server
