// loop_context.hpp — private: the per-loop state of a server (listener,
// connection slots, pools, topics, shutdown) and the server-wide core.
//
// Thread-safety: a loop_context is touched only on its loop's thread, except
// where marked; server_core's atomics are shared by all loops.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <switchboard/net/compact_mutex.hpp>
#include <switchboard/net/event_loop.hpp>
#include <switchboard/net/loop_group.hpp>
#include <switchboard/net/signal_watcher.hpp>
#include <switchboard/net/tcp_listener.hpp>
#include <switchboard/protocol/http_head.hpp>
#include <switchboard/protocol/message_reader.hpp>
#include <switchboard/protocol/permessage_deflate.hpp>
#include <switchboard/server/endpoint.hpp>
#include <switchboard/server/http.hpp>
#include <switchboard/server/options.hpp>
#include <switchboard/server/websocket.hpp>

namespace switchboard::server::detail {

// A stream's answer to a write, as a connection's send() reports it
// (websocket.cpp, event_stream.cpp).
inline send_status from_net(net::send_status s) noexcept {
  switch (s) {
    case net::send_status::ok: return send_status::ok;
    case net::send_status::backpressure: return send_status::backpressure;
    case net::send_status::dropped: break;
  }
  return send_status::dropped;
}

// A loop's door for other threads' stream writes: open while its
// loop_context lives. A stream writer posts to `loop` only under `mutex`
// and only while it is set, so a handle that outlives the server never
// touches a loop that is gone.
struct post_gate {
  std::mutex mutex;
  net::event_loop* loop = nullptr;  // guarded by mutex; null once closed
};

// What an http_stream's handles and its connection share (http.hpp).
// One per open stream (an idle SSE subscriber holds one): its lock is a
// 4-byte compact_mutex, and the flags share that lock's word's padding.
struct stream_state : std::enable_shared_from_this<stream_state> {
  net::compact_mutex mutex;
  bool flush_posted = false;  // guarded: a task to hand it over is queued
  bool ended = false;         // guarded: end() was called
  bool gone = false;          // guarded: the stream is over; writes are refused
  bool overflow = false;      // guarded: a write found too much unsent: close it
  std::string pending;        // guarded: written, not yet handed to the connection
  // Bytes the connection holds for the socket, as of its last write or drain.
  std::atomic<std::size_t> socket_bytes{0};
  std::size_t cap = 0;  // max_backpressure
  std::shared_ptr<post_gate> gate;
  loop_context* ctx = nullptr;  // the connection's loop (used on it only)
  connection_id id;
  bool on_close_ran = false;       // loop thread only (here: in id's padding)
  std::function<void()> on_close;  // loop thread only
  // Asks the loop to hand pending bytes over (or act on end/overflow).
  // REQUIRES: mutex held.
  bool post_locked();
};

// One answer of a keep-alive connection, in request order: the bytes to send
// once ready (a deferred answer is not ready until its responder answers),
// and whether the connection closes after it.
struct http_answer {
  std::uint32_t seq = 0;
  bool ready = false;
  bool close_after = false;  // "Connection: close": nothing after this answer
  bool head_only = false;    // HEAD: no body, a stream is over at once
  bool http10 = false;       // HTTP/1.0: no chunked streams
  bool started = false;      // a stream whose head went out
  std::string bytes;         // the whole answer, or a stream's head
  std::shared_ptr<stream_state> stream;
};

// What a connection that only streams keeps instead of its handshake_state
// (websocket::park_stream): the started stream's answer and the counters a
// fresh state must get back.
struct parked_stream {
  http_answer answer;
  std::size_t requests = 0;
  std::uint32_t next_seq = 0;
};

// A connection before it is a WebSocket: the plain HTTP requests it carries
// (keep-alive, pipelining) and the upgrade request, if one comes. Pooled per
// loop and held only while the connection is in that phase.
struct handshake_state {
  explicit handshake_state(const protocol::http_limits& limits) : parser(limits) {}
  protocol::request_parser parser;
  // Received bytes not yet consumed; the request being read starts at
  // `start`. While a parsed head is live (`head_live`: its body is awaited,
  // its handler runs, or its upgrade waits for earlier answers) nothing is
  // appended here (the head's views must stay put): new bytes go to `after`.
  std::string head;
  std::size_t start = 0;
  // Bytes received after a live head: the first frames of an upgrade, or the
  // body of a plain HTTP request and what was pipelined behind it.
  std::string after;
  protocol::upgrade_request info;  // the validated request; views into `head`
  // The live head's plain HTTP request: its handler (null: answered by the
  // router, `route_status` 404 or 405 once the body is skipped), the body's
  // length (Content-Length) and where it lies.
  const http_handler* handler = nullptr;
  int route_status = 0;
  std::string allow;  // 405's Allow field
  std::size_t head_length = 0;
  std::size_t body_length = 0;
  bool head_live = false;
  bool body_in_after = false;  // the body is read into `after` (it spans reads)
  bool upgrade_waiting = false;  // an upgrade head waits for earlier answers
  bool closing = false;  // an answer closes the connection: read no more requests
  bool restart_timer = false;  // progress was made: the next deadline is a fresh handshake_timeout
  std::uint32_t next_seq = 0;
  std::size_t requests = 0;  // requests read on this connection
  std::deque<http_answer> answers;
};

// A connection's own zlib state: dedicated mode (context takeover), or the
// inflater of one compressed message being streamed to on_fragment in shared
// mode (its pieces arrive over several reads, so the loop's shared inflater
// cannot hold it). Each member allocates its zlib state on first use.
struct connection_codec {
  protocol::deflater deflate;
  protocol::inflater inflate;
};

// What lives at one path.
struct route {
  std::unique_ptr<ws_behavior> ws;
  std::vector<std::pair<std::string, http_handler>> http;  // method → handler
  const http_handler* find_http(std::string_view method) const noexcept {
    for (const auto& [m, h] : http) {
      if (m == method) return &h;
    }
    return nullptr;
  }
};

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

// One subscription as its topic sees it: 16 bytes. A publication with
// sequence s reaches `ws` if s - 1 >= after (unsigned, so s = 0, unsequenced,
// wraps to the maximum and always passes): one compare per delivery.
struct topic_subscriber {
  websocket* ws;
  std::uint64_t after;
};

struct topic {
  // The key of loop_context::topics_ this topic is the value of (a node's
  // key does not move): one copy of the name, not two; a pointer, not a
  // view, so that the node fits a smaller malloc chunk.
  const std::string* name = nullptr;
  std::vector<topic_subscriber> subscribers;
  // Subscribers that negotiated permessage-deflate: while there are any,
  // publications are written at once (compressed per window), not batched.
  std::uint32_t deflate_subscribers = 0;
  // Event-stream subscribers (event_stream.cpp): they take a publication as
  // an HTTP chunk, framed once per loop; while there are any, publications
  // are written at once too. (In the padding after deflate_subscribers.)
  std::uint32_t chunk_subscribers = 0;
};

// One publication held in a topic batch: its frame's length (the frames lie
// back to back in the cork's staging arena), its position (sequence - 1) and
// its payload size (statistics).
struct batched_publication {
  std::size_t length;
  std::uint64_t position;
  std::size_t payload_size;
};

// A loop's counters (server_statistics): written only by the loop's thread
// with a relaxed load and store (no locked read-modify-write on the hot
// path), read by any thread.
struct loop_counters {
  using counter = std::atomic<std::uint64_t>;
  static void add(counter& c, std::uint64_t n) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  static std::uint64_t read(const counter& c) noexcept { return c.load(std::memory_order_relaxed); }
  counter messages_received{0};
  counter bytes_received{0};
  counter messages_sent{0};
  counter bytes_sent{0};
  counter backpressure_drops{0};
  counter outbound_memory_drops{0};
  counter compressed_messages{0};
  std::array<counter, k_handshake_failure_reasons> handshake_failures{};
};

class server_core;

class loop_context {
 public:
  loop_context(server_core& core, net::event_loop& loop, std::uint32_t index);
  ~loop_context();
  loop_context(const loop_context&) = delete;
  loop_context& operator=(const loop_context&) = delete;

  server_core& core() const noexcept { return *core_; }
  net::event_loop& loop() const noexcept { return *loop_; }
  std::uint32_t index() const noexcept { return index_; }
  const server_options& options() const noexcept;
  // The TLS configuration of new connections (server_options::tls), or null
  // for plain TCP. The handshake timer armed at accept bounds the TLS
  // handshake too.
  net::tls_context* tls() const noexcept;

  std::error_code listen(const net::endpoint& local, bool reuse_port);
  std::uint16_t port() const noexcept { return listener_ ? listener_->port() : 0; }

  // The live connection `id` names, or nullptr if it is gone.
  websocket* find(connection_id id) const noexcept;
  // Unregisters `ws` and frees it at the end of the iteration.
  void retire(websocket& ws) noexcept;

  handshake_state* acquire_handshake();
  void release_handshake(handshake_state* hs) noexcept;
  // Readers are pooled by kind: streaming or not, RSV1 allowed or not.
  protocol::message_reader* acquire_reader(bool streaming, bool allow_rsv1);
  void release_reader(protocol::message_reader* reader) noexcept;

  // permessage-deflate state shared by the loop's connections (shared mode,
  // and publishes): one deflater per (window, level) in use, one inflater
  // (window 15, no context takeover, max_message_size), and the buffers they
  // write into. REQUIRES: each buffer is used for one message at a time.
  protocol::deflater& shared_deflater(std::uint8_t window_bits, std::uint8_t level);
  protocol::inflater& shared_inflater();
  std::string& deflate_buffer() noexcept { return deflate_buffer_; }
  std::string& inflate_buffer() noexcept { return inflate_buffer_; }
  // Frees a codec buffer that one large message grew (bounds the loop's idle memory).
  static void trim(std::string& buffer) noexcept;
  // Counts one compressed message (metrics, tests).
  void count_compressed() noexcept { loop_counters::add(counters_.compressed_messages, 1); }
  // Counts received data: `bytes` of payload (after inflating), and one
  // message when `complete` (a streamed message counts at its last piece).
  void count_received(std::size_t bytes, bool complete = true) noexcept {
    loop_counters::add(counters_.messages_received, complete ? 1 : 0);
    loop_counters::add(counters_.bytes_received, bytes);
  }
  // Counts `messages` data messages of `bytes` payload bytes in all, sent.
  void count_sent(std::uint64_t messages, std::uint64_t bytes) noexcept {
    loop_counters::add(counters_.messages_sent, messages);
    loop_counters::add(counters_.bytes_sent, bytes);
  }
  void count_backpressure_drop() noexcept { loop_counters::add(counters_.backpressure_drops, 1); }
  void count_outbound_memory_drop() noexcept {
    loop_counters::add(counters_.outbound_memory_drops, 1);
  }

  // server_options::max_outbound_memory, asked before a send to `ws`, which
  // already has a queue (write-blocked): true if the send must be dropped.
  // Over the limit it schedules shed_outbound() (close policy) for later in
  // this iteration; past the slack it marks `ws` to be closed there too.
  bool outbound_over_limit(websocket& ws);
  // Counts a handshake the server turned away and tells the application's
  // hook (server_options::on_handshake_failure); `status` 0: no answer.
  void count_handshake_failure(handshake_failure reason, int status);
  // Any thread.
  std::uint64_t compressed_messages() const noexcept {
    return loop_counters::read(counters_.compressed_messages);
  }
  const loop_counters& counters() const noexcept { return counters_; }
  // A per-loop scratch string for heads and frames being written.
  std::string& scratch() noexcept { return scratch_; }
  // Milliseconds on the loop's clock, truncated to 32 bits (differences wrap).
  std::uint32_t now_ms() const noexcept;

  bool subscribe(websocket& ws, std::string_view name, std::uint64_t after);
  bool unsubscribe(websocket& ws, std::string_view name);
  void unsubscribe_all(websocket& ws) noexcept;
  // Writes `framed` (a frame of `op` whose payload starts at `header_size`)
  // to every subscriber of `name` on this loop whose `after` lets `sequence`
  // through; those that negotiated permessage-deflate get it compressed,
  // once per (window, level).
  void deliver(std::string_view name, protocol::opcode op, std::string_view framed,
               std::size_t header_size, std::uint64_t sequence);
  // Stages `payload` as one HTTP chunk (size line, bytes, CRLF) for the
  // event-stream subscribers of a publication (event_stream.cpp).
  net::staged_bytes stage_chunk(std::string_view payload);
  // Writes the held-back publications of the topic batch to its subscribers
  // now, if there is a batch and `ws` subscribes to its topic: called before
  // anything else is written to `ws`, so that it keeps its place after them.
  void flush_batch_for(const websocket& ws) {
    if (batch_.t != nullptr) flush_batch_if_subscribed(ws);
  }

  // Publications this loop's thread queued to `target` without waking it
  // (publish_to_loops: net::event_loop::post_unwoken returned true): the
  // wake-up goes out once per target, from a task deferred to the end of
  // this iteration's callbacks, however many publications follow.
  void wake_later(loop_context& target);

  // Completes a deferred upgrade (upgrade_handle), if `id` still waits for it.
  // Sends a deferred HTTP answer (http_responder::respond) if the request
  // (`seq` of connection `id`) still waits for it; with `stream`, the
  // answer is that stream, headed by `response` (http_responder::stream).
  void complete_http(connection_id id, std::uint32_t seq, const http_response& response,
                     std::shared_ptr<stream_state> stream = {});
  // A stream's writer asked for its bytes to be handed over (or for end()
  // or a slow-consumer close): http_stream::write/end.
  void on_stream_task(const std::shared_ptr<stream_state>& stream);
  // Ends `stream` (writes refused from now on) and runs its on_close once.
  static void finish_stream(stream_state& stream);
  // The door stream writers on other threads post through.
  const std::shared_ptr<post_gate>& gate() const noexcept { return gate_; }
  void complete_upgrade(connection_id id, int status, const std::string& text,
                        const std::vector<std::pair<std::string, std::string>>& headers);

  // Graceful shutdown on this loop; `graceful` false terminates at once.
  void begin_shutdown(bool graceful);
  bool shutting_down() const noexcept { return shutting_down_; }
  std::size_t live_connections() const noexcept { return live_; }

 private:
  void on_accept(net::unique_fd socket);
  // Closes the marked connections, then the largest queues until the
  // server-wide total is under 7/8 of max_outbound_memory (close policy).
  void shed_outbound();
  // The topic batch (topics.cpp): publications to one topic that arrive in
  // one iteration are staged back to back and written to each subscriber as
  // one span, at the latest when the loop flushes its cork.
  void batch(topic& t, std::string_view framed, std::uint64_t position, std::size_t payload_size);
  void flush_batch();
  void flush_batch_if_subscribed(const websocket& ws);
  static void flush_batch_hook(void* self) { static_cast<loop_context*>(self)->flush_batch(); }
  void deliver_now(topic& t, protocol::opcode op, std::string_view framed, std::size_t header_size,
                   std::uint64_t position);
  void free_retired() noexcept;
  void wake_pending() noexcept;
  void on_shutdown_deadline();
  void check_done() noexcept;

  struct slot {
    websocket* ws = nullptr;
    std::uint32_t generation = 0;
  };

  server_core* core_;
  net::event_loop* loop_;
  std::uint32_t index_;
  std::unique_ptr<net::tcp_listener> listener_;
  std::vector<slot> slots_;
  std::vector<std::uint32_t> free_slots_;
  std::size_t live_ = 0;
  std::vector<websocket*> retired_;
  net::event_loop::hook_id free_hook_ = 0;
  std::vector<std::unique_ptr<handshake_state>> handshakes_;
  std::vector<std::unique_ptr<protocol::message_reader>> readers_[4];
  struct keyed_deflater {
    std::uint8_t window_bits;
    std::uint8_t level;
    protocol::deflater deflater;
  };
  std::vector<keyed_deflater> deflaters_;
  std::unique_ptr<protocol::inflater> inflater_;
  std::string deflate_buffer_;
  std::string inflate_buffer_;
  struct compressed_frame {
    std::uint8_t window_bits;
    std::uint8_t level;
    bool ok;
    std::string framed;
    net::staged_bytes staged;  // framed, staged in the loop's cork once a subscriber takes it
    bool is_staged;
  };
  std::vector<compressed_frame> publish_frames_;  // deliver()'s per-call cache
  std::string chunk_buffer_;  // deliver_now(): a publication's chunk form, before it is staged
  struct topic_batch {
    topic* t = nullptr;  // the topic with publications held back; null: none
    net::staged_bytes staged;  // every frame of the batch, back to back
    std::size_t last_length = 0;
    std::uint64_t min_position = 0;
    std::uint64_t payload_bytes = 0;
    std::vector<batched_publication> items;
  };
  topic_batch batch_;
  std::vector<batched_publication> flushing_items_;  // flush_batch()'s copy, kept for its capacity
  loop_counters counters_;
  std::string scratch_;
  std::shared_ptr<post_gate> gate_;
  std::unordered_map<std::string, topic, string_hash, std::equal_to<>> topics_;
  net::timer_node shutdown_timer_;
  std::vector<loop_context*> wake_pending_;  // wake_later(): loops owed a wake-up
  std::vector<connection_id> shed_marked_;  // lost a message over the limit: close them
  bool shed_scheduled_ = false;
  bool shutting_down_ = false;
  bool done_ = false;
};

class server_core {
 public:
  explicit server_core(server_options options);

  server_options options;
  protocol::http_limits limits;
  std::unordered_map<std::string, route, string_hash, std::equal_to<>> routes;
  std::size_t user_data_size = 0;  // the largest of the endpoints'
  // server::event_stream_endpoint()'s behaviours (at no path).
  std::vector<std::unique_ptr<ws_behavior>> event_stream_endpoints;
  std::unique_ptr<net::loop_group> group;
  std::vector<std::unique_ptr<loop_context>> contexts;
  std::unique_ptr<net::signal_watcher> signals;
  std::atomic<std::size_t> connections{0};
  std::atomic<std::size_t> loops_running{0};
  std::atomic<bool> shutdown_requested{false};
  // Written by start() on the controlling thread, read by shutdown() on any.
  std::atomic<bool> started{false};

  // The route for `path`: exact, else "*", else nullptr.
  const route* find_route(std::string_view path) const noexcept;
  // Takes one of max_connections; false when the limit is reached.
  bool try_count_connection() noexcept;
  void uncount_connection() noexcept { connections.fetch_sub(1, std::memory_order_relaxed); }
  // Bytes queued for slow readers over every loop (max_outbound_memory). Any
  // thread; O(loops).
  std::size_t outbound_bytes() const noexcept;
  // A loop finished its shutdown; the last one stops the group.
  void loop_done() noexcept;
};

// The loop_context whose loop runs on this thread (set when the loop starts).
inline thread_local loop_context* current_context = nullptr;

// Frames `payload` once and hands it to every loop's subscribers of `topic`
// (`sequence` as in server::publish).
std::size_t publish_to_loops(server_core& core, std::string_view topic, std::string_view payload,
                             protocol::opcode op, std::uint64_t sequence, bool queued);

// Offset of the user data after a websocket: sizeof rounded up to max_align_t.
constexpr std::size_t k_user_data_offset =
    (sizeof(websocket) + alignof(std::max_align_t) - 1) / alignof(std::max_align_t) *
    alignof(std::max_align_t);

}  // namespace switchboard::server::detail
