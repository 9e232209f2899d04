// permessage-deflate negotiation (RFC 7692 §5, §7.1). One parser reads the
// parameters of a permessage-deflate element into a `parsed` record, refusing
// what no side may send; the server and client rules are then checks on that
// record, so both roles share the exact grammar of each parameter.
#include <algorithm>
#include <cassert>
#include <switchboard/protocol/deflate_negotiation.hpp>
#include <vector>

namespace switchboard::protocol {
namespace {

constexpr std::string_view k_server_no_context_takeover = "server_no_context_takeover";
constexpr std::string_view k_client_no_context_takeover = "client_no_context_takeover";
constexpr std::string_view k_server_max_window_bits = "server_max_window_bits";
constexpr std::string_view k_client_max_window_bits = "client_max_window_bits";

// The parameters of one permessage-deflate element. Window bits are 0 when the
// parameter is absent or (client_max_window_bits in an offer) has no value.
struct parsed {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  bool has_server_max_window_bits = false;
  bool has_client_max_window_bits = false;
  std::uint8_t server_max_window_bits = 0;
  std::uint8_t client_max_window_bits = 0;
};

// "1*DIGIT ... an integer from 8 to 15 inclusive without leading zeros"
// (§7.1.2.1, §7.1.2.2). Quoted values arrive unquoted. 0 if not valid.
std::uint8_t window_bits_value(std::string_view v) noexcept {
  if (v.size() == 1 && v[0] >= '8' && v[0] <= '9') return static_cast<std::uint8_t>(v[0] - '0');
  if (v.size() == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
    return static_cast<std::uint8_t>(10 + (v[1] - '0'));
  return 0;
}

// Reads the parameters of `ext`. False on anything neither role may send:
// an unknown parameter, a repeated one (§7: "MUST NOT include ... more than
// once"), a value on a *_no_context_takeover flag (§7.1.1.1-2), a window
// parameter with a bad value, or server_max_window_bits without one
// (§7.1.2.1). Whether a bare client_max_window_bits is allowed depends on the
// role: the caller checks it (`has_client_max_window_bits` with value 0).
bool parse_params(const extension& ext, parsed& out) noexcept {
  for (const auto& p : ext.params) {
    if (p.name == k_server_no_context_takeover || p.name == k_client_no_context_takeover) {
      bool& flag = p.name == k_server_no_context_takeover ? out.server_no_context_takeover
                                                          : out.client_no_context_takeover;
      if (flag || p.has_value) return false;
      flag = true;
    } else if (p.name == k_server_max_window_bits) {
      if (out.has_server_max_window_bits || !p.has_value) return false;
      out.has_server_max_window_bits = true;
      out.server_max_window_bits = window_bits_value(p.value);
      if (out.server_max_window_bits == 0) return false;
    } else if (p.name == k_client_max_window_bits) {
      if (out.has_client_max_window_bits) return false;
      out.has_client_max_window_bits = true;
      if (p.has_value) {
        out.client_max_window_bits = window_bits_value(p.value);
        if (out.client_max_window_bits == 0) return false;
      }
    } else {
      return false;  // §7: an unknown parameter declines the offer / fails the answer
    }
  }
  return true;
}

std::uint8_t clamp_deflate_bits(std::uint8_t bits) noexcept {
  return std::clamp(bits, k_min_deflate_window_bits, k_max_window_bits);
}

void append_bits(deflate_header& h, std::string_view name, std::uint8_t bits) noexcept {
  const char digits[2] = {static_cast<char>('0' + bits / 10), static_cast<char>('0' + bits % 10)};
  h.append("; ");
  h.append(name);
  h.append("=");
  h.append(bits >= 10 ? std::string_view(digits, 2) : std::string_view(digits + 1, 1));
}

// The server's answer to one offer, or nullopt to decline it.
std::optional<deflate_agreement> answer_offer(const extension& offer,
                                              const deflate_server_policy& policy) noexcept {
  parsed p;
  if (!parse_params(offer, p)) return std::nullopt;

  deflate_agreement a;
  deflate_params& agreed = a.params;
  // §7.1.1.1: accepting an offer with server_no_context_takeover means
  // answering with it; the server may also add it unasked.
  agreed.server_no_context_takeover =
      p.server_no_context_takeover || policy.server_no_context_takeover;
  // §7.1.1.2: the server may add client_no_context_takeover unasked; when the
  // client offered it we echo it, so both ends agree in writing.
  agreed.client_no_context_takeover =
      p.client_no_context_takeover || policy.client_no_context_takeover;

  // Our deflater. §7.1.2.1: when offered, the answer must carry a value equal
  // to or smaller than the offer's; 8 can only be answered with 8, which zlib
  // cannot deflate with, so that offer is declined. When not offered, the
  // server may still name one: 8 from the policy is answered as 9.
  const std::uint8_t ours = clamp_deflate_bits(policy.server_max_window_bits);
  bool send_server_bits = false;
  if (p.has_server_max_window_bits) {
    if (p.server_max_window_bits < k_min_deflate_window_bits) return std::nullopt;
    agreed.server_max_window_bits = std::min(p.server_max_window_bits, ours);
    send_server_bits = true;
  } else {
    agreed.server_max_window_bits = ours;
    send_server_bits = ours < k_max_window_bits;
  }

  // The client's deflater. §7.1.2.2: the answer MUST NOT carry
  // client_max_window_bits unless the offer did; when it did, the server may
  // answer a value no larger than the offer's (any, for a bare offer).
  bool send_client_bits = false;
  if (p.has_client_max_window_bits) {
    const std::uint8_t offered =
        p.client_max_window_bits == 0 ? k_max_window_bits : p.client_max_window_bits;
    const std::uint8_t limit = clamp_deflate_bits(policy.client_max_window_bits);
    agreed.client_max_window_bits = std::min(offered, limit);
    // A value the client named is its own limit anyway; only answer what
    // narrows the default, to keep the answer short.
    send_client_bits = agreed.client_max_window_bits < k_max_window_bits;
  }

  deflate_header& h = a.response;
  h.append(k_permessage_deflate);
  if (agreed.server_no_context_takeover) {
    h.append("; ");
    h.append(k_server_no_context_takeover);
  }
  if (agreed.client_no_context_takeover) {
    h.append("; ");
    h.append(k_client_no_context_takeover);
  }
  if (send_server_bits) append_bits(h, k_server_max_window_bits, agreed.server_max_window_bits);
  if (send_client_bits) append_bits(h, k_client_max_window_bits, agreed.client_max_window_bits);
  return a;
}

}  // namespace

void deflate_header::append(std::string_view text) noexcept {
  assert(size_ + text.size() <= data_.size());
  const std::size_t n = std::min(text.size(), data_.size() - size_);
  std::copy_n(text.data(), n, data_.data() + size_);
  size_ = static_cast<std::uint8_t>(size_ + n);
}

std::optional<deflate_agreement> negotiate_deflate(std::span<const extension> offers,
                                                   const deflate_server_policy& policy) noexcept {
  if (!policy.enabled) return std::nullopt;
  // RFC 7692 §5.1: the server accepts at most one offer, the first it can.
  for (const auto& offer : offers) {
    if (offer.name != k_permessage_deflate) continue;
    if (auto a = answer_offer(offer, policy)) return a;
  }
  return std::nullopt;
}

std::optional<deflate_agreement> negotiate_deflate(const header_fields& request,
                                                   const deflate_server_policy& policy) {
  if (!policy.enabled) return std::nullopt;
  std::vector<extension> offers;
  if (parse_extensions(request, offers) != error::none) return std::nullopt;
  return negotiate_deflate(offers, policy);
}

deflate_header write_deflate_offer(const deflate_client_options& options) noexcept {
  deflate_header h;
  h.append(k_permessage_deflate);
  if (options.server_no_context_takeover) {
    h.append("; ");
    h.append(k_server_no_context_takeover);
  }
  if (options.client_no_context_takeover) {
    h.append("; ");
    h.append(k_client_no_context_takeover);
  }
  const std::uint8_t server_bits =
      std::clamp(options.server_max_window_bits, k_min_window_bits, k_max_window_bits);
  if (server_bits < k_max_window_bits) append_bits(h, k_server_max_window_bits, server_bits);
  if (options.offer_client_max_window_bits) {
    // 8 is offered as 9: the value is our own limit and zlib cannot meet 8.
    const std::uint8_t client_bits = clamp_deflate_bits(options.client_max_window_bits);
    if (client_bits < k_max_window_bits) {
      append_bits(h, k_client_max_window_bits, client_bits);
    } else {
      h.append("; ");
      h.append(k_client_max_window_bits);
    }
  }
  return h;
}

error validate_deflate_response(std::span<const extension> answer,
                                const deflate_client_options& offered,
                                std::optional<deflate_params>& agreed) noexcept {
  agreed.reset();
  const extension* chosen = nullptr;
  for (const auto& ext : answer) {
    if (ext.name != k_permessage_deflate) continue;
    // §5: the server answers with at most one element per accepted offer,
    // and we sent one offer.
    if (chosen != nullptr) return error::response_deflate_repeated;
    chosen = &ext;
  }
  if (chosen == nullptr) return error::none;

  parsed p;
  if (!parse_params(*chosen, p)) return error::response_deflate_bad_param;

  const std::uint8_t asked_server_bits =
      std::clamp(offered.server_max_window_bits, k_min_window_bits, k_max_window_bits);
  const bool asked_for_server_bits = asked_server_bits < k_max_window_bits;
  const std::uint8_t offered_client_bits = clamp_deflate_bits(offered.client_max_window_bits);

  // §7.1.2.1: a value no larger than what we asked for.
  if (p.has_server_max_window_bits && p.server_max_window_bits > asked_server_bits)
    return error::response_deflate_bad_param;
  if (p.has_client_max_window_bits) {
    // §7.1.2.2: only when offered, and in an answer always with a value no
    // larger than the one we offered.
    if (!offered.offer_client_max_window_bits || p.client_max_window_bits == 0 ||
        p.client_max_window_bits > offered_client_bits)
      return error::response_deflate_bad_param;
    if (p.client_max_window_bits < k_min_deflate_window_bits)
      return error::response_deflate_window_8;
  }
  // §7.1.1.1, §7.1.2.1: accepting these means answering with them.
  if (offered.server_no_context_takeover && !p.server_no_context_takeover)
    return error::response_deflate_missing_param;
  if (asked_for_server_bits && !p.has_server_max_window_bits)
    return error::response_deflate_missing_param;

  deflate_params out;
  out.server_no_context_takeover = p.server_no_context_takeover;
  // We keep a promise made in the offer even if the server did not echo it.
  out.client_no_context_takeover =
      p.client_no_context_takeover || offered.client_no_context_takeover;
  out.server_max_window_bits =
      p.has_server_max_window_bits ? p.server_max_window_bits : k_max_window_bits;
  if (p.has_client_max_window_bits) {
    out.client_max_window_bits = p.client_max_window_bits;
  } else if (offered.offer_client_max_window_bits) {
    out.client_max_window_bits = offered_client_bits;  // the limit we offered, or 15
  }
  agreed = out;
  return error::none;
}

error validate_deflate_response(const header_fields& response,
                                const deflate_client_options& offered,
                                std::optional<deflate_params>& agreed) {
  agreed.reset();
  std::vector<extension> answer;
  if (const error e = parse_extensions(response, answer); e != error::none) return e;
  return validate_deflate_response(answer, offered, agreed);
}

std::uint8_t deflate_window_bits(const deflate_params& agreed, role ours) noexcept {
  return clamp_deflate_bits(ours == role::server ? agreed.server_max_window_bits
                                                 : agreed.client_max_window_bits);
}

bool deflate_no_context_takeover(const deflate_params& agreed, role ours) noexcept {
  return ours == role::server ? agreed.server_no_context_takeover
                              : agreed.client_no_context_takeover;
}

std::uint8_t inflate_window_bits(const deflate_params& agreed, role ours) noexcept {
  // A 9-bit window decodes any stream made with an 8-bit one.
  return clamp_deflate_bits(ours == role::server ? agreed.client_max_window_bits
                                                 : agreed.server_max_window_bits);
}

bool inflate_no_context_takeover(const deflate_params& agreed, role ours) noexcept {
  return ours == role::server ? agreed.client_no_context_takeover
                              : agreed.server_no_context_takeover;
}

}  // namespace switchboard::protocol
