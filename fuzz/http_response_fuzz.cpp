// Fuzzes the proxy hooks' HTTP response reader (src/realtime/hook_http.hpp:
// http_response_reader), and read_hook_answer() on the body it produced.
// The first byte picks the chunking (0: all at once; else pieces of
// 1..byte), the second whether the connection ends after the input; the
// rest is the wire. Invariants, checked with __builtin_trap():
//  - feed() never says it consumed more than it was given, consumes all of a
//    piece unless the response completed, and an error is sticky;
//  - the body never exceeds the reader's limit;
//  - a failed reader never offers keep-alive;
//  - the same wire in one piece gives the same outcome, status and body.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "hook_http.hpp"
#include "hooks.hpp"

namespace {

using switchboard::realtime::detail::http_response_reader;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

constexpr std::size_t k_limit = 4096;

struct outcome {
  http_response_reader::status status;
  int code;
  std::string body;
};

outcome read(std::string_view wire, std::size_t step, bool close_at_end) {
  http_response_reader r(k_limit);
  auto status = http_response_reader::status::need_more;
  std::size_t at = 0;
  while (at < wire.size()) {
    const std::size_t n = step == 0 ? wire.size() - at : std::min(step, wire.size() - at);
    std::size_t consumed = 0;
    status = r.feed(wire.substr(at, n), consumed);
    check(consumed <= n);
    if (status == http_response_reader::status::complete) break;
    if (status == http_response_reader::status::error) {
      std::size_t again = 0;
      check(r.feed("x", again) == http_response_reader::status::error);  // sticky
      break;
    }
    check(consumed == n);
    at += n;
  }
  if (status == http_response_reader::status::need_more && close_at_end) status = r.finish();
  check(r.body().size() <= k_limit);
  if (status == http_response_reader::status::error) check(!r.keep_alive() && !r.error().empty());
  return {status, r.status_code(), r.body()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t step = data[0];
  const bool close_at_end = (data[1] & 1) != 0;
  const std::string_view wire(reinterpret_cast<const char*>(data + 2), size - 2);
  const outcome chunked = read(wire, step, close_at_end);
  const outcome whole = read(wire, 0, close_at_end);
  check(chunked.status == whole.status);
  if (whole.status == http_response_reader::status::complete) {
    check(chunked.code == whole.code && chunked.body == whole.body);
    (void)switchboard::realtime::detail::read_hook_answer(
        switchboard::realtime::detail::hook_kind::connect, whole.code, whole.body);
  }
  return 0;
}
