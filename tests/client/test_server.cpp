// test_server.cpp — blocking sockets and the protocol layer's server side.
#include "test_server.hpp"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "switchboard/net/tcp_socket.hpp"
#include "switchboard/protocol/handshake.hpp"
#include "switchboard/protocol/http_head.hpp"

namespace switchboard::client::test {
namespace {

constexpr int k_poll_ms = 5000;

bool wait_readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) > 0;
}

void write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      (void)::poll(&p, 1, k_poll_ms);
      continue;
    }
    if (n <= 0) return;  // the client went away; the test's checks will tell
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace

server_peer::server_peer(net::unique_fd fd)
    : fd_(std::move(fd)),
      reader_(protocol::reader_options{protocol::role::server, 64 * 1024 * 1024, false, false}) {}

bool server_peer::fill() {
  if (!fd_ || !wait_readable(fd_.get(), k_poll_ms)) return false;
  char buffer[65536];
  const ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, 0);
  if (n <= 0) return false;
  rx_.append(buffer, static_cast<std::size_t>(n));
  return true;
}

std::string server_peer::read_request() {
  std::size_t end;
  while ((end = rx_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) return {};
  }
  request_ = rx_.substr(0, end + 4);
  rx_.erase(0, end + 4);
  protocol::request_parser parser;
  if (parser.parse(request_).status != protocol::parse_status::complete) {
    ADD_FAILURE() << "bad request head: " << request_;
    return request_;
  }
  protocol::upgrade_request upgrade;
  const protocol::error error = protocol::validate_upgrade(parser.head(), upgrade);
  EXPECT_EQ(error, protocol::error::none) << protocol::describe(error);
  key_.assign(upgrade.key);
  protocols_.assign(parser.head().find("Sec-WebSocket-Protocol").value_or(""));
  return request_;
}

void server_peer::accept(std::string_view subprotocol, std::string_view then) {
  std::string out;
  EXPECT_TRUE(protocol::write_accept_response(out, key_, {.subprotocol = subprotocol}));
  out.append(then);
  send_raw(out);
}

void server_peer::handshake(std::string_view subprotocol) {
  ASSERT_FALSE(read_request().empty()) << "no upgrade request";
  accept(subprotocol);
}

void server_peer::send_raw(std::string_view bytes) {
  if (fd_) write_all(fd_.get(), bytes);
}

std::string server_peer::frame(protocol::opcode op, std::string_view payload) {
  std::string out;
  protocol::message_writer(protocol::role::server).append_frame(out, op, payload);
  return out;
}

void server_peer::send(protocol::opcode op, std::string_view payload) {
  send_raw(frame(op, payload));
}

void server_peer::send_close(std::uint16_t code, std::string_view reason) {
  std::string out;
  writer_.append_close(out, code, reason);
  send_raw(out);
}

peer_event server_peer::next() {
  for (;;) {
    std::span<char> input(rx_.data(), rx_.size());
    const protocol::reader_event event = reader_.next(input);
    const std::size_t used = rx_.size() - input.size();
    if (event.kind != protocol::event_kind::need_more) {
      peer_event out{event.kind, event.op, event.code, std::string(event.payload),
                     event.compressed};
      rx_.erase(0, used);
      return out;
    }
    rx_.clear();  // need_more: the reader kept any partial frame
    if (!fill()) return {};
  }
}

void server_peer::allow_rsv1() {
  reader_ = protocol::message_reader(
      protocol::reader_options{protocol::role::server, 64 * 1024 * 1024, false, true});
}

bool server_peer::wait_eof(std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (fd_ && std::chrono::steady_clock::now() < deadline) {
    if (!wait_readable(fd_.get(), 50)) continue;
    char buffer[4096];
    const ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return true;
  }
  return false;
}

scripted_server::scripted_server(script_fn script, std::uint16_t port) : script_(std::move(script)) {
  std::error_code error;
  listener_ = net::open_tcp_socket(AF_INET, error);
  const net::endpoint local = net::endpoint::loopback_v4(port);
  (void)net::set_socket_option(listener_.get(), SOL_SOCKET, SO_REUSEADDR, 1);
  EXPECT_EQ(::bind(listener_.get(), local.data(), local.size()), 0) << std::strerror(errno);
  EXPECT_EQ(::listen(listener_.get(), 16), 0);
  port_ = net::local_endpoint(listener_.get(), error).port();
  thread_ = std::thread([this] { serve(); });
}

scripted_server::~scripted_server() {
  stop_ = true;
  thread_.join();
}

std::string scripted_server::url(std::string_view target) const {
  return "ws://127.0.0.1:" + std::to_string(port_) + std::string(target);
}

void scripted_server::serve() {
  while (!stop_) {
    if (!wait_readable(listener_.get(), 20)) continue;
    const int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    // Blocking, with the poll()-based timeouts above.
    const int flags = ::fcntl(fd, F_GETFL);
    (void)::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    ++accepted_;
    server_peer peer{net::unique_fd(fd)};
    if (script_) script_(peer);
  }
}

std::uint16_t unused_port() {
  std::error_code error;
  net::unique_fd fd = net::open_tcp_socket(AF_INET, error);
  const net::endpoint local = net::endpoint::loopback_v4(0);
  EXPECT_EQ(::bind(fd.get(), local.data(), local.size()), 0);
  return net::local_endpoint(fd.get(), error).port();
}

}  // namespace switchboard::client::test
