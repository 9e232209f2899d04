// Microbenchmarks for the protocol layer's hot functions: unmasking, UTF-8
// validation, the message reader and the opening handshake.
//
// Figures and the command that produced them are in docs/benchmarks.md.
// Throughput is reported by Google Benchmark as bytes_per_second (B/s) or
// items_per_second; nothing here asserts a time. Rates use wall-clock time
// (UseRealTime): on this project's virtual machines the process CPU-time
// clock under-counts (it implied 9+ instructions per cycle against callgrind's
// counts), while the wall clock agrees with a cycle-bound calibration loop.
#include <benchmark/benchmark.h>

#include <switchboard/protocol/handshake.hpp>
#include <switchboard/protocol/http_head.hpp>
#include <switchboard/protocol/mask.hpp>
#include <switchboard/protocol/message_reader.hpp>
#include <switchboard/protocol/message_writer.hpp>
#include <switchboard/protocol/utf8.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace sp = switchboard::protocol;

namespace {

std::string random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// --- masking ---------------------------------------------------------------

void bm_unmask(benchmark::State& state) {
  auto size = static_cast<std::size_t>(state.range(0));
  std::string data = random_bytes(size, 1);
  const sp::mask_key key{0x12, 0x34, 0x56, 0x78};
  for (auto _ : state) {
    sp::apply_mask(data.data(), data.size(), key, 0);
    benchmark::DoNotOptimize(data.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}
BENCHMARK(bm_unmask)->Arg(16)->Arg(1024)->Arg(64 * 1024)->Arg(1024 * 1024)->UseRealTime();

// --- UTF-8 -----------------------------------------------------------------

// Plain English-like ASCII.
std::string ascii_text(std::size_t n) {
  static constexpr std::string_view words =
      "the quick brown fox jumps over the lazy dog while switchboard relays "
      "messages between many clients on one event loop ";
  std::string s;
  while (s.size() < n) s.append(words);
  s.resize(n);
  return s;
}

// Mixed text: ASCII with 2-, 3- and 4-byte code points spread through it, as
// in a multilingual chat (roughly a third of the bytes are non-ASCII).
std::string mixed_text(std::size_t n) {
  static constexpr std::string_view pieces[] = {
      "hello ", "caf\xC3\xA9 ", "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E ", "na\xC3\xAFve ",
      "\xF0\x9F\x98\x80 ", "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 ", "world ",
      "\xCE\xB1\xCE\xB2\xCE\xB3 "};
  std::string s;
  std::size_t i = 0;
  while (s.size() < n) s.append(pieces[i++ % std::size(pieces)]);
  // Trim back to a whole code point.
  while (!sp::is_valid_utf8(s)) s.pop_back();
  return s;
}

void run_utf8(benchmark::State& state, const std::string& text) {
  for (auto _ : state) {
    sp::utf8_validator v;
    bool ok = v.feed(text) && v.complete();
    benchmark::DoNotOptimize(ok);
    if (!ok) state.SkipWithError("text rejected");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}

void bm_utf8_ascii(benchmark::State& state) {
  run_utf8(state, ascii_text(static_cast<std::size_t>(state.range(0))));
}
BENCHMARK(bm_utf8_ascii)->Arg(16)->Arg(1024)->Arg(64 * 1024)->UseRealTime();

void bm_utf8_mixed(benchmark::State& state) {
  run_utf8(state, mixed_text(static_cast<std::size_t>(state.range(0))));
}
BENCHMARK(bm_utf8_mixed)->Arg(1024)->Arg(64 * 1024)->UseRealTime();

// --- message reader --------------------------------------------------------

// A stream of masked client frames, as a server reads them: `count` text
// messages of `payload` bytes each. The reader unmasks in place, so every
// iteration starts from a fresh copy of the wire bytes (memcpy cost included;
// it is small next to the work and mirrors a recv into the loop buffer).
std::string client_stream(std::size_t payload, std::size_t count, sp::opcode op) {
  sp::message_writer writer(sp::role::client);
  std::string text = ascii_text(payload);
  std::string wire;
  for (std::size_t i = 0; i < count; ++i) writer.append_frame(wire, op, text);
  return wire;
}

void run_reader(benchmark::State& state, std::size_t payload, std::size_t count,
                sp::opcode op) {
  const std::string wire = client_stream(payload, count, op);
  std::string buffer = wire;
  sp::reader_options options;
  options.role = sp::role::server;
  sp::message_reader reader(options);
  std::size_t messages = 0;
  for (auto _ : state) {
    std::memcpy(buffer.data(), wire.data(), wire.size());
    std::span<char> input(buffer.data(), buffer.size());
    for (;;) {
      sp::reader_event ev = reader.next(input);
      if (ev.kind == sp::event_kind::message) {
        benchmark::DoNotOptimize(ev.payload.data());
        ++messages;
      } else if (ev.kind == sp::event_kind::need_more) {
        break;
      } else {
        state.SkipWithError("unexpected reader event");
        return;
      }
    }
  }
  if (messages != state.iterations() * count) state.SkipWithError("messages lost");
  state.SetItemsProcessed(static_cast<std::int64_t>(messages));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * wire.size()));
}

// 16-byte text messages, 4096 per batch (about 90 KiB of wire bytes, the size
// of a large read into the loop buffer). Items/s = frames/s.
void bm_reader_16b_frames(benchmark::State& state) {
  run_reader(state, 16, 4096, sp::opcode::text);
}
BENCHMARK(bm_reader_16b_frames)->UseRealTime();

void bm_reader_16b_binary_frames(benchmark::State& state) {
  run_reader(state, 16, 4096, sp::opcode::binary);
}
BENCHMARK(bm_reader_16b_binary_frames)->UseRealTime();

// 64 KiB text frames (unmask + UTF-8 validation dominate).
void bm_reader_64k_frames(benchmark::State& state) {
  run_reader(state, 64 * 1024, 16, sp::opcode::text);
}
BENCHMARK(bm_reader_64k_frames)->UseRealTime();

// --- writer ----------------------------------------------------------------

void bm_writer_16b_server(benchmark::State& state) {
  sp::message_writer writer(sp::role::server);
  std::string text = ascii_text(16);
  char out[64];
  for (auto _ : state) {
    auto n = writer.write_frame(out, sp::opcode::text, text);
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(bm_writer_16b_server)->UseRealTime();

void bm_writer_16b_client(benchmark::State& state) {
  sp::message_writer writer(sp::role::client);  // fresh CSPRNG mask per frame
  std::string text = ascii_text(16);
  char out[64];
  for (auto _ : state) {
    auto n = writer.write_frame(out, sp::opcode::text, text);
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(bm_writer_16b_client)->UseRealTime();

// --- handshake -------------------------------------------------------------

// A browser-like upgrade request: parse the head, validate it, pick a
// subprotocol and write the 101 response. Items/s = handshakes/s.
void bm_handshake(benchmark::State& state) {
  const std::string request =
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
  const std::string_view supported[] = {"switchboard.v1"};
  sp::request_parser parser;
  std::string response;
  response.reserve(512);
  for (auto _ : state) {
    parser.reset();
    auto r = parser.parse(request);
    sp::upgrade_request up;
    sp::error e = sp::validate_upgrade(parser.head(), up);
    if (r.status != sp::parse_status::complete || e != sp::error::none) {
      state.SkipWithError("handshake rejected");
      return;
    }
    auto proto = sp::select_subprotocol(parser.head(), supported);
    sp::accept_options opts;
    if (proto) opts.subprotocol = *proto;
    response.clear();
    if (!sp::write_accept_response(response, up.key, opts)) {
      state.SkipWithError("response not written");
      return;
    }
    benchmark::DoNotOptimize(response.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(bm_handshake)->UseRealTime();

void bm_compute_accept(benchmark::State& state) {
  for (auto _ : state) {
    auto a = sp::compute_accept("dGhlIHNhbXBsZSBub25jZQ==");
    benchmark::DoNotOptimize(a);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(bm_compute_accept)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
