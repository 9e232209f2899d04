// Tests for token_verifier and find_token. Tokens are built here, independently
// of the code under test: JSON text, a base64url encoder written below, and
// OpenSSL's HMAC for the signature.
#include "auth.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace {

using switchboard::realtime::find_token;
using switchboard::realtime::token_claims;
using switchboard::realtime::token_result;
using switchboard::realtime::token_verifier;

constexpr std::int64_t k_now = 1'700'000'000;
constexpr std::string_view k_secret = "correct horse battery staple";
constexpr std::string_view k_hs256 = R"({"alg":"HS256","typ":"JWT"})";

// RFC 4648 §5, without padding (RFC 7515 §2).
std::string base64url(std::string_view in) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(in[k]); };
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (in.size() - i == 1) {
    const std::uint32_t v = byte(i) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
  } else if (in.size() - i == 2) {
    const std::uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
  }
  return out;
}

std::string mac(const EVP_MD* md, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

// header.claims.signature, signed with HMAC(md, key).
std::string make_token(std::string_view claims, std::string_view header = k_hs256,
                       std::string_view key = k_secret, const EVP_MD* md = EVP_sha256()) {
  std::string input = base64url(header) + "." + base64url(claims);
  return input + "." + base64url(mac(md, key, input));
}

std::string claims_until(std::int64_t exp, std::string_view extra = "") {
  return R"({"sub":"alice","exp":)" + std::to_string(exp) + std::string(extra) + "}";
}

token_result verify(std::string_view token, std::int64_t now = k_now) {
  return token_verifier(std::string(k_secret)).verify(token, now);
}

std::string error_of(std::string_view token, std::int64_t now = k_now) {
  const token_result r = verify(token, now);
  EXPECT_FALSE(r.claims.has_value()) << "accepted: " << token;
  return r.error;
}

// --- valid tokens and time claims -------------------------------------------

TEST(TokenVerifier, AcceptsValidToken) {
  const token_result r = verify(make_token(claims_until(k_now + 60)));
  ASSERT_TRUE(r.claims.has_value()) << r.error;
  EXPECT_TRUE(r.error.empty());
  EXPECT_EQ(r.claims->user, "alice");
  EXPECT_EQ(r.claims->expires, k_now + 60);
  EXPECT_FALSE(r.claims->has_channels);
  EXPECT_TRUE(r.claims->channels.empty());
  EXPECT_TRUE(r.claims->info.empty());
  EXPECT_TRUE(r.claims->grants("anything:at-all"));
}

TEST(TokenVerifier, AcceptsTokenWithoutTyp) {
  EXPECT_TRUE(verify(make_token(claims_until(k_now + 60), R"({"alg":"HS256"})")).claims);
}

TEST(TokenVerifier, TypMustBeJwt) {
  const std::string claims = claims_until(k_now + 60);
  EXPECT_TRUE(verify(make_token(claims, R"({"alg":"HS256","typ":"jwt"})")).claims);
  EXPECT_EQ(error_of(make_token(claims, R"({"alg":"HS256","typ":"at+jwt"})")), "malformed token");
}

TEST(TokenVerifier, ExpiredAtExactlyExp) {
  EXPECT_TRUE(verify(make_token(claims_until(k_now + 1))).claims);
  EXPECT_EQ(error_of(make_token(claims_until(k_now))), "token expired");
  EXPECT_EQ(error_of(make_token(claims_until(k_now - 3600))), "token expired");
}

TEST(TokenVerifier, NotBefore) {
  const std::string early =
      make_token(claims_until(k_now + 60, R"(,"nbf":)" + std::to_string(k_now + 1)));
  EXPECT_EQ(error_of(early), "token not yet valid");
  EXPECT_TRUE(verify(early, k_now + 1).claims);
  EXPECT_TRUE(
      verify(make_token(claims_until(k_now + 60, R"(,"nbf":)" + std::to_string(k_now)))).claims);
}

TEST(TokenVerifier, FractionalDatesRoundTowardRefusal) {
  // exp 100.5 is floored to 100, nbf 99.5 ceiled to 100.
  const std::string t = make_token(R"({"sub":"a","exp":100.5,"nbf":99.5})");
  EXPECT_EQ(error_of(t, 99), "token not yet valid");
  EXPECT_EQ(error_of(t, 100), "token expired");
}

TEST(TokenVerifier, HugeExpSaturates) {
  const token_result r = verify(make_token(R"({"sub":"a","exp":1e300})"));
  ASSERT_TRUE(r.claims) << r.error;
  EXPECT_EQ(r.claims->expires, INT64_MAX);
  const token_result m = verify(make_token(R"({"sub":"a","exp":9223372036854775807})"));
  ASSERT_TRUE(m.claims) << m.error;
  EXPECT_EQ(m.claims->expires, INT64_MAX);
  // libjwt's JSON reader (jansson) refuses integers past int64.
  EXPECT_EQ(error_of(make_token(R"({"sub":"a","exp":18446744073709551615})")), "malformed token");
}

// --- signatures and algorithms ----------------------------------------------

TEST(TokenVerifier, RefusesWrongSecret) {
  EXPECT_EQ(error_of(make_token(claims_until(k_now + 60), k_hs256, "another secret")),
            "bad signature");
}

TEST(TokenVerifier, RefusesTamperedClaims) {
  const std::string good = make_token(claims_until(k_now + 60));
  const std::string other =
      make_token(R"({"sub":"mallory","exp":)" + std::to_string(k_now + 60) + "}");
  // mallory's header and claims with alice's signature.
  const std::string forged = other.substr(0, other.rfind('.')) + good.substr(good.rfind('.'));
  EXPECT_EQ(error_of(forged), "bad signature");
}

TEST(TokenVerifier, RefusesAlteredSignature) {
  std::string t = make_token(claims_until(k_now + 60));
  const std::size_t first_sig_char = t.rfind('.') + 1;
  t[first_sig_char] = t[first_sig_char] == 'A' ? 'B' : 'A';
  EXPECT_EQ(error_of(t), "bad signature");
}

TEST(TokenVerifier, RefusesMissingOrShortSignature) {
  const std::string t = make_token(claims_until(k_now + 60));
  const std::string unsigned_token = t.substr(0, t.rfind('.') + 1);
  EXPECT_EQ(error_of(unsigned_token), "bad signature");
  EXPECT_EQ(error_of(unsigned_token + "AAAA"), "bad signature");
  // The HS512 MAC (64 bytes) under an HS256 header.
  EXPECT_EQ(error_of(make_token(claims_until(k_now + 60), k_hs256, k_secret, EVP_sha512())),
            "bad signature");
}

TEST(TokenVerifier, EmptySecretRefusesEverything) {
  const token_verifier v{std::string{}};
  // Even a token whose MAC was made with the empty key.
  const std::string t = make_token(claims_until(k_now + 60), k_hs256, "");
  const token_result r = v.verify(t, k_now);
  EXPECT_FALSE(r.claims);
  EXPECT_EQ(r.error, "bad signature");
}

TEST(TokenVerifier, RefusesAlgNone) {
  const std::string claims = claims_until(k_now + 60);
  for (const std::string_view header :
       {R"({"alg":"none"})", R"({"alg":"none","typ":"JWT"})", R"({"alg":"None"})",
        R"({"alg":"NONE"})", R"({"alg":""})", R"({"typ":"JWT"})", R"({"alg":null})",
        R"({"alg":["HS256"]})"}) {
    const std::string input = base64url(header) + "." + base64url(claims);
    // Without a signature, as "none" tokens come...
    EXPECT_EQ(error_of(input + "."), "algorithm not allowed") << header;
    // ...and with one that would be right for HS256.
    EXPECT_EQ(error_of(input + "." + base64url(mac(EVP_sha256(), k_secret, input))),
              "algorithm not allowed")
        << header;
  }
}

TEST(TokenVerifier, RefusesOtherAlgorithms) {
  const std::string claims = claims_until(k_now + 60);
  // Correctly signed with HMAC-SHA512 and our secret: still refused.
  EXPECT_EQ(error_of(make_token(claims, R"({"alg":"HS512","typ":"JWT"})", k_secret, EVP_sha512())),
            "algorithm not allowed");
  EXPECT_EQ(error_of(make_token(claims, R"({"alg":"HS384"})", k_secret, EVP_sha384())),
            "algorithm not allowed");
  // RS256 (the confusion attack signs with HMAC keyed by a public key).
  EXPECT_EQ(error_of(make_token(claims, R"({"alg":"RS256","typ":"JWT"})")),
            "algorithm not allowed");
  EXPECT_EQ(error_of(make_token(claims, R"({"alg":"ES256"})")), "algorithm not allowed");
  EXPECT_EQ(error_of(make_token(claims, R"({"alg":"hs256"})")), "algorithm not allowed");
}

TEST(TokenVerifier, RefusesRepeatedAlg) {
  // simdjson would read the first "alg", jansson (libjwt) the last.
  const std::string claims = claims_until(k_now + 60);
  EXPECT_EQ(error_of(make_token(claims, R"({"alg":"HS256","alg":"none"})")), "malformed token");
  EXPECT_EQ(error_of(make_token(claims, R"({"alg":"none","alg":"HS256"})")), "malformed token");
  EXPECT_EQ(error_of(make_token(claims, R"({"alg":"none","\u0061lg":"HS256"})")),
            "malformed token");
}

TEST(TokenVerifier, RefusesCriticalExtensions) {
  EXPECT_EQ(error_of(make_token(claims_until(k_now + 60), R"({"alg":"HS256","crit":["exp"]})")),
            "malformed token");
}

// --- required claims ---------------------------------------------------------

TEST(TokenVerifier, MissingClaims) {
  EXPECT_EQ(error_of(make_token(R"({"exp":)" + std::to_string(k_now + 60) + "}")),
            "missing claim: sub");
  EXPECT_EQ(error_of(make_token(R"({"sub":"alice"})")), "missing claim: exp");
  EXPECT_EQ(error_of(make_token("{}")), "missing claim: sub");
}

TEST(TokenVerifier, MistypedClaims) {
  const std::string exp = std::to_string(k_now + 60);
  EXPECT_EQ(error_of(make_token(R"({"sub":"","exp":)" + exp + "}")), "bad claim: sub");
  EXPECT_EQ(error_of(make_token(R"({"sub":42,"exp":)" + exp + "}")), "bad claim: sub");
  EXPECT_EQ(error_of(make_token(R"({"sub":null,"exp":)" + exp + "}")), "bad claim: sub");
  EXPECT_EQ(error_of(make_token(R"({"sub":"a","exp":")" + exp + R"("})")), "bad claim: exp");
  EXPECT_EQ(error_of(make_token(R"({"sub":"a","exp":null})")), "bad claim: exp");
  EXPECT_EQ(error_of(make_token(claims_until(k_now + 60, R"(,"nbf":"soon")"))), "bad claim: nbf");
}

TEST(TokenVerifier, RefusesRepeatedClaims) {
  const std::string exp = std::to_string(k_now + 60);
  EXPECT_EQ(error_of(make_token(R"({"sub":"alice","sub":"root","exp":)" + exp + "}")),
            "malformed token");
}

// --- channels ----------------------------------------------------------------

token_claims claims_with(std::string_view extra) {
  const token_result r = verify(make_token(claims_until(k_now + 60, extra)));
  EXPECT_TRUE(r.claims) << r.error;
  return r.claims.value_or(token_claims{});
}

TEST(TokenClaims, ExactChannels) {
  const token_claims c = claims_with(R"(,"channels":["chat:lobby","news"])");
  EXPECT_TRUE(c.has_channels);
  EXPECT_EQ(c.channels, (std::vector<std::string>{"chat:lobby", "news"}));
  EXPECT_TRUE(c.grants("chat:lobby"));
  EXPECT_TRUE(c.grants("news"));
  EXPECT_FALSE(c.grants("chat:lobby2"));
  EXPECT_FALSE(c.grants("chat:lobb"));
  EXPECT_FALSE(c.grants("chat:secret"));
  EXPECT_FALSE(c.grants(""));
}

TEST(TokenClaims, PrefixChannels) {
  const token_claims c = claims_with(R"(,"channels":["chat:*","dm:alice"])");
  EXPECT_TRUE(c.grants("chat:lobby"));
  EXPECT_TRUE(c.grants("chat:"));
  EXPECT_TRUE(c.grants("dm:alice"));
  EXPECT_FALSE(c.grants("chat"));
  EXPECT_FALSE(c.grants("dm:bob"));
  EXPECT_FALSE(c.grants("news:chat:x"));
}

TEST(TokenClaims, StarGrantsAll) {
  const token_claims c = claims_with(R"(,"channels":["*"])");
  EXPECT_TRUE(c.grants("chat:lobby"));
  EXPECT_TRUE(c.grants("x"));
}

TEST(TokenClaims, EmptyListGrantsNothing) {
  const token_claims c = claims_with(R"(,"channels":[])");
  EXPECT_TRUE(c.has_channels);
  EXPECT_FALSE(c.grants("chat:lobby"));
}

TEST(TokenClaims, AbsentGrantsAll) {
  const token_claims c = claims_with("");
  EXPECT_FALSE(c.has_channels);
  EXPECT_TRUE(c.grants("chat:secret"));
}

TEST(TokenClaims, DefaultConstructedGrantsAll) {
  EXPECT_TRUE(token_claims{}.grants("x"));
}

TEST(TokenVerifier, BadChannelsClaim) {
  for (const std::string_view extra :
       {R"(,"channels":"chat:*")", R"(,"channels":["a",1])", R"(,"channels":null)",
        R"(,"channels":{"a":1})", R"(,"channels":[["a"]])"}) {
    EXPECT_EQ(error_of(make_token(claims_until(k_now + 60, extra))), "bad claim: channels")
        << extra;
  }
}

// --- info --------------------------------------------------------------------

TEST(TokenClaims, InfoIsCompactObject) {
  const token_claims c =
      claims_with(R"(, "info" : { "name" : "Alice \"A\"",  "tags" : [ 1, 2 ], "x": {} })");
  EXPECT_EQ(c.info, R"({"name":"Alice \"A\"","tags":[1,2],"x":{}})");
  EXPECT_EQ(claims_with(R"(,"info":{})").info, "{}");
  EXPECT_EQ(claims_with(R"(,"info":{"n":"Zoë"})").info, R"({"n":"Zoë"})");
}

TEST(TokenVerifier, BadInfoClaim) {
  for (const std::string_view extra :
       {R"(,"info":"Alice")", R"(,"info":[1])", R"(,"info":null)", R"(,"info":3)"}) {
    EXPECT_EQ(error_of(make_token(claims_until(k_now + 60, extra))), "bad claim: info") << extra;
  }
}

// --- malformed input ---------------------------------------------------------

TEST(TokenVerifier, RefusesGarbage) {
  const std::string good = make_token(claims_until(k_now + 60));
  const std::string h = base64url(k_hs256);
  const std::string c = base64url(claims_until(k_now + 60));
  for (const std::string& t : {
           std::string(""),
           std::string("."),
           std::string(".."),
           std::string("..."),
           std::string("garbage"),
           h,                       // one part
           h + "." + c,             // two parts
           good + ".AAAA",          // four parts
           "." + c + ".AAAA",       // empty header
           h + "..AAAA",            // empty claims
           h + "." + c + "=.AAAA",  // padding
           h + "=." + c + ".AAAA",  // padding
           h + ".e30!.AAAA",        // not base64url
           h + ".e3+0.AAAA",        // standard, not url, alphabet
           h + ".e 30.AAAA",        // whitespace
           h + ".A.AAAA",           // 4n+1 characters
           h + ".e31.AAAA",         // trailing bits set ("{}" is e30)
           base64url("not json") + "." + c + ".AAAA",
           h + "." + base64url("not json") + ".AAAA",
           h + "." + base64url("[1,2]") + ".AAAA",
           h + "." + base64url("\"sub\"") + ".AAAA",
           base64url("[\"alg\",\"HS256\"]") + "." + c + ".AAAA",
           " " + good,
           good + " ",
           good + "\n",
           std::string(good).insert(5, 1, '\0'),
       }) {
    EXPECT_EQ(error_of(t), "malformed token") << t;
  }
}

TEST(TokenVerifier, RefusesBadJsonEvenWhenSigned) {
  EXPECT_EQ(error_of(make_token("{\"sub\":\"a\",")), "malformed token");
  EXPECT_EQ(error_of(make_token("{\"sub\":\"a\xff\",\"exp\":1e10}")), "malformed token");
  EXPECT_EQ(error_of(make_token(claims_until(k_now + 60), "{\"alg\":\"HS256\"")),
            "malformed token");
}

TEST(TokenVerifier, RefusesOverlongToken) {
  std::string pad(token_verifier::max_token_size, 'x');
  const std::string t = make_token(claims_until(k_now + 60, R"(,"pad":")" + pad + "\""));
  EXPECT_GT(t.size(), token_verifier::max_token_size);
  EXPECT_EQ(error_of(t), "malformed token");
}

TEST(TokenVerifier, IsReusable) {
  // One verifier, many tokens: no state carries over between calls.
  const token_verifier v{std::string(k_secret)};
  EXPECT_FALSE(v.verify("garbage", k_now).claims);
  EXPECT_TRUE(v.verify(make_token(claims_until(k_now + 60)), k_now).claims);
  EXPECT_EQ(v.verify(make_token(claims_until(k_now)), k_now).error, "token expired");
  EXPECT_TRUE(v.verify(make_token(claims_until(k_now + 60)), k_now).claims);
}

// --- find_token --------------------------------------------------------------

// Parses a request head made of `target` and `fields` ("Name: value\r\n" each).
class request {
 public:
  request(std::string target, std::string fields)
      : text_("GET " + std::move(target) + " HTTP/1.1\r\nHost: example.com\r\n" +
              std::move(fields) + "\r\n") {
    const auto r = parser_.parse(text_);
    EXPECT_EQ(r.status, switchboard::protocol::parse_status::complete);
  }

  std::optional<std::string> token(bool allow_query = true,
                                   std::string_view cookie = "switchboard_token") const {
    return find_token(parser_.head(), parser_.head().query(), cookie, allow_query);
  }

 private:
  std::string text_;
  switchboard::protocol::request_parser parser_;
};

TEST(FindToken, Bearer) {
  EXPECT_EQ(request("/ws", "Authorization: Bearer abc.def.ghi\r\n").token(), "abc.def.ghi");
  EXPECT_EQ(request("/ws", "authorization: bearer abc\r\n").token(), "abc");
  EXPECT_EQ(request("/ws", "AUTHORIZATION: BEARER    abc  \r\n").token(), "abc");
}

TEST(FindToken, OtherSchemesIgnored) {
  EXPECT_EQ(request("/ws", "Authorization: Basic YTpi\r\n").token(), std::nullopt);
  EXPECT_EQ(request("/ws", "Authorization: Bearerabc\r\n").token(), std::nullopt);
  EXPECT_EQ(request("/ws", "Authorization: Bearer\r\n").token(), std::nullopt);
  EXPECT_EQ(request("/ws", "Authorization: Basic YTpi\r\nAuthorization: Bearer t\r\n").token(),
            "t");
  EXPECT_EQ(request("/ws", "Authorization: Basic YTpi\r\nCookie: switchboard_token=c\r\n").token(),
            "c");
}

TEST(FindToken, Cookie) {
  EXPECT_EQ(request("/ws", "Cookie: switchboard_token=abc\r\n").token(), "abc");
  EXPECT_EQ(request("/ws", "Cookie: a=b; switchboard_token=abc; c=d\r\n").token(), "abc");
  EXPECT_EQ(request("/ws", "Cookie: a=b\r\nCookie: switchboard_token=\"abc\"\r\n").token(), "abc");
  EXPECT_EQ(request("/ws", "Cookie: sid=abc\r\n").token(true, "sid"), "abc");
  EXPECT_EQ(request("/ws", "Cookie: xswitchboard_token=abc\r\n").token(), std::nullopt);
  EXPECT_EQ(request("/ws", "Cookie: switchboard_token=abc\r\n").token(true, ""), std::nullopt);
}

TEST(FindToken, Query) {
  EXPECT_EQ(request("/ws?token=abc", "").token(), "abc");
  EXPECT_EQ(request("/ws?a=1&token=abc&b=2", "").token(), "abc");
  EXPECT_EQ(request("/ws?xtoken=a&token=b", "").token(), "b");
  EXPECT_EQ(request("/ws?token=a&token=b", "").token(), "a");
  EXPECT_EQ(request("/ws?t%6Fken=c", "").token(), "c");
  EXPECT_EQ(request("/ws?token", "").token(), std::nullopt);
  EXPECT_EQ(request("/ws?tokens=abc", "").token(), std::nullopt);
}

TEST(FindToken, QueryOnlyWhenAllowed) {
  EXPECT_EQ(request("/ws?token=abc", "").token(false), std::nullopt);
}

TEST(FindToken, QueryPercentDecoding) {
  EXPECT_EQ(request("/ws?token=a%2Eb%2ec", "").token(), "a.b.c");
  EXPECT_EQ(request("/ws?token=a%2Bb%3D", "").token(), "a+b=");
  EXPECT_EQ(request("/ws?token=a+b", "").token(), "a b");
  EXPECT_EQ(request("/ws?token=a%zzb%4", "").token(), "a%zzb%4");
  EXPECT_EQ(request("/ws?token=%", "").token(), "%");
  EXPECT_EQ(request("/ws?token=%00x", "").token(), std::string("\0x", 2));
}

TEST(FindToken, None) {
  EXPECT_EQ(request("/ws", "").token(), std::nullopt);
  EXPECT_EQ(request("/ws?other=1", "Cookie: a=b\r\n").token(), std::nullopt);
}

TEST(FindToken, EmptyValuesCountAsAbsent) {
  EXPECT_EQ(request("/ws?token=", "Cookie: switchboard_token=\r\n").token(), std::nullopt);
  EXPECT_EQ(request("/ws?token=q", "Cookie: switchboard_token=\r\n").token(), "q");
  EXPECT_EQ(request("/ws?token=&token=q", "").token(), "q");
  EXPECT_EQ(request("/ws?token=q", "Authorization: Bearer   \r\n").token(), "q");
}

TEST(FindToken, Precedence) {
  const std::string all = "Cookie: switchboard_token=cookie\r\nAuthorization: Bearer header\r\n";
  EXPECT_EQ(request("/ws?token=query", all).token(), "header");
  EXPECT_EQ(request("/ws?token=query", "Cookie: switchboard_token=cookie\r\n").token(), "cookie");
  EXPECT_EQ(request("/ws?token=query", "Cookie: other=1\r\n").token(), "query");
}

TEST(FindToken, FoundTokenVerifies) {
  const std::string t = make_token(claims_until(k_now + 60));
  const auto found = request("/ws", "Authorization: Bearer " + t + "\r\n").token();
  ASSERT_TRUE(found);
  EXPECT_TRUE(verify(*found).claims);
}

}  // namespace
