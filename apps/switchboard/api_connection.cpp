// api_connection.cpp — see api_connection.hpp.
#include "api_connection.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>


namespace switchboard::app {

struct api_connection::tls_state {
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  ~tls_state() {
    if (ssl) SSL_free(ssl);
    if (ctx) SSL_CTX_free(ctx);
  }
};

namespace {

std::string openssl_reason() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "TLS handshake failed";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// What the head of an answer says about its body.
struct answer_head {
  int status = 0;
  bool has_length = false;
  std::size_t length = 0;
  bool close = false;
  bool chunked = false;
};

// Parses "HTTP/1.x NNN ...\r\nName: value\r\n..." (without the final blank
// line). Returns false for anything else.
bool parse_head(std::string_view head, answer_head& out) {
  if (head.size() < 12 || head.substr(0, 7) != "HTTP/1." || head[8] != ' ') return false;
  const bool http10 = head[7] == '0';
  out.close = http10;
  auto [p, ec] = std::from_chars(head.data() + 9, head.data() + 12, out.status);
  if (ec != std::errc() || p != head.data() + 12 || out.status < 100 || out.status > 599)
    return false;
  std::size_t line_end = head.find("\r\n");
  while (line_end != std::string_view::npos) {
    std::size_t start = line_end + 2;
    line_end = head.find("\r\n", start);
    std::string_view line = head.substr(start, line_end == std::string_view::npos
                                                   ? std::string_view::npos
                                                   : line_end - start);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trim(line.substr(colon + 1));
    if (equals_ignoring_case(name, "content-length")) {
      std::size_t n = 0;
      auto [q, e] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (e != std::errc() || q != value.data() + value.size()) return false;
      if (out.has_length && n != out.length) return false;
      out.has_length = true;
      out.length = n;
    } else if (equals_ignoring_case(name, "connection")) {
      if (equals_ignoring_case(value, "close")) out.close = true;
      if (equals_ignoring_case(value, "keep-alive")) out.close = false;
    } else if (equals_ignoring_case(name, "transfer-encoding")) {
      out.chunked = true;
    }
  }
  return true;
}

constexpr std::size_t k_max_answer = 1024 * 1024;  // an answer this big is not ours

}  // namespace

api_connection::api_connection(std::string url, api_tls tls, double timeout_seconds)
    : text_url_(std::move(url)), tls_options_(std::move(tls)), timeout_(timeout_seconds) {}

api_connection::~api_connection() { disconnect(); }

std::string api_connection::open() {
  // The API is on the same port as /ws: http(s):// or ws(s):// name it.
  std::string url = text_url_;
  if (url.rfind("http://", 0) == 0) url = "ws://" + url.substr(7);
  if (url.rfind("https://", 0) == 0) url = "wss://" + url.substr(8);
  if (client::parse_url(url, url_))
    return "bad URL '" + text_url_ + "': expected http(s)://host:port or ws(s)://host:port/ws";
  if (client::resolve(url_.host, url_.port, endpoints_) || endpoints_.empty())
    return "cannot resolve " + url_.host;
  if (!url_.secure) return {};

  tls_ = std::make_unique<tls_state>();
  tls_->ctx = SSL_CTX_new(TLS_client_method());
  if (!tls_->ctx) return "cannot set up TLS: " + openssl_reason();
  SSL_CTX_set_min_proto_version(tls_->ctx, TLS1_2_VERSION);
  if (tls_options_.insecure_skip_verify) {
    SSL_CTX_set_verify(tls_->ctx, SSL_VERIFY_NONE, nullptr);
  } else {
    SSL_CTX_set_verify(tls_->ctx, SSL_VERIFY_PEER, nullptr);
    const int loaded = tls_options_.ca_file.empty()
                           ? SSL_CTX_set_default_verify_paths(tls_->ctx)
                           : SSL_CTX_load_verify_locations(tls_->ctx,
                                                           tls_options_.ca_file.c_str(), nullptr);
    if (loaded != 1)
      return "cannot load the CA file '" + tls_options_.ca_file + "': " + openssl_reason();
  }
  return {};
}

std::string api_connection::connect() {
  const auto ms = static_cast<long>(timeout_ * 1000);
  const timeval tv{ms / 1000, (ms % 1000) * 1000};
  int last_errno = 0;
  for (const net::endpoint& e : endpoints_) {
    const int fd = ::socket(e.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_errno = errno;
      continue;
    }
    // Linux applies SO_SNDTIMEO to connect() too.
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd, e.data(), e.size()) == 0) {
      fd_ = fd;
      break;
    }
    last_errno = errno;
    ::close(fd);
  }
  if (fd_ < 0) return "cannot connect to " + url_.host_header + ": " + std::strerror(last_errno);
  ++opened_;
  pending_.clear();
  if (!tls_) return {};

  tls_->ssl = SSL_new(tls_->ctx);
  if (!tls_->ssl) return "cannot set up TLS: " + openssl_reason();
  SSL_set_fd(tls_->ssl, fd_);
  in6_addr ip{};
  const bool is_ip = ::inet_pton(AF_INET, url_.host.c_str(), &ip) == 1 ||
                     ::inet_pton(AF_INET6, url_.host.c_str(), &ip) == 1;
  if (is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tls_->ssl), url_.host.c_str());
  } else {
    SSL_set_tlsext_host_name(tls_->ssl, url_.host.c_str());
    SSL_set1_host(tls_->ssl, url_.host.c_str());
  }
  if (SSL_connect(tls_->ssl) != 1) {
    const long verify = SSL_get_verify_result(tls_->ssl);
    std::string why = verify != X509_V_OK ? std::string("certificate verification failed: ") +
                                                X509_verify_cert_error_string(verify)
                                          : openssl_reason();
    ERR_clear_error();
    disconnect();
    return "TLS with " + url_.host_header + ": " + why;
  }
  return {};
}

void api_connection::disconnect() noexcept {
  if (tls_ && tls_->ssl) {
    SSL_free(tls_->ssl);
    tls_->ssl = nullptr;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  pending_.clear();
}

bool api_connection::send_all(std::string_view bytes) {
  while (!bytes.empty()) {
    long n;
    if (tls_) {
      n = SSL_write(tls_->ssl, bytes.data(), static_cast<int>(bytes.size()));
      if (n <= 0) {
        last_error_ = "TLS write failed";
        ERR_clear_error();
        return false;
      }
    } else {
      n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        last_error_ = std::strerror(errno);
        return false;
      }
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

long api_connection::receive(char* buffer, std::size_t size) {
  if (tls_) {
    const int n = SSL_read(tls_->ssl, buffer, static_cast<int>(size));
    if (n > 0) return n;
    const int reason = SSL_get_error(tls_->ssl, n);
    ERR_clear_error();
    if (reason == SSL_ERROR_ZERO_RETURN) return 0;
    // A peer that closes TCP without close_notify: the same as a close here,
    // since every answer is delimited by its Content-Length.
    if (reason == SSL_ERROR_SYSCALL && errno == 0) return 0;
    last_error_ = reason == SSL_ERROR_SYSCALL ? std::strerror(errno) : "TLS read failed";
    return -1;
  }
  for (;;) {
    const ssize_t n = ::recv(fd_, buffer, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) last_error_ = errno == EAGAIN ? "timed out" : std::strerror(errno);
    return n;
  }
}

std::string api_connection::exchange(const std::string& request, api_answer& answer) {
  if (!send_all(request)) return last_error_;
  std::string data = std::move(pending_);
  pending_.clear();
  char buffer[16 * 1024];
  answer_head head;
  std::size_t head_end = std::string::npos;
  for (;;) {
    if (head_end == std::string::npos) {
      const std::size_t found = data.find("\r\n\r\n");
      if (found != std::string::npos) {
        if (!parse_head(std::string_view(data).substr(0, found), head) || head.chunked)
          return "not an HTTP answer we can read";
        if (head.status < 200) {  // 1xx: an interim answer, the real one follows
          data.erase(0, found + 4);
          head = {};
          continue;
        }
        head_end = found + 4;
      }
    }
    if (head_end != std::string::npos && head.has_length &&
        data.size() - head_end >= head.length) {
      answer.status = head.status;
      answer.body = data.substr(head_end, head.length);
      pending_ = data.substr(head_end + head.length);
      if (head.close) disconnect();
      return {};
    }
    if (data.size() > k_max_answer) return "an answer of over 1 MiB";
    const long n = receive(buffer, sizeof buffer);
    if (n < 0) return last_error_;
    if (n == 0) {
      if (head_end != std::string::npos && !head.has_length) {  // delimited by the close
        answer.status = head.status;
        answer.body = data.substr(head_end);
        disconnect();
        return {};
      }
      return data.empty() ? "the server closed the connection" : "the answer was cut short";
    }
    data.append(buffer, static_cast<std::size_t>(n));
  }
}

std::string api_connection::request(std::string_view method, std::string_view target,
                                    std::string_view headers, std::string_view body,
                                    api_answer& answer) {
  std::string request;
  request.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ");
  request.append(url_.host_header).append("\r\n").append(headers);
  request.append("Content-Type: application/json\r\nContent-Length: ");
  request.append(std::to_string(body.size())).append("\r\n\r\n").append(body);

  // An idle kept-alive connection that has become readable was closed by
  // the server (its keep-alive timeout): nothing else arrives unasked. Open a
  // new one instead of sending into it. A request is never sent twice: one
  // that fails after it was sent may have been made.
  if (fd_ >= 0) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) != 0 || !pending_.empty()) disconnect();
  }
  if (fd_ < 0) {
    if (std::string error = connect(); !error.empty()) return error;
  }
  std::string error = exchange(request, answer);
  if (!error.empty()) {
    disconnect();
    return std::string(method) + " " + std::string(target) + " to " + url_.host_header + ": " +
           error;
  }
  return {};
}

}  // namespace switchboard::app
