// http_client.cpp — the blocking raw-socket HTTP test client.
#include "http_client.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cctype>
#include <charconv>

#include <switchboard/net/tcp_socket.hpp>

namespace switchboard::server::test {

namespace {
bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}
}  // namespace

std::optional<std::string> http_answer_read::header(std::string_view name) const {
  std::size_t pos = head.find("\r\n");
  while (pos != std::string::npos && pos + 2 < head.size()) {
    const std::size_t line = pos + 2;
    const std::size_t end = head.find("\r\n", line);
    if (end == std::string::npos || end == line) break;
    const std::string_view text(head.data() + line, end - line);
    const std::size_t colon = text.find(':');
    if (colon != std::string_view::npos && iequals(text.substr(0, colon), name)) {
      std::string_view value = text.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
      return std::string(value);
    }
    pos = end;
  }
  return std::nullopt;
}

http_client::http_client(std::uint16_t port, std::chrono::milliseconds timeout) {
  fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const net::endpoint ep = net::endpoint::loopback_v4(port);
  if (::connect(fd_.get(), ep.data(), ep.size()) != 0) fd_.reset();
}

bool http_client::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool http_client::fill() {
  char chunk[16384];
  const ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
  if (n <= 0) return false;
  buffer_.append(chunk, static_cast<std::size_t>(n));
  return true;
}

bool http_client::read_line(std::string& line) {
  for (;;) {
    const std::size_t end = buffer_.find("\r\n");
    if (end != std::string::npos) {
      line.assign(buffer_, 0, end);
      buffer_.erase(0, end + 2);
      return true;
    }
    if (!fill()) return false;
  }
}

bool http_client::read_exact(std::size_t n, std::string& out) {
  while (buffer_.size() < n) {
    if (!fill()) return false;
  }
  out.assign(buffer_, 0, n);
  buffer_.erase(0, n);
  return true;
}

http_answer_read http_client::read_head() {
  http_answer_read a;
  for (;;) {
    const std::size_t end = buffer_.find("\r\n\r\n");
    if (end != std::string::npos) {
      a.head.assign(buffer_, 0, end + 4);
      buffer_.erase(0, end + 4);
      break;
    }
    if (!fill()) return a;
  }
  // "HTTP/1.1 200 OK"
  if (a.head.size() < 12 || a.head.compare(0, 5, "HTTP/") != 0) return a;
  int status = 0;
  std::from_chars(a.head.data() + 9, a.head.data() + 12, status);
  a.status = status;
  const auto te = a.header("Transfer-Encoding");
  a.chunked = te && iequals(*te, "chunked");
  return a;
}

std::optional<std::string> http_client::read_chunk() {
  std::string line;
  if (!read_line(line)) return std::nullopt;
  std::size_t size = 0;
  const auto r = std::from_chars(line.data(), line.data() + line.size(), size, 16);
  if (r.ec != std::errc() || r.ptr != line.data() + line.size()) return std::nullopt;
  std::string data;
  if (size == 0) {
    // The last chunk: no trailers are sent, so an empty line ends the body.
    if (!read_line(line) || !line.empty()) return std::nullopt;
    return data;
  }
  if (!read_exact(size, data) || !read_line(line) || !line.empty()) return std::nullopt;
  return data;
}

http_answer_read http_client::read_answer(bool head_request) {
  http_answer_read a = read_head();
  if (a.status == 0 || head_request || a.status == 100 || a.status == 204 || a.status == 304) {
    return a;
  }
  if (a.chunked) {
    for (;;) {
      auto chunk = read_chunk();
      if (!chunk) {
        a.status = 0;  // truncated
        return a;
      }
      if (chunk->empty()) return a;
      a.body.append(*chunk);
    }
  }
  if (const auto length = a.header("Content-Length")) {
    std::size_t n = 0;
    std::from_chars(length->data(), length->data() + length->size(), n);
    if (!read_exact(n, a.body)) a.status = 0;
    return a;
  }
  a.body = read_to_eof();
  return a;
}

std::string http_client::read_to_eof() {
  while (fill()) {
  }
  std::string out;
  out.swap(buffer_);
  return out;
}

bool http_client::wait_closed() {
  char chunk[16384];
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
  }
}

bool http_client::silent_for(std::chrono::milliseconds quiet) {
  if (!buffer_.empty()) return false;
  pollfd p{fd_.get(), POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(quiet.count())) == 0;
}

std::string http_request_text(std::string_view method, std::string_view target,
                              std::string_view extra, std::string_view body,
                              std::string_view version) {
  std::string out;
  out.append(method).append(" ").append(target).append(" ").append(version).append("\r\n");
  out.append("Host: test\r\n").append(extra);
  if (!body.empty()) {
    out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  out.append("\r\n").append(body);
  return out;
}

}  // namespace switchboard::server::test
