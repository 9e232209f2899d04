// protocol_instructions — fixed-count drivers for measuring the protocol
// layer's hot paths in instructions with callgrind, which, unlike wall time,
// is repeatable on a shared, noisy machine.
//
// usage: protocol_instructions WHAT N
//   WHAT: handshake | reader_16b | reader_64k | unmask_64k | utf8_mixed_64k
//   Runs N operations inside a function named count_<WHAT>, so
//   bench/protocol_instructions.sh can collect only that function:
//     valgrind --tool=callgrind --toggle-collect='count_*' ...
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "switchboard/protocol/handshake.hpp"
#include "switchboard/protocol/http_head.hpp"
#include "switchboard/protocol/mask.hpp"
#include "switchboard/protocol/message_reader.hpp"
#include "switchboard/protocol/message_writer.hpp"
#include "switchboard/protocol/utf8.hpp"

namespace sp = switchboard::protocol;

namespace {

volatile std::size_t g_sink;  // keeps results observable

const std::string k_request =
    "GET /ws?room=lobby HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: http://127.0.0.1:8080\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Protocol: switchboard.v1\r\n"
    "\r\n";

std::string text_of(std::size_t n, bool mixed) {
  static constexpr std::string_view ascii = "switchboard relays messages between clients ";
  static constexpr std::string_view multi = "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80 ";
  std::string s;
  while (s.size() < n) s.append(mixed && (s.size() / 64) % 2 ? multi : ascii);
  s.resize(n);  // may cut a code point in two: trimmed back below
  while (!sp::is_valid_utf8(s)) s.pop_back();
  return s;
}

__attribute__((noinline)) void count_handshake(long n) {
  const std::string_view supported[] = {"switchboard.v1"};
  sp::request_parser parser;
  std::string response;
  response.reserve(512);
  for (long i = 0; i < n; ++i) {
    parser.reset();
    if (parser.parse(k_request).status != sp::parse_status::complete) std::abort();
    sp::upgrade_request up;
    if (sp::validate_upgrade(parser.head(), up) != sp::error::none) std::abort();
    sp::accept_options opts;
    if (auto p = sp::select_subprotocol(parser.head(), supported)) opts.subprotocol = *p;
    response.clear();
    if (!sp::write_accept_response(response, up.key, opts)) std::abort();
    g_sink = response.size();
  }
}

// `frames` client frames of `size` bytes each, built outside the counted
// functions (masking keys come from OpenSSL, whose first use is costly).
std::string client_frames(std::size_t size, std::size_t frames) {
  sp::message_writer writer(sp::role::client);
  const std::string payload = text_of(size, false);
  std::string wire;
  for (std::size_t i = 0; i < frames; ++i) writer.append_frame(wire, sp::opcode::text, payload);
  return wire;
}

// Reads the `frames` frames in `wire`, `n` times over.
void read_frames(long n, const std::string& wire, std::size_t frames) {
  std::string buffer = wire;
  sp::message_reader reader(sp::reader_options{.role = sp::role::server});
  for (long i = 0; i < n; ++i) {
    std::memcpy(buffer.data(), wire.data(), wire.size());
    std::span<char> input(buffer.data(), buffer.size());
    std::size_t got = 0;
    for (sp::reader_event ev; (ev = reader.next(input)).kind != sp::event_kind::need_more;) {
      if (ev.kind != sp::event_kind::message) std::abort();
      ++got;
    }
    if (got != frames) std::abort();
    g_sink = got;
  }
}

// n batches of 1000 frames: the per-frame cost includes a 22-byte memcpy.
__attribute__((noinline)) void count_reader_16b(long n, const std::string& wire) {
  read_frames(n, wire, 1000);
}

__attribute__((noinline)) void count_reader_64k(long n, const std::string& wire) {
  read_frames(n, wire, 1);
}

__attribute__((noinline)) void count_unmask_64k(long n) {
  std::string data = text_of(64 * 1024, false);
  for (long i = 0; i < n; ++i) sp::apply_mask(data.data(), data.size(), {1, 2, 3, 4});
  g_sink = static_cast<unsigned char>(data[7]);
}

__attribute__((noinline)) void count_utf8_mixed_64k(long n) {
  const std::string text = text_of(64 * 1024, true);
  for (long i = 0; i < n; ++i) g_sink = sp::is_valid_utf8(text);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s handshake|reader_16b|reader_64k|unmask_64k|utf8_mixed_64k N\n",
                 argv[0]);
    return 2;
  }
  const std::string_view what = argv[1];
  const long n = std::atol(argv[2]);
  // Warm up OpenSSL (provider loading, DRBG seeding) outside the counts.
  g_sink = static_cast<std::size_t>(sp::compute_accept("dGhlIHNhbXBsZSBub25jZQ==")[0]);
  if (what == "handshake") count_handshake(n);
  else if (what == "reader_16b") count_reader_16b(n, client_frames(16, 1000));
  else if (what == "reader_64k") count_reader_64k(n, client_frames(64 * 1024, 1));
  else if (what == "unmask_64k") count_unmask_64k(n);
  else if (what == "utf8_mixed_64k") count_utf8_mixed_64k(n);
  else return 2;
  return 0;
}
