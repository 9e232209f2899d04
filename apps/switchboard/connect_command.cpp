// connect_command.cpp — `switchboard connect URL`: an interactive WebSocket
// client in the manner of wscat/websocat, built on switchboard::client.
//
// Contract (scripts and tests rely on it):
//   * each stdin line, without its newline, is sent as one message (text, or
//     binary with --binary); a last line without a newline is sent at EOF;
//   * each message received is written to stdout followed by "\n" and flushed;
//   * stdin EOF (or SIGINT/SIGTERM) sends close 1000 and waits, bounded, for
//     the server's close; exit 0;
//   * when the server closes: "closed: CODE REASON" on stderr; exit 0 for
//     1000/1001, 3 otherwise (1006 when the connection dropped);
//   * connection or handshake failure: "switchboard: ..." on stderr; exit 2.
//     For wss:// that includes the TLS handshake: the server's certificate is
//     verified against --ca-file (else the system store) and the URL's host,
//     and a refusal is one line carrying OpenSSL's reason ("certificate has
//     expired", "hostname mismatch"); --insecure-skip-verify accepts any.
//
// With --echo (a peer for conformance harnesses and servers under test):
//   * stdin is not read and nothing goes to stdout; every message received is
//     sent back with its opcode (text or binary); pings are answered by the
//     library;
//   * exit 0 only when the server closes with 1000; any other end is one line
//     on stderr and exit 3: "closed: CODE REASON" for another close code,
//     "protocol error from server: RULE; we closed with CODE" when the server
//     broke RFC 6455 (our close frame carried CODE), "connection lost: ..."
//     when TCP ended without a close frame. Failures before the 101: exit 2.
// Everything runs on one event loop on the main thread; stdin is one of its
// descriptors (level-triggered, one read per readiness report).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.hpp"
#include "switchboard/client/websocket_client.hpp"
#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/signal_watcher.hpp"
#include "switchboard/net/tls_context.hpp"
#include "switchboard/protocol/close_code.hpp"
#include "switchboard/protocol/error.hpp"

namespace switchboard::app {
namespace {

constexpr int k_exit_ok = 0;
constexpr int k_exit_failed = 2;          // never connected: connect, handshake, usage
constexpr int k_exit_abnormal_close = 3;  // the server closed with another code, or dropped
                                          // (--echo: also a protocol error from the server)

constexpr int k_stdin = 0;
constexpr std::size_t k_stdin_chunk = 64 * 1024;

struct connect_settings {
  std::string url;
  std::vector<std::string> protocols;
  std::vector<std::string> headers;
  std::string origin;
  bool binary = false;
  bool deflate = false;
  bool echo = false;  // send every message back; stdin unused
  std::uint64_t max_message_size = 16 * 1024 * 1024;
  std::string ca_file;  // wss://: trust anchors; empty: the system store
  bool insecure_skip_verify = false;
  double connect_timeout = 10.0;
  double close_timeout = 5.0;
};

void print_error(std::string_view text) {
  std::fprintf(stderr, "switchboard: %.*s\n", static_cast<int>(text.size()), text.data());
}

// Splits "Name: value" into its parts; false if there is no ':' or no name.
bool split_header(std::string_view line, std::pair<std::string, std::string>& out) {
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  out = {std::string(line.substr(0, colon)), std::string(value)};
  return true;
}

class session final : private net::io_handler {
 public:
  explicit session(const connect_settings& settings) : settings_(settings) {}

  int run() {
    std::error_code error;
    loop_ = net::event_loop::create(error);
    if (!loop_) {
      print_error("cannot create the event loop: " + error.message());
      return k_exit_failed;
    }
    client::client_options options;
    options.protocols = settings_.protocols;
    options.origin = settings_.origin;
    for (const std::string& h : settings_.headers) {
      std::pair<std::string, std::string> header;
      if (!split_header(h, header)) {
        print_error("bad --header '" + h + "': expected 'Name: value'");
        return k_exit_failed;
      }
      options.headers.push_back(std::move(header));
    }
    options.deflate = settings_.deflate;
    options.max_message_size = settings_.max_message_size;
    if (!make_tls()) return k_exit_failed;
    options.tls = tls_.get();
    options.connect_timeout = seconds(settings_.connect_timeout);
    options.close_timeout = seconds(settings_.close_timeout);
    client_ = std::make_unique<client::websocket_client>(*loop_, std::move(options), handlers());

    // SIGINT / SIGTERM close politely, like EOF. Only this thread exists.
    auto signals = net::signal_watcher::create(
        *loop_, [this](int) { finish_input(); }, error);

    if (auto connect_error = client_->connect(settings_.url)) {
      print_error(connect_error.message());
      return k_exit_failed;
    }
    if (auto run_error = loop_->run()) print_error("event loop failed: " + run_error.message());
    stop_reading();
    client_.reset();
    signals.reset();
    return exit_code_;
  }

 private:
  // wss:// only: the client TLS context (ws:// never needs a trust store).
  bool make_tls() {
    client::url parsed;
    if (client::parse_url(settings_.url, parsed) || !parsed.secure) {
      return true;  // connect() reports a bad URL
    }
    net::tls_client_options tls;
    tls.ca_file = settings_.ca_file;
    tls.insecure_skip_verification = settings_.insecure_skip_verify;
    net::tls_error error;
    tls_ = net::tls_context::client(tls, error);
    if (!tls_) {
      print_error("cannot set up TLS: " + error.text);
      return false;
    }
    return true;
  }

  static std::chrono::milliseconds seconds(double s) {
    return std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000.0));
  }

  client::client_handlers handlers() {
    client::client_handlers h;
    if (settings_.echo) return echo_handlers(std::move(h));
    h.on_open = [this](std::string_view) { start_reading(); };
    h.on_message = [](std::string_view payload, protocol::opcode) {
      std::fwrite(payload.data(), 1, payload.size(), stdout);
      std::fputc('\n', stdout);
      std::fflush(stdout);
    };
    h.on_close = [this](std::uint16_t code, std::string_view reason) {
      std::fprintf(stderr, "closed: %u %.*s\n", static_cast<unsigned>(code),
                   static_cast<int>(reason.size()), reason.data());
      if (!input_done_) exit_code_ = code == 1000 || code == 1001 ? k_exit_ok : k_exit_abnormal_close;
    };
    h.on_error = [this](std::error_code, std::string_view text) {
      // After our own close (EOF) a slow server is not a failure of the session.
      if (!input_done_) print_error(text);
      if (!opened_) exit_code_ = k_exit_failed;
    };
    return common_handlers(std::move(h));
  }

  // --echo: messages go back with their opcode, stdin stays unread, and the
  // exit status says whether the server closed with 1000.
  client::client_handlers echo_handlers(client::client_handlers h) {
    h.on_message = [this](std::string_view payload, protocol::opcode op) {
      if (client_->send(payload, op) != client::send_status::dropped) return;
      // Only a server that sends faster than it reads gets here (the send
      // buffer is over max_buffered_bytes): give up rather than grow.
      if (client_->state() != client::client_state::open) return;
      print_error("cannot echo: the send buffer is full (the server does not read)");
      failed_ = true;
      client_->close(1008, "send buffer full");
    };
    h.on_close = [this](std::uint16_t code, std::string_view reason) {
      if (failed_) return;  // the reason is already on stderr
      if (code == 1000) {
        if (!input_done_) exit_code_ = k_exit_ok;
        return;
      }
      std::fprintf(stderr, "closed: %u %.*s\n", static_cast<unsigned>(code),
                   static_cast<int>(reason.size()), reason.data());
      if (!input_done_) exit_code_ = k_exit_abnormal_close;
    };
    h.on_error = [this](std::error_code error, std::string_view text) {
      // After a signal, a slow server is no failure; after the first error,
      // what follows (a close timeout) is its consequence, not news.
      if (input_done_ || failed_) return;
      failed_ = true;
      if (error.category() == protocol::protocol_category() &&
          !protocol::is_handshake_error(static_cast<protocol::error>(error.value()))) {
        // The library failed the connection with the code for the rule broken.
        const auto code = protocol::close_code_for(static_cast<protocol::error>(error.value()));
        print_error(std::string(text) + "; we closed with " +
                    std::to_string(protocol::to_underlying(code)));
      } else {
        print_error(text);
      }
      exit_code_ = opened_ ? k_exit_abnormal_close : k_exit_failed;
    };
    return common_handlers(std::move(h));
  }

  client::client_handlers common_handlers(client::client_handlers h) {
    h.on_state = [this](const client::state_change& change) {
      if (change.state == client::client_state::open) opened_ = true;
      if (change.state == client::client_state::closed) loop_->stop();
    };
    h.on_drained = [this] {
      if (paused_) {
        paused_ = false;
        start_reading();
      }
    };
    return h;
  }

  void start_reading() {
    if (reading_ || input_done_) return;
    const std::error_code error = loop_->add(k_stdin, EPOLLIN, *this);
    if (!error) {
      reading_ = true;
      return;
    }
    // epoll refuses regular files and /dev/null (EPERM): they never block, so
    // read them to the end right here.
    if (error == std::errc::operation_not_permitted) {
      while (!input_done_ && !paused_) read_once();
      return;
    }
    print_error("cannot watch stdin: " + error.message());
    finish_input();
  }

  void stop_reading() {
    if (!reading_) return;
    loop_->remove(k_stdin, *this);
    reading_ = false;
  }

  void on_events(std::uint32_t) override { read_once(); }

  // One read; whole lines become messages.
  void read_once() {
    char buffer[k_stdin_chunk];
    const ssize_t n = ::read(k_stdin, buffer, sizeof buffer);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
      if (!pending_.empty()) send_line(pending_);
      pending_.clear();
      finish_input();
      return;
    }
    pending_.append(buffer, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1) {
      send_line(std::string_view(pending_).substr(start, nl - start));
    }
    pending_.erase(0, start);
  }

  void send_line(std::string_view line) {
    const client::send_status status =
        client_->send(line, settings_.binary ? protocol::opcode::binary : protocol::opcode::text);
    if (status == client::send_status::dropped && client_->state() == client::client_state::open) {
      print_error(settings_.binary ? "message dropped (send buffer full)"
                                   : "line dropped: not valid UTF-8 (use --binary)");
    } else if (status == client::send_status::backpressure) {
      // Stop reading until the socket drains: stdin must not outrun the network.
      paused_ = true;
      stop_reading();
    }
  }

  // No more input: close 1000 and wait for the server's close (bounded by
  // the client's close timeout); then the loop stops on `closed`.
  void finish_input() {
    stop_reading();
    if (input_done_) return;
    input_done_ = true;
    exit_code_ = opened_ ? k_exit_ok : exit_code_;
    if (client_->state() == client::client_state::open) {
      client_->close(1000);
    } else {
      client_->terminate();
      loop_->stop();
    }
  }

  const connect_settings& settings_;
  std::unique_ptr<net::event_loop> loop_;
  std::unique_ptr<net::tls_context> tls_;  // wss:// only; outlives client_
  std::unique_ptr<client::websocket_client> client_;
  std::string pending_;  // a partial line from stdin
  int exit_code_ = k_exit_abnormal_close;
  bool opened_ = false;
  bool reading_ = false;
  bool paused_ = false;
  bool input_done_ = false;
  bool failed_ = false;  // --echo: the reason the session failed is on stderr
};

}  // namespace

void add_connect_command(CLI::App& app, command_runner& run) {
  auto settings = std::make_shared<connect_settings>();
  CLI::App* cmd = app.add_subcommand(
      "connect",
      "WebSocket client: stdin lines out as messages, messages to stdout (or, with --echo, "
      "every message sent back)");
  cmd->add_option("url", settings->url, "ws://host[:port]/path?query or wss://...")->required();
  cmd->add_option("--protocol,-p", settings->protocols,
                  "Offer a subprotocol (repeat for several, preferred first)");
  cmd->add_option("--header,-H", settings->headers, "Extra request header 'Name: value' (repeatable)");
  cmd->add_option("--origin", settings->origin, "Origin header to send");
  cmd->add_flag("--binary,-b", settings->binary, "Send each line as a binary message");
  cmd->add_flag("--echo", settings->echo,
                "Do not read stdin: send every message received back with its opcode (text or "
                "binary), print nothing, and exit 0 only if the server closes with 1000");
  cmd->add_option("--max-message-size", settings->max_message_size,
                  "Largest message accepted from the server, in bytes (inflated size with "
                  "--deflate); larger fails the connection with 1009 (default 16777216)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--deflate", settings->deflate,
                "Offer permessage-deflate (RFC 7692; client_max_window_bits, context takeover) "
                "and compress/inflate messages if the server accepts");
  cmd->add_option("--ca-file", settings->ca_file,
                  "wss://: PEM file of the CAs to trust (default: the system store)");
  cmd->add_flag("--insecure-skip-verify", settings->insecure_skip_verify,
                "wss://: accept any server certificate for any name (testing only: it "
                "allows a man in the middle)");
  cmd->add_option("--connect-timeout", settings->connect_timeout,
                  "Seconds to wait for the TCP connection (default 10)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--close-timeout", settings->close_timeout,
                  "Seconds to wait for the server to finish the close handshake (default 5)")
      ->check(CLI::PositiveNumber);
  cmd->footer(
      "Exit status:\n"
      "  0  stdin ended (or SIGINT/SIGTERM) and we closed with 1000, or the server\n"
      "     closed with 1000 (normal) or 1001 (going away)\n"
      "  2  connection or handshake failed, or bad arguments\n"
      "  3  the server closed with any other code, or the connection dropped (1006)\n"
      "When the server closes, 'closed: CODE REASON' is printed to stderr.\n"
      "With --echo: 0 only when the server closes with 1000 (nothing printed); 3 with\n"
      "one line on stderr for any other close code ('closed: CODE REASON'), a\n"
      "protocol error from the server ('protocol error from server: RULE; we closed\n"
      "with CODE') or a dropped connection; 2 as above.");
  cmd->callback([&run, settings] {
    run = [settings] { return session(*settings).run(); };
  });
}

}  // namespace switchboard::app
