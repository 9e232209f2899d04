// service_test.cpp — realtime::service in-process on 127.0.0.1 (port 0),
// driven by our own websocket_client with the switchboard.v1 subprotocol:
// every command's reply, every error code a command can produce, the close
// codes (1003, 1008, 1009, 4001, 1012), push order, presence pushes, history,
// recovery after a reconnect, history TTL and the snapshot across a restart.
// docs/protocol.md is the contract; each test names the rule it checks.
//
// The service runs on its own thread (service::run) and is shut down and
// joined by the fixture; all clients share one event loop on the test thread,
// which the helpers run until a condition holds or a time limit passes.
// Tokens are HS256 JWTs made here with OpenSSL (HMAC-SHA256 + base64url).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <simdjson.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <switchboard/client/websocket_client.hpp>
#include <switchboard/realtime/config.hpp>
#include <switchboard/realtime/service.hpp>
#include <thread>
#include <utility>
#include <vector>

#include "../net/test_support.hpp"

namespace switchboard::realtime::test {
namespace {

using namespace std::chrono_literals;
using client::client_options;
using client::client_state;
using client::websocket_client;

constexpr std::string_view k_secret = "service-test-secret-of-at-least-32-bytes";

// --- tokens ------------------------------------------------------------------

std::string base64url(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &size);
  return std::string(reinterpret_cast<const char*>(mac), size);
}

// A compact JWS of `header` and `claims`, signed with HMAC-SHA256 under
// `secret` whatever the header's "alg" says.
std::string sign(std::string_view header, std::string_view claims,
                 std::string_view secret = k_secret) {
  const std::string input = base64url(header) + "." + base64url(claims);
  return input + "." + base64url(hmac_sha256(secret, input));
}

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr std::string_view k_hs256 = R"({"alg":"HS256","typ":"JWT"})";

// An HS256 token for `user` that expires `expires_in` seconds from now;
// `extra` goes at the end of the claims (",\"channels\":[\"chat:*\"]").
std::string token(std::string_view user, std::string_view extra = {},
                  std::int64_t expires_in = 3600) {
  const std::string claims = "{\"sub\":\"" + std::string(user) +
                             "\",\"exp\":" + std::to_string(now_seconds() + expires_in) +
                             std::string(extra) + "}";
  return sign(k_hs256, claims);
}

// --- JSON ----------------------------------------------------------------------

// A received message, parsed; accessors take JSON pointers ("/result/offset")
// and return a visible default when the value is absent or of another type.
class json {
 public:
  json() = default;
  explicit json(std::string text)
      : text_(std::move(text)), parser_(std::make_shared<simdjson::dom::parser>()) {
    valid_ = !parser_->parse(text_).get(root_);
  }
  bool valid() const { return valid_; }
  const std::string& text() const { return text_; }

  bool has(std::string_view pointer) const { return at(pointer).has_value(); }
  // -1 when absent or not an integer.
  std::int64_t num(std::string_view pointer) const {
    std::int64_t v = -1;
    if (auto e = at(pointer); !e || e->get(v)) return -1;
    return v;
  }
  std::string str(std::string_view pointer) const {
    std::string_view v;
    if (auto e = at(pointer); !e || e->get(v)) return "<absent>";
    return std::string(v);
  }
  // The value as minified JSON text, "" when absent.
  std::string raw(std::string_view pointer) const {
    auto e = at(pointer);
    return e ? simdjson::minify(*e) : std::string();
  }
  std::size_t size(std::string_view pointer) const {
    simdjson::dom::array a;
    if (auto e = at(pointer); !e || e->get(a)) return 0;
    return a.size();
  }
  int error_code() const { return static_cast<int>(num("/error/code")); }

 private:
  std::optional<simdjson::dom::element> at(std::string_view pointer) const {
    if (!valid_) return std::nullopt;
    simdjson::dom::element e;
    if (root_.at_pointer(pointer).get(e)) return std::nullopt;
    return e;
  }

  std::string text_;
  std::shared_ptr<simdjson::dom::parser> parser_;
  simdjson::dom::element root_;
  bool valid_ = false;
};

// The offsets of the publications in `reply` at `pointer` (an array).
std::vector<std::int64_t> offsets(const json& reply, const std::string& pointer) {
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < reply.size(pointer); ++i) {
    out.push_back(reply.num(pointer + "/" + std::to_string(i) + "/offset"));
  }
  return out;
}

std::vector<std::int64_t> range(std::int64_t first, std::int64_t last) {
  std::vector<std::int64_t> out;
  for (std::int64_t i = first; i <= last; ++i) out.push_back(i);
  return out;
}

// --- the service on its own thread -----------------------------------------------

class running_service {
 public:
  explicit running_service(realtime_config config)
      : service_(std::move(config), [this](log_level, std::string_view line) {
          std::lock_guard lock(log_mutex_);
          log_.emplace_back(line);
        }) {
    listen_error_ = service_.listen();
    if (!listen_error_) thread_ = std::thread([this] { run_error_ = service_.run(); });
  }
  ~running_service() { stop(); }
  running_service(const running_service&) = delete;
  running_service& operator=(const running_service&) = delete;

  // Graceful shutdown and join; returns run()'s result.
  std::error_code stop() {
    if (thread_.joinable()) {
      service_.shutdown();
      thread_.join();
    }
    return run_error_;
  }
  std::error_code listen_error() const { return listen_error_; }
  const std::string& error_message() const { return service_.error_message(); }
  std::string url() const { return "ws://127.0.0.1:" + std::to_string(service_.port()) + "/ws"; }
  bool logged(std::string_view part) const {
    std::lock_guard lock(log_mutex_);
    for (const auto& line : log_) {
      if (line.find(part) != std::string::npos) return true;
    }
    return false;
  }

 private:
  mutable std::mutex log_mutex_;
  std::vector<std::string> log_;
  service service_;
  std::error_code listen_error_;
  std::error_code run_error_;
  std::thread thread_;
};

// --- one client ----------------------------------------------------------------------

class rt_client {
 public:
  rt_client(net::event_loop& loop, client_options options) {
    client::client_handlers h;
    h.on_open = [this](std::string_view sub) {
      open = true;
      subprotocol = std::string(sub);
    };
    h.on_message = [this](std::string_view payload, protocol::opcode op) {
      if (op != protocol::opcode::text) {
        ++binary_messages;
        return;
      }
      inbox.emplace_back(std::string(payload));
      seen.push_back(inbox.back());
    };
    h.on_close = [this](std::uint16_t code, std::string_view reason) {
      close = std::make_pair(code, std::string(reason));
    };
    h.on_error = [this](std::error_code, std::string_view text) { errors.emplace_back(text); };
    h.on_state = [this](const client::state_change& change) {
      if (change.state == client_state::closed) ended = true;
    };
    ws = std::make_unique<websocket_client>(loop, std::move(options), std::move(h));
  }

  // Takes the first message of the inbox for which `match` holds.
  std::optional<json> take(const std::function<bool(const json&)>& match) {
    for (auto it = inbox.begin(); it != inbox.end(); ++it) {
      if (match(*it)) {
        json out = std::move(*it);
        inbox.erase(it);
        return out;
      }
    }
    return std::nullopt;
  }
  // Pushes of kind `push` ("message", "presence") on `channel` seen so far.
  // "join" and "leave" list the entries of the presence pushes' joins and
  // leaves, each as {"push":"join","channel":…,"info":ENTRY}.
  std::vector<json> pushes(std::string_view push, std::string_view channel) const {
    std::vector<json> out;
    const bool entries = push == "join" || push == "leave";
    for (const json& m : seen) {
      if (m.str("/channel") != channel) continue;
      if (!entries) {
        if (m.str("/push") == push) out.push_back(m);
        continue;
      }
      if (m.str("/push") != "presence") continue;
      const std::string list = push == "join" ? "/joins" : "/leaves";
      for (std::size_t i = 0; i < m.size(list); ++i) {
        out.emplace_back(R"({"push":")" + std::string(push) + R"(","channel":")" +
                         std::string(channel) + R"(","info":)" +
                         m.raw(list + "/" + std::to_string(i)) + "}");
      }
    }
    return out;
  }
  std::vector<std::int64_t> pushed_offsets(std::string_view channel) const {
    std::vector<std::int64_t> out;
    for (const json& m : pushes("message", channel)) out.push_back(m.num("/offset"));
    return out;
  }

  std::unique_ptr<websocket_client> ws;
  bool open = false;
  bool ended = false;
  std::string subprotocol;
  std::deque<json> inbox;  // not yet taken by a helper
  std::vector<json> seen;  // every text message, in arrival order
  int binary_messages = 0;
  std::optional<std::pair<std::uint16_t, std::string>> close;
  std::vector<std::string> errors;
};

// --- the fixture --------------------------------------------------------------------------

realtime_config base_config() {
  realtime_config c;
  c.host = "127.0.0.1";
  c.port = 0;
  c.threads = 1;
  c.demo = false;
  c.jwt_secret = std::string(k_secret);
  c.allow_anonymous = false;
  c.shutdown_timeout = 1;
  c.namespaces = {
      {"default", namespace_options{}},
      {"chat", namespace_options{.publish = publish_policy::any}},
      {"feed", namespace_options{.publish = publish_policy::none}},
      {"bare", namespace_options{.history_size = 0, .presence = false}},
      {"short", namespace_options{.history_size = 3, .publish = publish_policy::any}},
      {"ttl", namespace_options{.history_ttl = 0.5, .publish = publish_policy::any}},
  };
  return c;
}

// Wakes its loop every 20 ms while it exists.
struct ticker {
  explicit ticker(net::event_loop& loop) : loop(&loop) {
    node.bind<&ticker::fire>(this);
    loop.update_now();
    loop.timers().schedule(node, 20ms);
  }
  void fire() { loop->timers().schedule(node, 20ms); }
  net::event_loop* loop;
  net::timer_node node;
};

class service_test : public net::test::net_test {
 protected:
  void TearDown() override {
    clients_.clear();
    server_.reset();
    net::test::net_test::TearDown();
  }

  // Starts (or restarts) the service with config_.
  void start() {
    clients_.clear();
    server_.reset();
    server_ = std::make_unique<running_service>(config_);
    ASSERT_FALSE(server_->listen_error()) << server_->error_message();
  }

  static client_options v1_options() {
    client_options o;
    o.protocols = {"switchboard.v1"};
    return o;
  }

  // A client that has finished its handshake (or failed it: check `open`).
  rt_client& open_client(client_options options = v1_options()) {
    clients_.push_back(std::make_unique<rt_client>(*loop_, std::move(options)));
    rt_client& c = *clients_.back();
    EXPECT_FALSE(c.ws->connect(server_->url()));
    EXPECT_TRUE(run_until([&] { return c.open || c.ended; }));
    return c;
  }

  // An open client that sent `connect` with a token for `user`.
  rt_client& user_client(std::string_view user, std::string_view extra_claims = {}) {
    rt_client& c = open_client();
    const json r = request(c, R"("cmd":"connect","token":")" + token(user, extra_claims) + "\"");
    EXPECT_EQ(r.str("/result/user"), user) << r.text();
    return c;
  }

  // Runs the loop until `done` holds (true) or `limit` passes (false).
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    if (done()) return true;
    bool ok = false;
    const auto hook = loop_->add_iteration_hook([&] {
      if (!ok && done()) {
        ok = true;
        loop_->stop();
      }
    });
    // A timer keeps the loop ticking so `done` is re-checked while idle.
    ticker tick(*loop_);
    {
      net::test::watchdog dog(*loop_, limit);
      loop_->run();
    }
    loop_->remove_iteration_hook(hook);
    return ok;
  }
  // Runs the loop for `duration`, whatever happens.
  void run_for(std::chrono::milliseconds duration) {
    const auto end = std::chrono::steady_clock::now() + duration;
    run_until([&] { return std::chrono::steady_clock::now() >= end; }, duration + 1s);
  }

  // Sends {"id":N,<body>} and returns the reply with that id (an invalid json
  // when none came within `limit`). Other messages stay in the inbox.
  json request(rt_client& c, const std::string& body, std::chrono::milliseconds limit = 5s) {
    const std::int64_t id = ++next_id_;
    c.ws->send_text("{\"id\":" + std::to_string(id) + "," + body + "}");
    std::optional<json> reply;
    run_until(
        [&] {
          reply = c.take([id](const json& m) { return !m.has("/push") && m.num("/id") == id; });
          return reply.has_value() || c.ended;
        },
        limit);
    EXPECT_TRUE(reply) << "no reply to " << body;
    return reply ? std::move(*reply) : json();
  }
  // The next message in the inbox, whatever it is.
  json next(rt_client& c, std::chrono::milliseconds limit = 5s) {
    std::optional<json> m;
    run_until(
        [&] {
          m = c.take([](const json&) { return true; });
          return m.has_value() || c.ended;
        },
        limit);
    EXPECT_TRUE(m) << "no message arrived";
    return m ? std::move(*m) : json();
  }
  // Waits for the connection to end; the close code (0 if it did not end).
  std::uint16_t close_code(rt_client& c, std::chrono::milliseconds limit = 5s) {
    EXPECT_TRUE(run_until([&] { return c.ended; }, limit)) << "the connection did not end";
    return c.close ? c.close->first : 0;
  }

  json subscribe(rt_client& c, std::string_view channel, std::string_view extra = {}) {
    return request(c, "\"cmd\":\"subscribe\",\"channel\":\"" + std::string(channel) + "\"" +
                          std::string(extra));
  }
  json publish(rt_client& c, std::string_view channel, std::string_view data) {
    return request(c, "\"cmd\":\"publish\",\"channel\":\"" + std::string(channel) +
                          "\",\"data\":" + std::string(data));
  }
  json channel_command(rt_client& c, std::string_view cmd, std::string_view channel,
                       std::string_view extra = {}) {
    return request(c, "\"cmd\":\"" + std::string(cmd) + "\",\"channel\":\"" + std::string(channel) +
                          "\"" + std::string(extra));
  }
  static std::string since(std::string_view epoch, std::int64_t offset) {
    return ",\"since\":{\"epoch\":\"" + std::string(epoch) +
           "\",\"offset\":" + std::to_string(offset) + "}";
  }

  std::unique_ptr<net::event_loop> loop_ = net::test::make_loop();
  realtime_config config_ = base_config();
  std::unique_ptr<running_service> server_;
  std::vector<std::unique_ptr<rt_client>> clients_;
  std::int64_t next_id_ = 0;
};

bool is_hex_id(const std::string& s) {
  return s.size() == 16 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// --- connecting and authenticating ---------------------------------------------------

TEST_F(service_test, ConnectWithATokenRepliesTheClientIdAndUser) {
  start();
  rt_client& c = open_client();
  ASSERT_TRUE(c.open);
  EXPECT_EQ(c.subprotocol, "switchboard.v1");
  const json r = request(c, R"("cmd":"connect","token":")" + token("alice") + "\"");
  EXPECT_EQ(r.str("/result/user"), "alice") << r.text();
  EXPECT_TRUE(is_hex_id(r.str("/result/client"))) << r.text();
  EXPECT_FALSE(r.has("/error"));
  // A connection that has a user cannot connect again (409).
  const json again = request(c, R"("cmd":"connect","token":")" + token("bob") + "\"");
  EXPECT_EQ(again.error_code(), 409) << again.text();
  EXPECT_FALSE(again.has("/result"));
  EXPECT_EQ(request(c, R"("cmd":"ping")").raw("/result"), "{}");
  // Two connections never share a client id.
  rt_client& d = open_client();
  const json r2 = request(d, R"("cmd":"connect","token":")" + token("alice") + "\"");
  EXPECT_NE(r2.str("/result/client"), r.str("/result/client"));
}

TEST_F(service_test, EveryCommandBeforeConnectIs401WhenAnonymousAccessIsOff) {
  start();
  rt_client& c = open_client();
  for (const std::string body :
       {R"("cmd":"ping")", R"("cmd":"subscribe","channel":"lobby")",
        R"("cmd":"publish","channel":"chat:a","data":1)", R"("cmd":"presence","channel":"lobby")",
        R"("cmd":"history","channel":"lobby")", R"("cmd":"unsubscribe","channel":"lobby")"}) {
    EXPECT_EQ(request(c, body).error_code(), 401) << body;
  }
  EXPECT_FALSE(c.ended) << "a 401 before connect does not close the connection";
  const json r = request(c, R"("cmd":"connect","token":")" + token("alice") + "\"");
  EXPECT_EQ(r.str("/result/user"), "alice") << r.text();
  EXPECT_EQ(subscribe(c, "lobby").str("/result/channel"), "lobby");
}

TEST_F(service_test, ConnectWithoutATokenIs401AndCloses4001WhenAnonymousAccessIsOff) {
  start();
  rt_client& c = open_client();
  const json r = request(c, R"("cmd":"connect","info":{"name":"x"})");
  EXPECT_EQ(r.error_code(), 401) << r.text();
  EXPECT_EQ(close_code(c), 4001);
}

TEST_F(service_test, NoConnectWithinTheTimeoutCloses4001) {
  config_.connect_timeout = 0.3;
  start();
  const auto started = std::chrono::steady_clock::now();
  rt_client& c = open_client();
  ASSERT_TRUE(c.open);
  EXPECT_EQ(close_code(c, 5s), 4001);
  const auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_GE(waited, 250ms);
  EXPECT_LT(waited, 3s);
  // A connection that did connect in time is not closed.
  rt_client& d = user_client("alice");
  run_for(700ms);
  EXPECT_FALSE(d.ended);
}

TEST_F(service_test, BadTokensInConnectAre401WithTheReasonThenClose4001) {
  start();
  const std::string claims =
      "{\"sub\":\"alice\",\"exp\":" + std::to_string(now_seconds() + 3600) + "}";
  const std::string none_header = base64url(R"({"alg":"none","typ":"JWT"})");
  const struct {
    std::string name;
    std::string token;
    std::string reason;
  } cases[] = {
      {"expired", token("alice", {}, -10), "token expired"},
      {"bad signature", sign(k_hs256, claims, "another-secret"), "bad signature"},
      {"alg none", none_header + "." + base64url(claims) + ".", "algorithm not allowed"},
      {"HS512", sign(R"({"alg":"HS512","typ":"JWT"})", claims), "algorithm not allowed"},
      {"not a JWT", "not-a-token", "malformed token"},
      {"no sub", sign(k_hs256, "{\"exp\":" + std::to_string(now_seconds() + 60) + "}"),
       "missing claim: sub"},
  };
  for (const auto& t : cases) {
    SCOPED_TRACE(t.name);
    rt_client& c = open_client();
    ASSERT_TRUE(c.open);
    const json r = request(c, R"("cmd":"connect","token":")" + t.token + "\"");
    EXPECT_EQ(r.error_code(), 401) << r.text();
    EXPECT_NE(r.str("/error/message").find(t.reason), std::string::npos) << r.text();
    EXPECT_EQ(close_code(c), 4001);
  }
}

// Issue 14 (4): expiry was checked only at connect; a connection kept
// subscribing and publishing after `exp`. Now: a `refresh` push
// auth.refresh_lead seconds before it, and close 4002 at exp.
TEST_F(service_test, AnExpiringTokenGetsARefreshPushThenCloses4002) {
  config_.refresh_lead = 1;
  start();
  const auto started = std::chrono::steady_clock::now();
  const std::int64_t exp = now_seconds() + 2;
  rt_client& c = open_client();
  ASSERT_TRUE(c.open);
  const std::string t =
      sign(k_hs256, "{\"sub\":\"alice\",\"exp\":" + std::to_string(exp) + "}");
  ASSERT_EQ(request(c, R"("cmd":"connect","token":")" + t + "\"").str("/result/user"), "alice");
  EXPECT_EQ(subscribe(c, "chat:a").str("/result/channel"), "chat:a");
  std::optional<json> push;
  ASSERT_TRUE(run_until([&] {
    push = c.take([](const json& m) { return m.str("/push") == "refresh"; });
    return push.has_value() || c.ended;
  }, 4s));
  ASSERT_TRUE(push) << "no refresh push";
  EXPECT_EQ(push->num("/exp"), exp) << push->text();
  EXPECT_FALSE(c.ended) << "closed before exp";
  // Still usable until exp.
  EXPECT_EQ(request(c, R"("cmd":"ping")").raw("/result"), "{}");
  EXPECT_EQ(close_code(c, 4s), 4002);
  EXPECT_EQ(c.close->second, "token expired");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 4s);
  EXPECT_TRUE(server_->logged("token expired without refresh"));

  // The same for a token that came with the upgrade request.
  client_options bearer = v1_options();
  bearer.headers = {{"Authorization", "Bearer " + token("bob", {}, 1)}};
  rt_client& b = open_client(bearer);
  ASSERT_TRUE(b.open);
  EXPECT_EQ(close_code(b, 4s), 4002);
  EXPECT_EQ(b.pushes("refresh", "<absent>").size(), 1u);
}

TEST_F(service_test, RefreshExtendsTheTokenAndDropsChannelsNoLongerGranted) {
  config_.refresh_lead = 1;
  config_.allow_anonymous = true;
  start();
  rt_client& c = open_client();
  ASSERT_TRUE(c.open);
  const json connected = request(
      c, R"("cmd":"connect","token":")" +
             token("alice", R"(,"channels":["chat:*","lobby"])", 2) + "\"");
  ASSERT_EQ(connected.str("/result/user"), "alice") << connected.text();
  ASSERT_EQ(subscribe(c, "chat:a").str("/result/channel"), "chat:a");
  ASSERT_EQ(subscribe(c, "lobby").str("/result/channel"), "lobby");

  // Refusals leave the old token in force.
  EXPECT_EQ(request(c, R"("cmd":"refresh")").error_code(), 400);
  json r = request(c, R"("cmd":"refresh","token":"not-a-token")");
  EXPECT_EQ(r.error_code(), 401);
  EXPECT_EQ(r.str("/error/message"), "malformed token");
  r = request(c, R"("cmd":"refresh","token":")" + token("mallory") + "\"");
  EXPECT_EQ(r.error_code(), 403);
  EXPECT_EQ(r.str("/error/message"), "the new token is for another user");
  EXPECT_FALSE(c.ended);

  const std::int64_t exp = now_seconds() + 3600;
  r = request(c, R"("cmd":"refresh","token":")" +
                     sign(k_hs256, "{\"sub\":\"alice\",\"exp\":" + std::to_string(exp) +
                                       R"(,"channels":["chat:*"]})") +
                     "\"");
  EXPECT_EQ(r.num("/result/exp"), exp) << r.text();
  // lobby is no longer granted: left, with a push saying why, before the reply.
  const auto gone = c.pushes("unsubscribe", "lobby");
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].str("/reason"), "channel no longer granted by the token");
  EXPECT_EQ(c.pushes("unsubscribe", "chat:a").size(), 0u);
  EXPECT_EQ(channel_command(c, "unsubscribe", "lobby").error_code(), 404);
  EXPECT_EQ(subscribe(c, "lobby").error_code(), 403);
  // Past the first token's exp the connection lives on, and chat:a still works.
  run_for(2500ms);
  EXPECT_FALSE(c.ended);
  EXPECT_EQ(publish(c, "chat:a", "1").num("/result/offset"), 1);

  // An anonymous connection has no token to refresh.
  rt_client& anon = open_client();
  ASSERT_TRUE(anon.open);
  EXPECT_EQ(request(anon, R"("cmd":"refresh","token":")" + token("alice") + "\"").error_code(),
            409);
}

TEST_F(service_test, TokenInTheUpgradeRequestNeedsNoConnect) {
  start();
  client_options bearer = v1_options();
  bearer.headers = {{"Authorization", "Bearer " + token("alice")}};
  rt_client& a = open_client(bearer);
  ASSERT_TRUE(a.open);
  EXPECT_EQ(request(a, R"("cmd":"ping")").raw("/result"), "{}");
  EXPECT_EQ(request(a, R"("cmd":"connect","token":")" + token("alice") + "\"").error_code(), 409);

  client_options cookie = v1_options();
  cookie.headers = {{"Cookie", "theme=dark; switchboard_token=" + token("bob")}};
  rt_client& b = open_client(cookie);
  ASSERT_TRUE(b.open);
  subscribe(b, "lobby");
  subscribe(a, "lobby");
  EXPECT_EQ(publish(b, "lobby", "1").num("/result/offset"), 1);
  ASSERT_TRUE(run_until([&] { return !a.pushes("message", "lobby").empty(); }));
  EXPECT_EQ(a.pushes("message", "lobby")[0].str("/user"), "bob");

  // A bad token in the request is refused before the 101.
  client_options expired = v1_options();
  expired.headers = {{"Authorization", "Bearer " + token("carol", {}, -5)}};
  rt_client& c = open_client(expired);
  EXPECT_FALSE(c.open);
  ASSERT_FALSE(c.errors.empty());
  EXPECT_NE(c.errors[0].find("401"), std::string::npos) << c.errors[0];
}

TEST_F(service_test, AnonymousClientsUseCommandsAtOnceAndConnectWithInfo) {
  config_.allow_anonymous = true;
  start();
  rt_client& a = open_client();
  const json sub = subscribe(a, "chat:room");
  EXPECT_EQ(sub.str("/result/channel"), "chat:room") << sub.text();

  rt_client& b = open_client();
  const json hello = request(b, R"("cmd":"connect","info":{"name":"Bob"})");
  EXPECT_TRUE(is_hex_id(hello.str("/result/client"))) << hello.text();
  EXPECT_FALSE(hello.has("/result/user"));
  subscribe(b, "chat:room");

  // An anonymous client may still become a user with a token.
  rt_client& c = open_client();
  const json carol = request(c, R"("cmd":"connect","token":")" + token("carol") + "\"");
  EXPECT_EQ(carol.str("/result/user"), "carol") << carol.text();
  subscribe(c, "chat:room");

  const json p = channel_command(a, "presence", "chat:room");
  ASSERT_EQ(p.size("/result/clients"), 3u) << p.text();
  int bobs = 0, carols = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    const std::string at = "/result/clients/" + std::to_string(i);
    if (p.str(at + "/client") == hello.str("/result/client")) {
      ++bobs;
      EXPECT_EQ(p.str(at + "/info/name"), "Bob");
      EXPECT_FALSE(p.has(at + "/user"));
    }
    if (p.str(at + "/user") == "carol") ++carols;
  }
  EXPECT_EQ(bobs, 1) << p.text();
  EXPECT_EQ(carols, 1) << p.text();

  // info is a JSON object of at most 1 KiB.
  rt_client& d = open_client();
  EXPECT_EQ(request(d, R"("cmd":"connect","info":"Dave")").error_code(), 400);
  const json big =
      request(d, R"("cmd":"connect","info":{"name":")" + std::string(1100, 'x') + "\"}");
  EXPECT_TRUE(big.has("/error")) << big.text();
}

TEST_F(service_test, SubprotocolIsChosenWhenOfferedAndNotRequired) {
  config_.allow_anonymous = true;
  start();
  rt_client& none = open_client(client_options{});
  ASSERT_TRUE(none.open);
  EXPECT_EQ(none.subprotocol, "");
  EXPECT_EQ(request(none, R"("cmd":"ping")").raw("/result"), "{}");
  client_options other;
  other.protocols = {"mqtt", "switchboard.v1"};
  rt_client& both = open_client(other);
  ASSERT_TRUE(both.open);
  EXPECT_EQ(both.subprotocol, "switchboard.v1");
  other.protocols = {"mqtt"};
  rt_client& foreign = open_client(other);
  ASSERT_TRUE(foreign.open);
  EXPECT_EQ(foreign.subprotocol, "");
}

// --- commands -------------------------------------------------------------------------

TEST_F(service_test, PingEchoesNumberAndStringIdsAndAnswersWithoutId) {
  start();
  rt_client& c = user_client("alice");
  c.ws->send_text(R"({"id":"abc","cmd":"ping"})");
  const json s = next(c);
  EXPECT_EQ(s.str("/id"), "abc") << s.text();
  EXPECT_EQ(s.raw("/result"), "{}");
  c.ws->send_text(R"({"cmd":"ping"})");
  const json n = next(c);
  EXPECT_FALSE(n.has("/id")) << n.text();
  EXPECT_EQ(n.raw("/result"), "{}");
  c.ws->send_text(R"({"id":12.5,"cmd":"ping"})");
  EXPECT_EQ(next(c).raw("/id"), "12.5");
}

TEST_F(service_test, SubscribePublishUnsubscribeRoundTrip) {
  start();
  rt_client& a = user_client("alice");
  const json sub = subscribe(a, "lobby");
  EXPECT_EQ(sub.str("/result/channel"), "lobby") << sub.text();
  const std::string epoch = sub.str("/result/epoch");
  EXPECT_FALSE(epoch.empty());
  EXPECT_EQ(sub.num("/result/offset"), 0);
  EXPECT_FALSE(sub.has("/result/recovered")) << "no since, no recovery fields";

  const json client_id = request(a, R"("cmd":"presence","channel":"lobby")");
  const json pub = publish(a, "lobby", R"({"text":"hi","n":[1,2.5,null,true]})");
  EXPECT_EQ(pub.str("/result/epoch"), epoch) << pub.text();
  EXPECT_EQ(pub.num("/result/offset"), 1);
  ASSERT_TRUE(run_until([&] { return !a.pushes("message", "lobby").empty(); }));
  const json push = a.pushes("message", "lobby")[0];
  EXPECT_EQ(push.str("/epoch"), epoch) << push.text();
  EXPECT_EQ(push.num("/offset"), 1);
  EXPECT_EQ(push.raw("/data"), R"({"text":"hi","n":[1,2.5,null,true]})");
  EXPECT_EQ(push.str("/client"), client_id.str("/result/clients/0/client"));
  EXPECT_EQ(push.str("/user"), "alice");
  EXPECT_FALSE(push.has("/id"));

  EXPECT_EQ(channel_command(a, "unsubscribe", "lobby").raw("/result"), "{}");
  // Subscribers-only publishing (the default namespace) now refuses.
  EXPECT_EQ(publish(a, "lobby", "2").error_code(), 403);
  // The channel kept its state (it has history): same epoch, same offset.
  const json again = subscribe(a, "lobby");
  EXPECT_EQ(again.str("/result/epoch"), epoch);
  EXPECT_EQ(again.num("/result/offset"), 1);
}

TEST_F(service_test, PublicationsCarryTheServersIdentityNotTheClients) {
  config_.allow_anonymous = true;
  start();
  rt_client& sub = user_client("alice");
  subscribe(sub, "chat:x");
  rt_client& anon = open_client();
  const json me = request(anon, R"("cmd":"connect")");
  const json pub = request(
      anon, R"("cmd":"publish","channel":"chat:x","data":"d","client":"forged","user":"mallory")");
  EXPECT_EQ(pub.num("/result/offset"), 1) << pub.text();
  ASSERT_TRUE(run_until([&] { return !sub.pushes("message", "chat:x").empty(); }));
  const json push = sub.pushes("message", "chat:x")[0];
  EXPECT_EQ(push.str("/client"), me.str("/result/client")) << push.text();
  EXPECT_FALSE(push.has("/user")) << "an anonymous publisher has no user";
}

TEST_F(service_test, RepliesComeInTheOrderOfTheCommands) {
  start();
  rt_client& c = user_client("alice");
  std::string batch;
  const std::string cmds[] = {R"("cmd":"ping")",
                              R"("cmd":"subscribe","channel":"chat:o")",
                              R"("cmd":"publish","channel":"chat:o","data":1)",
                              R"("cmd":"nope")",
                              R"("cmd":"history","channel":"chat:o")",
                              R"("cmd":"presence","channel":"chat:o")",
                              R"("cmd":"unsubscribe","channel":"chat:o")"};
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < std::size(cmds); ++i) {
      c.ws->send_text("{\"id\":" + std::to_string(round * 100 + static_cast<int>(i)) + "," +
                      cmds[i] + "}");
    }
  }
  std::vector<std::int64_t> ids;
  ASSERT_TRUE(run_until([&] {
    while (auto r = c.take([](const json& m) { return !m.has("/push"); })) {
      ids.push_back(r->num("/id"));
    }
    return ids.size() == 3 * std::size(cmds);
  }));
  std::vector<std::int64_t> expected;
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < std::size(cmds); ++i) {
      expected.push_back(round * 100 + static_cast<std::int64_t>(i));
    }
  }
  EXPECT_EQ(ids, expected);
}

TEST_F(service_test, PresenceListsSubscribersWithUserAndTokenInfo) {
  start();
  rt_client& a = user_client("alice", R"(,"info":{"name":"Alice"})");
  rt_client& b = user_client("bob");
  subscribe(a, "chat:p");
  subscribe(b, "chat:p");
  const json p = channel_command(b, "presence", "chat:p");
  EXPECT_EQ(p.str("/result/channel"), "chat:p") << p.text();
  ASSERT_EQ(p.size("/result/clients"), 2u) << p.text();
  std::string alice_name = "<none>", bob_info = "<none>";
  for (std::size_t i = 0; i < 2; ++i) {
    const std::string at = "/result/clients/" + std::to_string(i);
    EXPECT_TRUE(is_hex_id(p.str(at + "/client")));
    if (p.str(at + "/user") == "alice") alice_name = p.str(at + "/info/name");
    if (p.str(at + "/user") == "bob") bob_info = p.raw(at + "/info");
  }
  EXPECT_EQ(alice_name, "Alice");
  EXPECT_EQ(bob_info, "") << "no info claim, no info";
  // Presence needs no subscription; a channel nobody uses is empty.
  EXPECT_EQ(channel_command(a, "presence", "chat:empty").size("/result/clients"), 0u);
}

// --- errors -----------------------------------------------------------------------------

TEST_F(service_test, MalformedCommandsAre400) {
  start();
  rt_client& c = user_client("alice");
  const auto raw_error = [&](std::string_view text) {
    c.ws->send_text(text);
    const json r = next(c);
    EXPECT_FALSE(r.has("/result")) << text;
    return r.error_code();
  };
  EXPECT_EQ(raw_error("{nope"), 400);
  EXPECT_EQ(raw_error("[1,2]"), 400);
  EXPECT_EQ(raw_error("\"ping\""), 400);
  EXPECT_EQ(raw_error(R"({"id":[1],"cmd":"ping"})"), 400);
  EXPECT_EQ(raw_error(R"({"id":{"a":1},"cmd":"ping"})"), 400);
  EXPECT_EQ(raw_error(R"({"id":null,"cmd":"ping"})"), 400);
  EXPECT_EQ(request(c, R"("nocmd":1)").error_code(), 400);
  EXPECT_EQ(request(c, R"("cmd":7)").error_code(), 400);
  const json unknown = request(c, R"("cmd":"dance")");
  EXPECT_EQ(unknown.error_code(), 400);
  EXPECT_FALSE(unknown.str("/error/message").empty());
  EXPECT_EQ(request(c, R"("cmd":"subscribe")").error_code(), 400);
  EXPECT_EQ(request(c, R"("cmd":"subscribe","channel":5)").error_code(), 400);
  for (const std::string bad_since :
       {R"(,"since":"x")", R"(,"since":{"epoch":"e"})", R"(,"since":{"offset":1})",
        R"(,"since":{"epoch":1,"offset":1})", R"(,"since":{"epoch":"e","offset":-1})",
        R"(,"since":{"epoch":"e","offset":"1"})"}) {
    EXPECT_EQ(subscribe(c, "lobby", bad_since).error_code(), 400) << bad_since;
    EXPECT_EQ(channel_command(c, "history", "lobby", bad_since).error_code(), 400) << bad_since;
  }
  EXPECT_EQ(request(c, R"("cmd":"publish","channel":"chat:a")").error_code(), 400)
      << "publish without data";
  // Issue 14 (8): {"cmd":"ping","cmd":"publish"} used to run ping.
  const json dup = request(c, R"("cmd":"ping","cmd":"publish","channel":"chat:a","data":1)");
  EXPECT_EQ(dup.error_code(), 400);
  EXPECT_EQ(dup.str("/error/message"), "bad request: duplicate key: cmd");
  EXPECT_FALSE(c.ended) << "a 400 does not close the connection";
}

TEST_F(service_test, ChannelRulesAnswerTheirErrorCodes) {
  config_.max_publication_size = 512;
  config_.max_message_size = 4096;
  start();
  rt_client& c = user_client("alice");
  // 422: outside 1-128 bytes of A-Z a-z 0-9 _ - . @ = :
  for (const std::string& name :
       {std::string(), std::string("has space"), std::string(129, 'a'), std::string(":x"),
        std::string("caf\xC3\xA9"), std::string("a/b"), std::string("chat:a*")}) {
    for (const std::string cmd : {"subscribe", "unsubscribe", "publish", "presence", "history"}) {
      const std::string extra = cmd == "publish" ? R"(,"data":1)" : "";
      EXPECT_EQ(channel_command(c, cmd, name, extra).error_code(), 422) << cmd << " " << name;
    }
  }
  EXPECT_EQ(subscribe(c, std::string(128, 'a')).num("/result/offset"), 0) << "128 bytes is fine";
  EXPECT_EQ(subscribe(c, "chat:AZ-az_09.@=:x").num("/result/offset"), 0)
      << "every allowed character";
  // 404: a namespace the configuration does not declare.
  for (const std::string cmd : {"subscribe", "publish", "presence", "history"}) {
    const std::string extra = cmd == "publish" ? R"(,"data":1)" : "";
    EXPECT_EQ(channel_command(c, cmd, "nowhere:x", extra).error_code(), 404) << cmd;
  }
  // 404: unsubscribe from a channel this connection is not subscribed to.
  EXPECT_EQ(channel_command(c, "unsubscribe", "lobby").error_code(), 404);
  // 409: already subscribed.
  EXPECT_EQ(subscribe(c, "lobby").num("/result/offset"), 0);
  EXPECT_EQ(subscribe(c, "lobby").error_code(), 409);
  // 405: presence or history off in the namespace.
  EXPECT_EQ(channel_command(c, "presence", "bare:x").error_code(), 405);
  EXPECT_EQ(channel_command(c, "history", "bare:x").error_code(), 405);
  EXPECT_EQ(subscribe(c, "bare:x").num("/result/offset"), 0) << "bare channels still work";
  // 403: publish = none, even for a subscriber; publish = subscribers without subscribing.
  subscribe(c, "feed:news");
  EXPECT_EQ(publish(c, "feed:news", "1").error_code(), 403);
  EXPECT_EQ(publish(c, "lobby2", "1").error_code(), 403);
  // 413: data over max_publication_size (minified), within max_message_size.
  const std::string big = "\"" + std::string(600, 'x') + "\"";
  EXPECT_EQ(publish(c, "chat:big", big).error_code(), 413);
  EXPECT_EQ(publish(c, "chat:big", "\"" + std::string(400, 'x') + "\"").num("/result/offset"), 1);
  EXPECT_FALSE(c.ended);
}

TEST_F(service_test, TokenChannelsClaimDecidesWhichChannelsAreUsable) {
  start();
  rt_client& c = user_client("alice", R"(,"channels":["chat:*","lobby"])");
  EXPECT_EQ(subscribe(c, "chat:a").num("/result/offset"), 0);
  EXPECT_EQ(subscribe(c, "lobby").num("/result/offset"), 0);
  EXPECT_EQ(publish(c, "chat:b", "1").num("/result/offset"), 1);
  const json wrong = subscribe(c, "lobby2");
  EXPECT_EQ(wrong.error_code(), 403) << wrong.text();
  EXPECT_NE(wrong.str("/error/message").find("lobby2"), std::string::npos);
  EXPECT_EQ(subscribe(c, "short:x").error_code(), 403);
  EXPECT_EQ(publish(c, "short:x", "1").error_code(), 403);
  EXPECT_EQ(channel_command(c, "presence", "lobby3").error_code(), 403);
  EXPECT_EQ(channel_command(c, "history", "short:x").error_code(), 403);
  // An empty array grants nothing.
  rt_client& d = user_client("dave", R"(,"channels":[])");
  EXPECT_EQ(subscribe(d, "lobby").error_code(), 403);
}

TEST_F(service_test, SubscriptionLimitIs429) {
  config_.max_subscriptions = 2;
  start();
  rt_client& c = user_client("alice");
  EXPECT_EQ(subscribe(c, "chat:1").num("/result/offset"), 0);
  EXPECT_EQ(subscribe(c, "chat:2").num("/result/offset"), 0);
  EXPECT_EQ(subscribe(c, "chat:3").error_code(), 429);
  EXPECT_EQ(channel_command(c, "unsubscribe", "chat:1").raw("/result"), "{}");
  EXPECT_EQ(subscribe(c, "chat:3").num("/result/offset"), 0);
}

TEST_F(service_test, RateLimitAnswers429ThenCloses1008) {
  config_.command_rate = 1;
  config_.command_burst = 3;
  config_.rate_limit_close = 4;
  start();
  client_options o = v1_options();
  o.headers = {{"Authorization", "Bearer " + token("alice")}};
  rt_client& c = open_client(o);
  ASSERT_TRUE(c.open);
  for (int i = 1; i <= 12; ++i) {
    c.ws->send_text("{\"id\":" + std::to_string(i) + ",\"cmd\":\"ping\"}");
  }
  EXPECT_EQ(close_code(c), 1008);
  int results = 0, limited = 0;
  for (const json& m : c.seen) {
    if (m.has("/result")) ++results;
    if (m.error_code() == 429) ++limited;
  }
  // The burst passes (one more if a token was refilled meanwhile); then 429s
  // until rate_limit_close refusals in a row, the last of which closes.
  EXPECT_GE(results, 3);
  EXPECT_LE(results, 4);
  EXPECT_GE(limited, 1);
  EXPECT_LE(limited, 3);
  EXPECT_EQ(results + limited, static_cast<int>(c.seen.size()));
}

TEST_F(service_test, ABinaryMessageCloses1003) {
  start();
  rt_client& c = user_client("alice");
  c.ws->send_binary(R"({"id":1,"cmd":"ping"})");
  EXPECT_EQ(close_code(c), 1003);
}

TEST_F(service_test, AMessageOverMaxMessageSizeCloses1009) {
  config_.max_message_size = 1024;
  config_.max_publication_size = 512;
  start();
  rt_client& c = user_client("alice");
  c.ws->send_text(R"({"id":1,"cmd":"ping","pad":")" + std::string(1100, 'x') + "\"}");
  EXPECT_EQ(close_code(c), 1009);
}

// --- pushes ------------------------------------------------------------------------------

TEST_F(service_test, JoinAndLeavePushesReachTheChannel) {
  start();
  rt_client& a = user_client("alice");
  rt_client& b = user_client("bob", R"(,"info":{"name":"Bob"})");
  subscribe(a, "chat:j");
  // The new subscriber gets its own join too, after its reply.
  ASSERT_TRUE(run_until([&] { return a.pushes("join", "chat:j").size() == 1; }));
  EXPECT_EQ(a.pushes("join", "chat:j")[0].str("/info/user"), "alice");

  subscribe(b, "chat:j");
  ASSERT_TRUE(run_until([&] { return a.pushes("join", "chat:j").size() == 2; }));
  const json join = a.pushes("join", "chat:j")[1];
  EXPECT_EQ(join.str("/info/user"), "bob") << join.text();
  EXPECT_EQ(join.str("/info/info/name"), "Bob");
  EXPECT_TRUE(is_hex_id(join.str("/info/client")));
  ASSERT_TRUE(run_until([&] { return b.pushes("join", "chat:j").size() == 1; }));

  channel_command(b, "unsubscribe", "chat:j");
  ASSERT_TRUE(run_until([&] { return a.pushes("leave", "chat:j").size() == 1; }));
  const json leave = a.pushes("leave", "chat:j")[0];
  EXPECT_EQ(leave.raw("/info"), join.raw("/info")) << "leave shows what join showed";

  // The end of the connection (no close frame at all) is a leave too.
  subscribe(b, "chat:j");
  ASSERT_TRUE(run_until([&] { return a.pushes("join", "chat:j").size() == 3; }));
  b.ws->terminate();
  ASSERT_TRUE(run_until([&] { return a.pushes("leave", "chat:j").size() == 2; }));
  EXPECT_EQ(a.pushes("leave", "chat:j")[1].str("/info/user"), "bob");

  // No presence in the namespace: no join/leave pushes.
  rt_client& c = user_client("carol");
  subscribe(a, "bare:q");
  subscribe(c, "bare:q");
  c.ws->close();
  run_for(300ms);
  EXPECT_TRUE(a.pushes("join", "bare:q").empty());
  EXPECT_TRUE(a.pushes("leave", "bare:q").empty());
}

TEST_F(service_test, PresencePushesAreCoalescedAndCarryTheCount) {
  start();
  rt_client& a = user_client("alice");
  subscribe(a, "chat:k");
  ASSERT_TRUE(run_until([&] { return a.pushes("join", "chat:k").size() == 1; }));
  const json first = a.pushes("presence", "chat:k").at(0);
  EXPECT_EQ(first.num("/count"), 1) << first.text();
  EXPECT_EQ(first.size("/leaves"), 0u) << first.text();
  // Five clients join within one tick: one push lists them all.
  std::vector<rt_client*> others;
  for (int i = 0; i < 5; ++i) others.push_back(&user_client("u" + std::to_string(i)));
  for (rt_client* c : others) subscribe(*c, "chat:k");
  ASSERT_TRUE(run_until([&] { return a.pushes("join", "chat:k").size() == 6; }));
  run_for(500ms);  // what else would come
  const auto presence = a.pushes("presence", "chat:k");
  EXPECT_LE(presence.size(), 3u) << "5 joins in fewer pushes than joins (one per tick)";
  EXPECT_EQ(presence.back().num("/count"), 6) << presence.back().text();
  EXPECT_EQ(a.pushes("join", "chat:k").size(), 6u) << "each join once";
}

TEST_F(service_test, PresenceOverMaxMembersReportsCountsOnlyAndRepliesPage) {
  config_.namespaces.at("chat").presence_max_members = 3;
  start();
  rt_client& a = user_client("alice");
  subscribe(a, "chat:crowd");
  std::vector<rt_client*> others;
  for (int i = 0; i < 2; ++i) others.push_back(&user_client("m" + std::to_string(i)));
  for (rt_client* c : others) subscribe(*c, "chat:crowd");
  ASSERT_TRUE(run_until([&] { return a.pushes("join", "chat:crowd").size() == 3; }));
  // At the maximum: listed, and pages by client id with a cursor.
  json p = request(a, R"("cmd":"presence","channel":"chat:crowd","limit":2)");
  EXPECT_EQ(p.num("/result/count"), 3) << p.text();
  ASSERT_EQ(p.size("/result/clients"), 2u) << p.text();
  const std::string cursor = p.str("/result/cursor");
  EXPECT_EQ(cursor, p.str("/result/clients/1/client")) << p.text();
  p = request(a, R"("cmd":"presence","channel":"chat:crowd","limit":2,"cursor":")" + cursor +
                     "\"");
  ASSERT_EQ(p.size("/result/clients"), 1u) << p.text();
  EXPECT_GT(p.str("/result/clients/0/client"), cursor);
  EXPECT_FALSE(p.has("/result/cursor")) << "the last page has no cursor: " << p.text();
  EXPECT_EQ(request(a, R"("cmd":"presence","channel":"chat:crowd","cursor":5)").error_code(), 400);

  // One more: counts only, in the reply and in the pushes.
  rt_client& d = user_client("dave");
  subscribe(d, "chat:crowd");
  ASSERT_TRUE(run_until([&] {
    const auto ps = a.pushes("presence", "chat:crowd");
    return !ps.empty() && ps.back().num("/count") == 4;
  }));
  const json counted = a.pushes("presence", "chat:crowd").back();
  EXPECT_FALSE(counted.has("/joins")) << counted.text();
  EXPECT_FALSE(counted.has("/leaves")) << counted.text();
  EXPECT_EQ(a.pushes("join", "chat:crowd").size(), 3u) << "dave's join is not listed";
  p = request(a, R"("cmd":"presence","channel":"chat:crowd")");
  EXPECT_EQ(p.num("/result/count"), 4) << p.text();
  EXPECT_FALSE(p.has("/result/clients")) << p.text();

  // Back under the maximum: a push with joins and leaves again (clients reload the list).
  d.ws->close();
  ASSERT_TRUE(run_until([&] {
    const auto ps = a.pushes("presence", "chat:crowd");
    return ps.back().num("/count") == 3 && ps.back().has("/leaves");
  }, 5s));
  EXPECT_EQ(request(a, R"("cmd":"presence","channel":"chat:crowd")").size("/result/clients"), 3u);
}

// The subscribe reply comes before any live push of the channel, and pushes
// continue from its offset without gaps or duplicates, even while another
// loop is publishing (two loops, several subscribers so both are used).
TEST_F(service_test, SubscribeReplyComesBeforeLivePushesWithoutGapsOrDuplicates) {
  config_.threads = 2;
  config_.command_rate = 100'000;  // the publisher goes as fast as it can
  config_.command_burst = 1000;
  start();
  constexpr int k_publications = 300;
  constexpr int k_in_flight = 8;
  rt_client& publisher = user_client("pub");
  std::vector<rt_client*> subscribers;
  for (int i = 0; i < 6; ++i) {
    subscribers.push_back(&user_client(std::string("sub").append(std::to_string(i))));
  }
  // The publisher keeps a few publications in flight all along, so the
  // subscribes below land while publications are being handled.
  int sent = 0;
  const auto replies = [&] { return static_cast<int>(publisher.seen.size()) - 1; };
  const auto top_up = loop_->add_iteration_hook([&] {
    while (sent < k_publications && sent - replies() < k_in_flight) {
      ++sent;
      publisher.ws->send_text("{\"id\":" + std::to_string(1000 + sent) +
                              R"(,"cmd":"publish","channel":"chat:race","data":)" +
                              std::to_string(sent) + "}");
    }
  });
  const bool started = run_until([&] { return replies() >= 100; });
  if (!started) loop_->remove_iteration_hook(top_up);
  ASSERT_TRUE(started);
  for (rt_client* s : subscribers) {
    s->ws->send_text(R"({"id":"race","cmd":"subscribe","channel":"chat:race"})");
  }
  const auto last_offset = [](const rt_client& s) {
    std::int64_t last = -1;
    for (const json& m : s.seen) {
      if (m.str("/id") == "race") last = std::max(last, m.num("/result/offset"));
      if (m.str("/push") == "message") last = std::max(last, m.num("/offset"));
    }
    return last;
  };
  const bool done = run_until(
      [&] {
        if (replies() < k_publications) return false;
        for (rt_client* s : subscribers) {
          if (last_offset(*s) != k_publications) return false;
        }
        return true;
      },
      20s);
  loop_->remove_iteration_hook(top_up);
  const auto progress = [&] {
    std::string out = std::to_string(replies()) + " replies; subscribers at";
    for (rt_client* s : subscribers) out += " " + std::to_string(last_offset(*s));
    return out;
  };
  ASSERT_TRUE(done) << progress();
  for (rt_client* s : subscribers) {
    std::int64_t reply_offset = -1;
    std::vector<std::int64_t> pushed;
    for (const json& m : s->seen) {
      if (m.str("/id") == "race") {
        EXPECT_TRUE(pushed.empty()) << "a push came before the subscribe reply";
        reply_offset = m.num("/result/offset");
      } else if (m.str("/push") == "message") {
        EXPECT_GE(reply_offset, 0) << "a push came before the subscribe reply";
        pushed.push_back(m.num("/offset"));
        EXPECT_EQ(m.raw("/data"), std::to_string(m.num("/offset")));
      }
    }
    EXPECT_EQ(pushed, range(reply_offset + 1, k_publications));
    EXPECT_LT(reply_offset, k_publications) << "subscribed while publications were going on";
  }
}

// --- history and recovery ----------------------------------------------------------------

TEST_F(service_test, ResubscribingWithSinceRecoversTheMissedPublications) {
  start();
  rt_client& publisher = user_client("pub");
  rt_client& s = user_client("sub");
  const json first = subscribe(s, "chat:rec");
  const std::string epoch = first.str("/result/epoch");
  publish(publisher, "chat:rec", R"({"n":1})");
  publish(publisher, "chat:rec", R"({"n":2})");
  ASSERT_TRUE(run_until([&] { return s.pushed_offsets("chat:rec").size() == 2; }));
  s.ws->terminate();  // the network goes away
  for (int n = 3; n <= 5; ++n) publish(publisher, "chat:rec", "{\"n\":" + std::to_string(n) + "}");

  rt_client& back = user_client("sub");
  const json r = subscribe(back, "chat:rec", since(epoch, 2));
  EXPECT_EQ(r.str("/result/epoch"), epoch) << r.text();
  EXPECT_EQ(r.num("/result/offset"), 5);
  EXPECT_EQ(r.raw("/result/recovered"), "true");
  EXPECT_FALSE(r.has("/result/reason"));
  EXPECT_EQ(offsets(r, "/result/publications"), range(3, 5));
  EXPECT_EQ(r.raw("/result/publications/0/data"), R"({"n":3})");
  EXPECT_EQ(r.str("/result/publications/0/user"), "pub");
  EXPECT_TRUE(is_hex_id(r.str("/result/publications/0/client")));
  // Live pushes continue from the next offset: no duplicates, no gaps.
  publish(publisher, "chat:rec", R"({"n":6})");
  ASSERT_TRUE(run_until([&] { return !back.pushed_offsets("chat:rec").empty(); }));
  run_for(100ms);
  EXPECT_EQ(back.pushed_offsets("chat:rec"), std::vector<std::int64_t>{6});
  // Nothing missed: an empty, successful recovery.
  rt_client& up_to_date = user_client("sub2");
  const json none = subscribe(up_to_date, "chat:rec", since(epoch, 6));
  EXPECT_EQ(none.raw("/result/recovered"), "true") << none.text();
  EXPECT_EQ(none.size("/result/publications"), 0u);
}

TEST_F(service_test, RecoveryIsRefusedForAnotherEpochOrWhenTooFarBehind) {
  start();
  rt_client& c = user_client("alice");
  const json p = publish(c, "short:a", "1");
  const std::string epoch = p.str("/result/epoch");
  for (int i = 2; i <= 6; ++i) publish(c, "short:a", std::to_string(i));  // keeps 4, 5, 6

  rt_client& d = user_client("bob");
  const json wrong = subscribe(d, "short:a", since("0123456789abcdef", 5));
  EXPECT_EQ(wrong.raw("/result/recovered"), "false") << wrong.text();
  EXPECT_EQ(wrong.str("/result/reason"), "epoch changed");
  EXPECT_EQ(wrong.size("/result/publications"), 0u);
  EXPECT_EQ(wrong.str("/result/epoch"), epoch);
  EXPECT_EQ(wrong.num("/result/offset"), 6);
  channel_command(d, "unsubscribe", "short:a");

  const json behind = subscribe(d, "short:a", since(epoch, 1));
  EXPECT_EQ(behind.raw("/result/recovered"), "false") << behind.text();
  EXPECT_EQ(behind.str("/result/reason"), "too far behind");
  EXPECT_EQ(behind.size("/result/publications"), 0u);
  channel_command(d, "unsubscribe", "short:a");

  // Exactly the oldest kept one missing is still recoverable.
  const json just = subscribe(d, "short:a", since(epoch, 3));
  EXPECT_EQ(just.raw("/result/recovered"), "true") << just.text();
  EXPECT_EQ(offsets(just, "/result/publications"), range(4, 6));
}

TEST_F(service_test, HistoryReturnsTheLastPublicationsWithLimitAndSince) {
  start();
  rt_client& c = user_client("alice");
  std::string epoch;
  for (int i = 1; i <= 5; ++i) {
    epoch = publish(c, "chat:h", "{\"i\":" + std::to_string(i) + "}").str("/result/epoch");
  }
  const json all = channel_command(c, "history", "chat:h");
  EXPECT_EQ(all.str("/result/channel"), "chat:h") << all.text();
  EXPECT_EQ(all.str("/result/epoch"), epoch);
  EXPECT_EQ(all.num("/result/offset"), 5);
  EXPECT_EQ(offsets(all, "/result/publications"), range(1, 5));
  EXPECT_EQ(all.raw("/result/publications/4/data"), R"({"i":5})");
  EXPECT_EQ(all.str("/result/publications/4/user"), "alice");

  const json last2 = channel_command(c, "history", "chat:h", R"(,"limit":2)");
  EXPECT_EQ(offsets(last2, "/result/publications"), range(4, 5)) << last2.text();
  const json after3 = channel_command(c, "history", "chat:h", since(epoch, 3));
  EXPECT_EQ(offsets(after3, "/result/publications"), range(4, 5)) << after3.text();
  EXPECT_EQ(after3.raw("/result/recovered"), "true");
  const json other = channel_command(c, "history", "chat:h", since("feedfacefeedface", 3));
  EXPECT_EQ(other.raw("/result/recovered"), "false") << other.text();
  EXPECT_EQ(other.str("/result/reason"), "epoch changed");
  // Unlike subscribe, history then lists the publications it has (up to limit).
  EXPECT_EQ(offsets(other, "/result/publications"), range(1, 5)) << other.text();
  const json other2 =
      channel_command(c, "history", "chat:h", since("feedfacefeedface", 3) + R"(,"limit":2)");
  EXPECT_EQ(offsets(other2, "/result/publications"), range(4, 5)) << other2.text();

  // The limit cannot exceed history_size (3 in "short"), and "short" keeps 3.
  for (int i = 1; i <= 5; ++i) publish(c, "short:h", std::to_string(i));
  const json capped = channel_command(c, "history", "short:h", R"(,"limit":50)");
  EXPECT_EQ(offsets(capped, "/result/publications"), range(3, 5)) << capped.text();
  // A channel without publications has an empty history.
  const json empty = channel_command(c, "history", "chat:never");
  EXPECT_EQ(empty.num("/result/offset"), 0) << empty.text();
  EXPECT_EQ(empty.size("/result/publications"), 0u);
}

TEST_F(service_test, HistoryExpiresAfterTheTtl) {
  start();  // "ttl" keeps publications for 0.5 s
  rt_client& keeper = user_client("keeper");
  const std::string epoch = subscribe(keeper, "ttl:a").str("/result/epoch");
  publish(keeper, "ttl:a", "1");
  publish(keeper, "ttl:a", "2");
  EXPECT_EQ(offsets(channel_command(keeper, "history", "ttl:a"), "/result/publications"),
            range(1, 2));
  run_for(900ms);
  const json expired = channel_command(keeper, "history", "ttl:a");
  EXPECT_EQ(expired.size("/result/publications"), 0u) << expired.text();
  EXPECT_EQ(expired.num("/result/offset"), 2) << "offsets go on while the channel has state";
  const json late = channel_command(keeper, "history", "ttl:a", since(epoch, 0));
  EXPECT_EQ(late.raw("/result/recovered"), "false") << late.text();
  EXPECT_EQ(late.str("/result/reason"), "too far behind");

  // Without subscribers or history the channel's state goes: a new epoch.
  rt_client& other = user_client("other");
  const std::string old_epoch = publish(other, "ttl:b", "1").str("/result/epoch");
  run_for(900ms);
  const json fresh = channel_command(other, "history", "ttl:b", since(old_epoch, 1));
  EXPECT_NE(fresh.str("/result/epoch"), old_epoch) << fresh.text();
  EXPECT_EQ(fresh.raw("/result/recovered"), "false");
  EXPECT_EQ(fresh.str("/result/reason"), "epoch changed");
}

TEST_F(service_test, SnapshotKeepsEpochsAndHistoryAcrossARestart) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("switchboard-service-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "snapshot.json";
  std::filesystem::remove(file);
  config_.snapshot_file = file.string();
  start();
  std::string epoch;
  {
    rt_client& c = user_client("alice");
    for (int i = 1; i <= 3; ++i) {
      epoch = publish(c, "chat:keep", "{\"i\":" + std::to_string(i) + "}").str("/result/epoch");
    }
  }
  clients_.clear();
  EXPECT_FALSE(server_->stop());
  EXPECT_TRUE(server_->logged("saved")) << "shutdown says where it saved";
  ASSERT_TRUE(std::filesystem::exists(file));

  start();  // a new service reading the same file
  rt_client& c = user_client("bob");
  const json r = subscribe(c, "chat:keep", since(epoch, 1));
  EXPECT_EQ(r.str("/result/epoch"), epoch) << r.text();
  EXPECT_EQ(r.num("/result/offset"), 3);
  EXPECT_EQ(r.raw("/result/recovered"), "true");
  EXPECT_EQ(offsets(r, "/result/publications"), range(2, 3));
  EXPECT_EQ(r.raw("/result/publications/1/data"), R"({"i":3})");
  EXPECT_EQ(r.str("/result/publications/1/user"), "alice");
  EXPECT_EQ(publish(c, "chat:keep", "4").num("/result/offset"), 4) << "offsets continue";

  clients_.clear();
  server_.reset();
  std::filesystem::remove_all(dir);
}

// --- shutdown and configuration --------------------------------------------------------------

TEST_F(service_test, ShutdownClosesEveryConnectionWith1012) {
  start();
  std::vector<rt_client*> all;
  for (int i = 0; i < 5; ++i) {
    all.push_back(&user_client(std::string("u").append(std::to_string(i))));
    subscribe(*all.back(), "chat:bye");
  }
  std::thread stopper([this] { server_->stop(); });
  const bool closed = run_until(
      [&] {
        for (rt_client* c : all) {
          if (!c->ended) return false;
        }
        return true;
      },
      5s);
  stopper.join();
  ASSERT_TRUE(closed);
  for (rt_client* c : all) {
    ASSERT_TRUE(c->close);
    EXPECT_EQ(c->close->first, 1012);
  }
}

TEST_F(service_test, ListenRefusesABadConfiguration) {
  const auto refused = [](realtime_config c, std::string_view part) {
    service svc(std::move(c));
    EXPECT_TRUE(svc.listen()) << part;
    EXPECT_NE(svc.error_message().find(part), std::string::npos)
        << "error \"" << svc.error_message() << "\" should mention " << part;
  };
  realtime_config nobody = base_config();
  nobody.jwt_secret.clear();
  refused(nobody, "jwt_secret");
  realtime_config bad_namespace = base_config();
  bad_namespace.namespaces["no spaces"] = namespace_options{};
  refused(bad_namespace, "no spaces");
  realtime_config sizes = base_config();
  sizes.max_message_size = 100;
  sizes.max_publication_size = 200;
  refused(sizes, "max_publication_size");
  realtime_config half_tls = base_config();
  half_tls.tls_cert = "/nonexistent/cert.pem";
  refused(half_tls, "tls_key");
  realtime_config bad_host = base_config();
  bad_host.host = "not-an-address";
  refused(bad_host, "not-an-address");

  const auto dir = std::filesystem::temp_directory_path() /
                   ("switchboard-service-test-bad-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "snapshot.json";
  std::ofstream(file) << "this is not json\n";
  realtime_config bad_snapshot = base_config();
  bad_snapshot.snapshot_file = file.string();
  refused(bad_snapshot, file.string() + ":1");
  std::filesystem::remove_all(dir);

  // A port in use.
  realtime_config taken = base_config();
  service first(base_config());
  ASSERT_FALSE(first.listen());
  taken.port = first.port();
  refused(taken, std::to_string(first.port()));
}

}  // namespace
}  // namespace switchboard::realtime::test
