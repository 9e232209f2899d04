// server_test_support.hpp — helpers for the switchboard::server tests: a
// server running in-process on its own loop threads, a blocking WebSocket
// client built from the protocol layer (message_writer / message_reader in the
// client role) over a plain socket or OpenSSL on that socket (wss://), a
// per-test watchdog that aborts a hung test, and a descriptor-leak check.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <switchboard/net/io_handler.hpp>
#include <switchboard/protocol/frame.hpp>
#include <switchboard/protocol/message_reader.hpp>
#include <switchboard/server/server.hpp>

#include "../net/test_support.hpp"

struct ssl_ctx_st;
struct ssl_st;

namespace switchboard::server::test {

using namespace std::chrono_literals;

// Counted as the net tests count them (tests/net/test_support.hpp).
using net::test::open_fd_count;

// Aborts the process (with the test's name) if not destroyed within `limit`.
class watchdog {
 public:
  explicit watchdog(std::chrono::milliseconds limit);
  ~watchdog();
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  bool cancelled_ = false;
  std::thread thread_;
};

// Options for test servers: port 0, no signal handling, a 10 ms timer tick.
server_options test_options();

// Every test: bounded by a watchdog, checked for descriptor leaks.
class server_test : public ::testing::Test {
 protected:
  void SetUp() override { fds_before_ = open_fd_count(); }
  void TearDown() override {
    // A descriptor another thread of the process holds for an instant is not
    // the test's. Seen twice in CI, both under ASan: +1 after a test that
    // opens none (so look again for up to half a second before calling it a
    // leak), and one such descriptor counted in SetUp, gone by the end (7
    // open after, 8 before): fewer than before is not a leak.
    auto now = open_fd_count();
    for (int i = 0; i < 50 && now > fds_before_; ++i) {
      std::this_thread::sleep_for(10ms);
      now = open_fd_count();
    }
    EXPECT_LE(now, fds_before_) << "the test leaked file descriptors";
  }

 private:
  watchdog dog_{30s};
  std::size_t fds_before_ = 0;
};

// prefix + decimal n (spelled out: GCC 12 warns falsely on "lit" + std::string&&).
std::string numbered(std::string_view prefix, long n);

// Polls `done` every 5 ms for up to `limit`; true once it holds (for what the
// server updates on its own threads: counters, hooks).
template <class Predicate>
bool wait_until(Predicate done, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// Installs an echo endpoint at "*" (every message back with its opcode).
void add_echo(server& s);

// A server on its own threads; stopped (without waiting for peers) on destruction.
class running_server {
 public:
  using setup_fn = std::function<void(server&)>;
  running_server(server_options options, const setup_fn& setup);
  ~running_server() = default;
  server& get() noexcept { return *server_; }
  std::uint16_t port() const noexcept { return port_; }

 private:
  std::unique_ptr<server> server_;
  std::uint16_t port_ = 0;
};

// One received frame, payload copied.
struct received {
  protocol::event_kind kind = protocol::event_kind::need_more;
  protocol::opcode op = protocol::opcode::continuation;
  std::uint16_t code = 0;
  protocol::error err = protocol::error::none;
  std::string payload;
  bool compressed = false;  // RSV1 was set (only after allow_rsv1())
};

// A blocking OpenSSL client context trusting the PEM file `ca_file` (TLS 1.2
// and 1.3, ALPN http/1.1), or null if it cannot be made.
struct ssl_ctx_deleter {
  void operator()(ssl_ctx_st* ctx) const noexcept;
};
using ssl_ctx_ptr = std::unique_ptr<ssl_ctx_st, ssl_ctx_deleter>;
ssl_ctx_ptr make_tls_client_context(const std::string& ca_file);

// A blocking client socket with a receive timeout (so no read can hang).
// After start_tls() every byte goes through OpenSSL on the same socket.
class ws_client {
 public:
  explicit ws_client(std::uint16_t port, std::chrono::milliseconds timeout = 5s);
  ~ws_client();
  ws_client(const ws_client&) = delete;
  ws_client& operator=(const ws_client&) = delete;
  bool connected() const noexcept { return static_cast<bool>(fd_); }
  int fd() const noexcept { return fd_.get(); }

  // Runs the TLS handshake (client side, verifying the server against `ctx`
  // for the name `host`). False on failure; `error` then holds OpenSSL's
  // reason.
  bool start_tls(ssl_ctx_st* ctx, const std::string& host = "localhost",
                 std::string* error = nullptr);
  // After start_tls(): the negotiated version ("TLSv1.3"), ALPN protocol and
  // the server certificate's subject ("/CN=localhost").
  std::string tls_version() const;
  std::string tls_alpn() const;
  std::string tls_peer_subject() const;
  // True once the server's close_notify arrived (an orderly TLS end).
  bool close_notify_received() const;

  // Sends raw bytes (all of them). False on error.
  bool send_raw(std::string_view bytes);
  // Sends "GET path" with a valid upgrade head plus `extra` header lines
  // ("Name: value\r\n"), reads the response head; returns its status (0 on
  // failure). `head_out` receives the whole response head and body read so far.
  int upgrade(std::string_view path = "/", std::string_view extra = {},
              std::string* head_out = nullptr);
  // Reads one response head; returns its status (0 on failure). Bytes after
  // the head stay for next().
  int read_response(std::string* head_out = nullptr);
  // Sends a raw request and reads one HTTP answer: its head and its
  // Content-Length body (what follows stays buffered for the next call), or,
  // without a Content-Length, whatever arrives until EOF.
  std::string http_exchange(std::string_view request);

  // Sends one masked frame (or an unmasked one when `masked` is false),
  // with RSV1 when `rsv1`.
  bool send_frame(protocol::opcode op, std::string_view payload, bool fin = true,
                  bool masked = true, bool rsv1 = false);
  // Accept RSV1 from the server from now on (permessage-deflate negotiated).
  void allow_rsv1();
  bool send_message(protocol::opcode op, std::string_view payload) {
    return send_frame(op, payload);
  }
  bool send_close(std::uint16_t code, std::string_view reason = {});

  // The next message, ping, pong or close from the server; kind need_more on
  // timeout or EOF, error if the server broke the protocol.
  received next();
  // True if the server closes TCP (EOF or reset) within the receive timeout.
  bool wait_closed();
  void close();

 private:
  bool fill();  // one recv into buffer_
  // One read or write of at most `size` bytes: through OpenSSL after
  // start_tls(), else the socket. <= 0 on EOF or error (errno set).
  long read_some(char* data, std::size_t size);
  long write_some(const char* data, std::size_t size);

  net::unique_fd fd_;
  ssl_st* ssl_ = nullptr;
  protocol::message_reader reader_;
  std::string buffer_;   // received, not yet handed to the reader
  std::size_t used_ = 0; // bytes of buffer_ the reader consumed
};

}  // namespace switchboard::server::test
