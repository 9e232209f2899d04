// redis_connection.hpp — private: one connection to a Redis server, spoken
// in RESP on a Switchboard event loop. hiredis supplies only the reply
// parser (redisReader) and the command formatter (redisFormatCommandArgv);
// the socket, its non-blocking connect, the write buffer and the reconnect
// timer are ours, so nothing blocks the loop and no hiredis thread exists.
//
// Commands are pipelined: command() appends to one write buffer, written
// once per loop iteration (or when the socket is writable again), and replies are matched to
// their callbacks in FIFO order — Redis answers one connection in order.
// A subscriber connection (pubsub mode) also receives pushes ("message"
// arrays) that answer no command; they go to callbacks::on_message.
//
// After a connection is lost the connection retries with exponential
// backoff and full jitter (client/backoff.hpp), sends AUTH and SELECT when
// the URL asks for them, and calls on_ready again. Callbacks of commands in
// flight when it was lost run with nullptr: their outcome is unknown.
//
// URLs: redis://[[user]:password@]host[:port][/db] (host a name or an IPv4 /
// [IPv6] address; a name is resolved once, at parse time) and
// unix:///path/to/redis.sock (no password or db), e.g.
// unix:///run/redis.sock.
//
// Thread-safety: everything runs on the loop's thread (REQUIRES for every
// member after construction); callbacks run there too.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <sys/socket.h>

#include <switchboard/client/backoff.hpp>
#include <switchboard/net/event_loop.hpp>
#include <switchboard/net/io_handler.hpp>
#include <switchboard/net/timer_wheel.hpp>
#include <switchboard/net/unique_function.hpp>

struct redisReply;
struct redisReader;

namespace switchboard::realtime::detail {

struct redis_url {
  std::string text;  // the URL without its password, for logs and /healthz
  std::string host;  // redis:// only: a name or a numeric address
  std::uint16_t port = 6379;
  std::string unix_path;  // unix:// only
  std::string user;       // AUTH user (Redis 6 ACL); empty: AUTH password only
  std::string password;   // empty: no AUTH
  int db = 0;             // SELECT when not 0
  // Filled by resolve_redis_url().
  sockaddr_storage address{};
  socklen_t address_size = 0;
};

// Reads `url`'s syntax (no I/O). Returns "" and fills `out`, or says what is
// wrong ("redis URL …: …").
std::string parse_redis_url_syntax(std::string_view url, redis_url& out);
// Resolves the host (getaddrinfo: it blocks, so at start-up, off the loop)
// or builds the unix address. Returns "" or why not.
std::string resolve_redis_url(redis_url& url);
// Both.
std::string parse_redis_url(std::string_view url, redis_url& out);

// The view of a bulk / status / error reply's text ("" for other types).
std::string_view reply_text(const redisReply* r) noexcept;

struct redis_connection_options {
  bool pubsub = false;  // a subscriber connection: "message" pushes go to on_message
  std::chrono::milliseconds connect_timeout{2000};
  // Reconnect delays: attempt n waits uniform [0, min(cap, base·2^n)].
  std::chrono::milliseconds backoff_base{100};
  std::chrono::milliseconds backoff_cap{5000};
  // Bytes of commands the kernel has not taken yet past which new commands
  // fail at once: a Redis that stalls must not grow the node without bound.
  std::size_t max_unsent = 64 * 1024 * 1024;
};

class redis_connection final : private net::io_handler {
 public:
  // Runs once per command with its reply, or with nullptr if it could not
  // be sent or the connection was lost before its reply.
  using reply_handler = net::unique_function<void(const redisReply*)>;

  struct callbacks {
    std::function<void()> on_ready;                  // connected (and AUTH / SELECT done)
    std::function<void(const std::string&)> on_down;  // lost or failed; a retry follows
    // pubsub mode: a "message" push — its channel and payload.
    std::function<void(std::string_view, std::string_view)> on_message;
  };

  redis_connection(net::event_loop& loop, redis_url url, redis_connection_options options,
                   callbacks cb);
  ~redis_connection();
  redis_connection(const redis_connection&) = delete;
  redis_connection& operator=(const redis_connection&) = delete;

  // Starts connecting (and keeps reconnecting until stop()).
  void start();
  // Closes the connection; pending callbacks run with nullptr. No retries.
  void stop();

  bool ready() const noexcept { return state_ == state::ready; }
  // Ready but refusing commands: max_unsent bytes wait for the kernel.
  bool saturated() const noexcept { return out_.size() > options_.max_unsent; }
  const redis_url& url() const noexcept { return url_; }
  // Why the last attempt failed or the connection was lost ("" if never).
  const std::string& last_error() const noexcept { return last_error_; }
  // Commands sent and not answered yet.
  std::size_t in_flight() const noexcept { return pending_.size(); }

  // Sends one command. Not ready, or over max_unsent: `done(nullptr)` runs
  // later in this loop iteration (never inside this call).
  void command(std::span<const std::string_view> argv, reply_handler done);
  void command(std::initializer_list<std::string_view> argv, reply_handler done) {
    command(std::span<const std::string_view>(argv.begin(), argv.size()), std::move(done));
  }

 private:
  enum class state : std::uint8_t { stopped, waiting, connecting, handshake, ready };

  void on_events(std::uint32_t events) override;
  void connect_now();
  void on_connected();
  void on_readable();
  void handle_reply(redisReply* reply);
  void flush();
  void schedule_flush();
  void append(std::span<const std::string_view> argv);
  // Drops the socket, fails every pending callback and schedules a retry.
  void lose(std::string why);
  void on_timer();

  net::event_loop& loop_;
  redis_url url_;
  redis_connection_options options_;
  callbacks cb_;
  client::backoff backoff_;
  std::uint32_t attempt_ = 0;
  state state_ = state::stopped;
  net::unique_fd fd_;
  std::uint32_t armed_ = 0;  // epoll interest now
  net::timer_node timer_;    // connect timeout, or the wait before a retry
  redisReader* reader_ = nullptr;
  std::string out_;  // formatted commands not yet taken by the kernel
  std::deque<reply_handler> pending_;
  std::size_t handshake_replies_ = 0;  // AUTH / SELECT replies still due
  bool flush_scheduled_ = false;       // a deferred flush() is pending this iteration
  std::string last_error_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace switchboard::realtime::detail
