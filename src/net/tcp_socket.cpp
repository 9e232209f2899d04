// tcp_socket.cpp — endpoint parsing and formatting (inet_pton / inet_ntop),
// and the system-call wrappers; EINTR is retried here so that no caller has to
// think about it.
#include "switchboard/net/tcp_socket.hpp"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace switchboard::net {

endpoint::endpoint() noexcept : address_{} {
  std::memset(&address_, 0, sizeof address_);
  address_.generic.sa_family = AF_UNSPEC;
}

std::optional<endpoint> endpoint::parse(std::string_view address, std::uint16_t port) noexcept {
  if (address.size() >= 2 && address.front() == '[' && address.back() == ']') {
    address = address.substr(1, address.size() - 2);
  }
  // inet_pton wants a NUL-terminated string; INET6_ADDRSTRLEN bounds any valid one.
  char text[INET6_ADDRSTRLEN + 1];
  if (address.empty() || address.size() >= sizeof text) return std::nullopt;
  std::memcpy(text, address.data(), address.size());
  text[address.size()] = '\0';

  endpoint result;
  if (::inet_pton(AF_INET, text, &result.address_.v4.sin_addr) == 1) {
    result.address_.v4.sin_family = AF_INET;
    result.address_.v4.sin_port = htons(port);
    return result;
  }
  if (::inet_pton(AF_INET6, text, &result.address_.v6.sin6_addr) == 1) {
    result.address_.v6.sin6_family = AF_INET6;
    result.address_.v6.sin6_port = htons(port);
    return result;
  }
  return std::nullopt;
}

std::optional<endpoint> endpoint::from_sockaddr(const sockaddr* address,
                                                socklen_t length) noexcept {
  endpoint result;
  if (address == nullptr) return std::nullopt;
  if (address->sa_family == AF_INET && length >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    std::memcpy(&result.address_.v4, address, sizeof(sockaddr_in));
    return result;
  }
  if (address->sa_family == AF_INET6 && length >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    std::memcpy(&result.address_.v6, address, sizeof(sockaddr_in6));
    return result;
  }
  return std::nullopt;
}

endpoint endpoint::loopback_v4(std::uint16_t port) noexcept {
  endpoint result;
  result.address_.v4.sin_family = AF_INET;
  result.address_.v4.sin_port = htons(port);
  result.address_.v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return result;
}

endpoint endpoint::loopback_v6(std::uint16_t port) noexcept {
  endpoint result;
  result.address_.v6.sin6_family = AF_INET6;
  result.address_.v6.sin6_port = htons(port);
  result.address_.v6.sin6_addr = in6addr_loopback;
  return result;
}

endpoint endpoint::any_v4(std::uint16_t port) noexcept {
  endpoint result;
  result.address_.v4.sin_family = AF_INET;
  result.address_.v4.sin_port = htons(port);
  result.address_.v4.sin_addr.s_addr = htonl(INADDR_ANY);
  return result;
}

endpoint endpoint::any_v6(std::uint16_t port) noexcept {
  endpoint result;
  result.address_.v6.sin6_family = AF_INET6;
  result.address_.v6.sin6_port = htons(port);
  result.address_.v6.sin6_addr = in6addr_any;
  return result;
}

std::uint16_t endpoint::port() const noexcept {
  switch (family()) {
    case AF_INET:
      return ntohs(address_.v4.sin_port);
    case AF_INET6:
      return ntohs(address_.v6.sin6_port);
    default:
      return 0;
  }
}

endpoint endpoint::with_port(std::uint16_t port) const noexcept {
  endpoint result = *this;
  if (family() == AF_INET) result.address_.v4.sin_port = htons(port);
  if (family() == AF_INET6) result.address_.v6.sin6_port = htons(port);
  return result;
}

socklen_t endpoint::size() const noexcept {
  switch (family()) {
    case AF_INET:
      return sizeof(sockaddr_in);
    case AF_INET6:
      return sizeof(sockaddr_in6);
    default:
      return 0;
  }
}

std::string endpoint::address_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  const void* raw = nullptr;
  if (family() == AF_INET) raw = &address_.v4.sin_addr;
  if (family() == AF_INET6) raw = &address_.v6.sin6_addr;
  if (raw == nullptr || ::inet_ntop(family(), raw, text, sizeof text) == nullptr) return {};
  return text;
}

std::string endpoint::to_string() const {
  std::string address = address_string();
  if (address.empty()) return {};
  const std::string port_text = std::to_string(port());
  return family() == AF_INET6 ? "[" + address + "]:" + port_text : address + ":" + port_text;
}

bool operator==(const endpoint& a, const endpoint& b) noexcept {
  if (a.family() != b.family()) return false;
  switch (a.family()) {
    case AF_INET:
      return a.address_.v4.sin_port == b.address_.v4.sin_port &&
             a.address_.v4.sin_addr.s_addr == b.address_.v4.sin_addr.s_addr;
    case AF_INET6:
      return a.address_.v6.sin6_port == b.address_.v6.sin6_port &&
             a.address_.v6.sin6_scope_id == b.address_.v6.sin6_scope_id &&
             std::memcmp(&a.address_.v6.sin6_addr, &b.address_.v6.sin6_addr, sizeof(in6_addr)) == 0;
    default:
      return true;
  }
}

// ---------------------------------------------------------------------------
// System-call helpers

unique_fd open_tcp_socket(int family, std::error_code& error) noexcept {
  error.clear();
  unique_fd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
  if (!fd) error = errno_code();
  return fd;
}

std::error_code set_socket_option(int fd, int level, int name, int value) noexcept {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) return errno_code();
  return {};
}

std::error_code set_no_delay(int fd, bool on) noexcept {
  return set_socket_option(fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
}

std::error_code socket_error(int fd) noexcept {
  int value = 0;
  socklen_t length = sizeof value;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length) != 0) return errno_code();
  return value == 0 ? std::error_code{} : errno_code(value);
}

namespace {

template <class Call>
endpoint query_endpoint(int fd, std::error_code& error, Call call) noexcept {
  error.clear();
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (call(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) {
    error = errno_code();
    return {};
  }
  auto result = endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&storage), length);
  if (!result) {
    error = std::make_error_code(std::errc::address_family_not_supported);
    return {};
  }
  return *result;
}

}  // namespace

endpoint local_endpoint(int fd, std::error_code& error) noexcept {
  return query_endpoint(fd, error, ::getsockname);
}

endpoint peer_endpoint(int fd, std::error_code& error) noexcept {
  return query_endpoint(fd, error, ::getpeername);
}

io_result read_some(int fd, std::span<std::byte> buffer) noexcept {
  for (;;) {
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n >= 0) return {static_cast<std::size_t>(n), {}};
    if (errno != EINTR) return {0, errno_code()};
  }
}

io_result write_some(int fd, std::span<const iovec> buffers) noexcept {
  // One buffer (an echo, one corked reply): send() spares the kernel copying
  // in a msghdr and an iovec array, which sendmsg() does on every call.
  if (buffers.size() == 1) {
    return write_some(fd, std::span<const std::byte>(static_cast<const std::byte*>(buffers[0].iov_base),
                                                     buffers[0].iov_len));
  }
  msghdr message{};
  // sendmsg takes a non-const iovec array but does not modify it.
  message.msg_iov =
      const_cast<iovec*>(buffers.data());  // NOLINT(cppcoreguidelines-pro-type-const-cast)
  message.msg_iovlen = std::min(buffers.size(), k_max_iov);
  for (;;) {
    const ssize_t n = ::sendmsg(fd, &message, MSG_NOSIGNAL);
    if (n >= 0) return {static_cast<std::size_t>(n), {}};
    if (errno != EINTR) return {0, errno_code()};
  }
}

io_result write_some(int fd, std::span<const std::byte> buffer) noexcept {
  for (;;) {
    const ssize_t n = ::send(fd, buffer.data(), buffer.size(), MSG_NOSIGNAL);
    if (n >= 0) return {static_cast<std::size_t>(n), {}};
    if (errno != EINTR) return {0, errno_code()};
  }
}

}  // namespace switchboard::net
