// sub_command.cpp — `switchboard sub URL CHANNEL...`: subscribe to channels
// of a `switchboard serve` and print what is published, one JSON line each,
// on realtime::client.
//
// Contract (scripts and tests rely on it):
//   * stdout gets one JSON object per line, flushed at once:
//       {"push":"message","channel":C,"epoch":E,"offset":N,"data":D[,"client":..][,"user":..]}
//     and with --presence also
//       {"push":"join"|"leave","channel":C,"client":..[,"user":..][,"info":{..}]}
//     or, for a channel past presence_max_members, {"push":"count","channel":C,"count":N}
//     per channel in offset order, each offset once, across reconnects;
//   * stderr gets status lines starting "switchboard: " (connected,
//     disconnected with code and reason, what could not be recovered);
//     --quiet keeps only errors;
//   * it reconnects by itself (backoff with full jitter) and resumes each
//     channel with `since`, so nothing is missed while the history covers the
//     gap; when it does not, a line says so and the stream goes on;
//   * exit 0 on SIGINT/SIGTERM (after a close 1000) or when --count
//     publications were printed; 2 for bad arguments, a subscription the server
//     refused (403, 404, 422...), an authentication failure, or when
//     --max-attempts connection attempts in a row failed.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "commands.hpp"
#include "realtime_cli.hpp"

namespace switchboard::app {
namespace {

struct sub_settings {
  rt::connection_settings connection;
  std::vector<std::string> channels;
  std::string since;  // EPOCH:OFFSET
  std::size_t history = 0;
  bool presence = false;
  std::uint64_t count = 0;
  std::uint32_t max_attempts = 0;
  std::string info;
  bool quiet = false;
};

// "EPOCH:OFFSET" (the epoch and offset of a line sub printed); false if malformed.
bool parse_since(std::string_view text, realtime::stream_position& out) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return false;
  std::uint64_t offset = 0;
  for (const char c : text.substr(colon + 1)) {
    if (c < '0' || c > '9' || offset > (~std::uint64_t{0} - 9) / 10) return false;
    offset = offset * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out.epoch = std::string(text.substr(0, colon));
  out.offset = offset;
  return true;
}

class subscriber {
 public:
  explicit subscriber(const sub_settings& s) : settings_(s) {}

  int run() {
    realtime::subscribe_options sub_options;
    if (!settings_.since.empty()) {
      realtime::stream_position since;
      if (!parse_since(settings_.since, since)) {
        rt::print_error("bad --since '" + settings_.since +
                        "': expected EPOCH:OFFSET, as in the epoch and offset of a printed line");
        return rt::k_exit_failed;
      }
      if (settings_.channels.size() != 1) {
        rt::print_error("--since needs exactly one CHANNEL: a position belongs to one stream");
        return rt::k_exit_failed;
      }
      sub_options.since = since;
    }
    sub_options.history = settings_.history;

    std::string tls_error;
    auto tls = rt::make_tls(settings_.connection, tls_error);
    if (!tls_error.empty()) {
      rt::print_error(tls_error);
      return rt::k_exit_failed;
    }
    realtime::client_options options = rt::client_options_for(settings_.connection, tls.get());
    options.info = settings_.info;
    options.max_attempts = settings_.max_attempts;

    rt::block_stop_signals();  // before the client's thread exists
    client_ = std::make_unique<realtime::client>(std::move(options), handlers());
    if (const std::error_code error = client_->connect()) {
      rt::print_error(settings_.connection.url + ": " + error.message());
      return rt::k_exit_failed;
    }
    for (const std::string& channel : settings_.channels) {
      client_->subscribe(channel, sub_options, [this](const realtime::subscribe_result& r) {
        if (r.error) fail(r.channel + ": subscribe refused: " + r.error->message);
      });
    }
    const bool finished = rt::wait_until(done_);
    if (!finished) {
      // SIGINT/SIGTERM: a polite close, bounded by the close timeout.
      client_->close();
      std::atomic<bool>& closed = closed_;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(6);
      while (!closed.load() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      exit_code_ = rt::k_exit_ok;
    }
    client_.reset();
    return exit_code_;
  }

 private:
  realtime::client_handlers handlers() {
    realtime::client_handlers h;
    h.on_state = [this](const realtime::state_event& e) {
      if (e.state == realtime::connection_state::connected) {
        status("connected to " + settings_.connection.url +
               (e.user.empty() ? std::string() : " as " + e.user));
      } else if (e.state == realtime::connection_state::disconnected) {
        std::string line = "disconnected (" + std::to_string(e.code) +
                           (e.reason.empty() ? std::string() : " " + e.reason) + ")";
        if (e.will_reconnect) {
          line += "; reconnecting in " + std::to_string(e.delay.count()) + " ms";
          status(line);
        } else {
          closed_ = true;
          status(line);
        }
      }
    };
    h.on_message = [this](const realtime::publication& p) {
      if (finishing_.load()) return;  // --count reached, or failed: print no more
      std::string line = "{\"push\":\"message\",\"channel\":";
      rt::append_json_string(line, p.channel);
      line.append(",\"epoch\":");
      rt::append_json_string(line, p.epoch);
      line.append(",\"offset\":").append(std::to_string(p.offset));
      line.append(",\"data\":").append(p.data.empty() ? "null" : p.data);
      if (!p.client.empty()) {
        line.append(",\"client\":");
        rt::append_json_string(line, p.client);
      }
      if (!p.user.empty()) {
        line.append(",\"user\":");
        rt::append_json_string(line, p.user);
      }
      line.append("}\n");
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fflush(stdout);
      if (settings_.count != 0 && ++printed_ >= settings_.count) finish(rt::k_exit_ok);
    };
    h.on_presence = [this](const realtime::presence_event& e) {
      if (!settings_.presence) return;
      using kind = realtime::presence_event::kind;
      std::string line = "{\"push\":";
      line.append(e.what == kind::join ? "\"join\"" : e.what == kind::leave ? "\"leave\"" : "\"count\"");
      line.append(",\"channel\":");
      rt::append_json_string(line, e.channel);
      if (e.what == kind::count) {
        // A channel past presence_max_members: the server sends only how many.
        line.append(",\"count\":").append(std::to_string(e.count)).append("}\n");
        std::fwrite(line.data(), 1, line.size(), stdout);
        std::fflush(stdout);
        return;
      }
      line.append(",\"client\":");
      rt::append_json_string(line, e.who.client);
      if (!e.who.user.empty()) {
        line.append(",\"user\":");
        rt::append_json_string(line, e.who.user);
      }
      if (!e.who.info.empty()) line.append(",\"info\":").append(e.who.info);
      line.append("}\n");
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fflush(stdout);
    };
    h.on_subscribed = [this](const realtime::subscribe_result& r) {
      if (r.resumed && r.recovered) {
        status(r.channel + ": resumed, nothing missed");
      } else if (!r.reason.empty()) {
        // Said even with --quiet: publications were missed.
        rt::print_error(r.channel + ": could not recover what was published meanwhile (" +
                        r.reason + "); continuing at " + r.epoch + ":" + std::to_string(r.offset));
      } else {
        status(r.channel + ": subscribed at " + r.epoch + ":" + std::to_string(r.offset));
      }
    };
    h.on_error = [this](const realtime::error_event& e) {
      const std::string where = e.channel.empty() ? std::string() : e.channel + ": ";
      // An error event about a channel means its subscription is gone; one
      // with auth or giving up means the client stopped: either ends `sub`.
      if (!e.channel.empty() || e.error.code == realtime::k_error_auth ||
          e.error.code == realtime::k_error_not_sent ||
          e.error.code == realtime::k_error_bad_json) {
        fail(where + e.error.message);
      } else {
        rt::print_error(where + e.error.message);
      }
    };
    return h;
  }

  void status(const std::string& line) {
    if (!settings_.quiet) rt::print_error(line);
  }

  void fail(const std::string& message) {
    rt::print_error(message);
    finish(rt::k_exit_failed);
  }

  void finish(int code) {
    bool expected = false;
    if (!finishing_.compare_exchange_strong(expected, true)) return;
    exit_code_ = code;
    done_ = true;
  }

  const sub_settings& settings_;
  std::unique_ptr<realtime::client> client_;
  std::atomic<bool> done_{false};
  std::atomic<bool> finishing_{false};
  std::atomic<bool> closed_{false};
  std::atomic<int> exit_code_{rt::k_exit_ok};
  std::uint64_t printed_ = 0;  // the client's thread only
};

}  // namespace

void add_sub_command(CLI::App& app, command_runner& run) {
  auto s = std::make_shared<sub_settings>();
  CLI::App* cmd = app.add_subcommand(
      "sub", "Subscribe to channels of a switchboard serve; print each publication as a JSON line");
  cmd->add_option("url", s->connection.url, "ws://host:port/ws or wss://...")->required();
  cmd->add_option("channels", s->channels, "Channels to subscribe to")->required();
  rt::add_connection_options(*cmd, s->connection);
  cmd->add_option("--since", s->since,
                  "Start after this position, EPOCH:OFFSET (the epoch and offset of a line "
                  "printed before): what was published since is printed first. One CHANNEL only");
  cmd->add_option("--history", s->history,
                  "Print up to N of the latest kept publications first (then live ones, "
                  "without gap or duplicate)");
  cmd->add_flag("--presence", s->presence, "Print join and leave events too");
  cmd->add_option("--count", s->count, "Exit 0 after printing N publications");
  cmd->add_option(
      "--info", s->info,
      "Without a token: a JSON object presence shows for this client ({\"name\":\"x\"})");
  cmd->add_option("--max-attempts", s->max_attempts,
                  "Give up (exit 2) after N connection attempts in a row failed (default 0: "
                  "keep trying)");
  cmd->add_flag("--quiet,-q", s->quiet, "No status lines on stderr, only errors");
  cmd->footer(
      "Output: one JSON object per line on stdout:\n"
      "  "
      "{\"push\":\"message\",\"channel\":C,\"epoch\":E,\"offset\":N,\"data\":D,\"client\":..,"
      "\"user\":..}\n"
      "  {\"push\":\"join\"|\"leave\",\"channel\":C,\"client\":..,\"user\":..,\"info\":..}  "
      "(--presence)\n"
      "  {\"push\":\"count\",\"channel\":C,\"count\":N}  (--presence, a channel past "
      "presence_max_members)\n"
      "Reconnects by itself and resumes every channel where it stopped.\n"
      "Exit status:\n"
      "  0  SIGINT/SIGTERM, or --count publications printed\n"
      "  2  bad arguments, a subscription refused (403, 404, 422...), authentication\n"
      "     failed, or --max-attempts attempts in a row failed");
  cmd->callback([&run, s] { run = [s] { return subscriber(*s).run(); }; });
}

}  // namespace switchboard::app
