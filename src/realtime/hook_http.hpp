// hook_http.hpp — private: the HTTP/1.1 client that proxy hooks (hooks.hpp)
// call their backend with. It runs on a Switchboard net::event_loop: a
// tcp_connector for the non-blocking connect, a net::transport for plain TCP
// or TLS (https://, through the existing TLS layer), the loop's timer wheel
// for timeouts. Nothing blocks the loop; no thread of its own.
//
// Three parts:
//  - http_url: http://host[:port]/path and https://… read and resolved at
//    start-up (getaddrinfo blocks: never on a loop);
//  - http_response_reader: sans-I/O, bytes in, one response out: the head
//    (protocol::response_parser), then a body framed by Content-Length,
//    chunked coding, or the end of the connection; bounded in size. Fuzzed
//    (fuzz/http_response_fuzz.cpp);
//  - http_client: per origin (scheme, host, port) a pool of keep-alive
//    connections, at most max_connections of them busy; requests past that
//    wait in the origin's queue (at most max_queue), each bounded by its own
//    timeout from the moment it was sent to the client.
//
// Thread-safety: http_url and the reader are plain values. An http_client is
// used on its loop's thread only; its callbacks run there.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <switchboard/net/event_loop.hpp>
#include <switchboard/net/tcp_socket.hpp>
#include <switchboard/net/tls_context.hpp>
#include <switchboard/net/unique_function.hpp>
#include <switchboard/protocol/http_head.hpp>
#include <utility>
#include <vector>

namespace switchboard::realtime::detail {

struct http_url {
  bool tls = false;
  std::string host;  // a name or an address; the Host header and the TLS server name
  std::uint16_t port = 80;
  std::string path = "/";  // with the query, if any
  std::string origin;      // "https://host:port": the pool key and what logs show
  net::endpoint address;   // filled by resolve_http_url()
};

// Reads `url`'s syntax (no I/O): http:// or https://, a host (a name, an IPv4
// address or [IPv6]), an optional port, a path. No user:password@ (a secret
// in a URL ends up in logs), no fragment. Returns "" or what is wrong.
std::string parse_http_url_syntax(std::string_view url, http_url& out);
// Resolves the host (getaddrinfo, blocking: at start-up only). "" or why not.
std::string resolve_http_url(http_url& url);

// One response read from a connection.
class http_response_reader {
 public:
  enum class status : std::uint8_t { need_more, complete, error };

  // `max_body`: larger bodies are an error (a backend cannot make the
  // server buffer without bound).
  explicit http_response_reader(std::size_t max_body = 1024 * 1024);

  // Feeds the next bytes of the connection. Bytes after a complete response
  // are left unread (`consumed` says how many were used). Errors are sticky.
  status feed(std::string_view data, std::size_t& consumed);
  // The peer closed the connection: completes a body delimited by the
  // close; anything else unfinished is an error.
  status finish();
  // Ready for the next response on the same connection.
  void reset();

  [[nodiscard]] int status_code() const noexcept { return status_code_; }
  [[nodiscard]] const std::string& body() const noexcept { return body_; }
  // The response allows the connection to carry another request.
  [[nodiscard]] bool keep_alive() const noexcept { return keep_alive_; }
  [[nodiscard]] const std::string& error() const noexcept { return error_; }
  // A response has started (some bytes arrived): a failure after this point
  // cannot be retried on a fresh connection as if nothing happened.
  [[nodiscard]] bool started() const noexcept { return started_; }

 private:
  enum class state : std::uint8_t {
    head,
    length,
    chunk_size,
    chunk_data,
    chunk_crlf,
    trailers,
    until_close,
    done,
    failed
  };
  status fail(std::string why);
  status on_head_complete(const protocol::response_head& head);

  std::size_t max_body_;
  protocol::response_parser parser_;
  std::string head_buf_;  // the head's bytes until it is complete
  std::string line_;      // a chunk-size or trailer line being read
  std::string body_;
  std::string error_;
  std::uint64_t left_ = 0;  // body bytes (length) or chunk bytes still due
  int status_code_ = 0;
  state state_ = state::head;
  bool keep_alive_ = true;
  bool started_ = false;
};

// One request: POST `body` to `url` with `headers` (each "Name: value";
// the client adds Host, Content-Type: application/json, Content-Length).
struct http_request {
  const http_url* url = nullptr;  // REQUIRES: outlives the request
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{1000};
};

// Its outcome: `error` empty and the status and body of the response, or
// `error` saying what failed (timeout, refused, reset, bad response, queue
// full).
struct http_result {
  std::string error;
  bool timed_out = false;
  int status = 0;
  std::string body;
};

struct http_client_options {
  // Busy connections per origin; requests past it wait in the queue.
  std::size_t max_connections = 64;
  // Requests waiting per origin; past it they fail at once.
  std::size_t max_queue = 4096;
  // An idle keep-alive connection is closed after this long.
  std::chrono::milliseconds idle_timeout{30'000};
  std::size_t max_body = 1024 * 1024;
};

class http_client {
 public:
  using completion = net::unique_function<void(http_result)>;

  // `tls`: the client context for https:// URLs (null: https:// fails).
  // REQUIRES: the loop and the context outlive the client.
  http_client(net::event_loop& loop, net::tls_context* tls, http_client_options options);
  // Closes every connection; pending completions are destroyed unrun.
  ~http_client();
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  // Sends `request`; `done` runs exactly once on the loop, never inside
  // this call. Loop thread only.
  void send(http_request request, completion done);

  // Requests waiting or on the wire; open connections (busy and idle).
  [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_; }
  [[nodiscard]] std::size_t open_connections() const noexcept;

  struct pending;     // a request and its timer (hook_http.cpp)
  struct connection;  // one keep-alive connection (hook_http.cpp)
  struct pool;        // one origin's connections and queue (hook_http.cpp)

 private:
  friend struct connection;
  friend struct pending;
  void start_next(pool& p);
  void schedule_start(pool& p);
  void finish(pending* req, http_result result);
  void retire(connection* c);
  void on_timeout(pending* req);

  net::event_loop& loop_;
  net::tls_context* tls_;
  http_client_options options_;
  std::map<std::string, std::unique_ptr<pool>, std::less<>> pools_;
  std::size_t in_flight_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace switchboard::realtime::detail
