// tcp_socket.hpp — TCP sockets without the loop: `endpoint` (an IPv4 or IPv6
// address and port) and thin, errno-free helpers over the socket system calls
// that the listener, the connector and tcp_stream are built on.
//
// Addresses are numeric only: parse() takes "127.0.0.1" or "::1", never a host
// name (resolving one blocks, and does not belong on an event loop). Every
// function retries on EINTR and reports failure as std::error_code. None blocks
// unless the socket is blocking. Sockets are created non-blocking and
// close-on-exec.
//
// Thread-safety: endpoint is a plain value; the functions hold no state (the
// usual rules for sharing one descriptor between threads apply).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "switchboard/net/export.hpp"
#include "switchboard/net/io_handler.hpp"

namespace switchboard::net {

class SWITCHBOARD_NET_EXPORT endpoint {
 public:
  // An unspecified endpoint (family() == AF_UNSPEC).
  endpoint() noexcept;

  // Parses a numeric address: "127.0.0.1", "::1", "[::1]" (brackets optional
  // for IPv6). Returns nullopt for anything else, host names included.
  [[nodiscard]] static std::optional<endpoint> parse(std::string_view address,
                                                     std::uint16_t port) noexcept;
  // Copies a socket address of family AF_INET or AF_INET6; nullopt otherwise.
  [[nodiscard]] static std::optional<endpoint> from_sockaddr(const sockaddr* address,
                                                             socklen_t length) noexcept;

  [[nodiscard]] static endpoint loopback_v4(std::uint16_t port) noexcept;  // 127.0.0.1
  [[nodiscard]] static endpoint loopback_v6(std::uint16_t port) noexcept;  // ::1
  [[nodiscard]] static endpoint any_v4(std::uint16_t port) noexcept;       // 0.0.0.0
  [[nodiscard]] static endpoint any_v6(std::uint16_t port) noexcept;       // ::

  // AF_INET, AF_INET6 or AF_UNSPEC.
  [[nodiscard]] int family() const noexcept { return address_.generic.sa_family; }
  [[nodiscard]] std::uint16_t port() const noexcept;
  // The same address with another port.
  [[nodiscard]] endpoint with_port(std::uint16_t port) const noexcept;

  // "127.0.0.1:8080", "[::1]:8080"; "" when unspecified.
  [[nodiscard]] std::string to_string() const;
  // The address only: "127.0.0.1", "::1".
  [[nodiscard]] std::string address_string() const;

  // For bind / connect / accept.
  [[nodiscard]] const sockaddr* data() const noexcept { return &address_.generic; }
  [[nodiscard]] socklen_t size() const noexcept;

  friend SWITCHBOARD_NET_EXPORT bool operator==(const endpoint& a, const endpoint& b) noexcept;

 private:
  union storage {
    sockaddr generic;
    sockaddr_in v4;
    sockaddr_in6 v6;
  };
  storage address_;
};

// The outcome of one read or write.
struct io_result {
  std::size_t bytes = 0;  // transferred; 0 with no error on a read means end of stream
  std::error_code error;  // empty on success

  // True when the call failed only because it would have blocked (EAGAIN).
  [[nodiscard]] bool would_block() const noexcept {
    return error.value() == EAGAIN && error.category() == std::system_category();
  }
};

// Creates a non-blocking, close-on-exec TCP socket of `family` (AF_INET or
// AF_INET6). On failure returns an empty unique_fd and sets `error`
// (EMFILE, ENFILE, EAFNOSUPPORT, ...).
[[nodiscard]] SWITCHBOARD_NET_EXPORT unique_fd open_tcp_socket(int family,
                                                               std::error_code& error) noexcept;

// Disables (true) or enables (false) Nagle's algorithm. The cork already
// coalesces small writes, so Nagle would only add latency.
SWITCHBOARD_NET_EXPORT std::error_code set_no_delay(int fd, bool on = true) noexcept;

// Sets an int-valued socket option. Errors from setsockopt.
SWITCHBOARD_NET_EXPORT std::error_code set_socket_option(int fd, int level, int name,
                                                         int value) noexcept;

// The pending error of a socket (SO_ERROR), which reading clears. Used to learn
// how a non-blocking connect ended.
[[nodiscard]] SWITCHBOARD_NET_EXPORT std::error_code socket_error(int fd) noexcept;

// The local / remote address of a socket. On failure returns an unspecified
// endpoint and sets `error`.
[[nodiscard]] SWITCHBOARD_NET_EXPORT endpoint local_endpoint(int fd,
                                                             std::error_code& error) noexcept;
[[nodiscard]] SWITCHBOARD_NET_EXPORT endpoint peer_endpoint(int fd,
                                                            std::error_code& error) noexcept;

// Reads at most buffer.size() bytes (one recv). `bytes == 0` with no error is
// end of stream; a would-block is reported as EAGAIN (see io_result).
[[nodiscard]] SWITCHBOARD_NET_EXPORT io_result read_some(int fd,
                                                         std::span<std::byte> buffer) noexcept;

// Writes the buffers in order with one sendmsg: a writev that never raises
// SIGPIPE (MSG_NOSIGNAL), so a peer that went away shows up as EPIPE or
// ECONNRESET instead of killing the process. At most k_max_iov buffers are
// written per call; the rest are left for the caller. A short count is normal
// when the socket buffer fills.
inline constexpr std::size_t k_max_iov = 1024;  // IOV_MAX on Linux
[[nodiscard]] SWITCHBOARD_NET_EXPORT io_result write_some(int fd,
                                                          std::span<const iovec> buffers) noexcept;
[[nodiscard]] SWITCHBOARD_NET_EXPORT io_result
write_some(int fd, std::span<const std::byte> buffer) noexcept;

}  // namespace switchboard::net
