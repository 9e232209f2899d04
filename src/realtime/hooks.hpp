// hooks.hpp — private: proxy hooks (docs/hooks.md). The server asks the
// application's backend, over HTTP POST with a JSON body signed with
// HMAC-SHA256, whether a client may connect, refresh, subscribe or publish,
// and forwards `rpc` commands to it.
//
// The calls are made by an http_client (hook_http.hpp) on an event loop of
// the hook_caller's own thread, so no session loop ever waits on a backend:
// call() builds and signs the request on the caller's thread, posts it to
// the hook thread, and the completion runs there; the session hands it back
// to the connection's loop with server::dispatch (session.cpp), as broker
// completions come back.
//
// An answer is read into a hook_answer: allow (with what the backend changed),
// deny (the code and message the client sees), or failed (timeout, backend
// down, a non-2xx status, a body that is not the documented JSON). What a
// failure means — deny with 503, or allow as if no hook were configured — is
// each hook's *_on_error setting.
//
// Thread-safety: call() from any thread once start() returned; start() and
// stop() from the thread that owns the service.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <switchboard/net/event_loop.hpp>
#include <switchboard/net/tls_context.hpp>
#include <switchboard/net/unique_function.hpp>
#include <switchboard/realtime/config.hpp>
#include <switchboard/realtime/service.hpp>
#include <thread>
#include <utility>
#include <vector>

#include "command.hpp"
#include "hook_http.hpp"
#include "metrics.hpp"

namespace switchboard::realtime::detail {

enum class hook_kind : std::uint8_t { connect, refresh, rpc, subscribe, publish };
std::string_view hook_name(hook_kind kind) noexcept;

// The hex HMAC-SHA256 of `timestamp` "." `body` under `secret`: what the
// X-Switchboard-Signature header carries after "v1=". docs/hooks.md shows a
// backend how to check it.
std::string hook_signature(std::string_view secret, std::string_view timestamp,
                           std::string_view body);

// One configured hook: where it goes and what a failure means.
struct hook_target {
  hook_kind kind = hook_kind::connect;
  http_url url;
  bool allow_on_error = false;
};

struct hook_answer {
  enum class outcome : std::uint8_t { allow, deny, failed };
  outcome result = outcome::failed;
  failure denial{0, {}};  // deny: what the client is told
  std::string error;      // failed: why (for the log)
  // allow: what the backend changed (each optional; docs/hooks.md).
  std::optional<std::string> user;    // connect: the user id
  std::optional<std::string> info;    // connect, refresh: presence info (a JSON object)
  std::vector<std::string> channels;  // connect: channels to subscribe the client to
  std::int64_t expire_at = 0;         // connect, refresh: Unix seconds; 0: none
  std::optional<std::string> data;    // publish: the new data; rpc: the result
};

// Reads a backend's answer: HTTP status, body. Pure (the unit tests call it).
hook_answer read_hook_answer(hook_kind kind, int status, std::string_view body);

// /metrics figures of the hook calls, each by hook (connect, refresh, rpc,
// subscribe, publish); any may be null.
struct hook_metrics {
  counter_family* calls = nullptr;      // every call made
  counter_family* denied = nullptr;     // answered deny
  counter_family* failed = nullptr;     // timeout, backend down, bad answer
  histogram_family* duration = nullptr;  // from the call to its answer
};

// Headers of the client's upgrade request passed on to every hook call of
// that connection (hooks.forward_headers).
using forwarded_headers = std::vector<std::pair<std::string, std::string>>;

class hook_caller {
 public:
  using completion = net::unique_function<void(hook_answer)>;

  // REQUIRES: check_config(config) passed; `config` outlives the caller.
  hook_caller(const realtime_config& config, log_function log);
  ~hook_caller();
  hook_caller(const hook_caller&) = delete;
  hook_caller& operator=(const hook_caller&) = delete;

  // True if any hook is configured (else no thread is started).
  static bool wanted(const realtime_config& config);

  // Resolves the URLs, builds the TLS context if an https:// URL is used,
  // starts the thread. Returns "" or why not.
  std::string start();
  // Stops the thread; calls in flight are dropped (their completions are
  // destroyed unrun: the connections they were for are closing too).
  void stop();

  // The global hooks; null when not configured.
  const hook_target* connect() const noexcept { return connect_.get(); }
  const hook_target* refresh() const noexcept { return refresh_.get(); }
  const hook_target* rpc() const noexcept { return rpc_.get(); }
  // A namespace's hooks; null when not configured.
  const hook_target* subscribe(std::string_view ns) const noexcept;
  const hook_target* publish(std::string_view ns) const noexcept;
  bool connect_always() const noexcept { return config_.hooks_connect_always; }
  // Which upgrade headers to keep for the hooks (case-insensitive).
  bool forwards(std::string_view header) const noexcept;

  // POSTs `body` to `target`, signed, with `headers`; `done` runs on the
  // hook thread with the answer. Any thread.
  void call(const hook_target& target, std::string body, const forwarded_headers* headers,
            completion done);

  // REQUIRES: before the first call().
  void set_metrics(const hook_metrics& m) noexcept { metrics_ = m; }

  // For the lifecycle events' sender (event_outbox.hpp), which runs on the
  // hook thread: posts `t` there (any thread); the loop and the client
  // (hook thread only); the X-Switchboard-* headers for `body` as `kind`.
  void run(net::task t);
  net::event_loop& loop() noexcept { return *loop_; }
  http_client& client() noexcept { return *client_; }
  std::vector<std::pair<std::string, std::string>> signed_headers(std::string_view kind,
                                                                  std::string_view body) const;

 private:
  // Hook thread: one answered call in /metrics.
  void count(hook_kind kind, const hook_answer& a, std::chrono::steady_clock::time_point started);

  const realtime_config& config_;
  log_function log_;
  std::unique_ptr<hook_target> connect_, refresh_, rpc_;
  std::vector<std::pair<std::string, std::unique_ptr<hook_target>>> subscribe_, publish_;
  std::unique_ptr<net::tls_context> tls_;
  std::unique_ptr<net::event_loop> loop_;
  std::unique_ptr<http_client> client_;
  std::thread thread_;
  hook_metrics metrics_;
};

}  // namespace switchboard::realtime::detail
