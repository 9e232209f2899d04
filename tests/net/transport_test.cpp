// transport_test.cpp — transport over loopback in both modes (plain TCP and
// TLS): echo, one handler for every transport, shutdown_write() with nothing
// buffered, with corked bytes and while write-blocked, backpressure and drain,
// TLS failures reaching on_close, the size of a plain transport, and (through
// the fixture) no descriptor leaks.
#include "switchboard/net/transport.hpp"

#include <sys/socket.h>

#include <atomic>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_support.hpp"
#include "tls_certs.hpp"

namespace switchboard::net {
namespace {

using namespace std::chrono_literals;
using test::as_bytes;
using test::as_string;

enum class mode { plain, tls };

std::ostream& operator<<(std::ostream& out, mode m) {
  return out << (m == mode::tls ? "tls" : "plain");
}

// One handler for any number of transports; what each transport reported is
// kept apart, keyed by the transport the callback named.
struct recording_handler final : transport_handler {
  struct record {
    int handshakes = 0;
    int drained = 0;
    int closes = 0;
    std::string received;
    std::error_code close_error;
    std::string close_text;
  };

  void on_handshake(transport& t) override { ++of[&t].handshakes; }
  void on_data(transport& t, std::span<std::byte> data) override {
    of[&t].received += as_string(data);
    if (data_fn) data_fn(t, data);
  }
  void on_drained(transport& t) override { ++of[&t].drained; }
  void on_close(transport& t, std::error_code error) override {
    record& r = of[&t];
    ++r.closes;
    r.close_error = error;
    r.close_text = std::string(t.last_error_text());
  }

  std::map<const transport*, record> of;
  std::function<void(transport&, std::span<std::byte>)> data_fn;
};

void echo(transport& t, std::span<std::byte> data) {
  EXPECT_NE(t.send(data), send_status::dropped);
}

class transport_fixture : public test::net_test {
 protected:
  void SetUp() override {
    net_test::SetUp();
    ASSERT_EQ(test::certs().error, "");
    loop = test::make_loop();
    ASSERT_TRUE(loop);
    tls_error error;
    tls_server_options server;
    server.certificate_chain_file = test::certs().server.cert;
    server.private_key_file = test::certs().server.key;
    server_tls = tls_context::server(server, error);
    ASSERT_TRUE(server_tls) << error.text;
    tls_client_options client;
    client.ca_file = test::certs().ca;
    client_tls = tls_context::client(client, error);
    ASSERT_TRUE(client_tls) << error.text;
  }
  void TearDown() override {
    transports.clear();
    loop.reset();
    net_test::TearDown();
  }

  transport& make(transport_handler& handler, tls_context* tls, event_loop* on = nullptr) {
    transports.push_back(std::make_unique<transport>(on ? *on : *loop, handler, tls));
    return *transports.back();
  }

  // A connected pair in `m`: {client, server}.
  std::pair<transport*, transport*> connect(mode m, transport_handler& server,
                                            transport_handler& client) {
    auto [client_fd, server_fd] = test::tcp_pair();
    const bool tls = m == mode::tls;
    transport& s = make(server, tls ? server_tls.get() : nullptr);
    transport& c = make(client, tls ? client_tls.get() : nullptr);
    EXPECT_FALSE(s.open(std::move(server_fd)));
    EXPECT_FALSE(c.open(std::move(client_fd), "localhost")) << c.last_error_text();
    return {&c, &s};
  }

  template <class Predicate>
  bool run_until(Predicate done, std::chrono::milliseconds limit = 10s) {
    const auto hook = loop->add_iteration_hook([this, done] {
      if (done()) loop->stop();
    });
    const bool ok = test::run_for_at_most(*loop, limit);
    loop->remove_iteration_hook(hook);
    return ok;
  }

  std::unique_ptr<event_loop> loop;
  std::unique_ptr<tls_context> server_tls;
  std::unique_ptr<tls_context> client_tls;
  std::vector<std::unique_ptr<transport>> transports;
};

class transport_test : public transport_fixture, public ::testing::WithParamInterface<mode> {
 protected:
  [[nodiscard]] bool tls() const { return GetParam() == mode::tls; }
  std::pair<transport*, transport*> connect(transport_handler& server, transport_handler& client) {
    return transport_fixture::connect(GetParam(), server, client);
  }
  // Until both ends can carry bytes: TLS after both handshakes, TCP at once.
  bool wait_until_ready(const transport& a, const transport& b) {
    if (a.handshake_complete() && b.handshake_complete()) return true;
    return run_until([&] { return a.handshake_complete() && b.handshake_complete(); });
  }
};

TEST_P(transport_test, EchoSmallAndOneMebibyte) {
  recording_handler server;
  recording_handler client;
  server.data_fn = echo;
  const auto ends = connect(server, client);
  transport* const c = ends.first;
  transport* const s = ends.second;
  EXPECT_EQ(c->is_tls(), tls());
  EXPECT_EQ(s->is_tls(), tls());
  // Sent at once: TLS keeps the bytes until its handshake completes.
  const std::string small = "hello through the transport";
  const std::string big = test::pattern(0, 1024 * 1024);
  EXPECT_NE(c->send(as_bytes(small)), send_status::dropped);
  EXPECT_NE(c->send({as_bytes(big)}), send_status::dropped);
  const std::string expected = small + big;
  ASSERT_TRUE(run_until([&] { return client.of[c].received.size() >= expected.size(); }));
  EXPECT_TRUE(client.of[c].received == expected) << "echo corrupted or reordered";
  EXPECT_TRUE(server.of[s].received == expected);
  const int handshakes = tls() ? 1 : 0;  // plain TCP has none to report
  EXPECT_EQ(client.of[c].handshakes, handshakes);
  EXPECT_EQ(server.of[s].handshakes, handshakes);
  EXPECT_TRUE(c->handshake_complete());
  EXPECT_EQ(c->alpn_protocol(), tls() ? "http/1.1" : "");
  EXPECT_EQ(s->protocol_version(), tls() ? "TLSv1.3" : "");
  EXPECT_EQ(c->peer_subject(), tls() ? "/CN=localhost" : "");
  EXPECT_EQ(s->server_name(), tls() ? "localhost" : "");
  EXPECT_EQ(c->tls() != nullptr, tls());
  EXPECT_GE(c->native_handle(), 0);
  EXPECT_EQ(c->buffered_bytes(), 0u);
  EXPECT_EQ(s->buffered_bytes(), 0u);
  EXPECT_EQ(client.of[c].closes + server.of[s].closes, 0);
}

// shutdown_write() right after a send: the bytes are corked, and the end of
// the write side must follow them, not overtake them.
TEST_P(transport_test, ShutdownWriteAfterCorkedBytes) {
  recording_handler server;
  recording_handler client;
  const auto ends = connect(server, client);
  transport* const c = ends.first;
  transport* const s = ends.second;
  ASSERT_TRUE(wait_until_ready(*c, *s));
  loop->post([s = s] {
    EXPECT_EQ(s->send(as_bytes("last words")), send_status::ok);
    s->shutdown_write();
    EXPECT_EQ(s->send(as_bytes("too late")), send_status::dropped);
    EXPECT_TRUE(s->is_open());  // reading goes on
  });
  ASSERT_TRUE(run_until([&] { return client.of[c].closes == 1 && server.of[s].closes == 1; }));
  EXPECT_EQ(client.of[c].received, "last words");
  // An orderly end both ways: TCP end of stream, or TLS close_notify answered.
  EXPECT_FALSE(client.of[c].close_error) << client.of[c].close_error.message();
  EXPECT_FALSE(server.of[s].close_error) << server.of[s].close_error.message();
  EXPECT_FALSE(s->is_open());
  EXPECT_EQ(s->native_handle(), -1);
}

// The peer's last bytes and the end of its write side in one read (for TLS,
// data and close_notify in the same segment): the handler sees the bytes
// first and may still answer them, and the answer reaches the peer before
// our end. A WebSocket close frame is echoed this way (RFC 6455 5.5.1).
TEST_P(transport_test, AnswerToLastWordsArrivingWithTheEnd) {
  recording_handler server;
  recording_handler client;
  client.data_fn = [](transport& t, std::span<std::byte>) {
    EXPECT_EQ(t.send(as_bytes("answer")), send_status::ok);
  };
  const auto ends = connect(server, client);
  transport* const c = ends.first;
  transport* const s = ends.second;
  ASSERT_TRUE(wait_until_ready(*c, *s));
  loop->post([s = s] {
    EXPECT_EQ(s->send(as_bytes("last words")), send_status::ok);
    s->shutdown_write();  // corked bytes and the end leave in one flush
  });
  ASSERT_TRUE(run_until([&] { return client.of[c].closes == 1 && server.of[s].closes == 1; }));
  EXPECT_EQ(client.of[c].received, "last words");
  EXPECT_EQ(server.of[s].received, "answer");
  EXPECT_FALSE(client.of[c].close_error) << client.of[c].close_error.message();
  EXPECT_FALSE(server.of[s].close_error) << server.of[s].close_error.message();
}

TEST_P(transport_test, ShutdownWriteWithNothingBuffered) {
  recording_handler server;
  recording_handler client;
  const auto ends = connect(server, client);
  transport* const c = ends.first;
  transport* const s = ends.second;
  ASSERT_TRUE(wait_until_ready(*c, *s));
  s->shutdown_write();
  s->shutdown_write();  // a second call changes nothing
  ASSERT_TRUE(run_until([&] { return client.of[c].closes == 1 && server.of[s].closes == 1; }));
  EXPECT_EQ(client.of[c].received, "");
  EXPECT_FALSE(client.of[c].close_error) << client.of[c].close_error.message();
  EXPECT_FALSE(server.of[s].close_error) << server.of[s].close_error.message();
}

// The sender runs on the test's loop, its peer on a second loop in a thread
// that the test pauses (the peer then reads nothing) and resumes.
class transport_backpressure_test : public transport_test {
 protected:
  struct peer_handler final : transport_handler {
    void on_data(transport& /*t*/, std::span<std::byte> data) override {
      received += as_string(data);
      size.store(received.size());
      sender_loop->post([] {});  // wake the sender's loop to check on progress
    }
    void on_close(transport& /*t*/, std::error_code error) override {
      close_error = error;
      closed.store(true);
      sender_loop->post([] {});
    }
    event_loop* sender_loop = nullptr;
    std::string received;
    std::atomic<std::size_t> size{0};
    std::error_code close_error;
    std::atomic<bool> closed{false};
  };

  void SetUp() override {
    transport_test::SetUp();
    if (HasFatalFailure()) return;
    peer_loop = test::make_loop();
    ASSERT_TRUE(peer_loop);
    peer.sender_loop = loop.get();
    auto [client_fd, server_fd] = test::tcp_pair();
    const int small = 16 * 1024;
    ::setsockopt(server_fd.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ::setsockopt(client_fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sender = &make(sender_handler, tls() ? server_tls.get() : nullptr);
    peer_transport =
        std::make_unique<transport>(*peer_loop, peer, tls() ? client_tls.get() : nullptr);
    ASSERT_FALSE(sender->open(std::move(server_fd)));
    ASSERT_FALSE(peer_transport->open(std::move(client_fd), "localhost"));
    if (tls()) {
      resume_peer();
      const bool ok = run_until([&] { return sender->handshake_complete(); });
      pause_peer();
      ASSERT_TRUE(ok);
    }
  }
  void TearDown() override {
    if (peer_thread.joinable()) pause_peer();
    peer_transport.reset();
    peer_loop.reset();
    transport_test::TearDown();
  }

  void resume_peer() {
    peer_thread = std::thread([this] { EXPECT_TRUE(test::run_for_at_most(*peer_loop, 20s)); });
  }
  void pause_peer() {
    peer_loop->stop();
    peer_thread.join();
  }

  // Sends 8 KiB per iteration while the peer reads nothing, until 1 MiB waits.
  // Returns the bytes sent.
  std::size_t fill() {
    constexpr std::size_t k_chunk = 8 * 1024;
    constexpr std::size_t k_target = 1024 * 1024;
    std::size_t sent = 0;
    bool saw_backpressure = false;
    const auto hook = loop->add_iteration_hook([&] {
      if (sender->buffered_bytes() >= k_target) return loop->stop();
      const send_status status = sender->send(as_bytes(test::pattern(sent, k_chunk)));
      EXPECT_NE(status, send_status::dropped);
      saw_backpressure = saw_backpressure || status == send_status::backpressure;
      sent += k_chunk;
      loop->defer([] {});  // the next iteration at once
    });
    loop->defer([] {});
    EXPECT_TRUE(test::run_for_at_most(*loop, 10s));
    loop->remove_iteration_hook(hook);
    EXPECT_TRUE(saw_backpressure);
    EXPECT_TRUE(sender->write_blocked());
    EXPECT_GE(sender->buffered_bytes(), k_target);
    // The kernel may take more while the peer sleeps (its receive window and
    // our send buffer grow), which empties the backlog once and reports it:
    // count the drains from here on.
    drained_before_resume = sender_handler.of[sender].drained;
    return sent;
  }

  int drained_before_resume = 0;
  std::unique_ptr<event_loop> peer_loop;
  std::thread peer_thread;
  peer_handler peer;
  std::unique_ptr<transport> peer_transport;
  recording_handler sender_handler;
  transport* sender = nullptr;
};

TEST_P(transport_backpressure_test, BuffersThenDrains) {
  const std::size_t sent = fill();
  resume_peer();
  const bool drained = run_until(
      [&] {
        return sender_handler.of[sender].drained > drained_before_resume &&
               peer.size.load() >= sent;
      },
      15s);
  pause_peer();
  ASSERT_TRUE(drained) << "peer got " << peer.size.load() << " of " << sent << ", buffered "
                       << sender->buffered_bytes();
  EXPECT_EQ(sender_handler.of[sender].drained, drained_before_resume + 1);
  EXPECT_EQ(sender->buffered_bytes(), 0u);
  EXPECT_FALSE(sender->write_blocked());
  ASSERT_EQ(peer.received.size(), sent);
  EXPECT_TRUE(peer.received == test::pattern(0, sent)) << "bytes lost or reordered";
  EXPECT_FALSE(peer.closed.load());
}

// shutdown_write() while the kernel refuses bytes: every byte reaches the
// peer first, then the end of the write side.
TEST_P(transport_backpressure_test, ShutdownWriteWhileWriteBlocked) {
  const std::size_t sent = fill();
  sender->shutdown_write();
  EXPECT_EQ(sender->send(as_bytes("too late")), send_status::dropped);
  resume_peer();
  const bool done =
      run_until([&] { return peer.closed.load() && sender_handler.of[sender].closes == 1; }, 15s);
  pause_peer();
  ASSERT_TRUE(done) << "peer got " << peer.size.load() << " of " << sent << ", closed "
                    << peer.closed.load();
  EXPECT_EQ(sender_handler.of[sender].drained, drained_before_resume + 1);
  ASSERT_EQ(peer.received.size(), sent);
  EXPECT_TRUE(peer.received == test::pattern(0, sent)) << "bytes lost or reordered";
  EXPECT_FALSE(peer.close_error) << peer.close_error.message();
  EXPECT_FALSE(sender_handler.of[sender].close_error)
      << sender_handler.of[sender].close_error.message();
}

const auto k_modes = ::testing::Values(mode::plain, mode::tls);
std::string mode_name(const ::testing::TestParamInfo<mode>& info) {
  return info.param == mode::tls ? "tls" : "plain";
}
INSTANTIATE_TEST_SUITE_P(transport, transport_test, k_modes, mode_name);
INSTANTIATE_TEST_SUITE_P(transport, transport_backpressure_test, k_modes, mode_name);

TEST_F(transport_fixture, OneHandlerServesBothModes) {
  recording_handler handler;  // every transport of this test reports here
  handler.data_fn = [](transport& t, std::span<std::byte> data) {
    if (t.native_handle() >= 0 && as_string(data).rfind("to ", 0) == 0) echo(t, data.subspan(3));
  };
  const auto plain = connect(mode::plain, handler, handler);
  transport* const plain_client = plain.first;
  transport* const plain_server = plain.second;
  const auto secure = connect(mode::tls, handler, handler);
  transport* const tls_client = secure.first;
  transport* const tls_server = secure.second;
  plain_client->send(as_bytes("to plain"));
  tls_client->send(as_bytes("to secure"));
  ASSERT_TRUE(run_until([&] {
    return handler.of[plain_client].received.size() >= 5 &&
           handler.of[tls_client].received.size() >= 6;
  }));
  EXPECT_EQ(handler.of[plain_server].received, "to plain");
  EXPECT_EQ(handler.of[plain_client].received, "plain");
  EXPECT_EQ(handler.of[tls_server].received, "to secure");
  EXPECT_EQ(handler.of[tls_client].received, "secure");
  EXPECT_EQ(handler.of[plain_client].handshakes + handler.of[plain_server].handshakes, 0);
  EXPECT_EQ(handler.of[tls_client].handshakes, 1);
  EXPECT_EQ(handler.of[tls_server].handshakes, 1);
  EXPECT_EQ(handler.of.size(), 4u);
}

// Plain TCP: after shutdown_write() the peer sees end of stream after our
// last byte, and what it sends afterwards still arrives.
TEST_F(transport_fixture, TcpHalfCloseKeepsReading) {
  recording_handler handler;
  auto [peer_fd, server_fd] = test::tcp_pair();
  transport& s = make(handler, nullptr);
  ASSERT_FALSE(s.open(std::move(server_fd)));
  bool posted = false;
  loop->post([&] {
    s.send(as_bytes("bye"));
    s.shutdown_write();  // corked: waits for this iteration's flush
    EXPECT_EQ(loop->timers().size(), 1u);
    posted = true;
  });
  // The wait fires in the next iteration; the half-close is done then.
  ASSERT_TRUE(run_until([&] { return posted && loop->timers().size() == 0; }));
  EXPECT_EQ(test::read_exactly(peer_fd.get(), 4, 2s), "bye");  // 3 bytes, then end of stream
  char byte = 0;
  EXPECT_EQ(::recv(peer_fd.get(), &byte, 1, MSG_DONTWAIT), 0) << "expected end of stream";
  ASSERT_EQ(::send(peer_fd.get(), "still listening", 15, MSG_NOSIGNAL), 15);
  ASSERT_TRUE(run_until([&] { return handler.of[&s].received.size() >= 15; }));
  EXPECT_EQ(handler.of[&s].received, "still listening");
  EXPECT_EQ(handler.of[&s].closes, 0);
  peer_fd.reset();
  ASSERT_TRUE(run_until([&] { return handler.of[&s].closes == 1; }));
  EXPECT_FALSE(handler.of[&s].close_error);
}

// The half-close waiting for the flush must not outlive its transport.
TEST_F(transport_fixture, DestroyedOrClosedWhileWaitingForTheFlush) {
  recording_handler handler;
  auto [peer_a, server_a] = test::tcp_pair();
  auto [peer_b, server_b] = test::tcp_pair();
  transport& a = make(handler, nullptr);
  transport& b = make(handler, nullptr);
  ASSERT_FALSE(a.open(std::move(server_a)));
  ASSERT_FALSE(b.open(std::move(server_b)));
  bool posted = false;
  loop->post([&] {
    a.send(as_bytes("dropped"));
    a.shutdown_write();
    b.send(as_bytes("dropped"));
    b.shutdown_write();
    EXPECT_EQ(loop->timers().size(), 2u);
    transports.erase(transports.begin());  // a, with its wait scheduled
    b.close();
    EXPECT_EQ(loop->timers().size(), 0u);
    posted = true;
  });
  ASSERT_TRUE(run_until([&] { return posted; }));
  // A few more iterations, in which a wait left behind would fire.
  test::stop_timer settle(*loop);
  loop->timers().schedule(settle.node, 50ms);
  ASSERT_TRUE(test::run_for_at_most(*loop));
  EXPECT_EQ(handler.of[&b].closes, 0);
  // Both peers see the connection end (a reset or end of stream), nothing else.
  EXPECT_EQ(test::read_exactly(peer_a.get(), 1, 1s), "");
  EXPECT_EQ(test::read_exactly(peer_b.get(), 1, 1s), "");
}

TEST_F(transport_fixture, TlsFailureReachesOnCloseWithTheReason) {
  tls_error error;
  tls_server_options options;
  options.certificate_chain_file = test::certs().self.cert;
  options.private_key_file = test::certs().self.key;
  auto self_signed = tls_context::server(options, error);
  ASSERT_TRUE(self_signed) << error.text;
  recording_handler handler;
  auto [client_fd, server_fd] = test::tcp_pair();
  transport& s = make(handler, self_signed.get());
  transport& c = make(handler, client_tls.get());
  ASSERT_FALSE(s.open(std::move(server_fd)));
  ASSERT_FALSE(c.open(std::move(client_fd), "localhost"));
  ASSERT_TRUE(run_until([&] { return handler.of[&c].closes == 1 && handler.of[&s].closes == 1; }));
  EXPECT_EQ(handler.of[&c].close_error, tls_failure::certificate_rejected);
  EXPECT_NE(handler.of[&c].close_text.find("self-signed certificate"), std::string::npos)
      << handler.of[&c].close_text;
  EXPECT_NE(c.last_error_text().find("self-signed certificate"), std::string::npos);
  EXPECT_EQ(handler.of[&c].handshakes, 0);
  EXPECT_FALSE(c.is_open());
}

TEST_F(transport_fixture, OpenErrorsCloseTheSocket) {
  recording_handler handler;
  transport& c = make(handler, client_tls.get());
  EXPECT_EQ(c.native_handle(), -1);
  EXPECT_FALSE(c.is_open());
  EXPECT_EQ(c.send(as_bytes("x")), send_status::dropped);  // before open: no stream yet
  auto [client_fd, server_fd] = test::tcp_pair();
  // A verifying client must be told which host to expect.
  EXPECT_EQ(c.open(std::move(client_fd)), std::errc::invalid_argument);
  EXPECT_FALSE(c.is_open());
  EXPECT_EQ(c.native_handle(), -1);
  // The fixture checks that the socket was closed.
}

// A client picks the mode per URL: one transport, reopened plain, TLS, plain.
TEST_F(transport_fixture, SetTlsSwitchesTheModeWhileClosed) {
  recording_handler server;
  recording_handler client;
  server.data_fn = echo;
  transport& c = make(client, nullptr);
  for (tls_context* tls :
       {static_cast<tls_context*>(nullptr), client_tls.get(), static_cast<tls_context*>(nullptr)}) {
    c.set_tls(tls);
    EXPECT_EQ(c.is_tls(), tls != nullptr);
    auto [client_fd, server_fd] = test::tcp_pair();
    transport& s = make(server, tls ? server_tls.get() : nullptr);
    ASSERT_FALSE(s.open(std::move(server_fd)));
    ASSERT_FALSE(c.open(std::move(client_fd), "localhost"));
    client.of[&c].received.clear();
    c.send(as_bytes(tls ? "secure" : "plain"));
    const std::size_t want = tls ? 6 : 5;
    ASSERT_TRUE(run_until([&] { return client.of[&c].received.size() >= want; }));
    EXPECT_EQ(client.of[&c].received, tls ? "secure" : "plain");
    c.close();
    s.close();
  }
  EXPECT_EQ(client.of[&c].handshakes, 1);
}

// The owner may switch the mode from on_close, i.e. destroy the stream that
// is calling it.
TEST_F(transport_fixture, SetTlsFromOnClose) {
  struct switching_handler final : transport_handler {
    void on_data(transport& /*t*/, std::span<std::byte> /*data*/) override {}
    void on_close(transport& t, std::error_code /*error*/) override {
      ++closes;
      t.set_tls(next);
    }
    tls_context* next = nullptr;
    int closes = 0;
  } handler;
  for (tls_context* from : {static_cast<tls_context*>(nullptr), client_tls.get()}) {
    handler.next = from ? nullptr : client_tls.get();
    transport& c = make(handler, from);
    auto [client_fd, server_fd] = test::tcp_pair();
    ASSERT_FALSE(c.open(std::move(client_fd), "localhost"));
    server_fd.reset();  // end of stream (TLS: before the handshake completed)
    const int before = handler.closes;
    ASSERT_TRUE(run_until([&] { return handler.closes > before; }));
    EXPECT_EQ(c.is_tls(), from == nullptr);
    EXPECT_FALSE(c.is_open());
  }
}

TEST_F(transport_fixture, SizeOfAPlainTransport) {
  std::cout << "  sizeof(transport) " << sizeof(transport) << ", sizeof(tcp_stream) "
            << sizeof(tcp_stream) << ", sizeof(tls_stream) " << sizeof(tls_stream) << '\n';
  RecordProperty("sizeof_transport", static_cast<int>(sizeof(transport)));
  // The tcp_stream, a vtable pointer, the owner, the half-close wait, the flags.
  EXPECT_LE(sizeof(transport), sizeof(tcp_stream) + 32);
  EXPECT_LT(sizeof(transport), sizeof(tls_stream)) << "the TLS stream must not be inline";
}

}  // namespace
}  // namespace switchboard::net
