// test_server.hpp — the far end for client tests: a tiny WebSocket server on
// plain blocking sockets, driven by a per-test script on its own thread, built
// from the protocol layer's server side. It does not use switchboard::server
// (written separately), so the client is tested against an independent peer
// whose every byte the test decides.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "switchboard/net/io_handler.hpp"
#include "switchboard/protocol/frame.hpp"
#include "switchboard/protocol/message_reader.hpp"
#include "switchboard/protocol/message_writer.hpp"

namespace switchboard::client::test {

// One event read from the client, with owned bytes.
struct peer_event {
  protocol::event_kind kind = protocol::event_kind::need_more;  // need_more: EOF or timeout
  protocol::opcode op = protocol::opcode::continuation;
  std::uint16_t code = 0;
  std::string payload;
  bool compressed = false;  // RSV1 (only after allow_rsv1())
};

// One accepted connection, blocking, with 5 s receive timeouts.
class server_peer {
 public:
  explicit server_peer(net::unique_fd fd);

  // Reads the request head. Returns it (empty on EOF/timeout); extra bytes are kept.
  std::string read_request();
  // The Sec-WebSocket-Key and Sec-WebSocket-Protocol of the request read.
  [[nodiscard]] const std::string& key() const { return key_; }
  [[nodiscard]] const std::string& offered_protocols() const { return protocols_; }
  [[nodiscard]] const std::string& request() const { return request_; }

  // A correct 101 with an optional subprotocol, followed by `then` in the same write.
  void accept(std::string_view subprotocol = {}, std::string_view then = {});
  // read_request() then accept(): the common start of a script.
  void handshake(std::string_view subprotocol = {});

  void send_raw(std::string_view bytes);
  void send(protocol::opcode op, std::string_view payload);
  void send_close(std::uint16_t code, std::string_view reason = {});
  // Frames built by a server-role writer, for `then` arguments.
  static std::string frame(protocol::opcode op, std::string_view payload);

  // The next event from the client (need_more: EOF or 5 s timeout).
  peer_event next();
  // True if the client closes TCP within `limit` (data before EOF is discarded).
  bool wait_eof(std::chrono::milliseconds limit = std::chrono::seconds(5));
  // Accept RSV1 from the client from now on (permessage-deflate answered).
  void allow_rsv1();
  // Closes our side now.
  void close() { fd_.reset(); }

 private:
  bool fill();  // one recv into rx_; false on EOF/error/timeout

  net::unique_fd fd_;
  std::string rx_;
  std::string request_;
  std::string key_;
  std::string protocols_;
  protocol::message_reader reader_;
  protocol::message_writer writer_{protocol::role::server};
};

// Listens on 127.0.0.1 (port 0, or a given one to come back on) and runs
// `script` for each accepted connection, one at a time, on a server thread.
// Failures inside scripts are recorded with ADD_FAILURE (gtest is thread-safe).
class scripted_server {
 public:
  using script_fn = std::function<void(server_peer&)>;

  explicit scripted_server(script_fn script, std::uint16_t port = 0);
  // Stops accepting and joins the thread (a running script must finish).
  ~scripted_server();
  scripted_server(const scripted_server&) = delete;
  scripted_server& operator=(const scripted_server&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string url(std::string_view target = "/") const;
  [[nodiscard]] int accepted() const { return accepted_.load(); }

 private:
  void serve();

  net::unique_fd listener_;
  std::uint16_t port_ = 0;
  script_fn script_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// A port on 127.0.0.1 that nothing listens on (bound, then released).
std::uint16_t unused_port();

}  // namespace switchboard::client::test
