// serve_command.cpp — `switchboard serve`: the realtime server (channels,
// presence, history and recovery, JWT auth, the HTTP API, metrics, the demo
// page) configured from a TOML file, the environment and flags
// (serve_config.hpp; docs/configuration.md).
//
// The CLI is a contract other tests rely on:
//   - exactly one stdout line, "listening on http://HOST:PORT" ("https" with
//     TLS, IPv6 hosts in brackets), once the port is bound;
//   - log lines on stderr, text or JSON (one object per line);
//   - exit 0 after a graceful shutdown (SIGTERM/SIGINT), 1 when the server
//     cannot listen or fails while running, 2 for a bad configuration
//     (state files of [history] that cannot be written included).
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <switchboard/net/signal_watcher.hpp>
#include <switchboard/protocol/utf8.hpp>
#include <switchboard/net/cpus.hpp>
#include <switchboard/realtime/service.hpp>
#include <switchboard/version.hpp>

#include "commands.hpp"
#include "serve_config.hpp"

namespace switchboard::app {

namespace {

void append(spdlog::memory_buf_t& dest, std::string_view text) {
  dest.append(text.data(), text.data() + text.size());
}

// The message as the inside of a JSON string. Bytes of a message that is not
// UTF-8 are written as \u00XX so the line stays valid JSON.
void append_json_escaped(spdlog::memory_buf_t& dest, std::string_view message) {
  static constexpr char k_hex[] = "0123456789abcdef";
  const bool utf8 = protocol::is_valid_utf8(message);
  for (const char c : message) {
    const auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        append(dest, "\\\"");
        continue;
      case '\\':
        append(dest, "\\\\");
        continue;
      case '\n':
        append(dest, "\\n");
        continue;
      case '\r':
        append(dest, "\\r");
        continue;
      case '\t':
        append(dest, "\\t");
        continue;
      default:
        break;
    }
    if (byte < 0x20 || (byte >= 0x80 && !utf8)) {
      const char escaped[] = {'\\', 'u', '0', '0', k_hex[byte >> 4], k_hex[byte & 0xf]};
      dest.append(escaped, escaped + sizeof escaped);
    } else {
      dest.push_back(c);
    }
  }
}

// Control characters in a text line as \n, \xNN: a message (which may quote
// what a client sent) cannot forge log lines.
void append_text_escaped(spdlog::memory_buf_t& dest, std::string_view message) {
  static constexpr char k_hex[] = "0123456789abcdef";
  for (const char c : message) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\n') {
      append(dest, "\\n");
    } else if (c == '\r') {
      append(dest, "\\r");
    } else if (byte < 0x20 && c != '\t') {
      const char escaped[] = {'\\', 'x', k_hex[byte >> 4], k_hex[byte & 0xf]};
      dest.append(escaped, escaped + sizeof escaped);
    } else {
      dest.push_back(c);
    }
  }
}

// %* in the log pattern: the message, escaped for the line's format.
class escaped_message_flag final : public spdlog::custom_flag_formatter {
 public:
  explicit escaped_message_flag(bool json) : json_(json) {}
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string_view text(msg.payload.data(), msg.payload.size());
    json_ ? append_json_escaped(dest, text) : append_text_escaped(dest, text);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<escaped_message_flag>(json_);
  }

 private:
  bool json_;
};

spdlog::level::level_enum to_spdlog(std::string_view level) {
  if (level == "trace") return spdlog::level::trace;
  if (level == "debug") return spdlog::level::debug;
  if (level == "warn") return spdlog::level::warn;
  if (level == "error") return spdlog::level::err;
  if (level == "off") return spdlog::level::off;
  return spdlog::level::info;
}

spdlog::level::level_enum to_spdlog(realtime::log_level level) {
  switch (level) {
    case realtime::log_level::debug:
      return spdlog::level::debug;
    case realtime::log_level::info:
      return spdlog::level::info;
    case realtime::log_level::warn:
      return spdlog::level::warn;
    case realtime::log_level::error:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

// One line per event on stderr. Text lines in local time:
//   [2026-11-21 12:00:00.123] [info] message
// JSON lines in UTC:
//   {"time":"2026-11-21T12:00:00.123Z","level":"info","msg":"message"}
// The _mt sink locks, so loop threads may log at once.
std::shared_ptr<spdlog::logger> make_logger(const realtime::realtime_config& config) {
  const bool json = config.log_format == "json";
  auto formatter = std::make_unique<spdlog::pattern_formatter>(
      json ? spdlog::pattern_time_type::utc : spdlog::pattern_time_type::local);
  formatter->add_flag<escaped_message_flag>('*', json);
  formatter->set_pattern(json ? R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":"%*"})"
                              : "[%Y-%m-%d %H:%M:%S.%e] [%l] %*");
  auto logger = std::make_shared<spdlog::logger>("switchboard",
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_formatter(std::move(formatter));
  logger->set_level(to_spdlog(config.log_level));
  return logger;
}

std::string listen_url(const realtime::realtime_config& config, std::uint16_t port) {
  const bool v6 = config.host.find(':') != std::string::npos && config.host.front() != '[';
  const bool tls = !config.tls_cert.empty();
  return std::string(tls ? "https" : "http") + "://" + (v6 ? "[" : "") + config.host +
         (v6 ? "]" : "") + ":" + std::to_string(port);
}

int run_serve(const serve_flags& flags) {
  realtime::realtime_config config;
  if (std::string error = build_serve_config(flags, config); !error.empty()) {
    std::fprintf(stderr, "switchboard serve: %s\n", error.c_str());
    return 2;
  }
  // Why: a state file that can't be written would otherwise be found out at
  // shutdown, with the history already lost.
  if (std::string error = realtime::check_storage(config); !error.empty()) {
    std::fprintf(stderr, "switchboard serve: %s\n", error.c_str());
    return 2;
  }
  const auto logger = make_logger(config);

  // Block the signals before anyone can learn the port, and before any thread
  // starts (threads inherit the mask): a SIGTERM sent right after the
  // "listening" line then waits for run()'s signal watcher instead of killing
  // the process. SIGHUP reloads the TLS certificate; without TLS there is
  // nothing to reload, and `systemctl reload` (packaging/switchboard.service)
  // must not kill the server, so it stays blocked and is ignored.
  if (auto ec = net::signal_watcher::block({SIGINT, SIGTERM, SIGHUP})) {
    std::fprintf(stderr, "switchboard serve: %s\n", ec.message().c_str());
    return 1;
  }

  realtime::service svc(config, [logger](realtime::log_level level, std::string_view message) {
    logger->log(to_spdlog(level), "{}", message);
  });
  if (auto ec = svc.listen()) {
    const std::string why = svc.error_message().empty() ? ec.message() : svc.error_message();
    logger->error("cannot start: {}", why);
    std::fprintf(stderr, "switchboard serve: %s\n", why.c_str());
    return 1;
  }
  const std::string url = listen_url(config, svc.port());
  std::printf("listening on %s\n", url.c_str());
  std::fflush(stdout);

  std::string namespaces;
  for (const auto& entry : config.namespaces) {
    namespaces += (namespaces.empty() ? "" : ", ") + entry.first;
  }
  logger->info("switchboard {} serving on {}: {} thread(s), namespaces: {}", switchboard::version,
               url, config.threads != 0 ? config.threads : net::usable_cpus(), namespaces);

  if (auto ec = svc.run()) {
    const std::string why = svc.error_message().empty() ? ec.message() : svc.error_message();
    logger->error("stopped with an error: {}", why);
    return 1;
  }
  logger->info("shut down");
  return 0;
}

}  // namespace

void add_serve_command(CLI::App& app, command_runner& run) {
  auto flags = std::make_shared<serve_flags>();
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "realtime server: channels, presence, history with recovery, JWT auth on /ws "
      "(switchboard.v1), the HTTP publish API, /metrics and the demo page");
  add_serve_options(*cmd, *flags);
  cmd->callback([&run, flags] { run = [flags] { return run_serve(*flags); }; });
}

}  // namespace switchboard::app
