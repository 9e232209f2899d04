// auth.hpp — private: HS256 JSON Web Tokens for `switchboard serve`:
// checking a token (RFC 7519, RFC 7515) and finding it in an upgrade request.
//
// A token is accepted only when all of these hold: it is three base64url parts
// (no padding, nothing else); its header names "alg": "HS256" (every other
// algorithm, "none" included, is refused before any key is used), has no
// "crit" extension and, if "typ" is a string, it is "JWT" in any case (libjwt
// insists); its HMAC-SHA256 signature over the first two parts matches the
// configured secret; its claims are a JSON object without repeated names;
// "sub" is a non-empty string; "exp" is a number later than now; "nbf", if
// present, is a number not later than now; "channels", if present, is an array
// of strings; "info", if present, is a JSON object.
//
// Clock leeway is 0 s: whoever mints tokens shares the server's (NTP) clock,
// and a leeway would only extend every token's life past the "exp" it states.
//
// Thread-safety: token_verifier is immutable after construction; verify() may be
// called from any number of threads at once. token_claims is a plain value.
// find_token is stateless.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <switchboard/protocol/http_head.hpp>
#include <vector>

namespace switchboard::realtime {

// What a valid token says about its holder.
struct token_claims {
  std::string user;                   // "sub", non-empty
  std::int64_t expires = 0;           // "exp", seconds since the Unix epoch
  bool has_channels = false;          // "channels" claim present
  std::vector<std::string> channels;  // names, or prefixes ending in '*'
  std::string info;                   // "info" claim as compact JSON object text, or empty

  // True if the token lets the holder use `channel`. Without a "channels" claim
  // every channel is granted. An entry equal to `channel` grants it; an entry
  // ending in '*' grants every channel that starts with what precedes the '*'
  // ("chat:*" grants "chat:lobby", "*" grants all). An empty array grants none.
  bool grants(std::string_view channel) const noexcept;
};

// The outcome of token_verifier::verify: claims on success, else a reason.
struct token_result {
  std::optional<token_claims> claims;  // set on success
  // Else a short reason, safe to show the client (it names no secret):
  //   "malformed token"        not three base64url parts of JSON objects, too long,
  //                            repeated header/claim names, a "crit" header, a
  //                            "typ" other than "JWT", or JSON that libjwt's
  //                            reader refuses (integers past int64)
  //   "algorithm not allowed"  the header's "alg" is anything but "HS256"
  //   "bad signature"          signature missing or wrong (or no secret configured)
  //   "token expired"          now >= exp
  //   "token not yet valid"    now < nbf
  //   "missing claim: sub"     "missing claim: exp"
  //   "bad claim: sub"         not a non-empty string
  //   "bad claim: exp"         "bad claim: nbf"   not a number
  //   "bad claim: channels"    not an array of strings
  //   "bad claim: info"        not a JSON object
  std::string error;
};

class token_verifier {
 public:
  // Longest token verify() reads; longer ones are "malformed token". Larger than
  // any sane token and far below the request-head limit, so a hostile peer
  // cannot make a check cost more than a few microseconds.
  static constexpr std::size_t max_token_size = 8192;

  // `secret` is the HS256 key as raw bytes (auth.jwt_secret). An empty secret
  // makes every token fail with "bad signature".
  explicit token_verifier(std::string secret);

  // Checks `token` (the compact serialization, "xxx.yyy.zzz") at time `now`,
  // seconds since the Unix epoch (the server passes the wall clock; tests pass
  // their own). Never throws except std::bad_alloc.
  token_result verify(std::string_view token, std::int64_t now) const;

 private:
  std::string secret_;
};

// The token carried by an upgrade request, looked for in this order:
//   1. the first "Authorization" field whose scheme is "Bearer" (scheme ASCII
//      case-insensitive, RFC 9110 §11.1; RFC 6750 §2.1); fields with another
//      scheme are ignored;
//   2. the cookie named `cookie_name` (RFC 6265 §5.4, see request_head::cookie);
//      skipped when `cookie_name` is empty;
//   3. when `allow_query` is true, the first query parameter named "token" in
//      `query` (the request-target after '?'), percent-decoded, '+' read as a
//      space as in application/x-www-form-urlencoded; an invalid %-escape is
//      kept as it is (the token then fails verification).
// An empty value in any place counts as absent (a logged-out browser keeps
// sending "switchboard_token="), and the search goes on. nullopt when no place
// holds a token. The result is not checked: pass it to token_verifier::verify.
std::optional<std::string> find_token(const protocol::request_head& head, std::string_view query,
                                      std::string_view cookie_name, bool allow_query);

}  // namespace switchboard::realtime
