// deflate_test.cpp — permessage-deflate (RFC 7692) through real upgrades:
// negotiation per mode, compressed echo of every size in both modes,
// fragmented compressed messages, context takeover, RSV1 misuse, bombs,
// corrupt data, UTF-8 after inflating, the threshold, topics compressing
// once, streaming endpoints, and what a connection holds.
#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include <switchboard/protocol/permessage_deflate.hpp>

#include "server_test_support.hpp"

namespace switchboard::server::test {
namespace {

using protocol::event_kind;
using protocol::opcode;

class deflate_test : public server_test {};

// Compressible text: words from a small vocabulary.
std::string words(std::size_t size, unsigned seed = 1) {
  static const char* const vocab[] = {"switch", "board ", "deflate ", "frame ", "window ",
                                      "context ", "message ", "topic "};
  std::string s;
  s.reserve(size + 8);
  unsigned x = seed;
  while (s.size() < size) {
    x = x * 1103515245u + 12345u;
    s += vocab[(x >> 16) % 8];
  }
  s.resize(size);
  return s;
}

// The value of Sec-WebSocket-Extensions in a response head, or "" if absent.
std::string extensions_of(const std::string& head) {
  std::string lower(head);
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const std::string name = "\r\nsec-websocket-extensions:";
  const std::size_t at = lower.find(name);
  if (at == std::string::npos) return {};
  std::size_t start = at + name.size();
  while (head[start] == ' ') ++start;
  return head.substr(start, head.find("\r\n", start) - start);
}

// The echo endpoint with `mode`; "mem" answers the connection's own zlib
// bytes, "sub" subscribes to topic "t".
void add_deflate_echo(server& s, compression_options c) {
  ws_behavior b;
  b.compression = c;
  b.on_message = [](websocket& ws, std::string_view payload, opcode op) {
    if (payload == "mem") {
      ws.send(std::to_string(ws.compression_memory()), opcode::text);
    } else if (payload == "sub") {
      ws.subscribe("t");
      ws.send("subscribed", opcode::text);
    } else {
      ws.send(payload, op);
    }
  };
  s.ws("*", std::move(b));
}

compression_options mode(compression_mode m) {
  compression_options c;
  c.mode = m;
  return c;
}

// The value of window parameter `name` in an answer, or 15 when absent.
std::uint8_t window_in(const std::string& answer, const std::string& name) {
  const std::size_t at = answer.find(name + "=");
  if (at == std::string::npos) return protocol::k_max_window_bits;
  return static_cast<std::uint8_t>(std::stoi(answer.substr(at + name.size() + 1)));
}

// Our end of a compressed connection: the client's codecs, with the windows
// the server answered: we deflate within client_max_window_bits, and inflate
// with exactly server_max_window_bits (a server that used more would fail us).
struct peer {
  peer(std::uint16_t port, const std::string& offer, bool client_takeover, bool server_takeover)
      : ws(port) {
    std::string head;
    status = ws.upgrade("/", "Sec-WebSocket-Extensions: " + offer + "\r\n", &head);
    answer = extensions_of(head);
    ws.allow_rsv1();
    deflate = protocol::deflater(
        protocol::deflate_options{.window_bits = window_in(answer, "client_max_window_bits"),
                                  .no_context_takeover = !client_takeover});
    inflate = protocol::inflater(
        protocol::inflate_options{.window_bits = window_in(answer, "server_max_window_bits"),
                                  .no_context_takeover = !server_takeover,
                                  .max_message_size = 64u << 20});
  }
  // Sends `m` compressed (RSV1) as one frame.
  bool send(opcode op, std::string_view m) {
    std::string body;
    EXPECT_EQ(deflate.compress(m, body), protocol::error::none);
    return ws.send_frame(op, body, true, true, true);
  }
  // The next message, inflated if it was compressed.
  received next() {
    received r = ws.next();
    if (r.kind == event_kind::message && r.compressed) {
      std::string out;
      EXPECT_EQ(inflate.inflate(r.payload, out), protocol::error::none);
      r.payload = std::move(out);
    }
    return r;
  }
  ws_client ws;
  protocol::deflater deflate;
  protocol::inflater inflate;
  int status = 0;
  std::string answer;
};

// --- negotiation ---------------------------------------------------------------

TEST_F(deflate_test, SharedAnswersNoContextTakeoverBothWays) {
  running_server srv(test_options(), [](server& s) { add_deflate_echo(s, mode(compression_mode::shared)); });
  // client_no_context_takeover is in the answer although the client did not
  // offer it (RFC 7692 §7.1.1.2).
  peer p(srv.port(), "permessage-deflate; client_max_window_bits", false, false);
  ASSERT_EQ(p.status, 101);
  EXPECT_NE(p.answer.find("permessage-deflate"), std::string::npos) << p.answer;
  EXPECT_NE(p.answer.find("server_no_context_takeover"), std::string::npos) << p.answer;
  EXPECT_NE(p.answer.find("client_no_context_takeover"), std::string::npos) << p.answer;
}

TEST_F(deflate_test, DedicatedAnswersConfiguredWindows) {
  compression_options c = mode(compression_mode::dedicated);
  c.server_max_window_bits = 10;
  c.client_max_window_bits = 11;
  running_server srv(test_options(), [&](server& s) { add_deflate_echo(s, c); });
  peer p(srv.port(), "permessage-deflate; client_max_window_bits", true, true);
  ASSERT_EQ(p.status, 101);
  EXPECT_NE(p.answer.find("server_max_window_bits=10"), std::string::npos) << p.answer;
  EXPECT_NE(p.answer.find("client_max_window_bits=11"), std::string::npos) << p.answer;
  EXPECT_EQ(p.answer.find("no_context_takeover"), std::string::npos) << p.answer;
  // And it works with those windows, across messages: we deflate with the
  // 11 bits we were given (a larger window would fail the server's inflate)
  // and inflate with 10.
  EXPECT_EQ(p.deflate.options().window_bits, 11);
  EXPECT_EQ(p.inflate.options().window_bits, 10);
  for (int i = 0; i < 20; ++i) {
    const std::string m = words(3000, static_cast<unsigned>(i % 3));
    ASSERT_TRUE(p.send(opcode::text, m));
    const received r = p.next();
    ASSERT_EQ(r.kind, event_kind::message);
    EXPECT_TRUE(r.payload == m) << i;
  }
}

TEST_F(deflate_test, DedicatedDefaultsAnswerWindow11) {
  // The lean defaults (server/compression.hpp): window 11 both ways, memLevel 4.
  EXPECT_EQ(compression_options{}.server_max_window_bits, 11);
  EXPECT_EQ(compression_options{}.client_max_window_bits, 11);
  EXPECT_EQ(compression_options{}.mem_level, 4);
  running_server srv(test_options(),
                     [](server& s) { add_deflate_echo(s, mode(compression_mode::dedicated)); });
  const struct {
    const char* offer;
    const char* answer;
  } cases[] = {
      // Not offered: the client may use 15 (RFC 7692 §7.1.2.2); ours is named.
      {"permessage-deflate", "permessage-deflate; server_max_window_bits=11"},
      {"permessage-deflate; client_max_window_bits",
       "permessage-deflate; server_max_window_bits=11; client_max_window_bits=11"},
      // The client's own smaller limits stand.
      {"permessage-deflate; client_max_window_bits=9",
       "permessage-deflate; server_max_window_bits=11; client_max_window_bits=9"},
      {"permessage-deflate; server_max_window_bits=10; client_max_window_bits",
       "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11"},
      // A larger request is answered with ours (§7.1.2.1: equal or smaller).
      {"permessage-deflate; server_max_window_bits=15",
       "permessage-deflate; server_max_window_bits=11"},
      {"permessage-deflate; server_no_context_takeover; client_max_window_bits=15",
       "permessage-deflate; server_no_context_takeover; server_max_window_bits=11; "
       "client_max_window_bits=11"},
  };
  for (const auto& c : cases) {
    peer p(srv.port(), c.offer, true, true);
    ASSERT_EQ(p.status, 101) << c.offer;
    EXPECT_EQ(p.answer, c.answer) << c.offer;
  }
}

TEST_F(deflate_test, DedicatedDefaultsStayUnder64KiBPerConnection) {
  // After messages both ways, whatever the client offered. Without
  // client_max_window_bits in the offer our inflater needs window 15: the
  // worst case (~61 KiB); with it, window 11 (~31 KiB).
  running_server srv(test_options(),
                     [](server& s) { add_deflate_echo(s, mode(compression_mode::dedicated)); });
  for (const char* offer : {"permessage-deflate", "permessage-deflate; client_max_window_bits"}) {
    const bool bounded = std::string(offer).find("client_max_window_bits") != std::string::npos;
    peer p(srv.port(), offer, true, true);
    ASSERT_EQ(p.status, 101) << offer;
    std::size_t most = 0;
    for (int i = 0; i < 60; ++i) {
      // Chat-like messages, a few large ones that fill every window.
      const std::string m = i % 20 == 19 ? words(200000, static_cast<unsigned>(i))
                                         : "{\"seq\":" + std::to_string(i) + ",\"text\":\"" +
                                               words(1000, static_cast<unsigned>(i % 4)) + "\"}";
      ASSERT_TRUE(p.send(opcode::text, m)) << offer;
      const received r = p.next();
      ASSERT_EQ(r.kind, event_kind::message) << offer;
      ASSERT_TRUE(r.compressed) << offer;  // compressed both ways
      ASSERT_TRUE(r.payload == m) << offer << " " << i;
      ASSERT_TRUE(p.ws.send_message(opcode::text, "mem"));
      const std::size_t bytes = std::stoul(p.next().payload);
      most = std::max(most, bytes);
    }
    std::printf("dedicated defaults, offer \"%s\": at most %zu bytes per connection\n", offer,
                most);
    EXPECT_LE(most, 64u * 1024) << offer;
    if (bounded) {
      EXPECT_LE(most, 32u * 1024) << offer;  // deflater 22,472 + inflater 9,344 (window 11)
    } else {
      EXPECT_GT(most, 60'000u) << offer;  // deflater 22,472 + inflater 40,064 (window 15)
    }
  }
}

TEST_F(deflate_test, DedicatedWindow15IsStillAChoice) {
  // The knobs set back to zlib's own defaults: the plain answer, and ~301 KiB.
  compression_options c = mode(compression_mode::dedicated);
  c.server_max_window_bits = 15;
  c.client_max_window_bits = 15;
  c.mem_level = 8;
  running_server srv(test_options(), [&](server& s) { add_deflate_echo(s, c); });
  peer p(srv.port(), "permessage-deflate; client_max_window_bits", true, true);
  ASSERT_EQ(p.status, 101);
  EXPECT_EQ(p.answer, "permessage-deflate");
  ASSERT_TRUE(p.send(opcode::text, words(50000)));
  ASSERT_TRUE(p.next().payload == words(50000));
  ASSERT_TRUE(p.ws.send_message(opcode::text, "mem"));
  const std::size_t bytes = std::stoul(p.next().payload);
  EXPECT_GT(bytes, 300'000u);  // deflater 268,232 + inflater 40,064
  EXPECT_LT(bytes, 320'000u);
}

TEST_F(deflate_test, DeclinedOffersGiveNoExtension) {
  running_server srv(test_options(), [](server& s) { add_deflate_echo(s, mode(compression_mode::shared)); });
  for (const char* offer : {"permessage-deflate; bogus", "permessage-deflate; server_max_window_bits=8",
                            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                            "permessage-deflate; client_max_window_bits=16", "x-webkit-deflate-frame"}) {
    peer p(srv.port(), offer, false, false);
    ASSERT_EQ(p.status, 101) << offer;
    EXPECT_EQ(p.answer, "") << offer;
  }
  // The first acceptable offer of several wins.
  peer p(srv.port(), "permessage-deflate; bogus, permessage-deflate; server_max_window_bits=12",
         false, false);
  EXPECT_NE(p.answer.find("server_max_window_bits=12"), std::string::npos) << p.answer;
}

TEST_F(deflate_test, OffNeverNegotiatesAndRejectsRsv1) {
  running_server srv(test_options(), [](server& s) { add_deflate_echo(s, {}); });
  peer p(srv.port(), "permessage-deflate", false, false);
  ASSERT_EQ(p.status, 101);
  EXPECT_EQ(p.answer, "");
  // RSV1 without the extension is a protocol error (RFC 6455 §5.2).
  ASSERT_TRUE(p.send(opcode::text, "hello"));
  const received r = p.ws.next();
  EXPECT_EQ(r.kind, event_kind::close);
  EXPECT_EQ(r.code, 1002);
}

// --- data --------------------------------------------------------------------

class deflate_mode_test : public server_test,
                          public ::testing::WithParamInterface<compression_mode> {};

TEST_P(deflate_mode_test, EchoesEverySizeCompressed) {
  running_server srv(test_options(), [](server& s) { add_deflate_echo(s, mode(GetParam())); });
  const bool takeover = GetParam() == compression_mode::dedicated;
  peer p(srv.port(), "permessage-deflate; client_max_window_bits", takeover, takeover);
  ASSERT_EQ(p.status, 101);
  ASSERT_FALSE(p.answer.empty());
  for (std::size_t size : {0u, 1u, 127u, 128u, 1000u, 65536u, 1u << 20, 4u << 20}) {
    for (opcode op : {opcode::text, opcode::binary}) {
      std::string m = words(size, static_cast<unsigned>(size));
      if (op == opcode::binary) {
        for (std::size_t i = 0; i < m.size(); i += 7) m[i] = static_cast<char>(i);
      }
      ASSERT_TRUE(p.send(op, m));
      const received r = p.next();
      ASSERT_EQ(r.kind, event_kind::message) << size;
      EXPECT_EQ(r.op, op);
      // The threshold (128 by default) decides what the server compresses.
      EXPECT_EQ(r.compressed, size >= protocol::k_default_compress_threshold) << size;
      EXPECT_EQ(r.payload.size(), size);
      EXPECT_TRUE(r.payload == m) << size;
    }
  }
}

TEST_P(deflate_mode_test, FragmentedCompressedMessage) {
  running_server srv(test_options(), [](server& s) { add_deflate_echo(s, mode(GetParam())); });
  const bool takeover = GetParam() == compression_mode::dedicated;
  peer p(srv.port(), "permessage-deflate", takeover, takeover);
  const std::string m = words(50000);
  std::string body;
  ASSERT_EQ(p.deflate.compress(m, body), protocol::error::none);
  const std::size_t third = body.size() / 3;
  // RSV1 on the first frame only (RFC 7692 §6.1); a ping in between.
  ASSERT_TRUE(p.ws.send_frame(opcode::text, body.substr(0, third), false, true, true));
  ASSERT_TRUE(p.ws.send_frame(opcode::ping, "mid"));
  ASSERT_TRUE(p.ws.send_frame(opcode::continuation, body.substr(third, third), false));
  ASSERT_TRUE(p.ws.send_frame(opcode::continuation, body.substr(2 * third)));
  EXPECT_EQ(p.ws.next().kind, event_kind::pong);
  const received r = p.next();
  ASSERT_EQ(r.kind, event_kind::message);
  EXPECT_TRUE(r.payload == m);
}

TEST_P(deflate_mode_test, ManyMessagesKeepOrLoseContextAsAgreed) {
  running_server srv(test_options(), [](server& s) { add_deflate_echo(s, mode(GetParam())); });
  const bool takeover = GetParam() == compression_mode::dedicated;
  peer p(srv.port(), "permessage-deflate", takeover, takeover);
  ASSERT_FALSE(p.answer.empty());
  std::vector<std::size_t> wire;
  for (int i = 0; i < 200; ++i) {
    const std::string m = "{\"channel\":\"prices\",\"seq\":" + std::to_string(i) +
                          ",\"body\":\"" + words(400, 7) + "\"}";
    ASSERT_TRUE(p.send(opcode::text, m));
    received r = p.ws.next();
    ASSERT_EQ(r.kind, event_kind::message);
    ASSERT_TRUE(r.compressed);
    wire.push_back(r.payload.size());
    std::string out;
    ASSERT_EQ(p.inflate.inflate(r.payload, out), protocol::error::none) << i;
    ASSERT_EQ(out, m) << i;
  }
  // With context takeover a repeat costs a few bytes; without, it never gets cheaper.
  if (takeover) {
    EXPECT_LT(wire.back() * 4, wire.front()) << wire.front() << " -> " << wire.back();
  } else {
    EXPECT_GT(wire.back() * 2, wire.front()) << wire.front() << " -> " << wire.back();
  }
}

TEST_P(deflate_mode_test, ConnectionMemory) {
  running_server srv(test_options(), [](server& s) { add_deflate_echo(s, mode(GetParam())); });
  const bool takeover = GetParam() == compression_mode::dedicated;
  peer p(srv.port(), "permessage-deflate", takeover, takeover);
  ASSERT_TRUE(p.ws.send_message(opcode::text, "mem"));
  EXPECT_EQ(p.next().payload, "0");  // nothing before the first compressed message
  ASSERT_TRUE(p.send(opcode::text, words(5000)));
  ASSERT_EQ(p.next().payload, words(5000));
  ASSERT_TRUE(p.ws.send_message(opcode::text, "mem"));
  const std::size_t bytes = std::stoul(p.next().payload);
  std::printf("compression memory per connection (%s): %zu bytes\n",
              takeover ? "dedicated" : "shared", bytes);
  if (takeover) {
    // Defaults, no client_max_window_bits offered: deflater 22,472 (window
    // 11, memLevel 4) + inflater 40,064 (window 15) + the codec object.
    EXPECT_GT(bytes, 60'000u);
    EXPECT_LE(bytes, 64u * 1024);
  } else {
    EXPECT_EQ(bytes, 0u);  // the loop's codecs serve it
  }
}

INSTANTIATE_TEST_SUITE_P(modes, deflate_mode_test,
                         ::testing::Values(compression_mode::shared, compression_mode::dedicated),
                         [](const auto& info) {
                           return info.param == compression_mode::shared ? "shared" : "dedicated";
                         });

// --- failures ----------------------------------------------------------------

received fail_with(std::string_view what, const std::function<void(peer&)>& act,
                   server_options opts = test_options()) {
  running_server srv(opts, [](server& s) { add_deflate_echo(s, mode(compression_mode::shared)); });
  peer p(srv.port(), "permessage-deflate", false, false);
  EXPECT_EQ(p.status, 101) << what;
  act(p);
  received r = p.ws.next();
  EXPECT_EQ(r.kind, event_kind::close) << what;
  EXPECT_TRUE(p.ws.wait_closed()) << what;
  return r;
}

TEST_F(deflate_test, Rsv1OnContinuationIs1002) {
  const received r = fail_with("continuation", [](peer& p) {
    std::string body;
    ASSERT_EQ(p.deflate.compress(words(1000), body), protocol::error::none);
    ASSERT_TRUE(p.ws.send_frame(opcode::text, body.substr(0, 10), false, true, true));
    ASSERT_TRUE(p.ws.send_frame(opcode::continuation, body.substr(10), true, true, true));
  });
  EXPECT_EQ(r.code, 1002);
}

TEST_F(deflate_test, Rsv1OnControlFrameIs1002) {
  const received r = fail_with("ping", [](peer& p) {
    ASSERT_TRUE(p.ws.send_frame(opcode::ping, "x", true, true, true));
  });
  EXPECT_EQ(r.code, 1002);
}

TEST_F(deflate_test, BombIs1009) {
  server_options opts = test_options();
  opts.max_message_size = 1 << 20;
  const received r = fail_with(
      "bomb",
      [](peer& p) {
        // 64 MiB of zeros is ~64 KiB compressed: under the limit on the
        // wire, far over it inflated. The inflater stops at 1 MiB + 1.
        const std::string zeros(64u << 20, '\0');
        std::string body;
        ASSERT_EQ(p.deflate.compress(zeros, body), protocol::error::none);
        ASSERT_LT(body.size(), 1u << 20);
        ASSERT_TRUE(p.ws.send_frame(opcode::binary, body, true, true, true));
      },
      opts);
  EXPECT_EQ(r.code, 1009);
}

TEST_F(deflate_test, CorruptDataIs1007) {
  const received r = fail_with("corrupt", [](peer& p) {
    // BFINAL=1 with the reserved block type 11.
    ASSERT_TRUE(p.ws.send_frame(opcode::binary, std::string("\x07\x00\x00\x00", 4), true, true, true));
  });
  EXPECT_EQ(r.code, 1007);
}

TEST_F(deflate_test, InvalidUtf8AfterInflateIs1007) {
  const received r = fail_with("utf8", [](peer& p) {
    ASSERT_TRUE(p.send(opcode::text, words(300) + "\xC3\x28" + words(300)));
  });
  EXPECT_EQ(r.code, 1007);
}

TEST_F(deflate_test, ThresholdLeavesSmallMessagesUncompressed) {
  compression_options c = mode(compression_mode::shared);
  c.threshold = 1000;
  running_server srv(test_options(), [&](server& s) { add_deflate_echo(s, c); });
  peer p(srv.port(), "permessage-deflate", false, false);
  ASSERT_TRUE(p.send(opcode::text, words(999)));
  received r = p.next();
  EXPECT_FALSE(r.compressed);
  EXPECT_EQ(r.payload, words(999));
  ASSERT_TRUE(p.send(opcode::text, words(1000)));
  r = p.next();
  EXPECT_TRUE(r.compressed);
  EXPECT_EQ(r.payload, words(1000));
  // Control frames are never compressed.
  ASSERT_TRUE(p.ws.send_frame(opcode::ping, "p"));
  r = p.ws.next();
  EXPECT_EQ(r.kind, event_kind::pong);
  EXPECT_FALSE(r.compressed);
}

// --- topics ------------------------------------------------------------------

TEST_F(deflate_test, PublishCompressesOncePerLoop) {
  for (compression_mode m : {compression_mode::shared, compression_mode::dedicated}) {
    running_server srv(test_options(), [&](server& s) { add_deflate_echo(s, mode(m)); });
    const bool takeover = m == compression_mode::dedicated;
    std::vector<std::unique_ptr<peer>> peers;
    for (int i = 0; i < 3; ++i) {
      peers.push_back(std::make_unique<peer>(srv.port(), "permessage-deflate", takeover, takeover));
    }
    peers.push_back(std::make_unique<peer>(srv.port(), "x-other", false, false));  // plain
    for (auto& p : peers) {
      ASSERT_TRUE(p->ws.send_message(opcode::text, "sub"));
      ASSERT_EQ(p->next().payload, "subscribed");
    }
    // Dedicated: a direct send first, so each deflater has history to drop.
    for (int k = 0; k < 3; ++k) {
      ASSERT_TRUE(peers[k]->send(opcode::text, words(2000, 3)));
      ASSERT_EQ(peers[k]->next().payload, words(2000, 3));
    }
    const std::uint64_t before = srv.get().compressed_messages();
    const std::string m1 = words(4096, 9);
    srv.get().publish("t", m1, opcode::text);
    std::string first_wire;
    for (int k = 0; k < 4; ++k) {
      received r = peers[k]->ws.next();
      ASSERT_EQ(r.kind, event_kind::message);
      EXPECT_EQ(r.compressed, k < 3);
      if (k == 0) first_wire = r.payload;
      if (k > 0 && k < 3) {
        EXPECT_TRUE(r.payload == first_wire) << "same bytes to every subscriber";
      }
      if (r.compressed) {
        std::string out;
        ASSERT_EQ(peers[k]->inflate.inflate(r.payload, out), protocol::error::none);
        r.payload = out;
      }
      EXPECT_TRUE(r.payload == m1);
    }
    // Compressed once (one loop) for three subscribers.
    EXPECT_EQ(srv.get().compressed_messages() - before, 1u);
    // After the publish each connection's own context still decodes.
    for (int k = 0; k < 3; ++k) {
      ASSERT_TRUE(peers[k]->send(opcode::text, words(2000, 3)));
      EXPECT_EQ(peers[k]->next().payload, words(2000, 3)) << k;
    }
  }
}

// --- streaming endpoints ------------------------------------------------------

TEST_F(deflate_test, StreamingEndpointGetsInflatedPieces) {
  for (compression_mode m : {compression_mode::shared, compression_mode::dedicated}) {
    running_server srv(test_options(), [&](server& s) {
      ws_behavior b;
      b.compression = mode(m);
      auto assembled = std::make_shared<std::string>();
      b.on_fragment = [assembled](websocket& ws, std::string_view piece, opcode op, bool first,
                                  bool last) {
        if (first) assembled->clear();
        assembled->append(piece);
        if (last) ws.send(*assembled, op);
      };
      s.ws("*", std::move(b));
    });
    const bool takeover = m == compression_mode::dedicated;
    peer p(srv.port(), "permessage-deflate", takeover, takeover);
    for (int round = 0; round < 3; ++round) {
      const std::string msg = words(300000, static_cast<unsigned>(round));
      std::string body;
      ASSERT_EQ(p.deflate.compress(msg, body), protocol::error::none);
      const std::size_t half = body.size() / 2;
      ASSERT_TRUE(p.ws.send_frame(opcode::text, body.substr(0, half), false, true, true));
      ASSERT_TRUE(p.ws.send_frame(opcode::continuation, body.substr(half)));
      const received r = p.next();
      ASSERT_EQ(r.kind, event_kind::message);
      EXPECT_TRUE(r.payload == msg) << round;
    }
  }
}

}  // namespace
}  // namespace switchboard::server::test
