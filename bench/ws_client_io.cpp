// ws_client_io.cpp — see ws_client_io.hpp.
#include "ws_client_io.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <system_error>
#include <utility>

namespace switchboard::bench {

net::unique_fd start_connect(const net::endpoint& remote, const net::endpoint* source) {
  std::error_code error;
  net::unique_fd fd = net::open_tcp_socket(remote.family(), error);
  if (!fd) return {};
  if (source != nullptr) {
    // Let connect() pick the port for the full 4-tuple, not bind() for the
    // address alone: that is what lets several source addresses multiply the
    // usable ephemeral ports.
    (void)net::set_socket_option(fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1);
    if (::bind(fd.get(), source->data(), source->size()) != 0) return {};
  }
  if (::connect(fd.get(), remote.data(), remote.size()) != 0 && errno != EINPROGRESS) return {};
  return fd;
}

bool connect_finished(net::unique_fd& fd) {
  if (net::socket_error(fd.get())) {
    fd.reset();
    return false;
  }
  (void)net::set_no_delay(fd.get());
  return true;
}

bool send_upgrade_request(net::transport& stream, std::string& request, std::array<char, 24>& key,
                          const protocol::client_request_options& options) {
  key = protocol::generate_key();
  request.clear();
  if (!protocol::write_upgrade_request(request, options,
                                       std::string_view(key.data(), key.size()))) {
    return false;
  }
  stream.send(std::as_bytes(std::span(request)));
  return true;
}

upgrade_status read_upgrade_response(std::string& head, std::span<const std::byte> data,
                                     protocol::response_parser& parser, std::string_view key,
                                     std::span<const std::string_view> protocols,
                                     std::span<const std::string_view> extensions,
                                     std::size_t& consumed) {
  head.append(reinterpret_cast<const char*>(data.data()), data.size());
  parser.reset();
  const protocol::parse_result result = parser.parse(head);
  if (result.status == protocol::parse_status::need_more) return upgrade_status::need_more;
  protocol::handshake_response response;
  if (result.status == protocol::parse_status::error ||
      protocol::validate_response(parser.head(), key, protocols, extensions, response) !=
          protocol::error::none) {
    return upgrade_status::failed;
  }
  consumed = result.consumed;
  return upgrade_status::done;
}

}  // namespace switchboard::bench
