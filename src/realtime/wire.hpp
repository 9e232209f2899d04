// wire.hpp — private: everything switchboard.v1 puts on the wire, in one
// place. The named error table (docs/protocol.md, "Errors", lists the same
// rows), the close codes the realtime layer sends, and the builders of every
// reply, push and HTTP error body. Nothing else in realtime/ writes a raw
// error code or an envelope.
//
// Thread-safety: pure functions over their arguments; the tables are
// constants.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "command.hpp"

namespace switchboard::realtime::detail {

// One row of the error table: the protocol code a client branches on and the
// message a person reads. Some rows take a detail appended to the message
// ("unknown namespace: " + name).
struct error_def {
  int code;
  std::string_view message;
};

// The error table. Each name says when it is sent; docs/protocol.md has the
// same rows in the same order.
namespace errors {
// 400: the command cannot be run as sent.
inline constexpr error_def not_an_object{400, "bad request: a command is one JSON object"};
inline constexpr error_def bad_id{400, "bad request: id must be a number or a string"};
inline constexpr error_def no_cmd{400, "bad request: no cmd"};
inline constexpr error_def duplicate_key{400, "bad request: duplicate key: "};  // + key
inline constexpr error_def unknown_command{400, "unknown command: "};  // + cmd
inline constexpr error_def no_channel{400, "bad request: no channel"};
inline constexpr error_def no_data{400, "bad request: no data"};
inline constexpr error_def bad_since{
    400, "since must be {\"epoch\": string, \"offset\": unsigned integer}"};
inline constexpr error_def bad_limit{400, "limit must be a positive integer"};
inline constexpr error_def bad_info{400, "info must be an object"};
inline constexpr error_def bad_cursor{
    400, "cursor must be the string a presence reply gave (at most 128 bytes)"};
inline constexpr error_def no_token{400, "bad request: no token"};
// A line of an HTTP session's POST batch over limits.max_message_size
// (where /ws would close 1009, the session gets this reply).
inline constexpr error_def command_too_large{400,
                                             "bad request: a command over limits.max_message_size"};
// 401: who is asking is not known.
inline constexpr error_def not_authenticated{401, "not authenticated: send connect first"};
inline constexpr error_def token_required{401, "token required"};
inline constexpr error_def bad_token{401, ""};  // + the verifier's reason
// `refresh` with a token the verifier refuses; the connection keeps its old one.
inline constexpr error_def bad_refresh_token{401, ""};  // + the verifier's reason
// 403: known, but not allowed.
inline constexpr error_def channel_not_granted{403, "channel not granted by the token: "};  // + name
inline constexpr error_def publish_not_allowed{403, "publishing is not allowed in this namespace"};
inline constexpr error_def subscribe_first{403, "subscribe before publishing"};
inline constexpr error_def refresh_other_user{403, "the new token is for another user"};
// 404: the thing named does not exist.
inline constexpr error_def unknown_namespace{404, "unknown namespace: "};  // + namespace
inline constexpr error_def not_subscribed{404, "not subscribed"};
// 405: the namespace has the feature off.
inline constexpr error_def presence_off{405, "presence is off in this namespace"};
inline constexpr error_def history_off{405, "history is off in this namespace"};
// 409: the command conflicts with the connection's state.
inline constexpr error_def already_connected{409, "already connected"};
inline constexpr error_def connect_after_subscribe{409, "connect must come before subscribe"};
inline constexpr error_def already_subscribed{409, "already subscribed"};
inline constexpr error_def refresh_without_token{
    409, "refresh needs a connection authenticated with a token"};
// 413: too large.
inline constexpr error_def publication_too_large{413,
                                                 "publication over limits.max_publication_size"};
inline constexpr error_def info_too_large{413, "info is over 1 KiB"};
// 422: a name that can never be valid.
inline constexpr error_def invalid_channel{422, "invalid channel name"};
// 429: a limit of this connection.
inline constexpr error_def rate_limited{429, "rate limit exceeded"};
inline constexpr error_def subscription_limit{
    429, "subscription limit reached (limits.max_subscriptions)"};
// 503: a limit or a failure of the whole server; the command may work later.
inline constexpr error_def channel_limit{
    503, "too many channels on the server (limits.max_channels); try again later"};
inline constexpr error_def history_not_saved{
    503, "the publication could not be written to the journal; nothing was published"};
// 503: the broker (Redis) cannot be reached; try again later.
inline constexpr error_def broker_unavailable{503, "broker unavailable: "};  // + why
// The server API (http_api_methods.cpp): a method's parameters are refused
// with 400 naming the field.
inline constexpr error_def bad_param{400, "bad request: "};  // + the field and what is wrong
inline constexpr error_def unknown_method{404, "unknown method: "};  // + method
inline constexpr error_def batch_too_large{413, "batch over 1000 commands"};
// history_remove with the journal: the compaction that makes it durable failed.
inline constexpr error_def removal_not_saved{
    503, "history removed, but the journal could not be rewritten: a restart may bring it back"};
// Proxy hooks (docs/hooks.md).
inline constexpr error_def no_method{400, "bad request: method must be a string of 1 to 256 bytes"};
inline constexpr error_def rpc_not_configured{
    501, "rpc is not configured on this server (hooks.rpc_url)"};
inline constexpr error_def hook_unavailable{503, "hook unavailable; try again later"};
}  // namespace errors

// The failure for `e`, its message followed by `detail`.
inline failure make_failure(const error_def& e, std::string_view detail = {}) {
  std::string message(e.message);
  message.append(detail);
  return failure{e.code, std::move(message)};
}

// Close codes the realtime layer sends (docs/protocol.md, "Close codes"); the
// RFC 6455 ones come from protocol::close_code.
inline constexpr std::uint16_t k_close_auth = 4001;  // authentication failed or timed out
inline constexpr std::uint16_t k_close_token_expired = 4002;  // token's exp passed, no refresh
inline constexpr std::uint16_t k_close_disconnected = 4003;  // the server API's disconnect

// The subprotocol of docs/protocol.md.
inline constexpr std::string_view k_subprotocol = "switchboard.v1";
// The same protocol with compact publication pushes (docs/protocol.md,
// "Compact pushes"): a client that offers it first gets them.
inline constexpr std::string_view k_subprotocol_compact = "switchboard.v1.compact";

// The envelope a /ws connection gets its publications in (its subprotocol);
// sse: a one-channel GET /sse stream on a server connection (sse_peer.hpp),
// whose publications are whole SSE events (the full push inside).
enum class push_form : std::uint8_t { full = 0, compact = 1, sse = 2 };

// --- replies ---------------------------------------------------------------

// out = {"id":ID,   (no id: just "{")
void reply_start(std::string& out, std::string_view id);
// out = {"id":ID,"result":RESULT}   (RESULT empty: {})
void reply_result(std::string& out, std::string_view id, std::string_view result);
// out = {"id":ID,"error":{"code":C,"message":"…"}}
void reply_error(std::string& out, std::string_view id, const failure& f);

// Appends "channel":"…","epoch":"…","offset":N — a channel's stream position.
void append_stream(std::string& out, std::string_view channel, std::string_view epoch,
                   std::uint64_t offset);

// Appends ,"recovered":true|false[,"reason":"…"] — whether a read from a
// stream position was exact, and if not why (subscribe and history).
void append_recovery(std::string& out, bool recovered, std::string_view reason);

// A result of publish: {"epoch":"…","offset":N}
void append_publish_result(std::string& out, std::string_view epoch, std::uint64_t offset);

// --- publications and pushes -------------------------------------------------

// The part of a kept publication after its offset:
//   "data":DATA[,"client":"…"[,"user":"…"]]
// `client` empty: published through the HTTP API.
std::string publication_tail(std::string_view data, std::string_view client, std::string_view user);

// A kept publication, as history and recovery list it:
//   {"offset":N,TAIL}
void append_publication(std::string& out, std::uint64_t offset, std::string_view tail);

// The push of a publication to subscribers:
//   {"push":"message","channel":"…","epoch":"…","offset":N,TAIL}
void publication_push(std::string& out, std::string_view channel, std::string_view epoch,
                      std::uint64_t offset, std::string_view tail);

// The presence push of one tick (docs/protocol.md, "Presence"): the
// channel's member count and, unless it reports counts only, the entries that
// joined and left since the last push, each a comma-separated list of
// presence_json() objects:
//   {"push":"presence","channel":"…","count":N,"joins":[…],"leaves":[…]}
//   {"push":"presence","channel":"…","count":N}          (counts only)
void presence_push(std::string& out, std::string_view channel, std::size_t count,
                   const std::string* joins, const std::string* leaves);

// The result of the presence command: {"channel":"…","count":N} and, when
// `entries` is set, ,"clients":[ENTRIES] and ,"cursor":"NEXT" if NEXT is not
// empty.
void append_presence_result(std::string& out, std::string_view channel, std::size_t count,
                            const std::string* entries, std::string_view next);

// The client id that a presence_json() object starts with; "" if it does not
// have that shape.
std::string_view presence_client(std::string_view presence_json);

// Sent auth.refresh_lead seconds before the connection's token expires:
//   {"push":"refresh","exp":EXP}   (EXP: the token's exp, Unix seconds)
void refresh_push(std::string& out, std::int64_t exp);

// A subscription the server ended (a refreshed token no longer grants it):
//   {"push":"unsubscribe","channel":"…","reason":"…"}
void unsubscribe_push(std::string& out, std::string_view channel, std::string_view reason);

// A subscription the server made for the client (the server API's
// subscribe, a connect hook's `channels`, docs/hooks.md): the client is
// subscribed from this position on, as if its own subscribe had answered:
//   {"push":"subscribe","channel":"…","epoch":"…","offset":N}
void subscribe_push(std::string& out, std::string_view channel, std::string_view epoch,
                    std::uint64_t offset);
// The last message of an HTTP session (docs/protocol.md, "HTTP sessions"),
// in place of a WebSocket close frame:
//   {"push":"close","code":N,"reason":"…"}
void close_push(std::string& out, std::uint16_t code, std::string_view reason);
// How presence shows a client: {"client":"…"[,"user":"…"][,"info":INFO]}
std::string presence_json(std::string_view client, std::string_view user, std::string_view info);

// --- compact publications (wire_compact.cpp) ----------------------------------
//
// The kept form of a publication (publication_tail(): what the broker, the
// journal and Redis hold) stays the full one; a compact connection's bytes
// are rewritten from it, once per publication (the push) or once per reply
// (history, recovery), never per subscriber.

// The compact push of a publication:
//   {"m":"…","o":N,CTAIL}   with CTAIL = "d":DATA[,"c":"…"][,"u":"…"]
// No epoch: it is the subscription's (subscribe reply or push), since a
// connection's topic names the epoch (hub.hpp). A tail of another shape is
// copied as it is (compact_tail()).
void compact_publication_push(std::string& out, std::string_view channel, std::uint64_t offset,
                              std::string_view tail);

// Appends `tail` ("data":D[,"client":"…"][,"user":"…"], as publication_tail()
// writes it) with the short keys, "d":D[,"c":"…"][,"u":"…"]. Returns false
// and appends nothing if `tail` has another shape.
bool append_compact_tail(std::string& out, std::string_view tail);

// Appends a comma-separated list of {"offset":N,TAIL} (append_publication())
// as {"o":N,CTAIL} entries. Returns false and appends nothing if an entry has
// another shape.
bool append_compact_publications(std::string& out, std::string_view list);

// Appends `list` in `form`: as it is (full), or compacted — falling back to
// the list as it is if it does not have the expected shape.
void append_publications(std::string& out, std::string_view list, push_form form);

// --- HTTP ------------------------------------------------------------------

// {"error":{"code":STATUS,"message":"…"}} — the body of every API error.
std::string http_error_body(int status, std::string_view message);

}  // namespace switchboard::realtime::detail
