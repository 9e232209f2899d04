// beast_echo.cpp — switchboard_beast_echo: a Boost.Beast WebSocket echo
// server, the peer the whole-server benchmarks compare Switchboard against.
//
//   switchboard_beast_echo --host 127.0.0.1 --port 0
//
// Written the way Beast's own documentation sets a server up: one
// single-threaded io_context, an async accept loop, and per connection
// async_accept, then async_read into a flat_buffer and async_write of the
// same bytes, forever. Text stays text and binary stays binary; auto-fragment
// is off so a message goes back as one frame, like Switchboard's echo; no
// permessage-deflate (Beast's default). Prints "listening on HOST:PORT" once
// listening; SIGINT / SIGTERM exit 0.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

class session : public std::enable_shared_from_this<session> {
 public:
  explicit session(tcp::socket socket) : ws_(std::move(socket)) {}

  void start() {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.auto_fragment(false);
    ws_.async_accept(
        [self = shared_from_this()](beast::error_code error) { self->on_accept(error); });
  }

 private:
  void on_accept(beast::error_code error) {
    if (error) return;
    read();
  }

  void read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code error, std::size_t) {
      self->on_read(error);
    });
  }

  void on_read(beast::error_code error) {
    if (error) return;  // closed (websocket::error::closed) or failed: the session ends
    ws_.text(ws_.got_text());
    ws_.async_write(buffer_.data(), [self = shared_from_this()](beast::error_code e, std::size_t) {
      self->on_write(e);
    });
  }

  void on_write(beast::error_code error) {
    if (error) return;
    buffer_.consume(buffer_.size());
    read();
  }

  websocket::stream<tcp::socket> ws_;
  beast::flat_buffer buffer_;
};

class listener {
 public:
  listener(asio::io_context& context, const tcp::endpoint& local) : acceptor_(context) {
    acceptor_.open(local.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(local);
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }

  [[nodiscard]] tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

  void accept() {
    acceptor_.async_accept([this](beast::error_code error, tcp::socket socket) {
      if (!error) {
        socket.set_option(tcp::no_delay(true));
        std::make_shared<session>(std::move(socket))->start();
      }
      if (acceptor_.is_open()) accept();
    });
  }

  void close() {
    beast::error_code ignored;
    acceptor_.close(ignored);
  }

 private:
  tcp::acceptor acceptor_;
};

[[noreturn]] void usage(const char* message) {
  std::fprintf(stderr,
               "switchboard_beast_echo: %s\nusage: switchboard_beast_echo [--host ADDR] "
               "[--port PORT]\n",
               message);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  long port = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) usage("missing value");
    const char* value = argv[++i];
    if (flag == "--host") {
      host = value;
    } else if (flag == "--port") {
      char* end = nullptr;
      port = std::strtol(value, &end, 10);
      if (*end != '\0' || port < 0 || port > 65535) usage("bad --port");
    } else if (flag == "--threads") {
      // Accepted for a uniform command line; this peer is single-threaded by design.
    } else {
      usage("unknown option");
    }
  }
  try {
    asio::io_context context{1};  // one thread: no locking inside Asio
    listener server(context,
                    tcp::endpoint(asio::ip::make_address(host), static_cast<unsigned short>(port)));
    const tcp::endpoint local = server.local_endpoint();
    std::printf("listening on %s:%u\n", local.address().to_string().c_str(),
                static_cast<unsigned>(local.port()));
    std::fflush(stdout);
    server.accept();
    asio::signal_set signals(context, SIGINT, SIGTERM);
    signals.async_wait([&](beast::error_code, int) {
      server.close();
      context.stop();
    });
    context.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "switchboard_beast_echo: %s\n", e.what());
    return 1;
  }
  return 0;
}
