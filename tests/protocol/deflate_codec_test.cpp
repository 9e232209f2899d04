#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <span>
#include <string>
#include <switchboard/protocol/deflate_codec.hpp>
#include <vector>

namespace switchboard::protocol {
namespace {

std::string bytes(std::initializer_list<int> list) {
  std::string s;
  for (int b : list) s.push_back(static_cast<char>(b));
  return s;
}

std::string hex(std::string_view s) {
  std::string out;
  char buf[4];
  for (unsigned char c : s) {
    std::snprintf(buf, sizeof buf, "%02x ", c);
    out += buf;
  }
  return out;
}

// Text-like data (compressible, repeated words) or random bytes.
std::string make_message(std::mt19937& rng, std::size_t size, bool text) {
  static const char* const words[] = {"channel", "presence", "{\"id\":",  "offset", "epoch",
                                      "hello",   "wörld",    "subscribe", " ",      "\"data\""};
  std::string s;
  s.reserve(size + 16);
  if (text) {
    while (s.size() < size) s += words[rng() % std::size(words)];
    // Cut back to a code point boundary.
    s.resize(size);
    while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xc0) == 0x80) s.pop_back();
    if (!s.empty() && static_cast<unsigned char>(s.back()) >= 0xc0) s.pop_back();
  } else {
    for (std::size_t i = 0; i < size; ++i) s.push_back(static_cast<char>(rng()));
  }
  return s;
}

// An independent decoder: plain zlib raw inflate of payload + 00 00 FF FF.
std::string zlib_inflate(std::string_view payload, int window_bits = 15) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, -window_bits), Z_OK);
  std::string in(payload);
  in += bytes({0x00, 0x00, 0xff, 0xff});
  std::string out(in.size() * 8 + 1024, '\0');
  z.next_in = reinterpret_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  std::size_t used = 0;
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    z.avail_out = static_cast<uInt>(out.size() - used);
    const int r = inflate(&z, Z_SYNC_FLUSH);
    used = out.size() - z.avail_out;
    EXPECT_TRUE(r == Z_OK || r == Z_BUF_ERROR || r == Z_STREAM_END) << r;
    if (z.avail_out != 0 || r != Z_OK) break;
    out.resize(out.size() * 2);
  }
  inflateEnd(&z);
  out.resize(used);
  return out;
}

// --- RFC 7692 §7.2.3 examples ---------------------------------------------------

const std::string k_hello_compressed = bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});

TEST(permessage_deflate, rfc_hello_is_compressed_as_in_the_rfc) {
  deflater d;
  std::string out;
  ASSERT_EQ(d.compress("Hello", out), error::none);
  EXPECT_EQ(hex(out), hex(k_hello_compressed));  // §7.2.3.1
  // §7.2.3.2: with context takeover the second "Hello" refers to the first.
  out.clear();
  ASSERT_EQ(d.compress("Hello", out), error::none);
  EXPECT_EQ(hex(out), hex(bytes({0xf2, 0x00, 0x11, 0x00, 0x00})));
  // Without it, each message is compressed alone.
  deflater fresh({.no_context_takeover = true});
  for (int i = 0; i < 2; ++i) {
    out.clear();
    ASSERT_EQ(fresh.compress("Hello", out), error::none);
    EXPECT_EQ(hex(out), hex(k_hello_compressed));
  }
}

TEST(permessage_deflate, rfc_examples_inflate) {
  struct vec {
    const char* name;
    std::vector<std::string> messages;  // payloads, inflated in order by one inflater
    std::vector<std::string> expected;
  };
  const vec vectors[] = {
      {"7.2.3.1 one block", {k_hello_compressed}, {"Hello"}},
      {"7.2.3.2 shared window",
       {k_hello_compressed, bytes({0xf2, 0x00, 0x11, 0x00, 0x00})},
       {"Hello", "Hello"}},
      {"7.2.3.3 no compression",
       {bytes({0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00})},
       {"Hello"}},
      {"7.2.3.4 BFINAL set", {bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00})}, {"Hello"}},
      {"7.2.3.4 BFINAL then shared window",
       {bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}),
        bytes({0xf2, 0x00, 0x11, 0x00, 0x00})},
       {"Hello", "Hello"}},
      {"7.2.3.5 two blocks",
       {bytes({0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00})},
       {"Hello"}},
      {"7.2.3.6 empty message", {bytes({0x00})}, {""}},
  };
  for (const auto& v : vectors) {
    inflater inf;
    for (std::size_t i = 0; i < v.messages.size(); ++i) {
      std::string out;
      ASSERT_EQ(inf.inflate_text(v.messages[i], out), error::none) << v.name;
      EXPECT_EQ(out, v.expected[i]) << v.name;
    }
  }
  // §7.2.3.1 fragmented: the two frames' payloads fed as pieces.
  inflater inf;
  std::string out;
  inf.begin_message(true);
  ASSERT_EQ(inf.write(bytes({0xf2, 0x48, 0xcd}), out), error::none);
  ASSERT_EQ(inf.write(bytes({0xc9, 0xc9, 0x07, 0x00}), out), error::none);
  ASSERT_EQ(inf.finish(out), error::none);
  EXPECT_EQ(out, "Hello");
}

TEST(permessage_deflate, empty_message_is_one_zero_byte) {
  deflater d;
  std::string out;
  ASSERT_EQ(d.compress("", out), error::none);
  EXPECT_EQ(hex(out), "00 ");
  inflater inf;
  std::string msg = "keep";
  ASSERT_EQ(inf.inflate("", msg), error::none);  // a zero-length payload: empty message
  ASSERT_EQ(inf.inflate(out, msg), error::none);
  EXPECT_EQ(msg, "keep");
}

TEST(permessage_deflate, tail_is_stripped_and_appended) {
  std::mt19937 rng(7);
  deflater d;
  for (std::size_t size : {1u, 100u, 5000u, 70000u}) {
    const auto msg = make_message(rng, size, true);
    std::string out = "prefix";  // appends, never overwrites
    ASSERT_EQ(d.compress(msg, out), error::none);
    ASSERT_EQ(out.compare(0, 6, "prefix"), 0);
    const std::string_view payload = std::string_view(out).substr(6);
    ASSERT_GE(payload.size(), 1u);
    EXPECT_NE(payload.substr(payload.size() >= 4 ? payload.size() - 4 : 0),
              bytes({0x00, 0x00, 0xff, 0xff}));
    d.reset();
    // Independent decoder, fresh context (we reset after each message).
    EXPECT_EQ(zlib_inflate(payload), msg) << size;
  }
}

// --- Round trips ------------------------------------------------------------------

void round_trip(bool takeover, bool text, std::uint8_t window, std::uint8_t mem_level,
                std::span<const std::size_t> sizes) {
  std::mt19937 rng(static_cast<unsigned>(sizes.size() * 31 + window + mem_level));
  deflater d({.window_bits = window, .mem_level = mem_level, .no_context_takeover = !takeover});
  inflater inf({.window_bits = window,
                .no_context_takeover = !takeover,
                .max_message_size = 8 * 1024 * 1024});
  std::string wire, back;
  for (std::size_t size : sizes) {
    const auto msg = make_message(rng, size, text);
    wire.clear();
    back.clear();
    ASSERT_EQ(d.compress(msg, wire), error::none);
    ASSERT_EQ(text ? inf.inflate_text(wire, back) : inf.inflate(wire, back), error::none)
        << size << " takeover " << takeover;
    ASSERT_EQ(back.size(), msg.size());
    ASSERT_TRUE(back == msg) << size;
    if (!takeover) {
      // Each message decodes alone, with a fresh inflater.
      inflater alone;
      std::string again;
      ASSERT_EQ(alone.inflate(wire, again), error::none);
      ASSERT_TRUE(again == msg);
    }
  }
}

TEST(permessage_deflate, round_trip_sizes_text_and_binary) {
  const std::size_t sizes[] = {0,     1,      2,       5,     100,    127,     128, 1000,
                               4095,  4096,   65535,   65536, 100000, 1 << 20, 3,   70000,
                               32768, 250000, 4 << 20, 17,    0,      999};
  for (bool takeover : {true, false})
    for (bool text : {true, false}) round_trip(takeover, text, 15, 8, sizes);
}

TEST(permessage_deflate, round_trip_small_windows_and_mem_levels) {
  const std::size_t sizes[] = {10, 300, 600, 5000, 40000, 3, 100000, 512, 257};
  for (std::uint8_t window : {9, 10, 12, 15})
    for (std::uint8_t mem : {1, 4, 9})
      for (bool takeover : {true, false}) round_trip(takeover, true, window, mem, sizes);
}

TEST(permessage_deflate, round_trip_many_messages) {
  std::vector<std::size_t> sizes;
  std::mt19937 rng(3);
  for (int i = 0; i < 500; ++i) sizes.push_back(rng() % 3000);
  round_trip(true, true, 15, 8, sizes);
  round_trip(false, true, 15, 8, sizes);
  round_trip(true, false, 11, 3, sizes);
}

TEST(permessage_deflate, context_takeover_shrinks_repeated_messages) {
  const std::string msg =
      R"({"channel":"prices","data":{"symbol":"ABC","bid":101.25,"ask":101.5,"ts":1700000000}})";
  deflater keep;
  deflater fresh({.no_context_takeover = true});
  std::string a, b;
  ASSERT_EQ(keep.compress(msg, a), error::none);
  ASSERT_EQ(fresh.compress(msg, b), error::none);
  EXPECT_EQ(a, b);  // the first message is the same either way
  a.clear();
  b.clear();
  ASSERT_EQ(keep.compress(msg, a), error::none);
  ASSERT_EQ(fresh.compress(msg, b), error::none);
  EXPECT_LT(a.size() * 4, b.size()) << a.size() << " vs " << b.size();
  // The takeover output needs the history: a fresh inflater fails or differs.
  inflater alone;
  std::string out;
  const error e = alone.inflate(a, out);
  EXPECT_TRUE(e != error::none || out != msg);
}

TEST(permessage_deflate, pieces_in_and_out) {
  std::mt19937 rng(11);
  deflater d;
  inflater inf;
  for (int round = 0; round < 40; ++round) {
    const auto msg = make_message(rng, rng() % 200000, round % 2 == 0);
    // Deflate in random pieces, each appended to its own string.
    std::string wire;
    for (std::size_t pos = 0; pos < msg.size();) {
      const std::size_t n = std::min<std::size_t>(msg.size() - pos, 1 + rng() % 20000);
      std::string part;
      ASSERT_EQ(d.write(std::string_view(msg).substr(pos, n), part), error::none);
      wire += part;
      pos += n;
    }
    ASSERT_EQ(d.finish(wire), error::none);
    // Inflate in random pieces (fragments), 1 byte at times.
    std::string back;
    inf.begin_message(round % 2 == 0);
    for (std::size_t pos = 0; pos < wire.size();) {
      const std::size_t n =
          std::min<std::size_t>(wire.size() - pos, 1 + rng() % (round % 3 ? 5 : 3000));
      ASSERT_EQ(inf.write(std::string_view(wire).substr(pos, n), back), error::none);
      pos += n;
    }
    ASSERT_EQ(inf.finish(back), error::none);
    ASSERT_TRUE(back == msg) << round;
  }
}

TEST(permessage_deflate, shared_output_goes_to_any_connection) {
  // A publish compressed once without context decodes on a connection whose
  // inflater keeps history; that connection's own deflater resets afterwards.
  deflater shared({.no_context_takeover = true});
  deflater own;
  inflater peer;  // the peer's inflater, with context takeover
  std::string wire, out;
  ASSERT_EQ(own.compress("first message on the dedicated connection", wire), error::none);
  ASSERT_EQ(peer.inflate(wire, out), error::none);
  wire.clear();
  out.clear();
  ASSERT_EQ(shared.compress("published to everyone", wire), error::none);
  ASSERT_EQ(peer.inflate(wire, out), error::none);
  EXPECT_EQ(out, "published to everyone");
  own.reset();
  wire.clear();
  out.clear();
  ASSERT_EQ(own.compress("first message on the dedicated connection", wire), error::none);
  ASSERT_EQ(peer.inflate(wire, out), error::none);
  EXPECT_EQ(out, "first message on the dedicated connection");
}

TEST(permessage_deflate, codecs_move) {
  deflater d;
  inflater inf;
  std::string wire, out;
  ASSERT_EQ(d.compress("Hello", wire), error::none);
  ASSERT_EQ(inf.inflate(wire, out), error::none);
  deflater d2 = std::move(d);
  inflater inf2 = std::move(inf);
  wire.clear();
  out.clear();
  ASSERT_EQ(d2.compress("Hello", wire), error::none);
  EXPECT_EQ(wire.size(), 5u);  // history survived the move
  ASSERT_EQ(inf2.inflate(wire, out), error::none);
  EXPECT_EQ(out, "Hello");
}

// --- Limits, corruption, UTF-8 -------------------------------------------------

TEST(permessage_deflate, bomb_stops_at_the_limit) {
  const std::string zeros(10 * 1024 * 1024, '\0');
  deflater d({.no_context_takeover = true});
  std::string bomb;
  ASSERT_EQ(d.compress(zeros, bomb), error::none);
  EXPECT_LT(bomb.size(), 16 * 1024u);
  const std::size_t limit = 1024 * 1024;
  inflater inf({.max_message_size = limit});
  std::string out;
  EXPECT_EQ(inf.inflate(bomb, out), error::message_too_big);
  EXPECT_LE(out.size(), limit + 1);
  EXPECT_LE(out.capacity(), 2 * limit + 64);
  // zlib never held more than its state and a 32 KiB window.
  EXPECT_LT(inf.peak_memory_bytes(), 48 * 1024u);
  // In pieces too, and the inflater is usable afterwards.
  inf.begin_message();
  out.clear();
  error e = error::none;
  for (std::size_t pos = 0; pos < bomb.size() && e == error::none; pos += 100)
    e = inf.write(std::string_view(bomb).substr(pos, 100), out);
  if (e == error::none) e = inf.finish(out);
  EXPECT_EQ(e, error::message_too_big);
  out.clear();
  ASSERT_EQ(inf.inflate(k_hello_compressed, out), error::none);
  EXPECT_EQ(out, "Hello");
}

TEST(permessage_deflate, limit_is_exact) {
  const std::string msg(5000, 'a');
  deflater d({.no_context_takeover = true});
  std::string wire;
  ASSERT_EQ(d.compress(msg, wire), error::none);
  std::string out;
  inflater at({.max_message_size = 5000});
  EXPECT_EQ(at.inflate(wire, out), error::none);
  EXPECT_EQ(out.size(), 5000u);
  out.clear();
  inflater below({.max_message_size = 4999});
  EXPECT_EQ(below.inflate(wire, out), error::message_too_big);
  inflater zero({.max_message_size = 0});
  out.clear();
  EXPECT_EQ(zero.inflate(bytes({0x00}), out), error::none);  // the empty message fits
  EXPECT_EQ(zero.inflate(k_hello_compressed, out), error::message_too_big);
}

TEST(permessage_deflate, corrupt_data_fails) {
  const std::string cases[] = {
      bytes({0xff, 0xff, 0xff, 0xff}),                    // reserved block type 11
      bytes({0x07}),                                      // reserved block type
      bytes({0x00, 0x05, 0x00, 0x00, 0x00, 0x48}),        // stored block, bad NLEN
      bytes({0xf2, 0x48, 0xcd}),                          // ends inside a block
      bytes({0x04, 0xc0, 0x81, 0x08, 0x00, 0x00, 0x00}),  // garbage dynamic block
      bytes({0xf2, 0x00, 0x11, 0x00, 0x00}),              // distance too far back (no history)
  };
  inflater inf;
  for (const auto& c : cases) {
    std::string out;
    EXPECT_EQ(inf.inflate(c, out), error::inflate_failed) << hex(c);
    // The inflater recovers for the next message.
    out.clear();
    ASSERT_EQ(inf.inflate(k_hello_compressed, out), error::none) << hex(c);
    EXPECT_EQ(out, "Hello");
    inf.reset();
  }
  std::mt19937 rng(5);
  int failed = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string junk = make_message(rng, 1 + rng() % 64, false);
    std::string out;
    const error e = inf.inflate(junk, out);
    EXPECT_TRUE(e == error::none || e == error::inflate_failed) << static_cast<int>(e);
    failed += e != error::none;
    inf.reset();
  }
  EXPECT_GT(failed, 1500);
}

TEST(permessage_deflate, text_is_validated_after_inflating) {
  deflater d({.no_context_takeover = true});
  inflater inf;
  std::string wire, out;
  ASSERT_EQ(d.compress("caf\xc3\xa9 \xf0\x9f\x98\x80", wire), error::none);
  ASSERT_EQ(inf.inflate_text(wire, out), error::none);
  const std::string bad[] = {"abc\xff", "\xc0\xaf", "\xed\xa0\x80", "ok\xe2\x82"};
  for (const auto& b : bad) {
    wire.clear();
    out.clear();
    ASSERT_EQ(d.compress(b, wire), error::none);
    EXPECT_EQ(inf.inflate_text(wire, out), error::invalid_utf8) << hex(b);
    out.clear();
    EXPECT_EQ(inf.inflate(wire, out), error::none);  // binary: no check
  }
  // A code point split between inflated pieces is fine; fail fast mid-message.
  const std::string big = std::string(100000, 'x') + "\xff" + std::string(100000, 'y');
  wire.clear();
  ASSERT_EQ(d.compress(big, wire), error::none);
  inf.begin_message(true);
  out.clear();
  error e = error::none;
  std::size_t pos = 0;
  for (; pos < wire.size() && e == error::none; pos += 10)
    e = inf.write(std::string_view(wire).substr(pos, 10), out);
  EXPECT_EQ(e, error::invalid_utf8);
  EXPECT_LT(pos, wire.size());
}

// --- Memory ----------------------------------------------------------------------

TEST(permessage_deflate, memory_is_lazy_counted_and_released) {
  struct row {
    std::uint8_t window, mem;
  };
  const row rows[] = {{15, 8}, {15, 9}, {15, 1}, {12, 5}, {10, 4}, {9, 1}};
  for (const auto& r : rows) {
    deflater d({.window_bits = r.window, .mem_level = r.mem});
    EXPECT_EQ(d.memory_bytes(), 0u);
    std::string out;
    ASSERT_EQ(d.compress("Hello, memory", out), error::none);
    const std::size_t formula =
        (std::size_t{1} << (r.window + 2)) + (std::size_t{1} << (r.mem + 9));
    const std::size_t got = d.memory_bytes();
    EXPECT_GE(got, formula) << int(r.window) << "/" << int(r.mem);
    EXPECT_LE(got, formula + 8 * 1024) << int(r.window) << "/" << int(r.mem);
    std::printf("deflater window %2d memLevel %d: %zu bytes (formula %zu)\n", r.window, r.mem, got,
                formula);
    d.release();
    EXPECT_EQ(d.memory_bytes(), 0u);
    out.clear();
    ASSERT_EQ(d.compress("again", out), error::none);  // state comes back
    EXPECT_EQ(d.memory_bytes(), got);
  }
  for (std::uint8_t window : {15, 12, 10, 9}) {
    inflater inf({.window_bits = window});
    EXPECT_EQ(inf.memory_bytes(), 0u);
    std::string out;
    ASSERT_EQ(inf.inflate(k_hello_compressed, out), error::none);
    const std::size_t got = inf.memory_bytes();
    const std::size_t formula = std::size_t{1} << window;
    EXPECT_GE(got, formula);
    EXPECT_LE(got, formula + 8 * 1024);
    std::printf("inflater window %2d: %zu bytes\n", window, got);
    inf.release();
    EXPECT_EQ(inf.memory_bytes(), 0u);
  }
  // Shared mode: state stays allocated across messages without growing.
  deflater shared({.no_context_takeover = true});
  std::string out;
  ASSERT_EQ(shared.compress("x", out), error::none);
  const std::size_t steady = shared.memory_bytes();
  for (int i = 0; i < 100; ++i)
    ASSERT_EQ(shared.compress(std::string(1000, 'q'), out), error::none);
  EXPECT_EQ(shared.memory_bytes(), steady);
}

TEST(permessage_deflate, eight_bit_peer_windows_inflate) {
  // A peer limited to 8 bits: we inflate with 9 (inflate_options raises it).
  deflater d({.window_bits = 9});
  inflater inf({.window_bits = 8});
  EXPECT_EQ(inf.options().window_bits, 9);
  std::mt19937 rng(2);
  for (int i = 0; i < 20; ++i) {
    const auto msg = make_message(rng, 1 + rng() % 5000, true);
    std::string wire, out;
    ASSERT_EQ(d.compress(msg, wire), error::none);
    ASSERT_EQ(inf.inflate_text(wire, out), error::none);
    ASSERT_EQ(out, msg);
  }
}

TEST(permessage_deflate, threshold_helper) {
  EXPECT_FALSE(should_compress(0));
  EXPECT_FALSE(should_compress(k_default_compress_threshold - 1));
  EXPECT_TRUE(should_compress(k_default_compress_threshold));
  EXPECT_TRUE(should_compress(10, 10));
}

}  // namespace
}  // namespace switchboard::protocol
