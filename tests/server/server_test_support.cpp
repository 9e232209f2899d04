// server_test_support.cpp — see server_test_support.hpp.
#include "server_test_support.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include <switchboard/net/tcp_socket.hpp>
#include <switchboard/protocol/handshake.hpp>
#include <switchboard/protocol/message_writer.hpp>

namespace switchboard::server::test {

watchdog::watchdog(std::chrono::milliseconds limit)
    : thread_([this, limit] {
        std::unique_lock lock(mutex_);
        if (!done_.wait_for(lock, limit, [this] { return cancelled_; })) {
          const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
          std::fprintf(stderr, "watchdog: %s.%s hung; aborting\n",
                       info != nullptr ? info->test_suite_name() : "?",
                       info != nullptr ? info->name() : "?");
          std::abort();
        }
      }) {}

watchdog::~watchdog() {
  {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
  }
  done_.notify_all();
  thread_.join();
}

server_options test_options() {
  server_options options;
  options.port = 0;
  options.handle_signals = false;
  options.timer_tick = 10ms;
  return options;
}

std::string numbered(std::string_view prefix, long n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

void add_echo(server& s) {
  ws_behavior echo;
  echo.on_message = [](websocket& ws, std::string_view payload, protocol::opcode op) {
    ws.send(payload, op);
  };
  s.ws("*", std::move(echo));
}

running_server::running_server(server_options options, const setup_fn& setup)
    : server_(std::make_unique<server>(std::move(options))) {
  setup(*server_);
  const std::error_code listen_error = server_->listen();
  EXPECT_FALSE(listen_error) << listen_error.message();
  port_ = server_->port();
  const std::error_code start_error = server_->start();
  EXPECT_FALSE(start_error) << start_error.message();
}

namespace {
protocol::reader_options client_reader_options() {
  protocol::reader_options o;
  o.role = protocol::role::client;
  o.max_message_size = 64 * 1024 * 1024;
  return o;
}
}  // namespace

void ssl_ctx_deleter::operator()(ssl_ctx_st* ctx) const noexcept { SSL_CTX_free(ctx); }

ssl_ctx_ptr make_tls_client_context(const std::string& ca_file) {
  ssl_ctx_ptr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return nullptr;
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr) != 1) return nullptr;
  static const unsigned char alpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx.get(), alpn, sizeof alpn);
  return ctx;
}

ws_client::ws_client(std::uint16_t port, std::chrono::milliseconds timeout)
    : reader_(client_reader_options()) {
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

ws_client::~ws_client() { close(); }

void ws_client::close() {
  SSL_free(ssl_);  // without SSL_shutdown: tests choose how the connection ends
  ssl_ = nullptr;
  fd_.reset();
}

bool ws_client::start_tls(ssl_ctx_st* ctx, const std::string& host, std::string* error) {
  auto failed = [&](std::string why) {
    for (unsigned long e; (e = ERR_get_error()) != 0;) {
      char text[256];
      ERR_error_string_n(e, text, sizeof text);
      why.append(": ").append(text);
    }
    if (ssl_ != nullptr) {
      const long verify = SSL_get_verify_result(ssl_);
      if (verify != X509_V_OK) why.append(": ").append(X509_verify_cert_error_string(verify));
    }
    if (error != nullptr) *error = why;
    return false;
  };
  if (!fd_ || ssl_ != nullptr) return failed("not connected, or TLS already");
  ssl_ = SSL_new(ctx);
  if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_.get()) != 1) return failed("SSL_new");
  SSL_set_tlsext_host_name(ssl_, host.c_str());
  SSL_set1_host(ssl_, host.c_str());
  if (SSL_connect(ssl_) != 1) return failed("SSL_connect");
  return true;
}

std::string ws_client::tls_version() const {
  return ssl_ != nullptr ? SSL_get_version(ssl_) : "";
}

std::string ws_client::tls_alpn() const {
  if (ssl_ == nullptr) return {};
  const unsigned char* data = nullptr;
  unsigned int size = 0;
  SSL_get0_alpn_selected(ssl_, &data, &size);
  return {reinterpret_cast<const char*>(data), size};
}

std::string ws_client::tls_peer_subject() const {
  if (ssl_ == nullptr) return {};
  X509* cert = SSL_get1_peer_certificate(ssl_);
  if (cert == nullptr) return {};
  char text[256];
  X509_NAME_oneline(X509_get_subject_name(cert), text, sizeof text);
  X509_free(cert);
  return text;
}

bool ws_client::close_notify_received() const {
  return ssl_ != nullptr && (SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN) != 0;
}

long ws_client::read_some(char* data, std::size_t size) {
  if (ssl_ == nullptr) return ::recv(fd_.get(), data, size, 0);
  ERR_clear_error();
  errno = 0;
  const int n = SSL_read(ssl_, data, static_cast<int>(size));
  if (n > 0) return n;
  // A clean end (close_notify) is 0 like TCP's EOF; a receive timeout is
  // SSL_ERROR_SYSCALL with errno EAGAIN; an end without close_notify shows as
  // an SSL error (OpenSSL 3: "unexpected eof while reading").
  if (SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN) return 0;
  if (errno != EAGAIN && errno != ECONNRESET) errno = 0;
  return -1;
}

long ws_client::write_some(const char* data, std::size_t size) {
  if (ssl_ == nullptr) return ::send(fd_.get(), data, size, MSG_NOSIGNAL);
  ERR_clear_error();
  const int n = SSL_write(ssl_, data, static_cast<int>(size));
  return n > 0 ? n : -1;
}

bool ws_client::send_raw(std::string_view bytes) {
  while (!bytes.empty()) {
    const long n = write_some(bytes.data(), bytes.size());
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool ws_client::fill() {
  char chunk[65536];
  const long n = read_some(chunk, sizeof chunk);
  if (n <= 0) return false;
  buffer_.append(chunk, static_cast<std::size_t>(n));
  return true;
}


int ws_client::upgrade(std::string_view path, std::string_view extra, std::string* head_out) {
  const auto key = protocol::generate_key();
  std::string request = "GET " + std::string(path) +
                        " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                        "Sec-WebSocket-Key: " +
                        std::string(key.data(), key.size()) + "\r\n" + std::string(extra) + "\r\n";
  if (!send_raw(request)) return 0;
  return read_response(head_out);
}

int ws_client::read_response(std::string* head_out) {
  std::size_t end;
  while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) return 0;
  }
  const std::string head = buffer_.substr(0, end + 4);
  if (head_out != nullptr) *head_out = buffer_;
  buffer_.erase(0, end + 4);
  if (head.size() < 12) return 0;
  return std::atoi(head.c_str() + 9);
}

std::string ws_client::http_exchange(std::string_view request) {
  if (!send_raw(request)) return {};
  // One answer: its head and the Content-Length bytes after it (connections
  // are kept alive, so EOF need not come), else whatever arrives until EOF.
  for (;;) {
    const std::size_t end = buffer_.find("\r\n\r\n");
    if (end != std::string::npos) {
      const std::string_view head(buffer_.data(), end + 4);
      std::size_t length = std::string::npos;
      for (const std::string_view name : {"\r\nContent-Length: ", "\r\ncontent-length: "}) {
        if (const std::size_t at = head.find(name); at != std::string_view::npos) {
          length = static_cast<std::size_t>(std::strtoull(head.data() + at + name.size(), nullptr, 10));
        }
      }
      if (length != std::string::npos && buffer_.size() >= end + 4 + length) {
        std::string out = buffer_.substr(0, end + 4 + length);
        buffer_.erase(0, end + 4 + length);
        return out;
      }
    }
    if (!fill()) break;
  }
  std::string out;
  out.swap(buffer_);
  return out;
}

bool ws_client::send_frame(protocol::opcode op, std::string_view payload, bool fin, bool masked,
                           bool rsv1) {
  std::string frame;
  if (masked) {
    protocol::message_writer(protocol::role::client).append_frame(frame, op, payload, fin, rsv1);
  } else {
    protocol::frame_header h;
    h.fin = fin;
    h.rsv1 = rsv1;
    h.op = op;
    h.length = payload.size();
    frame.resize(protocol::frame_header_size(payload.size(), false));
    protocol::encode_frame_header(h, frame.data());
    frame.append(payload);
  }
  return send_raw(frame);
}

void ws_client::allow_rsv1() {
  protocol::reader_options o = client_reader_options();
  o.allow_rsv1 = true;
  reader_ = protocol::message_reader(o);
}

bool ws_client::send_close(std::uint16_t code, std::string_view reason) {
  std::string frame;
  protocol::message_writer(protocol::role::client).append_close(frame, code, reason);
  return send_raw(frame);
}

received ws_client::next() {
  for (;;) {
    std::span<char> input(buffer_.data() + used_, buffer_.size() - used_);
    const std::size_t before = input.size();
    const protocol::reader_event ev = reader_.next(input);
    used_ += before - input.size();
    if (ev.kind != protocol::event_kind::need_more) {
      received r{ev.kind, ev.op, ev.code, ev.err, std::string(ev.payload), ev.compressed};
      return r;
    }
    buffer_.clear();
    used_ = 0;
    if (!fill()) return {};
  }
}

bool ws_client::wait_closed() {
  char chunk[4096];
  for (;;) {
    errno = 0;
    const long n = read_some(chunk, sizeof chunk);
    if (n == 0) return true;
    // TLS: an end without close_notify (errno 0) is closed too.
    if (n < 0) return errno == ECONNRESET || (ssl_ != nullptr && errno == 0);
  }
}

}  // namespace switchboard::server::test
