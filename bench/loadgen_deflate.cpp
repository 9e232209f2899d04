// loadgen_deflate.cpp — JSON-like payloads and client-side permessage-deflate
// for switchboard_loadgen.
#include "loadgen_deflate.hpp"

#include <array>
#include <cstdio>

namespace switchboard::bench {
namespace {

// xorshift32: small, deterministic, good enough to vary prices and names.
class rng {
 public:
  explicit rng(std::uint32_t seed) noexcept : x_(seed == 0 ? 1 : seed) {}
  std::uint32_t next() noexcept {
    x_ ^= x_ << 13;
    x_ ^= x_ >> 17;
    x_ ^= x_ << 5;
    return x_;
  }
  std::uint32_t below(std::uint32_t n) noexcept { return next() % n; }

 private:
  std::uint32_t x_;
};

constexpr std::array<const char*, 10> k_symbols = {"BTC-USD",   "ETH-USD", "SOL-USD",  "ADA-EUR",
                                                   "XRP-USD",   "DOT-EUR", "AVAX-USD", "LINK-USD",
                                                   "MATIC-EUR", "ATOM-USD"};
constexpr std::array<const char*, 8> k_users = {"alice", "bob",   "carol", "dave",
                                                "erin",  "frank", "grace", "heidi"};
constexpr std::array<const char*, 12> k_words = {
    "ok", "see", "you", "at", "the", "standup", "deploy", "is", "done", "thanks", "looks", "good"};

// One ticker update, e.g. {"symbol":"BTC-USD","price":"64231.55",...}.
void append_ticker(std::string& out, rng& r, std::uint64_t seq) {
  char buf[320];
  const unsigned price = 1000 + r.below(90000);
  const unsigned cents = r.below(100);
  const int n = std::snprintf(
      buf, sizeof buf,
      "{\"symbol\":\"%s\",\"seq\":%llu,\"price\":\"%u.%02u\",\"bid\":\"%u.%02u\","
      "\"ask\":\"%u.%02u\",\"size\":\"0.%04u\",\"side\":\"%s\",\"ts\":\"2026-11-21T21:%02u:%02u.%"
      "03uZ\"}",
      k_symbols[r.below(k_symbols.size())], static_cast<unsigned long long>(seq), price, cents,
      price, cents > 0 ? cents - 1 : 0, price, cents < 99 ? cents + 1 : 99, r.below(10000),
      r.below(2) == 0 ? "buy" : "sell", r.below(60), r.below(60), r.below(1000));
  out.append(buf, static_cast<std::size_t>(n));
}

// One chat message, e.g. {"id":"m-1234","room":"general","user":{...},"text":"..."}.
void append_chat(std::string& out, rng& r, std::uint64_t seq) {
  const char* user = k_users[r.below(k_users.size())];
  char buf[200];
  int n = std::snprintf(buf, sizeof buf,
                        "{\"id\":\"m-%llu\",\"room\":\"general\",\"user\":{\"name\":\"%s\","
                        "\"avatar\":\"/avatars/%s.png\"},\"text\":\"",
                        static_cast<unsigned long long>(seq), user, user);
  out.append(buf, static_cast<std::size_t>(n));
  const std::uint32_t words = 3 + r.below(8);
  for (std::uint32_t i = 0; i < words; ++i) {
    if (i > 0) out += ' ';
    out += k_words[r.below(k_words.size())];
  }
  n = std::snprintf(buf, sizeof buf, "\",\"ts\":%llu}",
                    static_cast<unsigned long long>(1795300000000ULL + seq * 137));
  out.append(buf, static_cast<std::size_t>(n));
}

}  // namespace

std::vector<std::string> make_json_payloads(std::size_t size, std::size_t count,
                                            std::uint32_t seed) {
  rng r(seed);
  std::vector<std::string> out;
  out.reserve(count);
  std::uint64_t seq = 100000 + seed;
  for (std::size_t i = 0; i < count; ++i) {
    const bool chat = i % 2 == 1;
    std::string m = chat ? R"({"type":"chat","channel":"room.general","messages":[)"
                         : R"({"type":"ticker","channel":"market.all","updates":[)";
    // Items while they fit with room for the closing `],"pad":""}`.
    constexpr std::size_t k_tail = 12;
    for (bool first = true;; first = false) {
      std::string item = first ? "" : ",";
      if (chat) {
        append_chat(item, r, seq++);
      } else {
        append_ticker(item, r, seq++);
      }
      if (m.size() + item.size() + k_tail > size) break;
      m += item;
    }
    // Exactly `size` bytes: a padding field, or a plain cut when size is tiny.
    if (m.size() + k_tail <= size) {
      m += R"(],"pad":")";
      m.append(size - m.size() - 2, ' ');
      m += "\"}";
    }
    m.resize(size, ' ');
    out.push_back(std::move(m));
  }
  return out;
}

protocol::deflate_client_options client_offer(deflate_offer offer) noexcept {
  protocol::deflate_client_options options;
  options.offer_client_max_window_bits = true;
  if (offer == deflate_offer::no_takeover) {
    options.server_no_context_takeover = true;
    options.client_no_context_takeover = true;
  }
  return options;
}

protocol::error connection_deflate::negotiate(const protocol::header_fields& response,
                                              const protocol::deflate_client_options& offered) {
  reset();
  const protocol::error e = protocol::validate_deflate_response(response, offered, params_);
  if (e != protocol::error::none || !params_) {
    params_.reset();
    return e;
  }
  using protocol::role;
  // The shared deflater uses window 15: a smaller agreed window needs our own.
  if (!protocol::deflate_no_context_takeover(*params_, role::client) ||
      protocol::deflate_window_bits(*params_, role::client) != protocol::k_max_window_bits) {
    deflater_ = std::make_unique<protocol::deflater>(protocol::deflate_options{
        .window_bits = protocol::deflate_window_bits(*params_, role::client)});
  }
  if (!protocol::inflate_no_context_takeover(*params_, role::client)) {
    inflater_ = std::make_unique<protocol::inflater>(protocol::inflate_options{
        .window_bits = protocol::inflate_window_bits(*params_, role::client),
        .max_message_size = k_max_inflated});
  }
  return protocol::error::none;
}

protocol::error connection_deflate::compress(std::string_view message,
                                             deflate_codecs& codecs) noexcept {
  codecs.compressed.clear();
  protocol::deflater& d = deflater_ ? *deflater_ : codecs.deflater;
  return d.compress(message, codecs.compressed);
}

protocol::error connection_deflate::inflate(std::string_view payload, bool text,
                                            deflate_codecs& codecs) noexcept {
  codecs.inflated.clear();
  protocol::inflater& i = inflater_ ? *inflater_ : codecs.inflater;
  return text ? i.inflate_text(payload, codecs.inflated) : i.inflate(payload, codecs.inflated);
}

void connection_deflate::reset() noexcept {
  params_.reset();
  deflater_.reset();
  inflater_.reset();
}

}  // namespace switchboard::bench
