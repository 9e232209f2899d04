// switchboard/server/http.hpp — plain HTTP requests on the WebSocket router:
// the read-only request a handler sees and the response it fills in
// (for /metrics, /healthz, a publish API, static files, and the errors the
// router sends).
//
// One request per connection, no keep-alive: the response is sent whole,
// with Content-Length and "Connection: close", and the connection closes.
// Request bodies: a request routed to a handler may carry a body of exactly
// Content-Length bytes (RFC 9112 §6.3), read whole before the handler runs
// (http_request::body()) within server_options::handshake_timeout, and at
// most server_options::max_http_body bytes: a larger Content-Length is
// answered 413 without reading the body, a malformed one (not digits, or
// repeated with different values) 400, and any Transfer-Encoding 411
// (chunked bodies are not supported). A client that sent "Expect:
// 100-continue" gets "100 Continue" before the body is read. Requests not
// routed to a handler (404, 405, 426) are answered at once and their body
// discarded.
//
// Deferred answers: a handler that needs another thread (a broker over the
// network) calls http_response::defer() and returns; whoever holds the
// http_responder answers later, from any thread. Until then the request
// waits, bounded by server_options::handshake_timeout counted from accept
// (the connection is then dropped without an answer).
//
// Thread-safety: request and response live on the loop thread for the
// duration of one handler call; they are not synchronized. An http_responder
// may be used from any thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <switchboard/protocol/http_head.hpp>
#include <switchboard/server/export.hpp>
#include <switchboard/server/websocket.hpp>

namespace switchboard::server {

// A parsed request head and its body. Views are valid only during the
// handler call.
class http_request {
 public:
  explicit http_request(const protocol::request_head& head, std::string_view body = {}) noexcept
      : head_(&head), body_(body) {}
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

 private:
  const protocol::request_head* head_;
  std::string_view body_;
};

namespace detail {
class loop_context;
}
class http_response;

// Answers a deferred request (http_response::defer()). Copyable; the first
// respond() counts, later ones are ignored. A request whose connection is
// gone by then is dropped silently.
class SWITCHBOARD_SERVER_EXPORT http_responder {
 public:
  http_responder() = default;
  // Sends `response` on the request's loop. Any thread.
  void respond(http_response response) const;

 private:
  friend class http_response;
  http_responder(detail::loop_context* ctx, connection_id id) noexcept : ctx_(ctx), id_(id) {}
  detail::loop_context* ctx_ = nullptr;
  connection_id id_;
};

// The response a handler builds. Defaults: 200, text/plain, empty body.
class SWITCHBOARD_SERVER_EXPORT http_response {
 public:
  // Answers later instead: what this object holds when the handler returns
  // is not sent; the returned handle's respond() sends its own response.
  // REQUIRES: called during the handler, on a response the server made.
  http_responder defer() noexcept {
    deferred_ = true;
    return http_responder(ctx_, id_);
  }
  bool deferred() const noexcept { return deferred_; }

  void set_status(int status) noexcept { status_ = status; }
  int status() const noexcept { return status_; }
  // Adds a header. Returns false, adding nothing, if the name is not a token
  // or the value holds CR, LF or another control byte (header injection), or
  // if it is Content-Length or Connection (the server writes those).
  bool add_header(std::string_view name, std::string_view value);
  void set_content_type(std::string_view type) { content_type_ = type; }
  void set_body(std::string body) { body_ = std::move(body); }
  void append_body(std::string_view more) { body_.append(more); }
  const std::string& body() const noexcept { return body_; }

  // Appends the complete response (status line, headers, body) to `out`.
  // A status outside 100-599 is sent as 500. HEAD requests get no body
  // (`include_body` false) but the body's Content-Length.
  void serialize(std::string& out, bool include_body = true) const;

 private:
  int status_ = 200;
  std::string content_type_ = "text/plain; charset=utf-8";
  std::string headers_;  // "Name: value\r\n" lines
  std::string body_;
  // Set by the server for defer().
  friend class websocket;
  detail::loop_context* ctx_ = nullptr;
  connection_id id_;
  bool deferred_ = false;
};

// Answers one plain HTTP request. Runs on the loop thread; must not throw.
using http_handler = std::function<void(const http_request&, http_response&)>;

}  // namespace switchboard::server
