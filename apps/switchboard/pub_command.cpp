// pub_command.cpp — `switchboard pub URL CHANNEL [DATA]`: publish to a
// channel of a `switchboard serve`, over WebSocket (realtime::client, with a
// token) or over the HTTP API (POST /api/publish with --api-key).
//
// Contract (scripts and tests rely on it):
//   * DATA, or else each non-empty stdin line, is one publication; it must be
//     a JSON value ({"text":"hi"}, 42, "quoted") unless --string, which sends
//     it as a JSON string;
//   * each accepted publication prints {"channel":C,"epoch":E,"offset":N} on
//     stdout (not with --quiet), in input order;
//   * it stops at the first error, with one line "switchboard: ..." on stderr
//     saying why (lines are checked to be JSON before they are sent, but up
//     to 256 publications are in flight at once: those sent before a refusal
//     came back may have been made), and exits 1 when the server (or the JSON check) refused a
//     publication, 2 when it could not publish at all: bad arguments,
//     connection refused or lost, authentication failed, bad API key;
//   * exit 0 when everything was published. SIGINT/SIGTERM end the input
//     like EOF: what was sent is still waited for.
// WebSocket: one connection, no reconnect (a publication in flight when it
// drops may or may not have been made: exit 2 says so). HTTP: one request
// per publication, one at a time, blocking with timeouts, on one kept-alive
// connection (http:// or https://, a new one whenever the server closed it).
#include <netinet/in.h>
#include <poll.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api_connection.hpp"
#include "commands.hpp"
#include "realtime_cli.hpp"
#include "switchboard/net/tcp_socket.hpp"

namespace switchboard::app {
namespace {

constexpr std::size_t k_max_in_flight = 256;  // publications sent, reply not yet in

struct pub_settings {
  rt::connection_settings connection;
  std::string channel;
  std::string data;
  bool has_data = false;
  bool as_string = false;
  std::string api_key;
  bool quiet = false;
};

// The value to publish for one input: the text itself, or (--string) the
// text as a JSON string.
std::string value_of(const pub_settings& s, std::string_view text) {
  if (!s.as_string) return std::string(text);
  std::string out;
  rt::append_json_string(out, text);
  return out;
}

// Calls `publish(text, line_number)` for DATA or each non-empty stdin line,
// until the input ends, `stop` is set, or SIGINT/SIGTERM (taken here).
template <class Publish>
void read_input(const pub_settings& s, const std::atomic<bool>& stop, Publish publish) {
  if (s.has_data) {
    publish(std::string_view(s.data), 0);
    return;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  const timespec no_wait{0, 0};
  std::string pending;
  std::size_t line_number = 0;
  char buffer[64 * 1024];
  auto take_line = [&](std::string_view line) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) publish(line, line_number);
  };
  while (!stop.load()) {
    if (sigtimedwait(&signals, nullptr, &no_wait) > 0) break;
    pollfd p{0, POLLIN, 0};
    if (::poll(&p, 1, 50) == 0) continue;
    const ssize_t n = ::read(0, buffer, sizeof buffer);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      if (!pending.empty()) take_line(pending);
      return;
    }
    pending.append(buffer, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl; !stop.load() && (nl = pending.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      take_line(std::string_view(pending).substr(start, nl - start));
    }
    pending.erase(0, start);
  }
}

std::string where(std::size_t line_number) {
  return line_number == 0 ? std::string() : "line " + std::to_string(line_number) + ": ";
}

// --- over WebSocket ----------------------------------------------------------------------

class ws_publisher {
 public:
  explicit ws_publisher(const pub_settings& s) : settings_(s) {}

  int run() {
    std::string tls_error;
    auto tls = rt::make_tls(settings_.connection, tls_error);
    if (!tls_error.empty()) {
      rt::print_error(tls_error);
      return rt::k_exit_failed;
    }
    realtime::client_options options = rt::client_options_for(settings_.connection, tls.get());
    options.max_attempts = 1;  // a publisher reports a failure instead of retrying

    rt::block_stop_signals();  // before the client's thread exists
    realtime::client_handlers h;
    h.on_state = [this](const realtime::state_event& e) {
      if (e.state != realtime::connection_state::disconnected) return;
      std::lock_guard lock(mutex_);
      disconnected_ = true;
      if (!closing_) {
        fail_locked(rt::k_exit_failed,
                    "connection to " + settings_.connection.url + " ended: " +
                        (e.reason.empty() ? "code " + std::to_string(e.code) : e.reason));
      }
      changed_.notify_all();
    };
    h.on_error = [this](const realtime::error_event& e) {
      std::lock_guard lock(mutex_);
      fail_locked(rt::k_exit_failed, e.error.message);
      changed_.notify_all();
    };
    client_ = std::make_unique<realtime::client>(std::move(options), std::move(h));
    if (const std::error_code error = client_->connect()) {
      rt::print_error(settings_.connection.url + ": " + error.message());
      return rt::k_exit_failed;
    }
    read_input(settings_, stop_,
               [this](std::string_view text, std::size_t line) { publish(text, line); });
    std::unique_lock lock(mutex_);
    // Every publication sent gets its answer (a lost connection answers
    // them all), so this ends.
    changed_.wait(lock, [&] { return in_flight_ == 0 || disconnected_; });
    closing_ = true;
    lock.unlock();
    client_->close();
    lock.lock();
    changed_.wait_for(lock, std::chrono::seconds(6), [&] { return disconnected_; });
    lock.unlock();
    client_.reset();
    if (!error_.empty()) rt::print_error(error_);
    return exit_code_;
  }

 private:
  void publish(std::string_view text, std::size_t line) {
    // Checked here, before anything later is read, so that nothing after a
    // bad line is published.
    simdjson::dom::element parsed;
    if (!settings_.as_string && json_.parse(text.data(), text.size()).get(parsed)) {
      std::lock_guard lock(mutex_);
      fail_locked(rt::k_exit_refused, where(line) +
                                          "not a JSON value: " + std::string(text.substr(0, 80)) +
                                          " (use --string to send text as a JSON string)");
      return;
    }
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return in_flight_ < k_max_in_flight || stop_.load(); });
      if (stop_.load()) return;
      ++in_flight_;
    }
    client_->publish(settings_.channel, value_of(settings_, text),
                     [this, line](const realtime::publish_result& r) {
                       std::lock_guard lock(mutex_);
                       --in_flight_;
                       if (r.error) {
                         // The server said no: this publication. No reply, the
                         // client stopped, authentication failed: the connection.
                         const bool refused = r.error->code != realtime::k_error_no_reply &&
                                              r.error->code != realtime::k_error_not_sent &&
                                              r.error->code != realtime::k_error_auth;
                         std::string message = where(line) + r.error->message;
                         if (refused) {
                           message = where(line) + "refused (" + std::to_string(r.error->code) +
                                     "): " + r.error->message;
                         }
                         fail_locked(refused ? rt::k_exit_refused : rt::k_exit_failed, message);
                       } else if (!settings_.quiet) {
                         std::string out = "{\"channel\":";
                         rt::append_json_string(out, settings_.channel);
                         out.append(",\"epoch\":");
                         rt::append_json_string(out, r.epoch);
                         out.append(",\"offset\":").append(std::to_string(r.offset)).append("}\n");
                         std::fwrite(out.data(), 1, out.size(), stdout);
                         std::fflush(stdout);
                       }
                       changed_.notify_all();
                     });
  }

  // The first failure wins; it stops the input.
  void fail_locked(int code, std::string message) {
    if (exit_code_ != rt::k_exit_ok) return;
    exit_code_ = code;
    error_ = std::move(message);
    stop_ = true;
  }

  const pub_settings& settings_;
  std::unique_ptr<realtime::client> client_;
  simdjson::dom::parser json_;  // the main thread's
  std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t in_flight_ = 0;
  bool closing_ = false;
  bool disconnected_ = false;
  int exit_code_ = rt::k_exit_ok;
  std::string error_;
  std::atomic<bool> stop_{false};
};

// --- over the HTTP API -----------------------------------------------------------------------

class http_publisher {
 public:
  explicit http_publisher(const pub_settings& s)
      : settings_(s),
        connection_(s.connection.url,
                    api_tls{s.connection.ca_file, s.connection.insecure_skip_verify},
                    s.connection.connect_timeout) {}

  int run() {
    if (std::string error = connection_.open(); !error.empty()) {
      rt::print_error(error);
      return rt::k_exit_failed;
    }
    std::string headers = "X-API-Key: ";
    headers.append(settings_.api_key).append("\r\n");
    rt::block_stop_signals();
    std::atomic<bool> stop{false};
    int exit_code = rt::k_exit_ok;
    read_input(settings_, stop, [&](std::string_view text, std::size_t line) {
      std::string body = "{\"channel\":";
      rt::append_json_string(body, settings_.channel);
      body.append(",\"data\":").append(value_of(settings_, text)).append("}");
      api_answer a;
      const std::string error = connection_.request("POST", "/api/publish", headers, body, a);
      if (!error.empty()) {
        rt::print_error(error);
        exit_code = rt::k_exit_failed;
      } else if (a.status != 200) {
        std::string reason = a.body;
        while (!reason.empty() && (reason.back() == '\n' || reason.back() == '\r'))
          reason.pop_back();
        rt::print_error(where(line) + "POST /api/publish answered " + std::to_string(a.status) +
                        ": " + reason);
        // A bad key, no API, or a server fault: nothing will get through.
        exit_code = a.status == 401 || a.status == 403 || a.status >= 500 ? rt::k_exit_failed
                                                                          : rt::k_exit_refused;
      } else if (!settings_.quiet) {
        std::string out = a.body;
        while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
        std::printf("%s\n", out.c_str());
        std::fflush(stdout);
      }
      if (exit_code != rt::k_exit_ok) stop = true;
    });
    return exit_code;
  }

 private:
  const pub_settings& settings_;
  api_connection connection_;
};

}  // namespace

void add_pub_command(CLI::App& app, command_runner& run) {
  auto s = std::make_shared<pub_settings>();
  CLI::App* cmd = app.add_subcommand(
      "pub", "Publish DATA, or each stdin line, to a channel of a switchboard serve");
  cmd->add_option("url", s->connection.url,
                  "ws://host:port/ws (or wss://); with --api-key also http(s)://host:port")
      ->required();
  cmd->add_option("channel", s->channel, "The channel to publish to")->required();
  cmd->add_option("data", s->data,
                  "The JSON value to publish; without it, each non-empty stdin line is one");
  rt::add_connection_options(*cmd, s->connection);
  cmd->add_option("--api-key", s->api_key,
                  "Publish through the HTTP API (POST /api/publish) with this key instead of "
                  "over WebSocket (or set SWITCHBOARD_API_KEY)")
      ->envname("SWITCHBOARD_API_KEY");
  cmd->add_flag("--string,-s", s->as_string,
                "Send DATA or each line as a JSON string instead of parsing it as JSON");
  cmd->add_flag("--quiet,-q", s->quiet, "Do not print the offset of each publication");
  cmd->footer(
      "Prints {\"channel\":C,\"epoch\":E,\"offset\":N} per publication and stops at the first "
      "error.\n"
      "Exit status:\n"
      "  0  every publication was made\n"
      "  1  a publication was refused: not JSON (see --string), or the server said no\n"
      "     (403 not allowed, 413 too large, 422 bad channel name...)\n"
      "  2  bad arguments, or no publication could be made: connection refused or lost,\n"
      "     authentication failed, bad or missing API key");
  cmd->callback([&run, s, cmd] {
    s->has_data = cmd->count("data") > 0;
    run = [s] {
      if (!s->api_key.empty()) return http_publisher(*s).run();
      return ws_publisher(*s).run();
    };
  });
}

}  // namespace switchboard::app
