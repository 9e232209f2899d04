// client_test.cpp — realtime::client against realtime::service in-process on
// 127.0.0.1 (port 0; public API of both only): connect with a token or a
// token callback, subscribe/publish/presence/history round trips, the errors
// a request can end with, authentication failure, reconnect and recovery
// after a dropped connection and after a server restart (snapshot file, and
// without one: "epoch changed"), and the recovery-under-churn property:
// subscribers cut at random while publications are made each end with every
// publication exactly once, in order. The round trips, the churn property
// and a restart are run against the `switchboard serve` binary too.
//
// Every client here runs on its own thread (the constructor without a loop);
// a recorder collects its events under a mutex and the test waits on them
// with a deadline. Tokens are HS256 JWTs signed here with OpenSSL.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <switchboard/realtime/client.hpp>
#include <switchboard/realtime/config.hpp>
#include <switchboard/realtime/service.hpp>
#include <switchboard/server/server.hpp>
#include <thread>
#include <vector>

namespace switchboard::realtime::test {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view k_secret = "client-test-secret-of-at-least-32-bytes";

// --- tokens ----------------------------------------------------------------------

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

// An HS256 token for `user`; `extra` is appended to the claims.
std::string token(std::string_view user, std::string_view extra = {},
                  std::string_view secret = k_secret) {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const std::string claims = "{\"sub\":\"" + std::string(user) +
                             "\",\"exp\":" + std::to_string(now + 3600) + std::string(extra) + "}";
  const std::string input = base64url(R"({"alg":"HS256","typ":"JWT"})") + "." + base64url(claims);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &size);
  return input + "." + base64url(std::string_view(reinterpret_cast<const char*>(mac), size));
}

// --- the service on its own thread -------------------------------------------------

realtime_config base_config() {
  realtime_config c;
  c.host = "127.0.0.1";
  c.port = 0;
  c.demo = false;
  c.jwt_secret = std::string(k_secret);
  c.shutdown_timeout = 1;
  // The churn test publishes fast from one connection.
  c.command_rate = 100000;
  c.command_burst = 100000;
  c.namespaces = {
      {"default", namespace_options{}},
      {"chat",
       namespace_options{.history_size = 2000, .history_ttl = 0, .publish = publish_policy::any}},
      {"bare", namespace_options{.history_size = 0, .presence = false}},
      {"secret", namespace_options{}},
  };
  return c;
}

class running_service {
 public:
  explicit running_service(realtime_config config) : service_(std::move(config)) {
    listen_error_ = service_.listen();
    if (!listen_error_) thread_ = std::thread([this] { (void)service_.run(); });
  }
  ~running_service() { stop(); }
  void stop() {
    if (!thread_.joinable()) return;
    service_.shutdown();
    thread_.join();
  }
  std::error_code listen_error() const { return listen_error_; }
  std::uint16_t port() const { return service_.port(); }
  std::string url() const { return "ws://127.0.0.1:" + std::to_string(port()) + "/ws"; }

 private:
  service service_;
  std::error_code listen_error_;
  std::thread thread_;
};

// --- a client and what it saw ----------------------------------------------------------

class recorder {
 public:
  client_handlers handlers() {
    client_handlers h;
    h.on_state = [this](const state_event& e) { add([&] { states.push_back(e); }); };
    h.on_message = [this](const publication& p) { add([&] { messages.push_back(p); }); };
    h.on_presence = [this](const presence_event& e) { add([&] { presence.push_back(e); }); };
    h.on_subscribed = [this](const subscribe_result& r) { add([&] { subscribed.push_back(r); }); };
    h.on_error = [this](const error_event& e) { add([&] { errors.push_back(e); }); };
    return h;
  }

  // Waits until `done` holds (under the lock) or `limit` passes.
  bool wait(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, limit, done);
  }
  bool wait_state(connection_state s, std::chrono::milliseconds limit = 5s) {
    return wait([&] { return !states.empty() && states.back().state == s; }, limit);
  }
  bool wait_messages(std::size_t n, std::chrono::milliseconds limit = 5s) {
    return wait([&] { return messages.size() >= n; }, limit);
  }
  std::vector<std::uint64_t> offsets() {
    std::lock_guard lock(mutex);
    std::vector<std::uint64_t> out;
    for (const auto& m : messages) out.push_back(m.offset);
    return out;
  }
  template <class T>
  T locked(const std::function<T()>& read) {
    std::lock_guard lock(mutex);
    return read();
  }

  std::mutex mutex;
  std::condition_variable changed;
  std::vector<state_event> states;
  std::vector<publication> messages;
  std::vector<presence_event> presence;
  std::vector<subscribe_result> subscribed;
  std::vector<error_event> errors;

 private:
  template <class Fn>
  void add(Fn fn) {
    {
      std::lock_guard lock(mutex);
      fn();
    }
    changed.notify_all();
  }
};

std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t i = first; i <= last; ++i) out.push_back(i);
  return out;
}

// A completion callback and the future of its result.
template <class Result>
struct completion {
  std::shared_ptr<std::promise<Result>> promise = std::make_shared<std::promise<Result>>();
  std::future<Result> future = promise->get_future();
  std::function<void(const Result&)> callback() {
    return [p = promise](const Result& r) { p->set_value(r); };
  }
  Result get() {
    if (future.wait_for(5s) != std::future_status::ready) {
      ADD_FAILURE() << "no completion within 5 s";
      return Result{};
    }
    return future.get();
  }
};

class client_test : public ::testing::Test {
 protected:
  void start(realtime_config config = base_config()) {
    server_.reset();
    server_ = std::make_unique<running_service>(std::move(config));
    ASSERT_FALSE(server_->listen_error());
  }

  client_options options(std::string_view user) {
    client_options o;
    o.url = server_->url();
    o.token = token(user);
    o.backoff_base = 20ms;
    o.backoff_cap = 200ms;
    return o;
  }

  // A started client with its recorder, connected (checked). The recorder
  // comes first so that it outlives the client (pair members die in reverse).
  std::pair<std::unique_ptr<recorder>, std::unique_ptr<client>> connected(client_options o) {
    auto r = std::make_unique<recorder>();
    auto c = std::make_unique<client>(std::move(o), r->handlers());
    EXPECT_FALSE(c->connect());
    EXPECT_TRUE(r->wait_state(connection_state::connected));
    return {std::move(r), std::move(c)};
  }

  static subscribe_result subscribe(client& c, std::string channel, subscribe_options o = {}) {
    completion<subscribe_result> done;
    c.subscribe(std::move(channel), std::move(o), done.callback());
    return done.get();
  }
  static publish_result publish(client& c, std::string channel, std::string data) {
    completion<publish_result> done;
    c.publish(std::move(channel), std::move(data), done.callback());
    return done.get();
  }

  std::unique_ptr<running_service> server_;
};

// --- connecting -----------------------------------------------------------------------

TEST_F(client_test, connect_reports_connecting_then_connected_with_the_user) {
  start();
  auto r_c = connected(options("alice"));
  auto& r = r_c.first;
  auto& c = r_c.second;
  r->locked<bool>([&] {
    EXPECT_EQ(r->states.front().state, connection_state::connecting);
    EXPECT_EQ(r->states.front().attempt, 1u);
    EXPECT_EQ(r->states.back().user, "alice");
    EXPECT_EQ(r->states.back().client_id.size(), 16u);
    return true;
  });
  EXPECT_EQ(c->state(), connection_state::connected);

  c->close();
  ASSERT_TRUE(r->wait_state(connection_state::disconnected));
  r->locked<bool>([&] {
    EXPECT_EQ(r->states.back().code, 1000);
    EXPECT_FALSE(r->states.back().will_reconnect);
    return true;
  });
  // Closed: requests are refused at once, not queued.
  const publish_result p = publish(*c, "chat:a", "1");
  ASSERT_TRUE(p.error);
  EXPECT_EQ(p.error->code, k_error_not_sent);
}

TEST_F(client_test, runs_on_an_event_loop_the_application_runs) {
  start();
  std::error_code error;
  auto loop = net::event_loop::create(error);
  ASSERT_TRUE(loop) << error.message();
  recorder r;
  auto c = std::make_unique<client>(*loop, options("alice"), r.handlers());
  // Calls before the loop runs are queued to it; they run once it does.
  ASSERT_FALSE(c->connect());
  completion<subscribe_result> s;
  c->subscribe("chat:own", {}, s.callback());
  completion<publish_result> p;
  c->publish("chat:own", "1", p.callback());
  std::thread runner([&] { (void)loop->run(); });
  EXPECT_FALSE(s.get().error);
  EXPECT_EQ(p.get().offset, 1u);
  EXPECT_TRUE(r.wait_messages(1));
  // Callbacks ran on the loop's thread.
  c->close();
  EXPECT_TRUE(r.wait_state(connection_state::disconnected));
  loop->stop();
  runner.join();
  c.reset();  // the loop is not running: allowed from any thread
}

TEST_F(client_test, close_right_after_connect_ends_cleanly) {
  start();
  for (int i = 0; i < 20; ++i) {
    recorder r;
    client c(options("alice"), r.handlers());
    ASSERT_FALSE(c.connect());
    if (i % 2) std::this_thread::sleep_for(std::chrono::microseconds(200 * i));
    c.close();
    ASSERT_TRUE(r.wait_state(connection_state::disconnected));
    std::this_thread::sleep_for(20ms);  // nothing may follow
    r.locked<bool>([&] {
      EXPECT_EQ(r.states.back().state, connection_state::disconnected);
      EXPECT_EQ(r.states.back().code, 1000) << r.states.back().reason;
      EXPECT_EQ(r.states.back().reason, "client closed");
      EXPECT_FALSE(r.states.back().will_reconnect);
      EXPECT_TRUE(r.errors.empty());
      return true;
    });
  }
}

TEST_F(client_test, a_bad_url_is_refused_by_connect) {
  client_options o;
  o.url = "http://127.0.0.1:1/ws";
  client c(o, {});
  EXPECT_EQ(c.connect(), ::switchboard::client::client_error::unsupported_scheme);
  o.url = "wss://127.0.0.1:1/ws";  // no TLS context given
  client s(o, {});
  EXPECT_EQ(s.connect(), ::switchboard::client::client_error::tls_not_supported);
}

TEST_F(client_test, a_bad_token_stops_the_client_with_an_auth_error) {
  start();
  client_options o = options("mallory");
  o.token = token("mallory", {}, "not-the-secret");
  recorder r;
  client c(o, r.handlers());
  ASSERT_FALSE(c.connect());
  ASSERT_TRUE(r.wait([&] { return !r.errors.empty(); }));
  ASSERT_TRUE(r.wait_state(connection_state::disconnected));
  std::this_thread::sleep_for(300ms);  // longer than the backoff cap: no retry comes
  r.locked<bool>([&] {
    EXPECT_EQ(r.errors[0].error.code, k_error_auth);
    EXPECT_NE(r.errors[0].error.message.find("bad signature"), std::string::npos)
        << r.errors[0].error.message;
    EXPECT_EQ(r.states.back().code, 4001);
    EXPECT_FALSE(r.states.back().will_reconnect);
    std::size_t attempts = 0;
    for (const auto& s : r.states) attempts += s.state == connection_state::connecting;
    EXPECT_EQ(attempts, 1u);
    return true;
  });
}

TEST_F(client_test, the_token_callback_runs_before_every_attempt) {
  start();
  std::atomic<int> calls{0};
  client_options o = options("unused");
  o.token.clear();
  o.token_provider = [&calls] { return token("user" + std::to_string(calls.fetch_add(1) + 1)); };
  auto r_c = connected(std::move(o));
  auto& r = r_c.first;
  auto& c = r_c.second;
  EXPECT_EQ(r->locked<std::string>([&] { return r->states.back().user; }), "user1");
  c->reconnect();
  ASSERT_TRUE(r->wait([&] {
    return r->states.back().state == connection_state::connected &&
           r->states.back().user == "user2";
  }));
  EXPECT_EQ(calls.load(), 2);
}

TEST_F(client_test, a_server_that_does_not_answer_is_given_up_after_the_connect_timeout) {
  // A listening socket nobody accepts on: TCP connects, the upgrade never answers.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 8), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  client_options o;
  o.url = "ws://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/ws";
  o.connect_timeout = 300ms;
  o.max_attempts = 2;
  o.backoff_base = 10ms;
  recorder r;
  client c(o, r.handlers());
  ASSERT_FALSE(c.connect());
  // on_error, then the final disconnected state (client.hpp): wait for both.
  ASSERT_TRUE(r.wait([&] {
    return !r.errors.empty() && !r.states.empty() &&
           r.states.back().state == connection_state::disconnected &&
           !r.states.back().will_reconnect;
  }));
  r.locked<bool>([&] {
    EXPECT_NE(r.errors[0].error.message.find("gave up after 2"), std::string::npos)
        << r.errors[0].error.message;
    EXPECT_EQ(r.states.back().reason, "connect timeout");
    EXPECT_FALSE(r.states.back().will_reconnect);
    std::size_t attempts = 0;
    for (const auto& s : r.states) attempts += s.state == connection_state::connecting;
    EXPECT_EQ(attempts, 2u);
    return true;
  });
  ::close(fd);
}

// --- requests ---------------------------------------------------------------------------

TEST_F(client_test, subscribe_and_publish_round_trip) {
  start();
  auto rs_sub = connected(options("alice"));
  auto& rs = rs_sub.first;
  auto& sub = rs_sub.second;
  auto rp_pub = connected(options("bob"));
  auto& pub = rp_pub.second;
  const subscribe_result s = subscribe(*sub, "chat:room");
  ASSERT_FALSE(s.error) << s.error->message;
  EXPECT_EQ(s.offset, 0u);
  EXPECT_FALSE(s.resumed);

  const publish_result p = publish(*pub, "chat:room", R"({ "text" : "hi" })");
  ASSERT_FALSE(p.error) << p.error->message;
  EXPECT_EQ(p.offset, 1u);
  EXPECT_EQ(p.epoch, s.epoch);
  ASSERT_TRUE(rs->wait_messages(1));
  const publication m = rs->locked<publication>([&] { return rs->messages[0]; });
  EXPECT_EQ(m.channel, "chat:room");
  EXPECT_EQ(m.offset, 1u);
  EXPECT_EQ(m.epoch, s.epoch);
  EXPECT_EQ(m.data, R"({"text":"hi"})");
  EXPECT_EQ(m.user, "bob");
  EXPECT_EQ(m.client.size(), 16u);

  // Every JSON value may be published; text that is not JSON is never sent.
  EXPECT_FALSE(publish(*pub, "chat:room", "\"a string\"").error);
  EXPECT_FALSE(publish(*pub, "chat:room", "42").error);
  const publish_result bad = publish(*pub, "chat:room", "not json");
  ASSERT_TRUE(bad.error);
  EXPECT_EQ(bad.error->code, k_error_bad_json);
  ASSERT_TRUE(rs->wait_messages(3));
  EXPECT_EQ(rs->offsets(), range(1, 3));
  EXPECT_EQ(rs->locked<std::string>([&] { return rs->messages[1].data; }), "\"a string\"");
}

// Compact pushes (the default) and full ones (compact_pushes = false) on one
// channel: both subscribers see the same publications, epoch included, and
// history reads the same in either form.
TEST_F(client_test, compact_and_full_subscribers_see_the_same_publications) {
  start();
  auto rc_sub = connected(options("alice"));
  client_options full_options = options("carol");
  full_options.compact_pushes = false;
  auto rf_sub = connected(full_options);
  auto rp_pub = connected(options("bob"));
  auto& pub = rp_pub.second;
  const subscribe_result sc = subscribe(*rc_sub.second, "chat:forms");
  const subscribe_result sf = subscribe(*rf_sub.second, "chat:forms");
  ASSERT_FALSE(sc.error);
  ASSERT_FALSE(sf.error);
  for (const char* data : {R"({"n":1})", "null", "\"s\""})
    ASSERT_FALSE(publish(*pub, "chat:forms", data).error);
  ASSERT_TRUE(rc_sub.first->wait_messages(3));
  ASSERT_TRUE(rf_sub.first->wait_messages(3));
  const auto both = [&](recorder& r) {
    return r.locked<std::vector<std::string>>([&] {
      std::vector<std::string> out;
      for (const auto& m : r.messages) {
        out.push_back(m.channel + "|" + m.epoch + "|" + std::to_string(m.offset) + "|" + m.data +
                      "|" + m.client + "|" + m.user);
      }
      return out;
    });
  };
  EXPECT_EQ(both(*rc_sub.first), both(*rf_sub.first));
  EXPECT_EQ(rc_sub.first->locked<std::string>([&] { return rc_sub.first->messages[0].epoch; }),
            sc.epoch);
  EXPECT_EQ(rc_sub.first->locked<std::string>([&] { return rc_sub.first->messages[1].data; }),
            "null");
  for (auto* c : {rc_sub.second.get(), rf_sub.second.get()}) {
    completion<history_result> h;
    c->history("chat:forms", history_options{.limit = 2, .since = std::nullopt}, h.callback());
    const history_result r = h.get();
    ASSERT_FALSE(r.error);
    ASSERT_EQ(r.publications.size(), 2u);
    EXPECT_EQ(r.publications[0].offset, 2u);
    EXPECT_EQ(r.publications[1].data, "\"s\"");
    EXPECT_EQ(r.publications[1].user, "bob");
    EXPECT_EQ(r.publications[1].client.size(), 16u);
  }
}

TEST_F(client_test, server_errors_complete_the_request_with_their_code) {
  start();
  client_options o = options("carol");
  o.token = token("carol", R"(,"channels":["chat:*"])");
  auto r_c = connected(std::move(o));
  auto& c = r_c.second;
  const subscribe_result forbidden = subscribe(*c, "secret:x");
  ASSERT_TRUE(forbidden.error);
  EXPECT_EQ(forbidden.error->code, 403);
  EXPECT_FALSE(subscribe(*c, "chat:x").error);
  const subscribe_result again = subscribe(*c, "chat:x");
  ASSERT_TRUE(again.error);
  EXPECT_EQ(again.error->code, 409);
  const publish_result bad_name = publish(*c, "chat:bad name", "1");
  ASSERT_TRUE(bad_name.error);
  EXPECT_EQ(bad_name.error->code, 422);

  auto rd_d = connected(options("dave"));
  auto& d = rd_d.second;  // every channel granted
  const subscribe_result unknown = subscribe(*d, "nowhere:x");
  ASSERT_TRUE(unknown.error);
  EXPECT_EQ(unknown.error->code, 404);
  completion<history_result> off;
  d->history("bare:x", {}, off.callback());
  const history_result h = off.get();
  ASSERT_TRUE(h.error);
  EXPECT_EQ(h.error->code, 405);

  completion<unsubscribe_result> u;
  c->unsubscribe("chat:never", u.callback());
  const unsubscribe_result ur = u.get();
  ASSERT_TRUE(ur.error);
  EXPECT_EQ(ur.error->code, 404);
}

TEST_F(client_test, presence_lists_subscribers_and_pushes_join_and_leave) {
  start();
  auto ra_a = connected(options("alice"));
  auto& ra = ra_a.first;
  auto& a = ra_a.second;
  auto rb_b = connected(options("bob"));
  auto& b = rb_b.second;
  ASSERT_FALSE(subscribe(*a, "chat:p").error);
  ASSERT_FALSE(subscribe(*b, "chat:p").error);
  // Joins are coalesced per server tick: alice's own and bob's may come in one push.
  const auto has = [&](presence_event::kind what, const char* user) {
    for (const presence_event& e : ra->presence) {
      if (e.what == what && e.who.user == user && e.channel == "chat:p") return true;
    }
    return false;
  };
  ASSERT_TRUE(ra->wait([&] { return has(presence_event::kind::join, "bob"); }));
  completion<presence_result> list;
  a->presence("chat:p", list.callback());
  const presence_result p = list.get();
  ASSERT_FALSE(p.error);
  ASSERT_EQ(p.clients.size(), 2u);
  EXPECT_EQ(p.count, 2u);
  EXPECT_TRUE(p.cursor.empty());
  std::vector<std::string> users{p.clients[0].user, p.clients[1].user};
  std::sort(users.begin(), users.end());
  EXPECT_EQ(users, (std::vector<std::string>{"alice", "bob"}));

  completion<unsubscribe_result> u;
  b->unsubscribe("chat:p", u.callback());
  EXPECT_FALSE(u.get().error);
  ASSERT_TRUE(ra->wait([&] { return has(presence_event::kind::leave, "bob"); }));
  ra->locked<bool>([&] {
    EXPECT_EQ(ra->presence.back().what, presence_event::kind::leave);
    EXPECT_EQ(ra->presence.back().count, 1u);  // alice is left
    return true;
  });
}

TEST_F(client_test, history_and_subscribe_with_history_have_no_gap_and_no_duplicate) {
  start();
  auto rp_pub = connected(options("bob"));
  auto& pub = rp_pub.second;
  for (int i = 1; i <= 5; ++i) ASSERT_FALSE(publish(*pub, "chat:h", std::to_string(i)).error);

  completion<history_result> last3;
  pub->history("chat:h", history_options{.limit = 3, .since = std::nullopt}, last3.callback());
  const history_result h = last3.get();
  ASSERT_FALSE(h.error);
  EXPECT_EQ(h.offset, 5u);
  ASSERT_EQ(h.publications.size(), 3u);
  EXPECT_EQ(h.publications[0].offset, 3u);
  EXPECT_EQ(h.publications[2].data, "5");

  completion<history_result> after;
  pub->history("chat:h", history_options{.limit = 0, .since = stream_position{h.epoch, 4}},
               after.callback());
  const history_result a = after.get();
  EXPECT_TRUE(a.recovered);
  ASSERT_EQ(a.publications.size(), 1u);
  EXPECT_EQ(a.publications[0].offset, 5u);

  auto rs_sub = connected(options("alice"));
  auto& rs = rs_sub.first;
  auto& sub = rs_sub.second;
  const subscribe_result s =
      subscribe(*sub, "chat:h", subscribe_options{.since = std::nullopt, .history = 2});
  ASSERT_FALSE(s.error);
  EXPECT_TRUE(s.resumed);
  EXPECT_TRUE(s.recovered);
  ASSERT_FALSE(publish(*pub, "chat:h", "6").error);
  ASSERT_TRUE(rs->wait_messages(3));
  EXPECT_EQ(rs->offsets(), range(4, 6));
}

TEST_F(client_test, requests_made_while_connecting_wait_for_the_connection) {
  start();
  recorder r;
  client c(options("alice"), r.handlers());
  ASSERT_FALSE(c.connect());
  // Queued behind connect(), before the connection exists.
  completion<subscribe_result> s;
  c.subscribe("chat:q", {}, s.callback());
  completion<publish_result> p;
  c.publish("chat:q", "\"first\"", p.callback());
  EXPECT_FALSE(s.get().error);
  const publish_result pr = p.get();
  ASSERT_FALSE(pr.error) << pr.error->message;
  EXPECT_EQ(pr.offset, 1u);
  ASSERT_TRUE(r.wait_messages(1));  // subscribed before the publish went out
}

TEST_F(client_test, calls_from_many_threads_all_complete) {
  start();
  auto r_c = connected(options("alice"));
  auto& r = r_c.first;
  auto& c = r_c.second;
  ASSERT_FALSE(subscribe(*c, "chat:threads").error);
  constexpr int k_threads = 4;
  constexpr int k_each = 50;
  std::mutex mutex;
  std::vector<std::uint64_t> offsets;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < k_each; ++i) {
        std::string data = "[";
        data.append(std::to_string(t)).append(",").append(std::to_string(i)).append("]");
        c->publish("chat:threads", std::move(data), [&](const publish_result& p) {
          if (p.error) ++errors;
          std::lock_guard lock(mutex);
          offsets.push_back(p.offset);
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(r->wait_messages(k_threads * k_each));
  EXPECT_EQ(errors.load(), 0);
  std::lock_guard lock(mutex);
  std::sort(offsets.begin(), offsets.end());
  EXPECT_EQ(offsets, range(1, k_threads * k_each));
  EXPECT_EQ(r->offsets(), range(1, k_threads * k_each));
}

// A server that breaks the protocol: garbage before the `connect` reply, and
// pushes a real server never sends (a duplicate, an offset going back, wrong
// types, an unknown channel). The client reports the garbage, ignores what
// does not concern it, and delivers each offset once, in order.
TEST_F(client_test, a_server_that_breaks_the_protocol_is_reported_not_obeyed) {
  server::server_options so;
  so.port = 0;
  so.handle_signals = false;
  server::server fake(so);
  server::ws_behavior b;
  b.on_message = [](server::websocket& ws, std::string_view payload, protocol::opcode) {
    const auto text = [&](std::string_view m) { ws.send(m, protocol::opcode::text); };
    if (payload.find("\"cmd\":\"connect\"") != std::string_view::npos) {
      text("not json");
      text("[1,2]");
      ws.send("\x01\x02", protocol::opcode::binary);
      text(R"({"id":999,"result":{}})");
      text(R"({"push":"message","channel":"nowhere","offset":5,"data":1})");
      text(R"({"id":1,"result":{"client":"fake","user":"u"}})");
    } else if (payload.find("\"cmd\":\"subscribe\"") != std::string_view::npos) {
      text(R"({"id":2,"result":{"channel":"chat:f","epoch":"e1","offset":0}})");
      text(R"({"push":"message","channel":"chat:f","epoch":"e1","offset":"7","data":0})");
      text(R"({"push":"message","channel":"chat:f","epoch":"e1","offset":1,"data":1})");
      text(R"({"push":"message","channel":"chat:f","epoch":"e1","offset":1,"data":"dup"})");
      text(R"({"push":"message","channel":"chat:f","epoch":"e1","offset":3,"data":3})");
      text(R"({"push":"message","channel":"chat:f","epoch":"e1","offset":2,"data":"back"})");
      text(R"({"push":"join","channel":"chat:f","info":"not an object"})");
      text(R"({"push":"message","channel":"chat:f","epoch":"e1","offset":4,"data":4})");
    }
  };
  fake.ws("/ws", std::move(b));
  ASSERT_FALSE(fake.listen());
  ASSERT_FALSE(fake.start());

  client_options o;
  o.url = "ws://127.0.0.1:" + std::to_string(fake.port()) + "/ws";
  o.token = "whatever";
  recorder r;
  {
    client c(o, r.handlers());
    ASSERT_FALSE(c.connect());
    c.subscribe("chat:f");
    ASSERT_TRUE(r.wait_messages(3));
    std::this_thread::sleep_for(50ms);
    c.close();
    r.wait_state(connection_state::disconnected);
  }
  fake.shutdown();
  (void)fake.wait();
  EXPECT_EQ(r.offsets(), (std::vector<std::uint64_t>{1, 3, 4}));
  r.locked<bool>([&] {
    EXPECT_EQ(r.messages[1].data, "3");
    EXPECT_EQ(r.errors.size(), 3u);  // not JSON, an array, a binary message
    for (const auto& e : r.errors) EXPECT_EQ(e.error.code, 500) << e.error.message;
    bool connected = false;
    for (const auto& s : r.states) {
      connected |= s.state == connection_state::connected && s.client_id == "fake";
    }
    EXPECT_TRUE(connected);
    EXPECT_EQ(r.presence.size(), 1u);  // the join, with an empty entry
    return true;
  });
}

// A server that answers compact pushes (docs/protocol.md, "Compact pushes")
// mixed with full ones: read alike, the epoch from the subscribe reply,
// duplicates and other channels dropped, a null stays null.
TEST_F(client_test, compact_pushes_are_read_like_full_ones) {
  server::server_options so;
  so.port = 0;
  so.handle_signals = false;
  server::server fake(so);
  std::string offered;
  server::ws_behavior b;
  b.on_upgrade = [&offered](server::upgrade_request& req) {
    offered = std::string(req.header("Sec-WebSocket-Protocol").value_or(""));
    req.accept("switchboard.v1.compact");
  };
  b.on_message = [](server::websocket& ws, std::string_view payload, protocol::opcode) {
    const auto text = [&](std::string_view m) { ws.send(m, protocol::opcode::text); };
    if (payload.find("\"cmd\":\"connect\"") != std::string_view::npos) {
      text(R"({"id":1,"result":{"client":"fake","user":"u"}})");
    } else if (payload.find("\"cmd\":\"subscribe\"") != std::string_view::npos) {
      text(R"({"id":2,"result":{"channel":"chat:f","epoch":"e1","offset":0}})");
      text(R"({"m":"chat:f","o":1,"d":{"a":[1]},"c":"pub","u":"bob"})");
      text(R"({"push":"message","channel":"chat:f","epoch":"e1","offset":2,"data":2})");
      text(R"({"m":"chat:f","o":2,"d":"dup"})");
      text(R"({"m":"nowhere","o":9,"d":9})");
      text(R"({"m":"chat:f","o":3,"d":null})");
    }
  };
  fake.ws("/ws", std::move(b));
  ASSERT_FALSE(fake.listen());
  ASSERT_FALSE(fake.start());

  client_options o;
  o.url = "ws://127.0.0.1:" + std::to_string(fake.port()) + "/ws";
  o.token = "whatever";
  recorder r;
  {
    client c(o, r.handlers());
    ASSERT_FALSE(c.connect());
    c.subscribe("chat:f");
    ASSERT_TRUE(r.wait_messages(3));
    std::this_thread::sleep_for(50ms);
    c.close();
    r.wait_state(connection_state::disconnected);
  }
  fake.shutdown();
  (void)fake.wait();
  EXPECT_EQ(offered, "switchboard.v1.compact, switchboard.v1");
  EXPECT_EQ(r.offsets(), (std::vector<std::uint64_t>{1, 2, 3}));
  r.locked<bool>([&] {
    EXPECT_EQ(r.messages[0].data, R"({"a":[1]})");
    EXPECT_EQ(r.messages[0].client, "pub");
    EXPECT_EQ(r.messages[0].user, "bob");
    EXPECT_EQ(r.messages[0].epoch, "e1");
    EXPECT_EQ(r.messages[2].data, "null");
    EXPECT_EQ(r.messages[2].epoch, "e1");
    EXPECT_TRUE(r.errors.empty());
    return true;
  });
}

// --- recovery -----------------------------------------------------------------------------

// POST /api/<method> with `body` and the key of server_api_config(); the status.
int api_post(std::uint16_t port, std::string_view method, std::string_view body) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  std::string request = "POST /api/" + std::string(method) +
                        " HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: client-test-key\r\n"
                        "Content-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
  (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string answer;
  char buffer[4096];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) answer.append(buffer, n);
  ::close(fd);
  return answer.size() > 12 ? std::atoi(answer.c_str() + 9) : -1;
}

realtime_config server_api_config() {
  realtime_config c = base_config();
  c.api_key = "client-test-key";
  return c;
}

TEST_F(client_test, what_the_server_api_does_to_a_client_is_reported) {
  start(server_api_config());
  auto rs_sub = connected(options("alice"));
  auto& rs = rs_sub.first;
  auto rp_pub = connected(options("bob"));
  auto& pub = rp_pub.second;

  // The server subscribes alice: on_subscribed says by_server, and what is
  // published there is delivered as on her own subscriptions.
  ASSERT_EQ(api_post(server_->port(), "subscribe", R"({"user":"alice","channel":"chat:api"})"),
            200);
  ASSERT_TRUE(rs->wait([&] { return !rs->subscribed.empty(); }));
  const subscribe_result s = rs->locked<subscribe_result>([&] { return rs->subscribed[0]; });
  EXPECT_TRUE(s.by_server);
  EXPECT_EQ(s.channel, "chat:api");
  EXPECT_FALSE(s.resumed);
  for (int i = 1; i <= 2; ++i) ASSERT_FALSE(publish(*pub, "chat:api", std::to_string(i)).error);
  ASSERT_TRUE(rs->wait_messages(2));
  EXPECT_EQ(rs->offsets(), range(1, 2));

  // A server-made subscription ends with its connection (the server decides
  // again), unless the application takes it over with subscribe().
  ASSERT_EQ(api_post(server_->port(), "subscribe", R"({"user":"alice","channel":"chat:kept"})"),
            200);
  ASSERT_TRUE(rs->wait([&] { return rs->subscribed.size() >= 2; }));
  const subscribe_result taken = subscribe(*rs_sub.second, "chat:kept");
  ASSERT_FALSE(taken.error) << taken.error->message;
  EXPECT_EQ(taken.offset, 0u);
  rs_sub.second->reconnect();
  ASSERT_TRUE(rs->wait([&] {
    for (const auto& r : rs->subscribed) {
      if (r.channel == "chat:kept" && r.resumed) return true;
    }
    return false;
  }));
  ASSERT_TRUE(rs->wait_state(connection_state::connected));
  ASSERT_FALSE(publish(*pub, "chat:api", "3").error);
  ASSERT_FALSE(publish(*pub, "chat:kept", "1").error);
  ASSERT_TRUE(rs->wait([&] {
    for (const auto& m : rs->messages) {
      if (m.channel == "chat:kept") return true;
    }
    return false;
  }));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(rs->offsets(), (std::vector<std::uint64_t>{1, 2, 1}))
      << "chat:api (server-made) ended with the connection; chat:kept was taken over";
  ASSERT_EQ(api_post(server_->port(), "subscribe", R"({"user":"alice","channel":"chat:api"})"),
            200);
  ASSERT_TRUE(rs->wait([&] {
    return rs->subscribed.back().channel == "chat:api" && rs->subscribed.back().by_server;
  }));

  // The server unsubscribes her: on_error with k_error_unsubscribed and the
  // channel; nothing more arrives.
  ASSERT_EQ(api_post(server_->port(), "unsubscribe", R"({"user":"alice","channel":"chat:api"})"),
            200);
  ASSERT_TRUE(rs->wait([&] { return !rs->errors.empty(); }));
  const error_event e = rs->locked<error_event>([&] { return rs->errors[0]; });
  EXPECT_EQ(e.channel, "chat:api");
  EXPECT_EQ(e.error.code, k_error_unsubscribed);
  EXPECT_NE(e.error.message.find("unsubscribed by the server"), std::string::npos);
  ASSERT_FALSE(publish(*pub, "chat:api", "4").error);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(rs->offsets(), (std::vector<std::uint64_t>{1, 2, 1}));

  // The server disconnects her (4003): she stops, with k_error_disconnected,
  // and does not come back by herself.
  ASSERT_EQ(api_post(server_->port(), "disconnect", R"({"user":"alice"})"), 200);
  ASSERT_TRUE(rs->wait([&] { return rs->errors.size() >= 2; }));
  EXPECT_EQ(rs->locked<int>([&] { return rs->errors[1].error.code; }), k_error_disconnected);
  ASSERT_TRUE(rs->wait_state(connection_state::disconnected));
  std::this_thread::sleep_for(300ms);  // backoff_cap is 200 ms: a reconnect would be seen
  EXPECT_EQ(rs->locked<connection_state>([&] { return rs->states.back().state; }),
            connection_state::disconnected);
  EXPECT_FALSE(rs->states.back().will_reconnect);
}

TEST_F(client_test, a_dropped_connection_is_recovered_with_since) {
  start();
  auto rs_sub = connected(options("alice"));
  auto& rs = rs_sub.first;
  auto& sub = rs_sub.second;
  auto rp_pub = connected(options("bob"));
  auto& pub = rp_pub.second;
  ASSERT_FALSE(subscribe(*sub, "chat:drop").error);
  for (int i = 1; i <= 3; ++i) ASSERT_FALSE(publish(*pub, "chat:drop", std::to_string(i)).error);
  ASSERT_TRUE(rs->wait_messages(3));

  // Cut the subscriber; publish while it is away (its reconnect is immediate,
  // so some of these land before and some after it is back).
  sub->reconnect();
  for (int i = 4; i <= 10; ++i) ASSERT_FALSE(publish(*pub, "chat:drop", std::to_string(i)).error);
  ASSERT_TRUE(rs->wait_messages(10));
  ASSERT_TRUE(rs->wait([&] { return rs->subscribed.size() >= 2; }));
  std::this_thread::sleep_for(100ms);  // a duplicate would arrive meanwhile
  EXPECT_EQ(rs->offsets(), range(1, 10));
  rs->locked<bool>([&] {
    EXPECT_TRUE(rs->subscribed[1].resumed);
    EXPECT_TRUE(rs->subscribed[1].recovered);
    std::size_t drops = 0;
    for (const auto& s : rs->states) {
      drops += s.state == connection_state::disconnected && s.reason == "reconnect requested";
    }
    EXPECT_EQ(drops, 1u);
    return true;
  });
}

TEST_F(client_test, history_survives_a_server_restart_with_the_snapshot) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("switchboard-client-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  realtime_config config = base_config();
  config.snapshot_file = (dir / "snapshot.json").string();
  start(config);
  config.port = server_->port();  // the restart listens where the client reconnects

  client_options so = options("alice");
  so.backoff_base = 60s;  // reconnect only when the test says so (connect())
  so.backoff_cap = 60s;
  auto rs_sub = connected(std::move(so));
  auto& rs = rs_sub.first;
  auto& sub = rs_sub.second;
  ASSERT_FALSE(subscribe(*sub, "chat:keep").error);
  {
    auto rp_pub = connected(options("bob"));
    auto& pub = rp_pub.second;
    for (int i = 1; i <= 3; ++i) ASSERT_FALSE(publish(*pub, "chat:keep", std::to_string(i)).error);
  }
  ASSERT_TRUE(rs->wait_messages(3));
  const std::string epoch = rs->locked<std::string>([&] { return rs->messages[0].epoch; });

  server_->stop();  // graceful: 1012 to every client, snapshot written
  ASSERT_TRUE(rs->wait([&] { return rs->states.back().state == connection_state::disconnected; }));
  EXPECT_EQ(rs->locked<int>([&] { return rs->states.back().code; }), 1012);
  start(config);
  {
    client_options po = options("bob");
    po.url = server_->url();
    auto rp_pub = connected(std::move(po));
    auto& pub = rp_pub.second;
    for (int i = 4; i <= 6; ++i) ASSERT_FALSE(publish(*pub, "chat:keep", std::to_string(i)).error);
  }
  ASSERT_FALSE(sub->connect());  // during the backoff wait: try now
  ASSERT_TRUE(rs->wait_messages(6));
  EXPECT_EQ(rs->offsets(), range(1, 6));
  rs->locked<bool>([&] {
    EXPECT_EQ(rs->messages[5].epoch, epoch);
    EXPECT_EQ(rs->messages[5].user, "bob");
    EXPECT_TRUE(rs->subscribed.back().recovered);
    return true;
  });
  sub.reset();
  server_.reset();
  std::filesystem::remove_all(dir);
}

TEST_F(client_test, a_restart_without_snapshot_reports_recovered_false) {
  realtime_config config = base_config();
  start(config);
  config.port = server_->port();
  auto rs_sub = connected(options("alice"));
  auto& rs = rs_sub.first;
  auto& sub = rs_sub.second;
  ASSERT_FALSE(subscribe(*sub, "chat:lost").error);
  ASSERT_FALSE(publish(*sub, "chat:lost", "1").error);
  ASSERT_TRUE(rs->wait_messages(1));
  server_->stop();
  start(config);
  ASSERT_TRUE(rs->wait([&] { return rs->subscribed.size() >= 2; }, 10s));
  rs->locked<bool>([&] {
    const subscribe_result& s = rs->subscribed[1];
    EXPECT_TRUE(s.resumed);
    EXPECT_FALSE(s.recovered);
    EXPECT_EQ(s.reason, "epoch changed");
    EXPECT_NE(s.epoch, rs->messages[0].epoch);
    return true;
  });
  // The subscription goes on in the new stream.
  ASSERT_FALSE(publish(*sub, "chat:lost", "2").error);
  ASSERT_TRUE(rs->wait_messages(2));
  EXPECT_EQ(rs->locked<std::uint64_t>([&] { return rs->messages[1].offset; }), 1u);
}

// The property the browser SDK has too: subscribers cut at random while N
// publications are made each end with every publication exactly once, in
// order. `url` is the server's /ws.
void check_recovery_under_churn(const std::string& url) {
  constexpr int k_subscribers = 5;
  constexpr std::uint64_t k_publications = 300;
  const auto options = [&](std::string_view user) {
    client_options o;
    o.url = url;
    o.token = token(user);
    o.backoff_base = 20ms;
    o.backoff_cap = 200ms;
    return o;
  };
  std::vector<std::unique_ptr<recorder>> recs;  // outlive the clients
  std::vector<std::unique_ptr<client>> subs;
  for (int i = 0; i < k_subscribers; ++i) {
    recs.push_back(std::make_unique<recorder>());
    subs.push_back(
        std::make_unique<client>(options("sub" + std::to_string(i)), recs.back()->handlers()));
    ASSERT_FALSE(subs.back()->connect());
    completion<subscribe_result> done;
    subs.back()->subscribe("chat:churn", {}, done.callback());
    ASSERT_FALSE(done.get().error);
  }
  recorder rp;
  client pub(options("publisher"), rp.handlers());
  ASSERT_FALSE(pub.connect());

  // The publications go out from this thread, which also cuts a random
  // subscriber every few of them (each reconnects at once and resumes with
  // `since` while the publications go on).
  std::atomic<std::uint64_t> published{0};
  std::atomic<int> failures{0};
  std::mt19937 random(12345);
  int cuts = 0;
  for (std::uint64_t i = 1; i <= k_publications; ++i) {
    pub.publish("chat:churn", "{\"n\":" + std::to_string(i) + "}", [&](const publish_result& p) {
      if (p.error) ++failures;
      ++published;
    });
    // Only a connected subscriber is cut, so that every cut ends in a
    // resubscribe with `since` however slow the machine is.
    if (random() % 8 == 0) {
      const std::size_t k = random() % k_subscribers;
      if (subs[k]->state() == connection_state::connected) {
        subs[k]->reconnect();
        ++cuts;
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 2000));
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (published.load() < k_publications && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(published.load(), k_publications);
  EXPECT_EQ(failures.load(), 0);
  for (int i = 0; i < k_subscribers; ++i) {
    ASSERT_TRUE(recs[i]->wait_messages(k_publications, 10s))
        << "subscriber " << i << " has " << recs[i]->offsets().size();
  }
  std::this_thread::sleep_for(100ms);  // a late duplicate would show up meanwhile
  std::size_t recovered = 0;
  for (int i = 0; i < k_subscribers; ++i) {
    EXPECT_EQ(recs[i]->offsets(), range(1, k_publications)) << "subscriber " << i;
    recs[i]->locked<bool>([&] {
      for (std::uint64_t n = 0; n < recs[i]->messages.size(); ++n) {
        EXPECT_EQ(recs[i]->messages[n].data, "{\"n\":" + std::to_string(n + 1) + "}");
      }
      for (const auto& s : recs[i]->subscribed) {
        EXPECT_TRUE(!s.resumed || s.recovered) << s.reason;
        recovered += s.recovered;
      }
      return true;
    });
  }
  // Each cut resubscribes once; one cut again before its resubscribe was
  // answered resubscribes once for both.
  EXPECT_GT(cuts, 10);
  EXPECT_GE(recovered, 5u) << cuts << " cuts; reconnects must happen during the publications";
}

TEST_F(client_test, recovery_under_churn_delivers_everything_once_in_order) {
  start();
  check_recovery_under_churn(server_->url());
}

// --- against the `switchboard serve` binary ------------------------------------------------

#ifdef SWITCHBOARD_BINARY
// `switchboard serve --config FILE --port P` as a child process; the port is
// read from its one stdout line, "listening on http://127.0.0.1:PORT".
class serve_process {
 public:
  serve_process(const std::string& config, std::uint16_t port) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    const std::string port_text = std::to_string(port);
    const char* argv[] = {SWITCHBOARD_BINARY, "serve",           "--config", config.c_str(),
                          "--port",           port_text.c_str(), nullptr};
    const int rc = posix_spawn(&pid_, SWITCHBOARD_BINARY, &actions, nullptr,
                               const_cast<char* const*>(argv), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    stdout_ = out[0];
    if (rc != 0) {
      pid_ = -1;
      return;
    }
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{stdout_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char c[256];
      const ssize_t n = ::read(stdout_, c, sizeof c);
      if (n <= 0) break;
      line.append(c, static_cast<std::size_t>(n));
    }
    const std::size_t colon = line.rfind(':');
    if (line.rfind("listening on http://", 0) == 0 && colon != std::string::npos) {
      port_ = static_cast<std::uint16_t>(std::stoi(line.substr(colon + 1)));
    }
  }
  ~serve_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (stdout_ >= 0) ::close(stdout_);
  }
  // SIGTERM and the exit status (-1 if it did not exit normally).
  int stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::uint16_t port() const { return port_; }
  std::string url() const { return "ws://127.0.0.1:" + std::to_string(port_) + "/ws"; }

 private:
  pid_t pid_ = -1;
  int stdout_ = -1;
  std::uint16_t port_ = 0;
};

class serve_binary_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("switchboard-client-serve-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    config_ = (dir_ / "serve.toml").string();
    std::ofstream(config_) << "[server]\ndemo = false\n"
                              "[auth]\njwt_secret = \""
                           << k_secret
                           << "\"\n"
                              "[limits]\ncommand_rate = 100000\ncommand_burst = 100000\n"
                              "[shutdown]\ntimeout = 1\n"
                              "[history]\nsnapshot_file = \""
                           << (dir_ / "snap.json").string()
                           << "\"\n[log]\nlevel = \"warn\"\n"
                              "[namespaces.default]\n"
                              "[namespaces.chat]\nhistory_size = 2000\nhistory_ttl = 0\n"
                              "publish = \"any\"\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  client_options options(std::string_view user, std::uint16_t port) const {
    client_options o;
    o.url = "ws://127.0.0.1:" + std::to_string(port) + "/ws";
    o.token = token(user);
    o.backoff_base = 20ms;
    o.backoff_cap = 300ms;
    return o;
  }

  std::filesystem::path dir_;
  std::string config_;
};

TEST_F(serve_binary_test, round_trips_with_a_token) {
  serve_process serve(config_, 0);
  ASSERT_NE(serve.port(), 0) << "serve did not start";
  recorder ra;
  client a(options("alice", serve.port()), ra.handlers());
  ASSERT_FALSE(a.connect());
  completion<subscribe_result> s;
  a.subscribe("chat:bin", {}, s.callback());
  ASSERT_FALSE(s.get().error);
  completion<publish_result> p;
  a.publish("chat:bin", R"({"hello":"binary"})", p.callback());
  EXPECT_EQ(p.get().offset, 1u);
  ASSERT_TRUE(ra.wait_messages(1));
  EXPECT_EQ(ra.locked<std::string>([&] { return ra.messages[0].user; }), "alice");
  completion<presence_result> who;
  a.presence("chat:bin", who.callback());
  const presence_result w = who.get();
  ASSERT_EQ(w.clients.size(), 1u);
  EXPECT_EQ(w.clients[0].user, "alice");
  completion<history_result> h;
  a.history("chat:bin", {}, h.callback());
  const history_result hr = h.get();
  ASSERT_EQ(hr.publications.size(), 1u);
  EXPECT_EQ(hr.publications[0].data, R"({"hello":"binary"})");
  a.close();
  EXPECT_TRUE(ra.wait_state(connection_state::disconnected));
  EXPECT_EQ(serve.stop(), 0);
}

TEST_F(serve_binary_test, recovery_under_churn_delivers_everything_once_in_order) {
  serve_process serve(config_, 0);
  ASSERT_NE(serve.port(), 0) << "serve did not start";
  check_recovery_under_churn(serve.url());
  EXPECT_EQ(serve.stop(), 0);
}

TEST_F(serve_binary_test, recovery_across_a_restart_with_the_snapshot) {
  auto serve = std::make_unique<serve_process>(config_, 0);
  const std::uint16_t port = serve->port();
  ASSERT_NE(port, 0) << "serve did not start";
  recorder rs;
  client sub(options("alice", port), rs.handlers());
  ASSERT_FALSE(sub.connect());
  completion<subscribe_result> s;
  sub.subscribe("chat:restart", {}, s.callback());
  ASSERT_FALSE(s.get().error);
  for (int i = 1; i <= 3; ++i) {
    completion<publish_result> p;
    sub.publish("chat:restart", std::to_string(i), p.callback());
    ASSERT_FALSE(p.get().error);
  }
  ASSERT_TRUE(rs.wait_messages(3));
  EXPECT_EQ(serve->stop(), 0);  // 1012 to the client, snapshot written
  serve = std::make_unique<serve_process>(config_, port);
  ASSERT_EQ(serve->port(), port);
  {
    recorder rp;
    client pub(options("bob", port), rp.handlers());
    ASSERT_FALSE(pub.connect());
    for (int i = 4; i <= 6; ++i) {
      completion<publish_result> p;
      pub.publish("chat:restart", std::to_string(i), p.callback());
      ASSERT_FALSE(p.get().error);
    }
  }
  ASSERT_TRUE(rs.wait_messages(6, 10s));
  EXPECT_EQ(rs.offsets(), range(1, 6));
  rs.locked<bool>([&] {
    EXPECT_EQ(rs.messages[0].epoch, rs.messages[5].epoch);
    bool saw_1012 = false;
    for (const auto& st : rs.states) saw_1012 |= st.code == 1012;
    EXPECT_TRUE(saw_1012);
    for (const auto& r : rs.subscribed) EXPECT_TRUE(!r.resumed || r.recovered) << r.reason;
    return true;
  });
  sub.close();
  rs.wait_state(connection_state::disconnected);
  EXPECT_EQ(serve->stop(), 0);
}
#endif  // SWITCHBOARD_BINARY

}  // namespace
}  // namespace switchboard::realtime::test
