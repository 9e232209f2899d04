// Fuzzes how the server splits one connection's bytes into plain HTTP
// requests (keep-alive, pipelining, bodies, deferred and streamed answers,
// an upgrade after requests): the framing code around request_parser in
// src/server/http_exchange.cpp. One server (switchboard::server on
// 127.0.0.1, short timeouts) lives for the whole run; each input is sent on a
// fresh connection in fuzzer-chosen chunks, followed by a request that asks
// to close, and everything the server sends is read until it closes.
// Input: byte 0 = how many schedule bytes follow (mod 16); the schedule
// gives chunk sizes; the rest is the connection's bytes.
// Invariants, checked with __builtin_trap():
//  - no crash, no sanitizer report, no hang (the server closes within 3 s);
//  - what the server sends is a sequence of well-framed HTTP/1.1 answers
//    (Content-Length or chunked bodies, or a body up to the end of the
//    connection under "Connection: close"; 100 Continue interim answers; a
//    101 ends the plain HTTP part), and nothing follows an answer that says
//    "Connection: close".
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <switchboard/net/tcp_socket.hpp>
#include <switchboard/server/http.hpp>
#include <switchboard/server/server.hpp>
#include <thread>

namespace {

using namespace std::chrono_literals;
namespace sv = switchboard::server;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

struct harness {
  sv::server server{[] {
    sv::server_options o;
    o.port = 0;
    o.handle_signals = false;
    o.timer_tick = std::chrono::milliseconds(10);
    o.handshake_timeout = 100ms;
    o.http_idle_timeout = 100ms;
    o.max_http_body = 4096;
    o.max_head_size = 4096;
    o.max_http_requests = 50;
    return o;
  }()};

  harness() {
    server.http("GET", "/n", [](const sv::http_request& req, sv::http_response& res) {
      res.set_body(std::string(req.query()));
    });
    server.http("POST", "/echo", [](const sv::http_request& req, sv::http_response& res) {
      res.set_body(std::string(req.body()));
    });
    // Answered later on the loop (a posted task), so later requests queue behind it.
    server.http("GET", "/later", [](const sv::http_request&, sv::http_response& res) {
      sv::http_responder r = res.defer();
      sv::http_response out;
      out.set_body("later");
      r.respond(std::move(out));
    });
    server.http("GET", "/stream", [](const sv::http_request&, sv::http_response& res) {
      const sv::http_stream s = res.stream();
      s.write("one");
      s.write("two");
      s.end();
    });
    sv::ws_behavior echo;
    echo.on_message = [](sv::websocket& ws, std::string_view m, switchboard::protocol::opcode op) {
      ws.send(m, op);
    };
    server.ws("/ws", std::move(echo));
    check(!server.listen());
    check(!server.start());
  }
};

harness& the_harness() {
  static harness* h = new harness();  // lives for the process: no teardown order issues
  return *h;
}

// Parses the server's answers; traps on anything that is not well framed.
void check_answers(std::string_view out) {
  bool closed = false;
  while (!out.empty()) {
    check(!closed);  // nothing after "Connection: close"
    check(out.substr(0, 9) == "HTTP/1.1 ");
    const std::size_t end = out.find("\r\n\r\n");
    if (end == std::string_view::npos) return;  // cut by the server's close: allowed
    const std::string_view head = out.substr(0, end + 4);
    out.remove_prefix(end + 4);
    int status = 0;
    check(std::from_chars(head.data() + 9, head.data() + 12, status).ec == std::errc());
    if (status == 101) return;  // WebSocket frames follow
    if (status == 100) continue;
    closed = head.find("\r\nConnection: close\r\n") != std::string_view::npos;
    if (head.find("\r\nTransfer-Encoding: chunked\r\n") != std::string_view::npos) {
      for (;;) {
        const std::size_t line = out.find("\r\n");
        if (line == std::string_view::npos) return;
        std::size_t size = 0;
        const auto r = std::from_chars(out.data(), out.data() + line, size, 16);
        check(r.ec == std::errc() && r.ptr == out.data() + line);
        out.remove_prefix(line + 2);
        if (out.size() < size + 2) return;
        check(out.substr(size, 2) == "\r\n");
        out.remove_prefix(size + 2);
        if (size == 0) break;
      }
      continue;
    }
    const std::size_t at = head.find("\r\nContent-Length: ");
    if (at == std::string_view::npos) {
      // A body delimited by the end of the connection (an HTTP/1.0 stream):
      // the last answer.
      check(closed);
      return;
    }
    std::size_t length = 0;
    check(std::from_chars(head.data() + at + 18, head.data() + head.size(), length).ec ==
          std::errc());
    if (out.size() < length) return;
    out.remove_prefix(length);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  harness& h = the_harness();
  if (size == 0) return 0;
  const std::size_t schedule_len = std::min<std::size_t>(data[0] % 16, size - 1);
  const std::uint8_t* schedule = data + 1;
  std::string_view input(reinterpret_cast<const char*>(data + 1 + schedule_len),
                         size - 1 - schedule_len);
  if (input.size() > 16384) return 0;
  // Answers to HEAD carry a Content-Length but no body, which the checker
  // cannot tell from the answers alone; HEAD is covered by the unit tests.
  if (input.find("HEAD") != std::string_view::npos) return 0;

  switchboard::net::unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  check(static_cast<bool>(fd));
  timeval tv{3, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const auto ep = switchboard::net::endpoint::loopback_v4(h.server.port());
  // libFuzzer's -timeout alarm (SIGALRM) interrupts blocking calls on this
  // thread: EINTR is retried, never read as a server failure.
  while (::connect(fd.get(), ep.data(), ep.size()) != 0) {
    if (errno == EISCONN) break;
    check(errno == EINTR || errno == EALREADY);
    pollfd p{fd.get(), POLLOUT, 0};
    ::poll(&p, 1, 100);
  }

  std::string bytes(input);
  bytes.append("GET /n?last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::size_t sent = 0;
  for (std::size_t step = 0; sent < bytes.size(); ++step) {
    const std::size_t chunk =
        schedule_len == 0 ? bytes.size() : std::size_t{schedule[step % schedule_len]} + 1;
    const std::size_t n = std::min(chunk, bytes.size() - sent);
    // The server may close early (an error answer): later sends may fail.
    const ssize_t w = ::send(fd.get(), bytes.data() + sent, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    sent += static_cast<std::size_t>(w);
    if (schedule_len != 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  char buffer[16384];
  for (;;) {
    const ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) break;
    if (n < 0 && errno == EINTR) {
      check(std::chrono::steady_clock::now() < deadline);
      continue;
    }
    check(n > 0);  // a timeout: the server hung
    out.append(buffer, static_cast<std::size_t>(n));
    // An upgrade: the connection stays open as a WebSocket; stop here.
    if (out.find("HTTP/1.1 101 ") != std::string::npos) break;
    check(std::chrono::steady_clock::now() < deadline);
  }
  check_answers(out);
  return 0;
}
