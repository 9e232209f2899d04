// wss_test.cpp — the server over TLS (server_options::tls): echo through the
// TLS transport, the close handshake ending with close_notify, plain HTTP and
// garbage on the TLS port dropped and counted, the handshake timeout bounding
// the TLS handshake, representative RFC 6455 rules still enforced over TLS,
// and reload_tls(). The client is OpenSSL on a blocking socket
// (ws_client::start_tls); the certificates come from the net tests' generator.
#include <atomic>
#include <cstdlib>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <switchboard/net/tls_context.hpp>
#include <switchboard/protocol/message_writer.hpp>
#include <thread>
#include <vector>

#include "../net/tls_certs.hpp"
#include "server_test_support.hpp"

namespace switchboard::server::test {
namespace {

using protocol::event_kind;
using protocol::opcode;
namespace certs = net::test;

// Polls `done` for up to `limit` (the server updates counters on its thread).
template <class Predicate>
bool eventually(Predicate done, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

std::unique_ptr<net::tls_context> make_server_context(const certs::cert_pair& pair) {
  net::tls_server_options options;
  options.certificate_chain_file = pair.cert;
  options.private_key_file = pair.key;
  net::tls_error error;
  auto context = net::tls_context::server(options, error);
  EXPECT_TRUE(context) << error.text;
  return context;
}

class wss_test : public server_test {
 protected:
  // Made once, before the first test counts descriptors: certificate
  // generation and OpenSSL's first use open files of their own.
  static void SetUpTestSuite() {
    ASSERT_EQ(certs::certs().error, "");
    server_tls_ = make_server_context(certs::certs().server).release();
    client_tls_ = make_tls_client_context(certs::certs().ca).release();
    ASSERT_NE(client_tls_, nullptr);
  }
  static void TearDownTestSuite() {
    delete server_tls_;
    server_tls_ = nullptr;
    ssl_ctx_deleter()(client_tls_);
    client_tls_ = nullptr;
  }

  static server_options tls_options() {
    server_options options = test_options();
    options.tls = server_tls_;
    return options;
  }
  // A client connected over TLS to `port` and upgraded at "/".
  static std::unique_ptr<ws_client> upgraded(std::uint16_t port) {
    auto c = std::make_unique<ws_client>(port);
    std::string error;
    EXPECT_TRUE(c->start_tls(client_tls_, "localhost", &error)) << error;
    EXPECT_EQ(c->upgrade(), 101);
    return c;
  }

  static inline net::tls_context* server_tls_ = nullptr;
  static inline ssl_ctx_st* client_tls_ = nullptr;
};

TEST_F(wss_test, EchoesEverySizeOverTls) {
  std::atomic<int> secure{-1};
  running_server srv(tls_options(), [&](server& s) {
    ws_behavior b;
    b.on_open = [&](websocket& ws) { secure = ws.secure() ? 1 : 0; };
    b.on_message = [](websocket& ws, std::string_view p, opcode op) { ws.send(p, op); };
    s.ws("*", std::move(b));
  });
  auto c = upgraded(srv.port());
  EXPECT_EQ(c->tls_alpn(), "http/1.1");
  EXPECT_EQ(c->tls_version(), "TLSv1.3");
  EXPECT_EQ(c->tls_peer_subject(), "/CN=localhost");
  for (const std::size_t size : {0u, 1u, 125u, 126u, 65535u, 65536u, 1u << 20}) {
    SCOPED_TRACE(size);
    const std::string text(size, static_cast<char>('a' + size % 26));
    ASSERT_TRUE(c->send_message(opcode::text, text));
    received r = c->next();
    EXPECT_EQ(r.kind, event_kind::message);
    EXPECT_EQ(r.op, opcode::text);
    EXPECT_TRUE(r.payload == text);
    std::string binary(size, '\0');
    for (std::size_t i = 0; i < size; ++i) binary[i] = static_cast<char>(i * 7);
    ASSERT_TRUE(c->send_message(opcode::binary, binary));
    r = c->next();
    EXPECT_EQ(r.op, opcode::binary);
    EXPECT_TRUE(r.payload == binary);
  }
  EXPECT_EQ(secure.load(), 1);
  // Many frames in one TLS record come back in order.
  std::string burst;
  for (int i = 0; i < 100; ++i) {
    protocol::message_writer(protocol::role::client)
        .append_frame(burst, opcode::text, numbered("m", i), true, false);
  }
  ASSERT_TRUE(c->send_raw(burst));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(c->next().payload, numbered("m", i));
}

TEST_F(wss_test, ManyConnectionsAtOnceOnTwoLoops) {
  server_options options = tls_options();
  options.threads = 2;
  running_server srv(options, add_echo);
  std::vector<std::unique_ptr<ws_client>> clients;
  for (int i = 0; i < 8; ++i) clients.push_back(upgraded(srv.port()));
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < clients.size(); ++i) {
      ASSERT_TRUE(clients[i]->send_message(opcode::text, numbered("c", static_cast<long>(i))));
    }
    for (std::size_t i = 0; i < clients.size(); ++i) {
      EXPECT_EQ(clients[i]->next().payload, numbered("c", static_cast<long>(i)));
    }
  }
  EXPECT_TRUE(eventually([&] { return srv.get().connections() == clients.size(); }));
}

TEST_F(wss_test, ClientCloseIsEchoedThenCloseNotifyAndTcpClose) {
  std::atomic<int> closed_code{0};
  running_server srv(tls_options(), [&](server& s) {
    ws_behavior b;
    b.on_close = [&](websocket&, std::uint16_t code, std::string_view) { closed_code = code; };
    s.ws("/", std::move(b));
  });
  auto c = upgraded(srv.port());
  ASSERT_TRUE(c->send_close(4001, "bye"));
  received r = c->next();
  EXPECT_EQ(r.kind, event_kind::close);
  EXPECT_EQ(r.code, 4001);
  EXPECT_TRUE(c->wait_closed());
  // An orderly TLS end, not a truncation: the peer can tell the difference.
  EXPECT_TRUE(c->close_notify_received());
  EXPECT_EQ(closed_code.load(), 4001);
}

TEST_F(wss_test, ServerCloseWaitsForThePeerThenEndsWithCloseNotify) {
  running_server srv(tls_options(), [&](server& s) {
    ws_behavior b;
    b.on_message = [](websocket& ws, std::string_view p, opcode) { ws.close(4000, p); };
    s.ws("/", std::move(b));
  });
  auto c = upgraded(srv.port());
  ASSERT_TRUE(c->send_message(opcode::text, "please close"));
  received r = c->next();
  EXPECT_EQ(r.kind, event_kind::close);
  EXPECT_EQ(r.code, 4000);
  EXPECT_EQ(r.payload, "please close");
  ASSERT_TRUE(c->send_close(4000));
  EXPECT_TRUE(c->wait_closed());
  EXPECT_TRUE(c->close_notify_received());
}

TEST_F(wss_test, PlainHttpAndGarbageOnTheTlsPortAreDroppedAndCounted) {
  running_server srv(tls_options(), add_echo);
  const std::uint64_t not_tls_before = server_tls_->statistics().not_tls;
  const std::string requests[] = {
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
      "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      std::string(300, '\x01'),
  };
  for (const std::string& request : requests) {
    ws_client plain(srv.port());
    ASSERT_TRUE(plain.connected());
    const std::string answer = plain.http_exchange(request);  // reads until the server closes
    EXPECT_EQ(answer.rfind("HTTP/", 0), std::string::npos) << "answered in plain HTTP";
    // At most a TLS alert record (content type 21).
    EXPECT_LT(answer.size(), 64u);
    if (!answer.empty()) {
      EXPECT_EQ(static_cast<unsigned char>(answer[0]), 0x15);
    }
  }
  EXPECT_TRUE(eventually([&] {
    return server_tls_->statistics().not_tls >= not_tls_before + std::size(requests);
  })) << "not_tls "
      << server_tls_->statistics().not_tls - not_tls_before;
  EXPECT_TRUE(eventually([&] { return srv.get().connections() == 0; }));
  // The server's statistics count them as failed handshakes (no answer).
  EXPECT_TRUE(eventually([&] {
    return srv.get().statistics().handshake_failures_for(handshake_failure::tls_handshake) ==
           std::size(requests);
  })) << srv.get().statistics().handshake_failures_for(handshake_failure::tls_handshake);
  EXPECT_EQ(srv.get().statistics().handshake_failures_total(), std::size(requests));
  // And the port still serves TLS.
  auto c = upgraded(srv.port());
  ASSERT_TRUE(c->send_message(opcode::text, "still serving"));
  EXPECT_EQ(c->next().payload, "still serving");
}

TEST_F(wss_test, HandshakeTimeoutBoundsTheTlsHandshakeAndTheHead) {
  server_options options = tls_options();
  options.handshake_timeout = 200ms;
  running_server srv(options, add_echo);
  // A client that never starts TLS.
  {
    ws_client silent(srv.port());
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(silent.wait_closed());
    EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  }
  // A client that completes TLS but never sends its request head.
  {
    ws_client mute(srv.port());
    std::string error;
    ASSERT_TRUE(mute.start_tls(client_tls_, "localhost", &error)) << error;
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(mute.wait_closed());
    EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  }
  EXPECT_TRUE(eventually([&] { return srv.get().connections() == 0; }));
}

// RFC 6455 over TLS: a few representative rules, each failing the connection
// with its close code, then TCP closed by the server.
TEST_F(wss_test, ProtocolRulesHoldOverTls) {
  server_options options = tls_options();
  options.max_message_size = 1024;
  running_server srv(options, add_echo);
  struct rule {
    const char* name;
    std::uint16_t code;
    std::function<bool(ws_client&)> break_it;
  };
  const rule rules[] = {
      {"unmasked frame (§5.1)", 1002,
       [](ws_client& c) { return c.send_frame(opcode::text, "hello", true, /*masked=*/false); }},
      {"invalid UTF-8 in text (§8.1)", 1007,
       [](ws_client& c) { return c.send_frame(opcode::text, "\xce\xba\xff"); }},
      {"message over max_message_size", 1009,
       [](ws_client& c) { return c.send_frame(opcode::binary, std::string(1025, 'z')); }},
      {"RSV1 without an extension (§5.2)", 1002,
       [](ws_client& c) { return c.send_frame(opcode::text, "x", true, true, /*rsv1=*/true); }},
      // Built by hand: message_writer asserts that control frames are final.
      {"fragmented ping (§5.5)", 1002,
       [](ws_client& c) { return c.send_raw(std::string("\x09\x81\0\0\0\0p", 7)); }},
      {"continuation without a start (§5.4)", 1002,
       [](ws_client& c) { return c.send_frame(opcode::continuation, "c"); }},
  };
  for (const rule& r : rules) {
    SCOPED_TRACE(r.name);
    auto c = upgraded(srv.port());
    ASSERT_TRUE(r.break_it(*c));
    received got = c->next();
    EXPECT_EQ(got.kind, event_kind::close);
    EXPECT_EQ(got.code, r.code);
    EXPECT_TRUE(c->wait_closed());
  }
  // Pings are answered; fragments interleaved with a ping reassemble.
  auto c = upgraded(srv.port());
  ASSERT_TRUE(c->send_frame(opcode::ping, "tls ping"));
  received pong = c->next();
  EXPECT_EQ(pong.kind, event_kind::pong);
  EXPECT_EQ(pong.payload, "tls ping");
  ASSERT_TRUE(c->send_frame(opcode::text, "frag", /*fin=*/false));
  ASSERT_TRUE(c->send_frame(opcode::ping, "between"));
  ASSERT_TRUE(c->send_frame(opcode::continuation, "ments"));
  EXPECT_EQ(c->next().kind, event_kind::pong);
  received whole = c->next();
  EXPECT_EQ(whole.kind, event_kind::message);
  EXPECT_EQ(whole.payload, "fragments");
}

TEST_F(wss_test, ReloadServesTheNewCertificateToNewConnections) {
  // Reload re-reads the same paths: a copy of the certificate we can change.
  const std::string dir = certs::certs().dir + "/wss_reload";
  ASSERT_EQ(std::system(("mkdir -p '" + dir + "'").c_str()), 0);
  const auto copy = [&](const certs::cert_pair& from) {
    return std::system(("cp '" + from.cert + "' '" + dir + "/live.pem' && cp '" + from.key + "' '" +
                        dir + "/live.key'")
                           .c_str()) == 0;
  };
  ASSERT_TRUE(copy(certs::certs().server));
  auto live = make_server_context({dir + "/live.pem", dir + "/live.key"});
  ASSERT_TRUE(live);
  server_options live_options = test_options();
  live_options.tls = live.get();
  running_server live_srv(live_options, add_echo);
  auto before = upgraded(live_srv.port());
  EXPECT_EQ(before->tls_peer_subject(), "/CN=localhost");

  ASSERT_TRUE(copy(certs::certs().server2));
  const net::tls_error reloaded = live_srv.get().reload_tls();
  EXPECT_FALSE(reloaded) << reloaded.text;
  auto after = upgraded(live_srv.port());
  EXPECT_EQ(after->tls_peer_subject(), "/CN=localhost reloaded");
  // The open connection carries on with its certificate.
  ASSERT_TRUE(before->send_message(opcode::text, "still here"));
  EXPECT_EQ(before->next().payload, "still here");

  // A reload that fails keeps the old configuration.
  ASSERT_EQ(std::system(("echo 'not a key' > '" + dir + "/live.key'").c_str()), 0);
  const net::tls_error failed = live_srv.get().reload_tls();
  EXPECT_TRUE(failed);
  EXPECT_NE(failed.text.find("live.key"), std::string::npos) << failed.text;
  auto still = upgraded(live_srv.port());
  EXPECT_EQ(still->tls_peer_subject(), "/CN=localhost reloaded");

  // A server without TLS has nothing to reload.
  running_server plain(test_options(), add_echo);
  EXPECT_EQ(plain.get().reload_tls().code, std::errc::operation_not_supported);
}

}  // namespace
}  // namespace switchboard::server::test
