// http_client.hpp — a blocking HTTP/1.1 test client on a raw socket, for the
// keep-alive, pipelining and streaming tests: it sends bytes exactly as
// given and reads answers one at a time (head, then a body framed by
// Content-Length, by chunks, or by the end of the connection), so a test
// sees precisely what the server framed.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <switchboard/net/io_handler.hpp>

namespace switchboard::server::test {

// One answer as read: the status, the head as sent (for header checks) and
// the body decoded from its framing.
struct http_answer_read {
  int status = 0;  // 0: nothing (or garbage) arrived before EOF or the timeout
  std::string head;
  std::string body;
  bool chunked = false;
  // The value of `name` in the head (case-insensitive), or nullopt.
  std::optional<std::string> header(std::string_view name) const;
};

class http_client {
 public:
  explicit http_client(std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  bool connected() const noexcept { return static_cast<bool>(fd_); }
  int fd() const noexcept { return fd_.get(); }
  bool send(std::string_view bytes);
  // Reads one whole answer. A HEAD answer (`head_request`) has no body
  // whatever its fields say. A body with neither Content-Length nor chunked
  // coding runs to EOF.
  http_answer_read read_answer(bool head_request = false);
  // Reads one response head only; what follows stays buffered.
  http_answer_read read_head();
  // After a chunked head: the next chunk's data ("" for the last chunk),
  // nullopt on EOF, timeout or a framing error.
  std::optional<std::string> read_chunk();
  // Everything until EOF (or the timeout).
  std::string read_to_eof();
  // True if the server closes the connection (EOF or reset) within the timeout,
  // discarding what arrives meanwhile.
  bool wait_closed();
  // True if nothing at all arrives within `quiet` (the connection stays open
  // and silent).
  bool silent_for(std::chrono::milliseconds quiet);
  void close() { fd_.reset(); }
  // Bytes read but not yet consumed.
  const std::string& buffered() const noexcept { return buffer_; }

 private:
  bool fill();  // one recv; false on EOF, error or timeout
  bool read_line(std::string& line);
  bool read_exact(std::size_t n, std::string& out);

  net::unique_fd fd_;
  std::string buffer_;
};

// A request line and Host header plus `extra` lines, ending the head; with
// `body`, a Content-Length for it.
std::string http_request_text(std::string_view method, std::string_view target,
                              std::string_view extra = {}, std::string_view body = {},
                              std::string_view version = "HTTP/1.1");

}  // namespace switchboard::server::test
