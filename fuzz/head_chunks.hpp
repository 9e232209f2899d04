// head_chunks.hpp — feeds an HTTP head parser the way a server or client
// does: a growing buffer, extended by fuzzer-chosen chunk sizes, each time in
// a fresh exactly-sized heap copy so ASan catches any read past the bytes
// received so far. Shared by request_head_fuzz and response_validator_fuzz.
#pragma once

#include <switchboard/protocol/http_head.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>

namespace switchboard::fuzz {

// Feeds `input` to `parser` until it stops asking for more. Chunk k has
// schedule[k % schedule_len] + 1 bytes (all of `input` at once when
// schedule_len is 0). On return `buffer` holds the bytes the last parse saw
// (the parsed head's views point into it). `check` traps on a broken contract:
// consumed within what was given, an error status exactly when err is set,
// and nothing consumed before the head completes.
template <class Parser, class Check>
protocol::parse_result feed_in_chunks(Parser& parser, std::string_view input,
                                      const std::uint8_t* schedule, std::size_t schedule_len,
                                      std::unique_ptr<char[]>& buffer, Check check) {
  using protocol::parse_status;
  protocol::parse_result r{0, parse_status::need_more, protocol::error::none};
  std::size_t have = 0;
  for (std::size_t step = 0; r.status == parse_status::need_more && have < input.size(); ++step) {
    const std::size_t chunk =
        schedule_len == 0 ? input.size() : std::size_t{schedule[step % schedule_len]} + 1;
    have = std::min(input.size(), have + chunk);
    buffer = std::make_unique<char[]>(have);
    std::memcpy(buffer.get(), input.data(), have);
    r = parser.parse({buffer.get(), have});
    check(r.consumed <= have);
    check((r.status == parse_status::error) == (r.err != protocol::error::none));
    if (r.status != parse_status::complete) check(r.consumed == 0);
  }
  return r;
}

}  // namespace switchboard::fuzz
