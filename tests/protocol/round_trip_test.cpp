// Round-trip property tests: random conversations written by message_writer
// in one role and read back by message_reader in the other, with random
// chunking, fragmentation (code points split across fragments), pings and
// pongs between fragments, streaming and buffered mode. Each trial has its
// own seed, printed on failure; rerun one with --gtest_filter and the seed.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "switchboard/protocol/message_reader.hpp"
#include "switchboard/protocol/message_writer.hpp"

namespace switchboard::protocol {
namespace {

struct item {
  event_kind kind;
  opcode op = opcode::continuation;
  std::uint16_t code = 0;
  std::string payload;
  friend bool operator==(const item&, const item&) = default;
};

std::ostream& operator<<(std::ostream& os, const item& i) {
  return os << "{kind " << int(i.kind) << " op " << int(i.op) << " code " << i.code << " size "
            << i.payload.size() << "}";
}

void append_code_point(std::string& s, std::uint32_t cp) {
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class conversation {
 public:
  explicit conversation(unsigned seed) : rng_(seed) {}

  std::size_t pick_size() {
    static const std::size_t k_edges[] = {0, 1, 125, 126, 127, 65535, 65536};
    const unsigned r = rng_() % 10;
    if (r < 2) return k_edges[rng_() % 7];
    if (r < 8) return rng_() % 200;
    return rng_() % 5000;
  }

  // Random valid UTF-8 of about `n` bytes (ASCII-heavy, all lengths present).
  std::string text(std::size_t n) {
    std::string s;
    while (s.size() < n) {
      const unsigned r = rng_() % 8;
      std::uint32_t cp = r < 4   ? rng_() % 0x80
                         : r < 6 ? 0x80 + rng_() % 0x780
                         : r < 7 ? 0x800 + rng_() % 0xF800
                                 : 0x10000 + rng_() % 0x100000;
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
      append_code_point(s, cp);
    }
    return s;
  }

  std::string binary(std::size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng_());
    return s;
  }

  std::string control_payload() { return binary(rng_() % 4 == 0 ? 125 : rng_() % 20); }

  // Writes a random conversation with `w`; returns the events a reader must see.
  std::vector<item> write(message_writer& w, std::string& wire) {
    std::vector<item> want;
    const int messages = 1 + static_cast<int>(rng_() % 12);
    for (int m = 0; m < messages; ++m) {
      const bool is_text = rng_() % 2;
      const opcode op = is_text ? opcode::text : opcode::binary;
      const std::size_t size = pick_size();
      const std::string payload = is_text ? text(size) : binary(size);
      std::vector<item> controls;
      if (rng_() % 3 == 0) {
        w.append_message(wire, op, payload, rng_() % 2 ? 0 : 1 + rng_() % 300);
      } else {
        // Hand-made fragments with control frames between them.
        std::size_t pos = 0;
        bool first = true;
        do {
          const std::size_t n = std::min<std::size_t>(rng_() % 400, payload.size() - pos);
          const bool fin = pos + n == payload.size() && rng_() % 4 != 0;
          w.append_frame(wire, first ? op : opcode::continuation, payload.substr(pos, n), fin);
          pos += n;
          first = false;
          if (fin) break;
          if (rng_() % 2) {
            const bool ping = rng_() % 2;
            const std::string p = control_payload();
            ping ? w.append_ping(wire, p) : w.append_pong(wire, p);
            controls.push_back(
                {ping ? event_kind::ping : event_kind::pong, opcode::continuation, 0, p});
          }
        } while (true);
      }
      want.insert(want.end(), controls.begin(), controls.end());
      want.push_back({event_kind::message, op, 0, payload});
    }
    if (rng_() % 2) {
      const std::uint16_t code = rng_() % 2 ? 1000 : 3000 + rng_() % 2000;
      const std::string reason = text(rng_() % 60);  // short enough to go out whole
      w.append_close(wire, code, reason);
      want.push_back({event_kind::close, opcode::continuation, code, reason});
    }
    return want;
  }

  // Reads `wire` in random chunks, each in a fresh buffer; merges stream parts.
  std::vector<item> read(const reader_options& options, const std::string& wire) {
    message_reader reader(options);
    std::vector<item> got;
    std::string assembling;
    bool open = false;
    std::size_t pos = 0;
    const unsigned style = rng_() % 3;  // tiny chunks, medium, or large
    while (pos < wire.size()) {
      const std::size_t limit = style == 0 ? 8 : style == 1 ? 700 : 70000;
      const std::size_t n = std::min<std::size_t>(1 + rng_() % limit, wire.size() - pos);
      std::vector<char> buf(wire.begin() + pos, wire.begin() + pos + n);
      pos += n;
      std::span<char> input(buf);
      for (;;) {
        const reader_event ev = reader.next(input);
        if (ev.kind == event_kind::need_more) break;
        if (ev.kind == event_kind::error) {
          ADD_FAILURE() << describe(ev.err);
          return got;
        }
        if (ev.kind == event_kind::message_part) {
          EXPECT_EQ(ev.first, !open);
          open = !ev.last;
          assembling += ev.payload;
          if (ev.last) {
            got.push_back({event_kind::message, ev.op, 0, assembling});
            assembling.clear();
          }
          continue;
        }
        got.push_back({ev.kind, ev.op, ev.code, std::string(ev.payload)});
      }
    }
    EXPECT_FALSE(open);
    return got;
  }

  std::mt19937& rng() { return rng_; }

 private:
  std::mt19937 rng_;
};

void run_trials(unsigned base_seed, int trials) {
  for (int t = 0; t < trials; ++t) {
    const unsigned seed = base_seed + static_cast<unsigned>(t);
    SCOPED_TRACE("seed " + std::to_string(seed));
    conversation c(seed);
    const role writer_role = c.rng()() % 2 ? role::client : role::server;
    message_writer writer(writer_role);
    std::string wire;
    const std::vector<item> want = c.write(writer, wire);
    reader_options options;
    options.role = writer_role == role::client ? role::server : role::client;
    options.stream = c.rng()() % 2;
    const std::vector<item> got = c.read(options, wire);
    ASSERT_EQ(got, want);
  }
}

TEST(round_trip, random_conversations) {
  run_trials(1000, 400);
}

TEST(round_trip, every_edge_size_both_roles_and_modes) {
  for (std::size_t size : {0, 1, 125, 126, 127, 65535, 65536, 65537}) {
    for (role r : {role::server, role::client}) {
      for (bool stream : {false, true}) {
        message_writer writer(r);
        const std::string payload(size, 'e');
        std::string wire;
        writer.append_message(wire, opcode::binary, payload);
        writer.append_message(wire, opcode::text, payload, 1000);
        reader_options options;
        options.role = r == role::client ? role::server : role::client;
        options.stream = stream;
        options.max_message_size = 65537;
        conversation c(static_cast<unsigned>(size));
        const std::vector<item> got = c.read(options, wire);
        const std::vector<item> want = {{event_kind::message, opcode::binary, 0, payload},
                                        {event_kind::message, opcode::text, 0, payload}};
        EXPECT_EQ(got, want) << "size " << size << " stream " << stream;
      }
    }
  }
}

}  // namespace
}  // namespace switchboard::protocol
