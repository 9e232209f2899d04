// auth.cpp — HS256 JWT verification and token lookup in upgrade requests.
//
// libjwt checks the signature and the algorithm, but it is not trusted alone:
// libjwt 1.x takes the algorithm from the token's own header (the root of the
// alg-confusion and "alg": "none" attacks), splits the token without looking
// at its characters (its base64 decoder skips what it does not know), keeps the
// last of repeated JSON names, and compares signatures with strcmp. So, before
// libjwt sees a token, this file insists on the exact compact form, reads the
// header itself and refuses everything but "HS256", refuses repeated names,
// and checks the HMAC with a constant-time comparison; afterwards it asks
// libjwt which algorithm it verified with. Claims are read with simdjson from
// the same bytes that were signed.
#include "auth.hpp"

#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <memory>

namespace switchboard::realtime {

namespace {

constexpr std::string_view k_malformed = "malformed token";
constexpr std::string_view k_bad_alg = "algorithm not allowed";
constexpr std::string_view k_bad_signature = "bad signature";

// HMAC-SHA256 output length.
constexpr std::size_t k_mac_size = 32;

token_result fail(std::string_view reason) {
  token_result r;
  r.error = std::string(reason);
  return r;
}

// The value of a base64url character (RFC 4648 §5), or -1.
int base64url_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// Decodes one part of a compact JWS. RFC 7515 §2: base64url without padding,
// no whitespace or other characters. Also refused: a length of 4n+1 (not a
// whole byte) and set bits after the last byte, so each byte string has one
// spelling only. OpenSSL does the decoding itself.
std::optional<std::string> decode_base64url(std::string_view in) {
  for (const char c : in) {
    if (base64url_value(c) < 0) return std::nullopt;
  }
  const std::size_t rem = in.size() % 4;
  if (rem == 1) return std::nullopt;
  if (rem == 2 && (base64url_value(in.back()) & 0x0f) != 0) return std::nullopt;
  if (rem == 3 && (base64url_value(in.back()) & 0x03) != 0) return std::nullopt;

  // EVP_DecodeBlock reads the standard alphabet in whole quantums.
  const std::size_t pad = rem == 0 ? 0 : 4 - rem;
  std::string text;
  text.reserve(in.size() + pad);
  for (const char c : in) text.push_back(c == '-' ? '+' : c == '_' ? '/' : c);
  text.append(pad, '=');

  std::string out(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0 || static_cast<std::size_t>(n) != out.size()) return std::nullopt;
  out.resize(out.size() - pad);  // EVP_DecodeBlock counts padding as zero bytes
  return out;
}

// True if an object names a member twice. RFC 7515 §4 and RFC 7519 §4 allow
// refusing such headers and claim sets; we do, because simdjson would read
// the first and libjwt (jansson) the last of two "alg" members.
bool has_repeated_names(simdjson::dom::object object) {
  std::vector<std::string_view> names;
  names.reserve(object.size());
  for (const auto field : object) names.push_back(field.key);
  std::sort(names.begin(), names.end());
  return std::adjacent_find(names.begin(), names.end()) != names.end();
}

// Parses `json` as a JSON object whose members have distinct names.
std::optional<simdjson::dom::object> parse_object(simdjson::dom::parser& parser,
                                                  const std::string& json) {
  simdjson::dom::object object;
  if (parser.parse(json).get_object().get(object) != simdjson::SUCCESS) return std::nullopt;
  if (has_repeated_names(object)) return std::nullopt;
  return object;
}

enum class numeric_date_status { ok, missing, bad };

// Reads a NumericDate claim (RFC 7519 §2: seconds, possibly fractional) into
// whole seconds, saturating at the int64 range. `round_up` picks ceil over
// floor, so a fractional nbf is never honoured early and a fractional exp
// never late.
numeric_date_status read_numeric_date(simdjson::dom::object claims, std::string_view name,
                                      bool round_up, std::int64_t& out) {
  simdjson::dom::element value;
  if (claims.at_key(name).get(value) != simdjson::SUCCESS) return numeric_date_status::missing;
  constexpr auto k_max = std::numeric_limits<std::int64_t>::max();
  constexpr auto k_min = std::numeric_limits<std::int64_t>::min();
  switch (value.type()) {
    case simdjson::dom::element_type::INT64:
      out = value.get_int64().value_unsafe();
      return numeric_date_status::ok;
    case simdjson::dom::element_type::UINT64:
      out = k_max;  // only values above INT64_MAX are stored as UINT64
      return numeric_date_status::ok;
    case simdjson::dom::element_type::DOUBLE: {
      const double d = round_up ? std::ceil(value.get_double().value_unsafe())
                                : std::floor(value.get_double().value_unsafe());
      // 2^63 is exactly representable; anything at or past it saturates.
      if (d >= 9223372036854775808.0) {
        out = k_max;
      } else if (d < -9223372036854775808.0) {
        out = k_min;
      } else {
        out = static_cast<std::int64_t>(d);
      }
      return numeric_date_status::ok;
    }
    default:
      return numeric_date_status::bad;
  }
}

struct jwt_deleter {
  void operator()(jwt_t* jwt) const noexcept { jwt_free(jwt); }
};

// application/x-www-form-urlencoded decoding of one name or value: "%XX" is
// the byte 0xXX, '+' is a space; an invalid escape stays as it is.
std::string form_decode(std::string_view in) {
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < in.size() && hex(in[i + 1]) >= 0 && hex(in[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

bool token_claims::grants(std::string_view channel) const noexcept {
  if (!has_channels) return true;
  for (const std::string& entry : channels) {
    std::string_view e = entry;
    if (!e.empty() && e.back() == '*') {
      if (channel.starts_with(e.substr(0, e.size() - 1))) return true;
    } else if (e == channel) {
      return true;
    }
  }
  return false;
}

token_verifier::token_verifier(std::string secret) : secret_(std::move(secret)) {}

token_result token_verifier::verify(std::string_view token, std::int64_t now) const {
  // Bounded work per token, whoever sends it.
  if (token.size() > max_token_size) return fail(k_malformed);

  // RFC 7515 §7.1: base64url characters and exactly three parts separated by
  // '.'; header and claims are never empty (an empty signature is dealt with
  // after the algorithm).
  if (!std::all_of(token.begin(), token.end(),
                   [](char c) { return c == '.' || base64url_value(c) >= 0; })) {
    return fail(k_malformed);
  }
  const auto dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return fail(k_malformed);
  const auto dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos) return fail(k_malformed);
  if (token.find('.', dot2 + 1) != std::string_view::npos) return fail(k_malformed);
  const std::string_view header_part = token.substr(0, dot1);
  const std::string_view claims_part = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature_part = token.substr(dot2 + 1);
  if (header_part.empty() || claims_part.empty()) return fail(k_malformed);

  const auto header_json = decode_base64url(header_part);
  if (!header_json) return fail(k_malformed);
  simdjson::dom::parser header_parser;
  const auto header = parse_object(header_parser, *header_json);
  if (!header) return fail(k_malformed);

  // The one algorithm we accept, decided from the header before any key is
  // used: a token that asks for "none", HS512 or RS256 is refused here, so
  // neither our check nor libjwt's ever runs another algorithm.
  std::string_view alg;
  if (header->at_key("alg").get_string().get(alg) != simdjson::SUCCESS || alg != "HS256") {
    return fail(k_bad_alg);
  }
  // RFC 7515 §4.1.11: extensions listed in "crit" must be understood; we
  // understand none.
  if (header->at_key("crit").error() != simdjson::NO_SUCH_FIELD) return fail(k_malformed);

  const auto claims_json = decode_base64url(claims_part);
  if (!claims_json) return fail(k_malformed);
  simdjson::dom::parser claims_parser;
  const auto claims = parse_object(claims_parser, *claims_json);
  if (!claims) return fail(k_malformed);

  // RFC 7515 §5.2: the MAC over "header.claims" as sent. Without a secret
  // nothing can be valid. CRYPTO_memcmp takes the same time wherever the
  // first differing byte is.
  if (secret_.empty()) return fail(k_bad_signature);
  const auto signature = decode_base64url(signature_part);
  if (!signature || signature->size() != k_mac_size) return fail(k_bad_signature);
  const std::string_view signing_input = token.substr(0, dot2);
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int mac_size = 0;
  if (HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
           reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(),
           mac.data(), &mac_size) == nullptr ||
      mac_size != k_mac_size || CRYPTO_memcmp(mac.data(), signature->data(), k_mac_size) != 0) {
    return fail(k_bad_signature);
  }

  // libjwt verifies again, with the algorithm and key it is given the token
  // for. It has seen the same bytes we accepted, so a refusal here can only
  // come from its own JSON reader disagreeing with simdjson's.
  jwt_t* raw = nullptr;
  const std::string token_text(token);  // libjwt wants a C string
  const int rc =
      jwt_decode(&raw, token_text.c_str(), reinterpret_cast<const unsigned char*>(secret_.data()),
                 static_cast<int>(secret_.size()));
  const std::unique_ptr<jwt_t, jwt_deleter> jwt(raw);
  if (rc != 0 || !jwt) return fail(k_malformed);
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256) return fail(k_bad_alg);

  token_claims out;

  // RFC 7519 §4.1.2: "sub" names the user; we require it.
  simdjson::dom::element sub;
  if (claims->at_key("sub").get(sub) != simdjson::SUCCESS) return fail("missing claim: sub");
  std::string_view user;
  if (sub.get_string().get(user) != simdjson::SUCCESS || user.empty()) {
    return fail("bad claim: sub");
  }
  out.user = std::string(user);

  // RFC 7519 §4.1.4: "exp" is required here, so no token lives forever.
  switch (read_numeric_date(*claims, "exp", false, out.expires)) {
    case numeric_date_status::missing:
      return fail("missing claim: exp");
    case numeric_date_status::bad:
      return fail("bad claim: exp");
    case numeric_date_status::ok:
      break;
  }
  std::int64_t not_before = std::numeric_limits<std::int64_t>::min();
  if (read_numeric_date(*claims, "nbf", true, not_before) == numeric_date_status::bad) {
    return fail("bad claim: nbf");
  }

  simdjson::dom::element channels;
  if (claims->at_key("channels").get(channels) == simdjson::SUCCESS) {
    simdjson::dom::array list;
    if (channels.get_array().get(list) != simdjson::SUCCESS) return fail("bad claim: channels");
    out.has_channels = true;
    out.channels.reserve(list.size());
    for (const auto entry : list) {
      std::string_view name;
      if (entry.get_string().get(name) != simdjson::SUCCESS) return fail("bad claim: channels");
      out.channels.emplace_back(name);
    }
  }

  simdjson::dom::element info;
  if (claims->at_key("info").get(info) == simdjson::SUCCESS) {
    if (!info.is_object()) return fail("bad claim: info");
    out.info = simdjson::minify(info);
  }

  // RFC 7519 §4.1.4 / §4.1.5 with no leeway: valid while nbf <= now < exp.
  if (now >= out.expires) return fail("token expired");
  if (now < not_before) return fail("token not yet valid");

  token_result result;
  result.claims = std::move(out);
  return result;
}

std::optional<std::string> find_token(const protocol::request_head& head, std::string_view query,
                                      std::string_view cookie_name, bool allow_query) {
  // 1. RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token. Other schemes
  // (Basic, ...) belong to someone else and are passed over.
  for (const auto& field : head.headers()) {
    if (!protocol::ascii_iequals(field.name, "authorization")) continue;
    const std::string_view value = field.value;
    const auto space = value.find_first_of(" \t");
    if (!protocol::ascii_iequals(value.substr(0, space), "bearer")) continue;
    if (space == std::string_view::npos) continue;
    std::string_view credentials = value.substr(space);
    const auto start = credentials.find_first_not_of(" \t");
    if (start == std::string_view::npos) continue;
    return std::string(credentials.substr(start));
  }

  // 2. The cookie; an empty one is what a logout leaves behind.
  if (!cookie_name.empty()) {
    if (const auto cookie = head.cookie(cookie_name); cookie && !cookie->empty()) {
      return std::string(*cookie);
    }
  }

  // 3. ?token=..., only when the operator asked for it: URLs end up in logs.
  if (allow_query) {
    std::string_view rest = query;
    while (!rest.empty()) {
      const auto amp = rest.find('&');
      const std::string_view pair = rest.substr(0, amp);
      rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
      const auto eq = pair.find('=');
      if (form_decode(pair.substr(0, eq)) != "token") continue;
      if (eq == std::string_view::npos) continue;
      std::string value = form_decode(pair.substr(eq + 1));
      if (!value.empty()) return value;
    }
  }
  return std::nullopt;
}

}  // namespace switchboard::realtime
