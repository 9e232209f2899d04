// deflate_test.cpp — the client's permessage-deflate (RFC 7692): the offer,
// answers it must refuse, declined offers, compressed frames from a scripted
// server (good, bomb, corrupt), and our client against our server in both
// compression modes.
#include <memory>
#include <string>

#include "client_fixture.hpp"
#include "switchboard/protocol/error.hpp"
#include "switchboard/protocol/handshake.hpp"
#include "switchboard/protocol/permessage_deflate.hpp"
#include "switchboard/server/server.hpp"
#include "test_server.hpp"

namespace switchboard::client::test {
namespace {

using protocol::event_kind;
using protocol::opcode;

std::string words(std::size_t size, unsigned seed = 1) {
  static const char* const vocab[] = {"alpha ", "beta ", "gamma ", "delta ", "frame ", "inflate "};
  std::string s;
  unsigned x = seed;
  while (s.size() < size) {
    x = x * 1103515245u + 12345u;
    s += vocab[(x >> 16) % 6];
  }
  s.resize(size);
  return s;
}

client_options deflate_options() {
  client_options o;
  o.deflate = true;
  return o;
}

// A 101 for the request the peer read, with `extensions` as the answer.
std::string answer_101(const server_peer& peer, std::string_view extensions) {
  const auto accept = protocol::compute_accept(peer.key());
  return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: " +
         std::string(accept.data(), accept.size()) + "\r\nSec-WebSocket-Extensions: " +
         std::string(extensions) + "\r\n\r\n";
}

// A compressed server frame (RSV1, unmasked) of `message`.
std::string compressed_frame(opcode op, std::string_view message) {
  protocol::deflater d;
  std::string body;
  EXPECT_EQ(d.compress(message, body), protocol::error::none);
  std::string frame;
  protocol::message_writer(protocol::role::server).append_frame(frame, op, body, true, true);
  return frame;
}

class client_deflate_test : public client_test {};

TEST_F(client_deflate_test, OffersAndUsesCompression) {
  std::string request;
  scripted_server server([&](server_peer& peer) {
    request = peer.read_request();
    peer.send_raw(answer_101(peer, "permessage-deflate; server_no_context_takeover") +
                  compressed_frame(opcode::text, words(5000)));
    // The client's echo arrives compressed (it is over the threshold).
    peer.allow_rsv1();
    const peer_event e = peer.next();
    EXPECT_EQ(e.kind, event_kind::message);
    EXPECT_TRUE(e.compressed);
    protocol::inflater inflater;
    std::string out;
    EXPECT_EQ(inflater.inflate(e.payload, out), protocol::error::none);
    EXPECT_EQ(out, words(5000));
    peer.send_close(1000);
    (void)peer.next();
  });
  make_client(deflate_options());
  on_message_hook = [&] { client_->send_text(messages_.back().payload); };
  ASSERT_FALSE(client_->connect(server.url()));
  ASSERT_TRUE(run());
  EXPECT_NE(request.find("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"),
            std::string::npos)
      << request;
  ASSERT_EQ(messages_.size(), 1u);
  EXPECT_EQ(messages_[0].payload, words(5000));
  EXPECT_TRUE(errors_.empty()) << (error_texts_.empty() ? "" : error_texts_[0]);
}

TEST_F(client_deflate_test, DeclinedOfferMeansPlainMessages) {
  scripted_server server([](server_peer& peer) {
    peer.handshake();
    peer.send(opcode::text, "plain");
    peer.send_close(1000);
    (void)peer.next();
  });
  make_client(deflate_options());
  on_open_hook = [&] { EXPECT_FALSE(client_->deflate_params()); };
  ASSERT_FALSE(client_->connect(server.url()));
  ASSERT_TRUE(run());
  ASSERT_EQ(messages_.size(), 1u);
  EXPECT_EQ(messages_[0].payload, "plain");
}

struct bad_answer {
  const char* answer;
  protocol::error expected;
  bool offer = true;
};

TEST_F(client_deflate_test, BadAnswersFailTheConnection) {
  const bad_answer cases[] = {
      {"permessage-deflate; bogus", protocol::error::response_deflate_bad_param},
      {"permessage-deflate; client_max_window_bits=8", protocol::error::response_deflate_window_8},
      {"permessage-deflate; server_max_window_bits=16", protocol::error::response_deflate_bad_param},
      {"permessage-deflate, permessage-deflate", protocol::error::response_deflate_repeated},
      {"permessage-deflate", protocol::error::response_unexpected_extension, false},
  };
  for (const bad_answer& c : cases) {
    errors_.clear();
    error_texts_.clear();
    opens_ = 0;
    scripted_server server([&](server_peer& peer) {
      (void)peer.read_request();
      peer.send_raw(answer_101(peer, c.answer));
      (void)peer.wait_eof();
    });
    make_client(c.offer ? deflate_options() : client_options{});
    ASSERT_FALSE(client_->connect(server.url()));
    ASSERT_TRUE(run());
    EXPECT_EQ(opens_, 0) << c.answer;
    ASSERT_FALSE(errors_.empty()) << c.answer;
    EXPECT_EQ(errors_[0], make_error_code(c.expected)) << c.answer << ": " << error_texts_[0];
    client_.reset();
  }
}

TEST_F(client_deflate_test, BombAndCorruptDataFailWithTheirCodes) {
  struct frame_case {
    std::string frame;
    std::uint16_t code;
  };
  protocol::message_writer writer(protocol::role::server);
  std::string corrupt;
  writer.append_frame(corrupt, opcode::binary, std::string("\x07\x00\x00", 3), true, true);
  const frame_case cases[] = {
      {compressed_frame(opcode::binary, std::string(8u << 20, 'z')), 1009},
      {corrupt, 1007},
      {compressed_frame(opcode::text, "ok \xFF bad"), 1007},
  };
  for (const frame_case& c : cases) {
    std::uint16_t sent = 0;
    scripted_server server([&](server_peer& peer) {
      (void)peer.read_request();
      peer.send_raw(answer_101(peer, "permessage-deflate") + c.frame);
      const peer_event e = peer.next();
      if (e.kind == event_kind::close) sent = e.code;
      peer.close();
    });
    client_options o = deflate_options();
    o.max_message_size = 1 << 20;
    make_client(o);
    ASSERT_FALSE(client_->connect(server.url()));
    ASSERT_TRUE(run());
    EXPECT_TRUE(messages_.empty());
    client_.reset();
    EXPECT_EQ(sent, c.code);
  }
}

// --- our client against our server ----------------------------------------------

class client_server_deflate_test
    : public client_test,
      public ::testing::WithParamInterface<server::compression_mode> {};

TEST_P(client_server_deflate_test, EchoesEverySize) {
  server::server_options so;
  so.port = 0;
  so.handle_signals = false;
  server::server srv(so);
  server::ws_behavior echo;
  echo.compression.mode = GetParam();
  echo.on_message = [](server::websocket& ws, std::string_view payload, opcode op) {
    ws.send(payload, op);
  };
  srv.ws("*", std::move(echo));
  ASSERT_FALSE(srv.listen());
  ASSERT_FALSE(srv.start());

  std::vector<received_message> sent;
  for (std::size_t size : {0u, 5u, 200u, 70000u, 1u << 20, 4u << 20}) {
    sent.push_back({words(size, static_cast<unsigned>(size)), opcode::text});
    std::string bin = words(size, 3);
    for (std::size_t i = 0; i < bin.size(); i += 5) bin[i] = static_cast<char>(i);
    sent.push_back({bin, opcode::binary});
  }
  for (int i = 0; i < 100; ++i) sent.push_back({words(600, 42), opcode::text});  // takeover
  make_client(deflate_options());
  on_open_hook = [&] {
    ASSERT_TRUE(client_->deflate_params());
    const bool shared = GetParam() == server::compression_mode::shared;
    EXPECT_EQ(client_->deflate_params()->server_no_context_takeover, shared);
    EXPECT_EQ(client_->deflate_params()->client_no_context_takeover, shared);
    // Dedicated's lean defaults: window 11 both ways (we offer a bare
    // client_max_window_bits, so the server may limit ours); shared keeps 15.
    const std::uint8_t bits = shared ? 15 : 11;
    EXPECT_EQ(client_->deflate_params()->server_max_window_bits, bits);
    EXPECT_EQ(client_->deflate_params()->client_max_window_bits, bits);
    for (const auto& m : sent) EXPECT_NE(client_->send(m.payload, m.op), send_status::dropped);
  };
  on_message_hook = [&] {
    if (messages_.size() == sent.size()) client_->close();
  };
  ASSERT_FALSE(client_->connect("ws://127.0.0.1:" + std::to_string(srv.port()) + "/"));
  ASSERT_TRUE(run(20s));
  ASSERT_EQ(messages_.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(messages_[i].op, sent[i].op) << i;
    EXPECT_TRUE(messages_[i].payload == sent[i].payload) << "message " << i << " differs";
  }
  EXPECT_TRUE(errors_.empty()) << (error_texts_.empty() ? "" : error_texts_[0]);
  EXPECT_GT(srv.compressed_messages(), 100u);
  srv.shutdown();
  EXPECT_FALSE(srv.wait());
}

INSTANTIATE_TEST_SUITE_P(modes, client_server_deflate_test,
                         ::testing::Values(server::compression_mode::shared,
                                           server::compression_mode::dedicated),
                         [](const auto& info) {
                           return info.param == server::compression_mode::shared ? "shared"
                                                                                 : "dedicated";
                         });

}  // namespace
}  // namespace switchboard::client::test
