// switchboard/server/http.hpp — plain HTTP requests on the WebSocket router:
// the read-only request a handler sees, the response it fills in (for
// /metrics, /healthz, a publish API, static files, and the errors the router
// sends), deferred answers (http_responder) and streaming answers
// (http_stream: Server-Sent Events, long-lived responses).
//
// Connections. Answers carry Content-Length. Whether a connection stays
// open after an answer (keep-alive, RFC 9112 §9.3) is decided per request:
// see server_options::max_http_requests and http_idle_timeout; an answer
// after which the connection closes says "Connection: close".
// Request bodies: a request routed to a handler may carry a body of exactly
// Content-Length bytes (RFC 9112 §6.3), read whole before the handler runs
// (http_request::body()) within server_options::handshake_timeout, and at
// most server_options::max_http_body bytes: a larger Content-Length is
// answered 413 without reading the body, a malformed one (not digits, or
// repeated with different values) 400, and any Transfer-Encoding 411
// (chunked bodies are not supported); these answers close the connection,
// whose byte stream can no longer be split into requests. A client that
// sent "Expect: 100-continue" gets "100 Continue" before the body is read.
//
// Deferred answers: a handler that needs another thread (a broker over the
// network) calls http_response::defer() and returns; whoever holds the
// http_responder answers later, from any thread. Until then the request
// waits, bounded by server_options::handshake_timeout (the connection is
// then dropped without an answer).
//
// Streaming answers: http_response::stream() (or http_responder::stream()
// for a deferred request) sends the status line and headers as soon as the
// answer's turn comes and returns an http_stream, a copyable handle that
// writes body bytes from any thread until end(). Framing: HTTP/1.1 requests
// get "Transfer-Encoding: chunked" (each non-empty write() is one chunk; end()
// sends the last chunk, after which the connection may serve the next
// request); HTTP/1.0 requests get a body delimited by closing the connection
// (end() closes it). A HEAD request gets the head only: its stream is over at
// once. While a stream is open the connection has no timeout of its own (no
// handshake, idle or ping timer: liveness is the writer's business, e.g. SSE
// comments); the outbound limits apply: a write that finds more than
// server_options::max_backpressure bytes still unsent (queued by write() or
// waiting for the socket) is refused and the connection closed as a slow
// consumer (counted in server_statistics::backpressure_drops), as is a
// blocked stream while the server-wide max_outbound_memory is exceeded
// (outbound_memory_drops). The stream's on_close runs exactly once, on the
// connection's loop thread, when the stream is over for any reason: after
// end() was sent, the peer closed, slow consumer, server stop.
// Shutdown order: server::shutdown() (or SIGTERM) finishes every stream still
// open (its queued bytes are sent, then the last chunk, then the connection
// closes); writes made before shutdown() was called, or inside
// server_options::on_shutdown, are sent first: a layer above writes its
// final event there (and may call end() itself).
//
// Thread-safety: request and response live on the loop thread for the
// duration of one handler call; they are not synchronized. http_responder
// and http_stream may be used from any thread; an http_stream may outlive
// its connection and the server (write() then returns false).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <switchboard/protocol/http_head.hpp>
#include <switchboard/server/export.hpp>
#include <switchboard/server/websocket.hpp>

namespace switchboard::server {

// A parsed request head and its body. Views are valid only during the
// handler call.
class SWITCHBOARD_SERVER_EXPORT http_request {
 public:
  explicit http_request(const protocol::request_head& head, std::string_view body = {}) noexcept
      : head_(&head), body_(body) {}
  // `native_handle`: the connection's socket, for remote_address().
  http_request(const protocol::request_head& head, std::string_view body,
               int native_handle) noexcept
      : head_(&head), body_(body), native_handle_(native_handle) {}
  std::string_view method() const noexcept { return head_->method(); }
  std::string_view target() const noexcept { return head_->target(); }
  std::string_view path() const noexcept { return head_->path(); }
  std::string_view query() const noexcept { return head_->query(); }
  // The first header named `name` (case-insensitive), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const noexcept {
    return head_->find(name);
  }
  // Everything else: all headers, cookies, version.
  const protocol::request_head& head() const noexcept { return *head_; }
  // The request body: exactly Content-Length bytes; empty without one.
  std::string_view body() const noexcept { return body_; }
  // The peer's IP address in text form ("127.0.0.1", "::1"), read from the
  // socket (getpeername) when asked: nothing is stored per request. Behind a
  // proxy this is the proxy; the layer above decides whether to believe
  // X-Forwarded-For. "" if the socket cannot say (or no socket: a request
  // made by hand).
  std::string remote_address() const;

 private:
  const protocol::request_head* head_;
  std::string_view body_;
  int native_handle_ = -1;
};

namespace detail {
class loop_context;
struct stream_state;
struct responder_relay;
}  // namespace detail
class http_response;

// Where the bytes of a relayed stream go (http_stream::relay()): an answer
// made here and carried elsewhere, e.g. to the node of a cluster that holds
// the client's connection. Called from any thread: implementations are
// thread-safe.
class SWITCHBOARD_SERVER_EXPORT http_stream_sink {
 public:
  virtual ~http_stream_sink() = default;
  // As http_stream::write(): false once the sink can take nothing more.
  virtual bool write(std::string bytes) = 0;
  virtual void end() = 0;
  virtual bool is_open() const noexcept = 0;
};

// A streaming answer's body, written from any thread (see the top of this
// file). Copyable: copies write to the same stream. A default-constructed
// handle writes nowhere.
class SWITCHBOARD_SERVER_EXPORT http_stream {
 public:
  http_stream() = default;
  // Queues `bytes` (one chunk under HTTP/1.1) to be sent on the connection's
  // loop, after everything written before. Returns false, sending nothing,
  // once the stream is over (ended, closed, server gone) or when the bytes
  // still unsent exceed server_options::max_backpressure (then the
  // connection is closed as a slow consumer). An empty write sends nothing
  // and returns whether the stream is still open. The bytes are copied: a
  // writer may pass the same buffer to many streams.
  bool write(std::string_view bytes) const;
  // Finishes the answer after the bytes written so far: the last chunk
  // (HTTP/1.1; the connection may then serve its next request) or the end
  // of the connection (HTTP/1.0). Later writes return false. Idempotent.
  void end() const;
  // Bytes written and not yet taken by the kernel (queued here plus those
  // the connection holds for the socket, as of its last write): the
  // backpressure a writer may watch to skip or coalesce.
  std::size_t queued() const noexcept;
  // False once the stream is over (ended, closed, or never started).
  bool is_open() const noexcept;

  // A handle whose write(), end() and is_open() go to `sink` instead of a
  // connection (queued() is 0): for code that writes a stream without
  // knowing where its reader is.
  static http_stream relay(std::shared_ptr<http_stream_sink> sink) noexcept {
    http_stream s;
    s.sink_ = std::move(sink);
    return s;
  }

 private:
  friend class http_response;
  friend class http_responder;
  explicit http_stream(std::shared_ptr<detail::stream_state> state) noexcept
      : state_(std::move(state)) {}
  std::shared_ptr<detail::stream_state> state_;
  std::shared_ptr<http_stream_sink> sink_;
};

// Answers a deferred request (http_response::defer()). Copyable; the first
// respond() or stream() counts, later ones are ignored. A request whose
// connection is gone by then is dropped silently (a stream's on_close runs).
class SWITCHBOARD_SERVER_EXPORT http_responder {
 public:
  http_responder() = default;
  // Sends `response` on the request's loop. Any thread.
  void respond(http_response response) const;
  // Answers with a stream instead: the status and headers of `head` (its
  // body is ignored), then what the returned handle writes. Any thread;
  // the handle may be written to at once (bytes wait for the head).
  // `on_close`: as http_response::stream().
  http_stream stream(http_response head, std::function<void()> on_close = {}) const;

  // A responder whose first respond() calls `answer` (on the caller's
  // thread) instead of answering a connection: a request answered
  // elsewhere. stream() on it returns a handle that writes nowhere.
  static http_responder relay(std::function<void(http_response)> answer);

 private:
  friend class http_response;
  http_responder(detail::loop_context* ctx, connection_id id, std::uint32_t seq) noexcept
      : ctx_(ctx), id_(id), seq_(seq) {}
  detail::loop_context* ctx_ = nullptr;
  connection_id id_;
  std::uint32_t seq_ = 0;  // which request of the connection
  std::shared_ptr<detail::responder_relay> relay_;
};

// The response a handler builds. Defaults: 200, text/plain, empty body.
class SWITCHBOARD_SERVER_EXPORT http_response {
 public:
  // Answers later instead: what this object holds when the handler returns
  // is not sent; the returned handle's respond() sends its own response.
  // REQUIRES: called during the handler, on a response the server made.
  http_responder defer() noexcept {
    deferred_ = true;
    return http_responder(ctx_, id_, seq_);
  }
  bool deferred() const noexcept { return deferred_; }
  // Answers with a stream (see the top of this file): the status and
  // headers this object holds when the handler returns are sent then, its
  // body is not; the returned handle writes the body, from any thread, until
  // end(). `on_close` runs once on the loop thread when the stream is over
  // (end() sent, peer gone, slow consumer, server stop); it must not throw.
  // REQUIRES: called during the handler, on a response the server made, and
  // not together with defer().
  http_stream stream(std::function<void()> on_close = {});
  bool streaming() const noexcept { return stream_ != nullptr; }

  // Event-stream connection (Server-Sent Events on a connection of the
  // server, as cheap as an idle WebSocket): turns this GET's connection into
  // a long-lived connection of `endpoint` (server::event_stream_endpoint),
  // in the same object and user-data space as an upgraded WebSocket. Returns
  // that connection, its user data constructed (fill it now), or nullptr
  // when this request cannot become one: a HEAD or HTTP/1.0 request, other
  // requests of the connection still unanswered or already sent behind it,
  // the server stopping, or max_connections reached (it counts such
  // connections) — then answer the request as usual.
  // When the handler returns, the server writes this response's status and
  // headers with "Transfer-Encoding: chunked" (its body is not sent) and
  // the connection is open: endpoint.on_open runs. Then, on the returned
  // websocket: send(payload) writes `payload` (already formatted event
  // bytes) as one HTTP chunk; subscribe() works, and publications reach it
  // as one chunk each (framed once per loop, whatever the number of such
  // subscribers); ping() and endpoint.event_stream_heartbeat write an SSE
  // comment chunk; close(code, reason) runs endpoint.on_closing (a final
  // event), ends the body with the last chunk after what is queued, then
  // closes the connection, and on_close gets `code`. max_backpressure, max_outbound_memory and a graceful
  // shutdown apply as to a WebSocket. The client sends nothing after its
  // request: bytes that arrive anyway end the stream as close(1000) does;
  // a client that goes away gives on_close 1006.
  // REQUIRES: called during the handler (loop thread), on a response the
  // server made, at most once, and not with defer() or stream().
  websocket* open_event_stream(const ws_behavior& endpoint);
  bool event_stream() const noexcept { return event_stream_; }

  void set_status(int status) noexcept { status_ = status; }
  int status() const noexcept { return status_; }
  // Adds a header. Returns false, adding nothing, if the name is not a token
  // or the value holds CR, LF or another control byte (header injection), or
  // if it is Content-Length, Transfer-Encoding or Connection (the server
  // writes those: framing and keep-alive are its business).
  bool add_header(std::string_view name, std::string_view value);
  void set_content_type(std::string_view type) { content_type_ = type; }
  void set_body(std::string body) { body_ = std::move(body); }
  void append_body(std::string_view more) { body_.append(more); }
  const std::string& body() const noexcept { return body_; }

  // Appends the complete response (status line, headers, body) to `out`.
  // A status outside 100-599 is sent as 500. HEAD requests get no body
  // (`include_body` false) but the body's Content-Length.
  // This form says "Connection: close".
  void serialize(std::string& out, bool include_body = true) const;
  // The same with `connection` as the Connection field's value ("close",
  // "keep-alive"; empty: no Connection field, as HTTP/1.1 keep-alive needs).
  void serialize(std::string& out, bool include_body, std::string_view connection) const;
  // The head of a streaming answer: status line and headers, with
  // "Transfer-Encoding: chunked" when `chunked`, no Content-Length.
  void serialize_stream_head(std::string& out, bool chunked, std::string_view connection) const;

 private:
  int status_ = 200;
  std::string content_type_ = "text/plain; charset=utf-8";
  std::string headers_;  // "Name: value\r\n" lines
  std::string body_;
  // Set by the server for defer() and stream().
  friend class websocket;
  detail::loop_context* ctx_ = nullptr;
  connection_id id_;
  std::uint32_t seq_ = 0;
  bool deferred_ = false;
  bool event_stream_ = false;  // open_event_stream() succeeded
  std::shared_ptr<detail::stream_state> stream_;
};

// Answers one plain HTTP request. Runs on the loop thread; must not throw.
using http_handler = std::function<void(const http_request&, http_response&)>;

}  // namespace switchboard::server
