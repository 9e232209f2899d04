// Fuzzes token_verifier::verify and find_token (switchboard::realtime). The
// harness has its own base64url coder, signs and checks HMAC-SHA256 with
// OpenSSL and reads JSON with simdjson, so every accepted token is checked
// against RFC 7515/7519 as auth.hpp states them, not against auth.cpp.
// Invariants are checked with __builtin_trap().
//
// Input layout: byte 0 = mode (taken mod 3).
//   0  raw token.      Bytes 1-8 = now (int64, host byte order); the rest is
//                      the token. Exercises the base64url and header checks.
//   1  signed claims.  Bytes 1-8 = now; byte 9 = header choice: below
//                      std::size(k_headers) one of the fixed headers, else the
//                      header JSON is the rest up to its first NUL (never part
//                      of a JSON text). The rest is the claims JSON. The harness
//                      base64url-encodes and signs both, so the input gets past
//                      the signature and the claims are parsed deeply; the
//                      outcome must be the one the documented rules predict.
//   2  request head.   Byte 1 = flags: bit 0 allow_query, bits 1-2 pick the
//                      cookie name. The rest goes to request_parser; for a
//                      complete head, find_token must return what its
//                      documented lookup order gives, and its token goes to
//                      verify at a fixed now.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <switchboard/protocol/http_head.hpp>
#include "auth.hpp"
#include <vector>

#include "head_chunks.hpp"

namespace {

using switchboard::protocol::ascii_iequals;
using switchboard::realtime::token_claims;
using switchboard::realtime::token_result;
using switchboard::realtime::token_verifier;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

constexpr std::string_view k_secret = "switchboard-fuzz-secret";
constexpr std::int64_t k_head_now = 1700000000;  // mode 2's clock

// Mode 1's fixed headers: the accepted forms and each kind of refusal.
constexpr std::string_view k_headers[] = {
    R"({"alg":"HS256","typ":"JWT"})",
    R"({"alg":"HS256"})",
    R"({"typ":"jwt","kid":"k1","alg":"HS256"})",
    R"({"alg":"none","typ":"JWT"})",
    R"({"alg":"HS512","typ":"JWT"})",
    R"({"alg":"RS256"})",
    R"({"alg":"hs256"})",
    R"({"alg":"HS256","crit":["exp"]})",
    R"({"alg":"HS256","typ":"JOSE"})",
    R"({"alg":"HS256","alg":"none"})",
};

// Every reason auth.hpp documents.
constexpr std::string_view k_reasons[] = {
    "malformed token",     "algorithm not allowed", "bad signature",       "token expired",
    "token not yet valid", "missing claim: sub",    "missing claim: exp",  "bad claim: sub",
    "bad claim: exp",      "bad claim: nbf",        "bad claim: channels", "bad claim: info",
};

const token_verifier& verifier() {
  static const token_verifier v{std::string(k_secret)};
  return v;
}

// --- base64url (RFC 4648 §5, no padding) -------------------------------------

constexpr std::string_view k_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string b64url_encode(std::string_view in) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : in) {
    acc = (acc << 8) | static_cast<unsigned char>(c);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(k_alphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(k_alphabet[(acc << (6 - bits)) & 63]);
  return out;
}

// Lenient: ignores the bits after the last whole byte, so that a caller can
// tell canonical spellings by encoding the result again.
std::optional<std::string> b64url_decode(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : in) {
    const auto pos = k_alphabet.find(c);
    if (pos == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::string hmac_sha256(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int size = 0;
  check(HMAC(EVP_sha256(), k_secret.data(), static_cast<int>(k_secret.size()),
             reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(),
             &size) != nullptr);
  check(size == 32);
  return {reinterpret_cast<const char*>(mac.data()), size};
}

// "header.claims.signature" with a correct HS256 signature.
std::string sign(std::string_view header_json, std::string_view claims_json) {
  std::string input = b64url_encode(header_json) + "." + b64url_encode(claims_json);
  return input + "." + b64url_encode(hmac_sha256(input));
}

// --- JSON, read the way auth.hpp describes -----------------------------------

// A JSON object without repeated member names, parsed with `parser`.
std::optional<simdjson::dom::object> object_of(simdjson::dom::parser& parser,
                                               const std::string& json) {
  simdjson::dom::object object;
  if (parser.parse(json).get_object().get(object) != simdjson::SUCCESS) return std::nullopt;
  std::vector<std::string_view> names;
  for (const auto field : object) names.push_back(field.key);
  std::sort(names.begin(), names.end());
  if (std::adjacent_find(names.begin(), names.end()) != names.end()) return std::nullopt;
  return object;
}

bool has(simdjson::dom::object o, std::string_view name) {
  return o.at_key(name).error() == simdjson::SUCCESS;
}

// A NumericDate in whole seconds, saturated to int64: ceil for nbf, floor
// for exp. nullopt if `e` is not a number.
std::optional<std::int64_t> seconds(simdjson::dom::element e, bool round_up) {
  constexpr auto k_max = std::numeric_limits<std::int64_t>::max();
  constexpr auto k_min = std::numeric_limits<std::int64_t>::min();
  std::int64_t i = 0;
  std::uint64_t u = 0;
  double d = 0;
  if (e.get_int64().get(i) == simdjson::SUCCESS) return i;
  if (e.get_uint64().get(u) == simdjson::SUCCESS) return k_max;  // past int64
  if (!e.is_double() || e.get_double().get(d) != simdjson::SUCCESS) return std::nullopt;
  d = round_up ? std::ceil(d) : std::floor(d);
  if (d >= 0x1p63) return k_max;
  if (d < -0x1p63) return k_min;
  return static_cast<std::int64_t>(d);
}

bool is_string_array(simdjson::dom::element e) {
  simdjson::dom::array list;
  if (e.get_array().get(list) != simdjson::SUCCESS) return false;
  return std::all_of(list.begin(), list.end(),
                     [](simdjson::dom::element x) { return x.is_string(); });
}

// --- invariants --------------------------------------------------------------

// grants() as auth.hpp states it.
bool model_grants(const token_claims& c, std::string_view channel) {
  if (!c.has_channels) return true;
  return std::any_of(c.channels.begin(), c.channels.end(), [&](const std::string& e) {
    return e == channel || (!e.empty() && e.back() == '*' &&
                            channel.substr(0, e.size() - 1) == e.substr(0, e.size() - 1));
  });
}

void check_grants(const token_claims& c, std::string_view extra) {
  std::vector<std::string> names = {"", "chat:lobby", "*", std::string(extra)};
  for (const auto& e : c.channels) {
    names.push_back(e);
    names.push_back(e + "/more");
    if (!e.empty()) names.push_back(e.substr(0, e.size() - 1));
  }
  for (const auto& name : names) check(c.grants(name) == model_grants(c, name));
  if (!c.has_channels) check(c.channels.empty());
}

bool same_claims(const token_claims& a, const token_claims& b) {
  return a.user == b.user && a.expires == b.expires && a.has_channels == b.has_channels &&
         a.channels == b.channels && a.info == b.info;
}

// What a token verify() accepted must be, read independently.
void check_accepted(std::string_view token, std::int64_t now, const token_claims& c,
                    std::string_view extra) {
  check(token.size() <= token_verifier::max_token_size);
  // Three parts, each the one canonical base64url spelling of its bytes.
  const auto dot1 = token.find('.');
  check(dot1 != std::string_view::npos);
  const auto dot2 = token.find('.', dot1 + 1);
  check(dot2 != std::string_view::npos && token.find('.', dot2 + 1) == std::string_view::npos);
  const std::string_view parts[] = {token.substr(0, dot1), token.substr(dot1 + 1, dot2 - dot1 - 1),
                                    token.substr(dot2 + 1)};
  std::string decoded[3];
  for (int i = 0; i < 3; ++i) {
    auto bytes = b64url_decode(parts[i]);
    check(bytes.has_value() && b64url_encode(*bytes) == parts[i]);
    decoded[i] = std::move(*bytes);
  }
  // HS256 over the first two parts, as sent.
  check(decoded[2] == hmac_sha256(token.substr(0, dot2)));

  simdjson::dom::parser header_parser;
  const auto header = object_of(header_parser, decoded[0]);
  check(header.has_value());
  std::string_view alg;
  check(header->at_key("alg").get_string().get(alg) == simdjson::SUCCESS && alg == "HS256");
  check(!has(*header, "crit"));
  std::string_view typ;
  if (header->at_key("typ").get_string().get(typ) == simdjson::SUCCESS) {
    check(ascii_iequals(typ, "JWT"));
  }

  simdjson::dom::parser claims_parser;
  const auto claims = object_of(claims_parser, decoded[1]);
  check(claims.has_value());
  std::string_view sub;
  check(claims->at_key("sub").get_string().get(sub) == simdjson::SUCCESS);
  check(!c.user.empty() && c.user == sub);
  simdjson::dom::element exp;
  check(claims->at_key("exp").get(exp) == simdjson::SUCCESS);
  check(seconds(exp, false) == c.expires && c.expires > now);
  simdjson::dom::element nbf;
  if (claims->at_key("nbf").get(nbf) == simdjson::SUCCESS) {
    const auto not_before = seconds(nbf, true);
    check(not_before.has_value() && *not_before <= now);
  }
  // Every "channels" entry is a string of the JSON array, in order.
  simdjson::dom::element channels;
  check(c.has_channels == (claims->at_key("channels").get(channels) == simdjson::SUCCESS));
  if (c.has_channels) {
    simdjson::dom::array list;
    check(channels.get_array().get(list) == simdjson::SUCCESS && list.size() == c.channels.size());
    std::size_t i = 0;
    for (const auto entry : list) {
      std::string_view name;
      check(entry.get_string().get(name) == simdjson::SUCCESS && name == c.channels[i++]);
    }
  }
  // "info" is a JSON object's compact text, or empty without the claim.
  simdjson::dom::element info;
  if (claims->at_key("info").get(info) == simdjson::SUCCESS) {
    check(info.is_object() && c.info == simdjson::minify(info));
    simdjson::dom::parser info_parser;
    check(info_parser.parse(c.info).is_object());
  } else {
    check(c.info.empty());
  }
  check_grants(c, extra);

  // Valid until the last second before exp, and not at exp.
  const token_result before = verifier().verify(token, c.expires - 1);
  check(before.claims && same_claims(*before.claims, c));
  const token_result at = verifier().verify(token, c.expires);
  check(!at.claims && at.error == "token expired");
  // The signature is what made it valid: another key, or none, refuses it.
  static const token_verifier other{std::string("another-secret")};
  static const token_verifier keyless{std::string()};
  check(other.verify(token, now).error == "bad signature");
  check(keyless.verify(token, now).error == "bad signature");
}

// What a refusal must be: a documented reason that fits the token.
void check_refused(std::string_view token, const token_result& r) {
  check(!r.claims.has_value());
  check(std::find(std::begin(k_reasons), std::end(k_reasons), r.error) != std::end(k_reasons));
  if (token.size() > token_verifier::max_token_size) check(r.error == "malformed token");
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (r.error == "algorithm not allowed") {
    // The header was read, and it does not ask for HS256.
    check(dot1 != std::string_view::npos);
    const auto header_json = b64url_decode(token.substr(0, dot1));
    check(header_json.has_value());
    simdjson::dom::parser parser;
    const auto header = object_of(parser, *header_json);
    check(header.has_value());
    std::string_view alg;
    check(header->at_key("alg").get_string().get(alg) != simdjson::SUCCESS || alg != "HS256");
  } else if (r.error == "bad signature") {
    // Refused on the signature only if it is not HS256 of the first two parts.
    check(dot2 != std::string_view::npos);
    const auto signature = b64url_decode(token.substr(dot2 + 1));
    check(!signature || b64url_encode(*signature) != token.substr(dot2 + 1) ||
          *signature != hmac_sha256(token.substr(0, dot2)));
  } else if (r.error != "malformed token") {
    // A claim was judged: the signature was checked and good.
    check(dot2 != std::string_view::npos);
    check(b64url_decode(token.substr(dot2 + 1)) == hmac_sha256(token.substr(0, dot2)));
  }
}

void verify_and_check(std::string_view token, std::int64_t now, std::string_view extra) {
  const token_result r = verifier().verify(token, now);
  if (r.claims) {
    check(r.error.empty());
    check_accepted(token, now, *r.claims, extra);
  } else {
    check_refused(token, r);
  }
}

// --- mode 1: the outcome the documented rules predict -------------------------

struct prediction {
  std::string_view error;     // "" for success
  bool after_libjwt = false;  // libjwt's reader may still say "malformed token"
};

prediction predict(const std::string& header_json, const std::string& claims_json,
                   std::size_t token_size, std::int64_t now) {
  constexpr std::string_view k_malformed = "malformed token";
  if (token_size > token_verifier::max_token_size) return {k_malformed};
  // An empty part is not the compact form, whatever the other part says.
  if (header_json.empty() || claims_json.empty()) return {k_malformed};
  simdjson::dom::parser header_parser;
  const auto header = object_of(header_parser, header_json);
  if (!header) return {k_malformed};
  std::string_view alg;
  if (header->at_key("alg").get_string().get(alg) != simdjson::SUCCESS || alg != "HS256") {
    return {"algorithm not allowed"};
  }
  if (has(*header, "crit")) return {k_malformed};
  simdjson::dom::parser claims_parser;
  const auto claims = object_of(claims_parser, claims_json);
  if (!claims) return {k_malformed};
  // The signature is good. libjwt insists on "typ": "JWT" if typ is a string.
  std::string_view typ;
  if (header->at_key("typ").get_string().get(typ) == simdjson::SUCCESS &&
      !ascii_iequals(typ, "JWT")) {
    return {k_malformed};
  }
  const auto claim = [&](std::string_view name) -> std::optional<simdjson::dom::element> {
    simdjson::dom::element e;
    if (claims->at_key(name).get(e) != simdjson::SUCCESS) return std::nullopt;
    return e;
  };
  const auto sub = claim("sub");
  if (!sub) return {"missing claim: sub", true};
  std::string_view user;
  if (sub->get_string().get(user) != simdjson::SUCCESS || user.empty()) {
    return {"bad claim: sub", true};
  }
  const auto exp = claim("exp");
  if (!exp) return {"missing claim: exp", true};
  const auto expires = seconds(*exp, false);
  if (!expires) return {"bad claim: exp", true};
  const auto nbf = claim("nbf");
  const auto not_before = nbf ? seconds(*nbf, true) : std::numeric_limits<std::int64_t>::min();
  if (!not_before) return {"bad claim: nbf", true};
  if (const auto channels = claim("channels"); channels && !is_string_array(*channels)) {
    return {"bad claim: channels", true};
  }
  if (const auto info = claim("info"); info && !info->is_object()) return {"bad claim: info", true};
  if (now >= *expires) return {"token expired", true};
  if (now < *not_before) return {"token not yet valid", true};
  return {"", true};
}

void signed_claims(std::int64_t now, std::uint8_t choice, std::string_view rest) {
  std::string header_json;
  if (choice < std::size(k_headers)) {
    header_json = k_headers[choice];
  } else {
    const auto nul = rest.find('\0');
    if (nul == std::string_view::npos) return;
    header_json = rest.substr(0, nul);
    rest.remove_prefix(nul + 1);
  }
  const std::string claims_json(rest);
  const std::string token = sign(header_json, claims_json);
  const token_result r = verifier().verify(token, now);
  const prediction p = predict(header_json, claims_json, token.size(), now);
  check(r.error == p.error || (p.after_libjwt && r.error == "malformed token"));
  if (r.claims) {
    check_accepted(token, now, *r.claims, claims_json.substr(0, 16));
  } else {
    check_refused(token, r);
  }
}

// --- mode 2: find_token ------------------------------------------------------

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  const char l = static_cast<char>(c | 0x20);
  if (l >= 'a' && l <= 'f') return l - 'a' + 10;
  return -1;
}

std::string form_decoded(std::string_view s) {
  std::string out;
  while (!s.empty()) {
    if (s.size() >= 3 && s[0] == '%' && hex(s[1]) >= 0 && hex(s[2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[1]) << 4 | hex(s[2])));
      s.remove_prefix(3);
      continue;
    }
    out.push_back(s[0] == '+' ? ' ' : s[0]);
    s.remove_prefix(1);
  }
  return out;
}

// find_token's documented lookup order, written out again.
std::optional<std::string> model_find_token(const switchboard::protocol::request_head& head,
                                            std::string_view cookie_name, bool allow_query) {
  for (const auto& f : head.headers()) {
    if (!ascii_iequals(f.name, "Authorization")) continue;
    const std::string_view v = f.value;
    if (v.size() < 7 || !ascii_iequals(v.substr(0, 6), "Bearer")) continue;
    if (v[6] != ' ' && v[6] != '\t') continue;
    const auto start = v.find_first_not_of(" \t", 6);
    if (start != std::string_view::npos) return std::string(v.substr(start));
  }
  if (!cookie_name.empty()) {
    const auto cookie = head.cookie(cookie_name);
    if (cookie && !cookie->empty()) return std::string(*cookie);
  }
  if (!allow_query) return std::nullopt;
  std::string_view q = head.query();
  for (std::size_t start = 0; start <= q.size();) {
    std::size_t amp = q.find('&', start);
    if (amp == std::string_view::npos) amp = q.size();
    const std::string_view pair = q.substr(start, amp - start);
    start = amp + 1;
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos || form_decoded(pair.substr(0, eq)) != "token") continue;
    std::string value = form_decoded(pair.substr(eq + 1));
    if (!value.empty()) return value;
  }
  return std::nullopt;
}

void find_in_head(std::uint8_t flags, std::string_view input) {
  constexpr std::string_view k_cookie_names[] = {"", "switchboard_token", "token", "a"};
  const bool allow_query = (flags & 1) != 0;
  const std::string_view cookie_name = k_cookie_names[(flags >> 1) & 3];
  switchboard::protocol::request_parser parser;
  std::unique_ptr<char[]> buffer;  // exactly the input's size: ASan sees over-reads
  const auto r = switchboard::fuzz::feed_in_chunks(parser, input, nullptr, 0, buffer, check);
  if (r.status != switchboard::protocol::parse_status::complete) return;
  const auto& head = parser.head();
  const auto token =
      switchboard::realtime::find_token(head, head.query(), cookie_name, allow_query);
  check(token == model_find_token(head, cookie_name, allow_query));
  if (!token) return;
  check(!token->empty() && token->size() <= r.consumed);
  verify_and_check(*token, k_head_now, head.path());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t mode = data[0] % 3;
  if (mode == 2) {
    find_in_head(data[1], {reinterpret_cast<const char*>(data + 2), size - 2});
    return 0;
  }
  if (size < 9) return 0;
  std::int64_t now = 0;
  std::memcpy(&now, data + 1, sizeof now);
  if (mode == 0) {
    const std::string_view token(reinterpret_cast<const char*>(data + 9), size - 9);
    verify_and_check(token, now, token.substr(0, 16));
    return 0;
  }
  if (size < 10) return 0;
  signed_claims(now, data[9], {reinterpret_cast<const char*>(data + 10), size - 10});
  return 0;
}
