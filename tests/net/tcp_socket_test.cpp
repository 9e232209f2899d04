// tcp_socket_test.cpp — endpoint parsing/formatting and the socket helpers.
#include "switchboard/net/tcp_socket.hpp"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <tuple>

#include "test_support.hpp"

namespace switchboard::net {
namespace {

TEST(endpoint, ParsesNumericIpv4AndIpv6) {
  auto v4 = endpoint::parse("127.0.0.1", 8080);
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->family(), AF_INET);
  EXPECT_EQ(v4->port(), 8080);
  EXPECT_EQ(v4->to_string(), "127.0.0.1:8080");
  EXPECT_EQ(*v4, endpoint::loopback_v4(8080));

  auto v6 = endpoint::parse("::1", 443);
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->family(), AF_INET6);
  EXPECT_EQ(v6->to_string(), "[::1]:443");
  EXPECT_EQ(*v6, endpoint::loopback_v6(443));
  EXPECT_EQ(endpoint::parse("[::1]", 443), v6);
}

TEST(endpoint, RejectsHostNamesAndGarbage) {
  EXPECT_FALSE(endpoint::parse("localhost", 80));
  EXPECT_FALSE(endpoint::parse("", 80));
  EXPECT_FALSE(endpoint::parse("256.0.0.1", 80));
  EXPECT_FALSE(endpoint::parse("1.2.3.4:80", 80));
  EXPECT_FALSE(endpoint::parse("[::1", 80));
  EXPECT_FALSE(endpoint::parse(std::string(100, '1'), 80));
}

TEST(endpoint, UnspecifiedAndPortChanges) {
  endpoint none;
  EXPECT_EQ(none.family(), AF_UNSPEC);
  EXPECT_EQ(none.size(), 0u);
  EXPECT_EQ(none.to_string(), "");
  EXPECT_EQ(endpoint::any_v4(0).with_port(99).to_string(), "0.0.0.0:99");
  EXPECT_EQ(endpoint::any_v6(1).to_string(), "[::]:1");
  EXPECT_NE(endpoint::loopback_v4(1), endpoint::loopback_v4(2));
  EXPECT_NE(endpoint::loopback_v4(1), endpoint::loopback_v6(1));
}

class tcp_socket_test : public test::net_test {};

TEST_F(tcp_socket_test, SocketsAreNonBlockingAndCloseOnExec) {
  std::error_code error;
  unique_fd fd = open_tcp_socket(AF_INET, error);
  ASSERT_TRUE(fd) << error.message();
  EXPECT_NE(::fcntl(fd.get(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_FALSE(set_no_delay(fd.get()));
  int value = 0;
  socklen_t length = sizeof value;
  ASSERT_EQ(::getsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &value, &length), 0);
  EXPECT_EQ(value, 1);
}

TEST_F(tcp_socket_test, ErrorsComeBackAsErrorCodes) {
  std::error_code error;
  unique_fd fd = open_tcp_socket(AF_UNIX + 1000, error);
  EXPECT_FALSE(fd);
  EXPECT_TRUE(error);
  EXPECT_EQ(set_no_delay(-1), std::errc::bad_file_descriptor);
  std::byte buffer[4];
  EXPECT_EQ(read_some(-1, buffer).error, std::errc::bad_file_descriptor);
}

TEST_F(tcp_socket_test, ReadSomeReportsWouldBlockDataAndEndOfStream) {
  unique_fd client;
  unique_fd server;
  std::tie(client, server) = test::tcp_pair();
  std::byte buffer[64];
  io_result result = read_some(server.get(), buffer);
  EXPECT_TRUE(result.would_block());

  const std::string hello = "hello";
  const iovec parts[] = {{const_cast<char*>(hello.data()), 2},
                         {const_cast<char*>(hello.data()) + 2, 3}};
  result = write_some(client.get(), std::span<const iovec>(parts));
  ASSERT_FALSE(result.error) << result.error.message();
  EXPECT_EQ(result.bytes, 5u);
  EXPECT_EQ(test::read_exactly(server.get(), 5), "hello");

  ::shutdown(client.get(), SHUT_WR);
  EXPECT_EQ(test::read_exactly(server.get(), 1), "");  // waits for the FIN
  result = read_some(server.get(), buffer);
  EXPECT_FALSE(result.error);
  EXPECT_EQ(result.bytes, 0u);
}

TEST_F(tcp_socket_test, WritingToAResetPeerIsAnErrorNotSigpipe) {
  unique_fd client;
  unique_fd server;
  std::tie(client, server) = test::tcp_pair();
  const linger abort_on_close{1, 0};
  ::setsockopt(client.get(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
  client.reset();  // sends RST
  const std::string data(1000, 'x');
  io_result result;
  for (int i = 0; i < 100 && !result.error; ++i)
    result = write_some(server.get(), test::as_bytes(data));
  EXPECT_TRUE(result.error == std::errc::broken_pipe || result.error == std::errc::connection_reset)
      << result.error.message();
}

TEST_F(tcp_socket_test, LocalAndPeerEndpointsOfAConnection) {
  unique_fd client;
  unique_fd server;
  std::tie(client, server) = test::tcp_pair();
  std::error_code error;
  const endpoint client_local = local_endpoint(client.get(), error);
  ASSERT_FALSE(error);
  const endpoint server_peer = peer_endpoint(server.get(), error);
  ASSERT_FALSE(error);
  EXPECT_EQ(client_local, server_peer);
  EXPECT_EQ(client_local.address_string(), "127.0.0.1");
  EXPECT_FALSE(socket_error(server.get()));
}

}  // namespace
}  // namespace switchboard::net
