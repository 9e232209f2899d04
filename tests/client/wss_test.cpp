// wss_test.cpp — the client over TLS (client_options::tls) against our own
// server speaking wss:// (switchboard::server with server_options::tls):
// echo verified against the test CA by name and by address, certificate
// failures reported with OpenSSL's reason, verification switched off, one
// client switching between ws:// and wss://, wss:// to a plain server, and
// the handshake timeout bounding the TLS handshake.
#include <memory>
#include <string>
#include <utility>

#include "../net/tls_certs.hpp"
#include "client_fixture.hpp"
#include "switchboard/net/tls_context.hpp"
#include "switchboard/server/server.hpp"
#include "test_server.hpp"

namespace switchboard::client::test {
namespace {

using protocol::opcode;
namespace certs = net::test;

std::unique_ptr<net::tls_context> server_context(const certs::cert_pair& pair) {
  net::tls_server_options options;
  options.certificate_chain_file = pair.cert;
  options.private_key_file = pair.key;
  net::tls_error error;
  auto context = net::tls_context::server(options, error);
  EXPECT_TRUE(context) << error.text;
  return context;
}

std::unique_ptr<net::tls_context> client_context(const std::string& ca_file,
                                                 bool insecure = false) {
  net::tls_client_options options;
  options.ca_file = ca_file;
  options.insecure_skip_verification = insecure;
  net::tls_error error;
  auto context = net::tls_context::client(options, error);
  EXPECT_TRUE(context) << error.text;
  return context;
}

// An echo server on its own loop thread, wss:// when `tls` is set.
class echo_server {
 public:
  explicit echo_server(net::tls_context* tls) {
    server::server_options options;
    options.port = 0;
    options.handle_signals = false;
    options.timer_tick = std::chrono::milliseconds(10);
    options.tls = tls;
    server_ = std::make_unique<server::server>(std::move(options));
    server::ws_behavior echo;
    echo.on_message = [](server::websocket& ws, std::string_view payload, opcode op) {
      ws.send(payload, op);
    };
    server_->ws("*", std::move(echo));
    EXPECT_FALSE(server_->listen());
    EXPECT_FALSE(server_->start());
  }
  std::string url(std::string_view scheme, std::string_view host = "127.0.0.1") const {
    return std::string(scheme) + "://" + std::string(host) + ":" + std::to_string(server_->port()) +
           "/";
  }

 private:
  std::unique_ptr<server::server> server_;
};

class wss_client_test : public client_test {
 protected:
  // Made before the first test counts descriptors (certificate generation,
  // OpenSSL's first use).
  static void SetUpTestSuite() {
    ASSERT_EQ(certs::certs().error, "");
    const certs::test_certs& c = certs::certs();
    good_ = server_context(c.server).release();
    expired_ = server_context(c.expired).release();
    other_ = server_context(c.other).release();
    self_ = server_context(c.self).release();
    trusting_ = client_context(c.ca).release();
    system_store_ = client_context("").release();
    insecure_ = client_context("", true).release();
  }
  static void TearDownTestSuite() {
    for (net::tls_context** c :
         {&good_, &expired_, &other_, &self_, &trusting_, &system_store_, &insecure_}) {
      delete *c;
      *c = nullptr;
    }
  }

  // Connects to `url`, sends `lines` one by one as each echo arrives, closes
  // with 1000 after the last; runs until closed.
  void echo_session(const std::string& url, std::vector<std::string> lines) {
    std::size_t next = 0;
    on_open_hook = [&] { client_->send_text(lines[next]); };
    on_message_hook = [&] {
      if (++next < lines.size()) {
        client_->send_text(lines[next]);
      } else {
        client_->close(1000, "done");
      }
    };
    ASSERT_FALSE(client_->connect(url));
    ASSERT_TRUE(run());
    on_open_hook = nullptr;
    on_message_hook = nullptr;
  }

  static inline net::tls_context* good_ = nullptr;
  static inline net::tls_context* expired_ = nullptr;
  static inline net::tls_context* other_ = nullptr;
  static inline net::tls_context* self_ = nullptr;
  static inline net::tls_context* trusting_ = nullptr;
  static inline net::tls_context* system_store_ = nullptr;
  static inline net::tls_context* insecure_ = nullptr;
};

TEST_F(wss_client_test, EchoVerifiedAgainstTheCaByNameAndByAddress) {
  echo_server server(good_);
  client_options options;
  options.tls = trusting_;
  make_client(std::move(options));
  const std::vector<std::string> lines = {"hello", "h\u00e9llo \u2713", std::string(70000, 'a'),
                                          ""};
  for (const char* host : {"localhost", "127.0.0.1"}) {
    SCOPED_TRACE(host);
    messages_.clear();
    close_.reset();
    echo_session(server.url("wss", host), lines);
    EXPECT_TRUE(errors_.empty()) << (error_texts_.empty() ? "" : error_texts_.front());
    ASSERT_EQ(messages_.size(), lines.size());
    for (std::size_t i = 0; i < lines.size(); ++i) {
      EXPECT_TRUE(messages_[i].payload == lines[i]) << i;
      EXPECT_EQ(messages_[i].op, opcode::text);
    }
    ASSERT_TRUE(close_);
    EXPECT_EQ(close_->first, 1000);
  }
  EXPECT_EQ(opens_, 2);
}

TEST_F(wss_client_test, CertificateFailuresCarryOpenSslsReason) {
  struct refusal {
    net::tls_context* server_tls;
    net::tls_context* client_tls;
    const char* host;
    const char* reason;
  };
  const refusal cases[] = {
      {expired_, trusting_, "localhost", "certificate has expired"},
      {other_, trusting_, "localhost", "hostname mismatch"},
      {other_, trusting_, "127.0.0.1", "IP address mismatch"},
      {self_, trusting_, "localhost", "self-signed certificate"},
      {good_, system_store_, "localhost", "unable to get local issuer certificate"},
  };
  for (const refusal& r : cases) {
    SCOPED_TRACE(r.reason);
    echo_server server(r.server_tls);
    client_options options;
    options.tls = r.client_tls;
    errors_.clear();
    error_texts_.clear();
    states_.clear();
    make_client(std::move(options));
    ASSERT_FALSE(client_->connect(server.url("wss", r.host)));
    ASSERT_TRUE(run());
    ASSERT_EQ(errors_.size(), 1u);
    EXPECT_EQ(errors_[0], net::tls_failure::certificate_rejected) << errors_[0].message();
    const std::string& text = error_texts_[0];
    EXPECT_NE(text.find(r.reason), std::string::npos) << text;
    EXPECT_EQ(text.rfind("TLS handshake with " + std::string(r.host) + " failed: ", 0), 0u) << text;
    EXPECT_EQ(text.find('\n'), std::string::npos) << "one line: " << text;
    EXPECT_EQ(opens_, 0);
    EXPECT_EQ(client_->state(), client_state::closed);
    ASSERT_FALSE(states_.empty());
    EXPECT_EQ(states_.back().code, 1006);
  }
}

TEST_F(wss_client_test, InsecureSkipVerificationAcceptsAnyCertificate) {
  for (net::tls_context* server_tls : {expired_, other_, self_}) {
    echo_server server(server_tls);
    client_options options;
    options.tls = insecure_;
    make_client(std::move(options));
    messages_.clear();
    echo_session(server.url("wss"), {"anyway"});
    EXPECT_TRUE(errors_.empty()) << (error_texts_.empty() ? "" : error_texts_.front());
    ASSERT_EQ(messages_.size(), 1u);
    EXPECT_EQ(messages_[0].payload, "anyway");
  }
}

TEST_F(wss_client_test, OneClientSwitchesBetweenWsAndWss) {
  echo_server plain(nullptr);
  echo_server secure(good_);
  client_options options;
  options.tls = trusting_;
  make_client(std::move(options));
  for (const auto& url : {plain.url("ws"), secure.url("wss"), plain.url("ws"), secure.url("wss")}) {
    SCOPED_TRACE(url);
    messages_.clear();
    echo_session(url, {url});
    EXPECT_TRUE(errors_.empty()) << (error_texts_.empty() ? "" : error_texts_.front());
    ASSERT_EQ(messages_.size(), 1u);
    EXPECT_EQ(messages_[0].payload, url);
  }
  EXPECT_EQ(opens_, 4);
}

TEST_F(wss_client_test, WssToAPlainServerFailsInTheTlsHandshake) {
  echo_server plain(nullptr);
  client_options options;
  options.tls = trusting_;
  make_client(std::move(options));
  ASSERT_FALSE(client_->connect(plain.url("wss")));
  ASSERT_TRUE(run());
  ASSERT_EQ(errors_.size(), 1u);
  // The plain server answers the ClientHello with HTTP 400 or just closes.
  EXPECT_EQ(error_texts_[0].rfind("TLS handshake with 127.0.0.1 failed: ", 0), 0u)
      << error_texts_[0];
  EXPECT_EQ(opens_, 0);
}

TEST_F(wss_client_test, HandshakeTimeoutBoundsTheTlsHandshake) {
  // A peer that accepts TCP and never answers the ClientHello.
  scripted_server silent([](server_peer& peer) { peer.wait_eof(); });
  client_options options;
  options.tls = trusting_;
  options.handshake_timeout = 200ms;
  make_client(std::move(options));
  std::string url = silent.url();
  url.replace(0, 2, "wss");  // ws://127.0.0.1:PORT/ -> wss://...
  ASSERT_FALSE(client_->connect(url));
  ASSERT_TRUE(run());
  ASSERT_EQ(errors_.size(), 1u);
  EXPECT_EQ(errors_[0], client_error::handshake_timeout);
  EXPECT_EQ(error_texts_[0], "TLS handshake with 127.0.0.1 failed: no answer within 200 ms");
  EXPECT_EQ(opens_, 0);
}

}  // namespace
}  // namespace switchboard::client::test
