// api_connection.hpp — a blocking HTTP/1.1 client connection to the HTTP API
// of a `switchboard serve` (POST /api/publish for `switchboard pub
// --api-key`), over TCP or TLS, kept alive between requests.
//
// It sends one request at a time and reads the answer by its Content-Length.
// The connection is reused while the server keeps it open; when the server
// answered "Connection: close", or closed it while idle (its keep-alive
// timeout, or a server that closes after every answer), the next request
// opens a new one. Nothing is retried: a request that failed after it was
// sent may have been made.
//
// Every socket operation has the timeout given at construction. Not
// thread-safe: one thread uses it.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "switchboard/client/url.hpp"
#include "switchboard/net/tcp_socket.hpp"

namespace switchboard::app {

struct api_answer {
  int status = 0;
  std::string body;
};

struct api_tls {
  std::string ca_file;  // PEM trust anchors; empty: the system store
  bool insecure_skip_verify = false;
};

class api_connection {
 public:
  // `url`: http://, https://, ws:// or wss:// host[:port] (the path is not
  // used). Call open() before request().
  api_connection(std::string url, api_tls tls, double timeout_seconds);
  ~api_connection();
  api_connection(const api_connection&) = delete;
  api_connection& operator=(const api_connection&) = delete;

  // Parses the URL, resolves the host and sets up TLS. Returns "" or why not.
  std::string open();

  // Sends `method target` with `headers` ("Name: value\r\n" lines) and `body`
  // (as application/json) and reads the answer. Returns "" and fills
  // `answer`, or says why there is no answer.
  std::string request(std::string_view method, std::string_view target,
                      std::string_view headers, std::string_view body, api_answer& answer);

  // Connections opened so far (1 when every request reused the first).
  std::size_t connections_opened() const noexcept { return opened_; }

 private:
  struct tls_state;
  std::string connect();
  void disconnect() noexcept;
  bool send_all(std::string_view bytes);
  long receive(char* buffer, std::size_t size);  // >0 bytes, 0 closed, <0 error
  std::string exchange(const std::string& request, api_answer& answer);

  std::string text_url_;
  api_tls tls_options_;
  double timeout_;
  client::url url_;
  std::vector<net::endpoint> endpoints_;
  std::unique_ptr<tls_state> tls_;
  int fd_ = -1;
  std::size_t opened_ = 0;
  std::string pending_;  // bytes received past the last answer
  std::string last_error_;
};

}  // namespace switchboard::app
