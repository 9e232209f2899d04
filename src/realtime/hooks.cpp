// hooks.cpp — proxy hooks: signing, answers, the hook thread (see hooks.hpp).
#include "hooks.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <simdjson.h>

#include <algorithm>

#include "support.hpp"

namespace switchboard::realtime::detail {

namespace {

// Codes a backend may deny with: HTTP-like (400-599, as the server's own
// errors) or application codes (3000-4999, as WebSocket close codes have).
bool valid_deny_code(std::int64_t code) {
  return (code >= 400 && code <= 599) || (code >= 3000 && code <= 4999);
}

constexpr std::size_t k_max_deny_message = 1024;

hook_answer bad_answer(std::string why) {
  hook_answer a;
  a.result = hook_answer::outcome::failed;
  a.error = "bad answer: " + why;
  return a;
}

std::unique_ptr<hook_target> make_target(hook_kind kind, const std::string& url,
                                         const std::string& on_error) {
  if (url.empty()) return nullptr;
  auto t = std::make_unique<hook_target>();
  t->kind = kind;
  (void)parse_http_url_syntax(url, t->url);  // check_config() has refused bad ones
  t->allow_on_error = on_error == "allow";
  return t;
}

}  // namespace

std::string_view hook_name(hook_kind kind) noexcept {
  switch (kind) {
    case hook_kind::connect:
      return "connect";
    case hook_kind::refresh:
      return "refresh";
    case hook_kind::rpc:
      return "rpc";
    case hook_kind::subscribe:
      return "subscribe";
    case hook_kind::publish:
      return "publish";
  }
  return "?";
}

std::string hook_signature(std::string_view secret, std::string_view timestamp,
                           std::string_view body) {
  std::string message;
  message.reserve(timestamp.size() + 1 + body.size());
  message.append(timestamp);
  message.push_back('.');
  message.append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &mac_len);
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(mac_len * 2);
  for (unsigned i = 0; i < mac_len; ++i) {
    out.push_back(k_hex[mac[i] >> 4]);
    out.push_back(k_hex[mac[i] & 15]);
  }
  return out;
}

hook_answer read_hook_answer(hook_kind kind, int status, std::string_view body) {
  // Only 200 carries an answer; anything else is the backend failing.
  if (status < 200 || status > 299) {
    hook_answer a;
    a.error = "backend answered HTTP " + std::to_string(status);
    return a;
  }
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body.data(), body.size()).get(doc) != simdjson::SUCCESS) {
    return bad_answer("not JSON");
  }
  simdjson::dom::object root;
  if (doc.get_object().get(root) != simdjson::SUCCESS) return bad_answer("not a JSON object");
  if (auto dup = find_duplicate_key(root)) return bad_answer("duplicate key " + std::string(*dup));

  simdjson::dom::element error;
  if (root["error"].get(error) == simdjson::SUCCESS) {
    simdjson::dom::object e;
    std::int64_t code = 0;
    std::string_view message;
    if (error.get_object().get(e) != simdjson::SUCCESS ||
        e["code"].get_int64().get(code) != simdjson::SUCCESS ||
        e["message"].get_string().get(message) != simdjson::SUCCESS) {
      return bad_answer("error must be {\"code\": integer, \"message\": string}");
    }
    if (!valid_deny_code(code)) return bad_answer("error code must be 400-599 or 3000-4999");
    if (message.size() > k_max_deny_message) return bad_answer("error message over 1 KiB");
    hook_answer a;
    a.result = hook_answer::outcome::deny;
    a.denial = failure{static_cast<int>(code), std::string(message)};
    return a;
  }
  hook_answer a;
  a.result = hook_answer::outcome::allow;
  simdjson::dom::element result_el;
  if (root["result"].get(result_el) != simdjson::SUCCESS) {
    return bad_answer("neither result nor error");
  }
  simdjson::dom::object result;
  if (result_el.get_object().get(result) != simdjson::SUCCESS)
    return bad_answer("result must be an object");
  if (auto dup = find_duplicate_key(result))
    return bad_answer("duplicate key " + std::string(*dup));
  for (auto [key, value] : result) {
    if (key == "user" && kind == hook_kind::connect) {
      std::string_view user;
      if (value.get_string().get(user) != simdjson::SUCCESS)
        return bad_answer("user must be a string");
      if (user.size() > 256) return bad_answer("user over 256 bytes");
      a.user = std::string(user);
    } else if (key == "info" && (kind == hook_kind::connect || kind == hook_kind::refresh)) {
      if (!value.is_object()) return bad_answer("info must be an object");
      a.info = simdjson::minify(value);
      if (a.info->size() > 4096) return bad_answer("info over 4 KiB");
    } else if (key == "channels" && kind == hook_kind::connect) {
      simdjson::dom::array arr;
      if (value.get_array().get(arr) != simdjson::SUCCESS)
        return bad_answer("channels must be an array of strings");
      for (auto ch : arr) {
        std::string_view name;
        if (ch.get_string().get(name) != simdjson::SUCCESS)
          return bad_answer("channels must be an array of strings");
        a.channels.emplace_back(name);
      }
    } else if (key == "expire_at" && (kind == hook_kind::connect || kind == hook_kind::refresh)) {
      std::int64_t at = 0;
      if (value.get_int64().get(at) != simdjson::SUCCESS || at < 0) {
        return bad_answer("expire_at must be Unix seconds");
      }
      a.expire_at = at;
    } else if (key == "data" && (kind == hook_kind::publish || kind == hook_kind::rpc)) {
      a.data = simdjson::minify(value);
    }
    // Other keys are ignored: a backend may answer more than this version reads.
  }
  return a;
}

// ---------------------------------------------------------------------------
// hook_caller

hook_caller::hook_caller(const realtime_config& config, log_function log)
    : config_(config), log_(std::move(log)) {
  connect_ =
      make_target(hook_kind::connect, config.hooks_connect_url, config.hooks_connect_on_error);
  refresh_ =
      make_target(hook_kind::refresh, config.hooks_refresh_url, config.hooks_refresh_on_error);
  rpc_ = make_target(hook_kind::rpc, config.hooks_rpc_url, "deny");
  for (const auto& [name, ns] : config.namespaces) {
    if (auto t = make_target(hook_kind::subscribe, ns.subscribe_hook, ns.subscribe_hook_on_error)) {
      subscribe_.emplace_back(name, std::move(t));
    }
    if (auto t = make_target(hook_kind::publish, ns.publish_hook, ns.publish_hook_on_error)) {
      publish_.emplace_back(name, std::move(t));
    }
  }
}

hook_caller::~hook_caller() {
  stop();
}

bool hook_caller::wanted(const realtime_config& config) {
  if (!config.hooks_connect_url.empty() || !config.hooks_refresh_url.empty() ||
      !config.hooks_rpc_url.empty() || !config.events_url.empty()) {
    return true;
  }
  for (const auto& [name, ns] : config.namespaces) {
    if (!ns.subscribe_hook.empty() || !ns.publish_hook.empty()) return true;
  }
  return false;
}

const hook_target* hook_caller::subscribe(std::string_view ns) const noexcept {
  for (const auto& [name, t] : subscribe_) {
    if (name == ns) return t.get();
  }
  return nullptr;
}

const hook_target* hook_caller::publish(std::string_view ns) const noexcept {
  for (const auto& [name, t] : publish_) {
    if (name == ns) return t.get();
  }
  return nullptr;
}

bool hook_caller::forwards(std::string_view header) const noexcept {
  return std::any_of(config_.hooks_forward_headers.begin(), config_.hooks_forward_headers.end(),
                     [&](const std::string& h) { return protocol::ascii_iequals(h, header); });
}

std::string hook_caller::start() {
  std::vector<hook_target*> all;
  for (auto* t : {connect_.get(), refresh_.get(), rpc_.get()}) {
    if (t) all.push_back(t);
  }
  for (auto& [name, t] : subscribe_) all.push_back(t.get());
  for (auto& [name, t] : publish_) all.push_back(t.get());
  hook_target events;  // the lifecycle webhook: resolved here, used by event_outbox
  if (!config_.events_url.empty()) {
    (void)parse_http_url_syntax(config_.events_url, events.url);
    all.push_back(&events);
  }
  bool any_tls = false;
  for (hook_target* t : all) {
    if (std::string e = resolve_http_url(t->url); !e.empty()) return e;
    any_tls = any_tls || t->url.tls;
  }
  if (any_tls) {
    net::tls_client_options o;
    o.ca_file = config_.hooks_tls_ca_file;
    net::tls_error err;
    tls_ = net::tls_context::client(o, err);
    if (!tls_) return "hooks: TLS: " + err.text;
  }
  std::error_code ec;
  loop_ = net::event_loop::create(ec);
  if (!loop_) return "hooks: event loop: " + ec.message();
  http_client_options o;
  o.max_connections = config_.hooks_max_concurrency;
  client_ = std::make_unique<http_client>(*loop_, tls_.get(), o);
  thread_ = std::thread([this] { (void)loop_->run(); });
  return {};
}

void hook_caller::stop() {
  if (!thread_.joinable()) return;
  loop_->post([this] {
    client_.reset();  // closes its connections on the loop's thread
    loop_->stop();
  });
  thread_.join();
  loop_.reset();
}

std::vector<std::pair<std::string, std::string>> hook_caller::signed_headers(
    std::string_view kind, std::string_view body) const {
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back("X-Switchboard-Hook", std::string(kind));
  if (!config_.hooks_secret.empty()) {
    const std::string timestamp = std::to_string(wall_ms() / 1000);
    out.emplace_back("X-Switchboard-Signature",
                     "v1=" + hook_signature(config_.hooks_secret, timestamp, body));
    out.emplace_back("X-Switchboard-Timestamp", timestamp);
  }
  return out;
}

void hook_caller::run(net::task t) {
  if (loop_) loop_->post(std::move(t));
}

void hook_caller::count(hook_kind kind, const hook_answer& a,
                        std::chrono::steady_clock::time_point started) {
  const std::string_view name = hook_name(kind);
  if (metrics_.calls) metrics_.calls->with(name).inc();
  if (metrics_.denied && a.result == hook_answer::outcome::deny) metrics_.denied->with(name).inc();
  if (metrics_.failed && a.result == hook_answer::outcome::failed) {
    metrics_.failed->with(name).inc();
  }
  if (metrics_.duration) {
    const std::chrono::duration<double> d = std::chrono::steady_clock::now() - started;
    metrics_.duration->observe(name, d.count());
  }
}

void hook_caller::call(const hook_target& target, std::string body,
                       const forwarded_headers* headers, completion done) {
  if (!loop_) return;
  http_request r;
  r.url = &target.url;
  r.timeout = to_ms(config_.hooks_timeout);
  r.headers = signed_headers(hook_name(target.kind), body);
  if (headers) {
    for (const auto& h : *headers) r.headers.push_back(h);
  }
  r.body = std::move(body);
  const auto started = std::chrono::steady_clock::now();
  loop_->post([this, kind = target.kind, r = std::move(r), done = std::move(done),
               started]() mutable {
    if (!client_) return;
    client_->send(std::move(r), [this, kind, done = std::move(done),
                                 started](http_result res) mutable {
      hook_answer a;
      if (!res.error.empty()) {
        a.error = std::move(res.error);
      } else {
        a = read_hook_answer(kind, res.status, res.body);
      }
      count(kind, a, started);
      done(std::move(a));
    });
  });
}

}  // namespace switchboard::realtime::detail
