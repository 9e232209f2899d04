// The protocol layer's error tables: one row per error, saying which rule it
// enforces and what answers it on the wire. Keeping all three columns in one
// table makes a missing mapping a compile-visible gap instead of a default.
#include <switchboard/protocol/error.hpp>

#include <array>
#include <string>

namespace switchboard::protocol {
namespace {

struct row {
  error e;
  std::string_view text;
  int http_status;  // before the upgrade
  close_code close; // after the upgrade
};

using cc = close_code;

constexpr row k_rows[] = {
    {error::none, "no error", 200, cc::normal},

    {error::head_too_large, "request head exceeds the size limit", 431, cc::protocol_error},
    {error::too_many_headers, "too many header fields", 431, cc::protocol_error},
    {error::header_line_too_long, "header line exceeds the length limit", 431, cc::protocol_error},
    {error::request_line_too_long, "request line exceeds the length limit", 414, cc::protocol_error},
    {error::bad_request_line, "malformed request line (RFC 9112 3)", 400, cc::protocol_error},
    {error::bad_status_line, "malformed status line (RFC 9112 4)", 400, cc::protocol_error},
    {error::bad_http_version, "malformed HTTP version (RFC 9112 2.3)", 400, cc::protocol_error},
    {error::bad_header_name, "header name is not a token (RFC 9110 5.1)", 400, cc::protocol_error},
    {error::missing_header_colon, "header line has no colon (RFC 9112 5)", 400, cc::protocol_error},
    {error::bad_header_value, "control character in a header value (RFC 9110 5.5)", 400, cc::protocol_error},
    {error::obs_fold, "obsolete line folding is not accepted (RFC 9112 5.2)", 400, cc::protocol_error},
    {error::bare_lf, "line ends in LF without CR (RFC 9112 2.2)", 400, cc::protocol_error},
    {error::whitespace_before_colon, "whitespace between header name and colon (RFC 9112 5.1)", 400, cc::protocol_error},

    {error::method_not_get, "the opening handshake must be a GET (RFC 6455 4.2.1)", 405, cc::protocol_error},
    {error::http_version_too_old, "the opening handshake needs HTTP/1.1 or later (RFC 6455 4.2.1)", 505, cc::protocol_error},
    {error::missing_host, "missing Host header (RFC 6455 4.2.1)", 400, cc::protocol_error},
    {error::duplicate_host, "more than one Host header (RFC 9112 3.2)", 400, cc::protocol_error},
    {error::missing_upgrade, "Upgrade header does not contain websocket (RFC 6455 4.2.1)", 426, cc::protocol_error},
    {error::missing_connection_upgrade, "Connection header does not contain upgrade (RFC 6455 4.2.1)", 400, cc::protocol_error},
    {error::missing_version, "missing Sec-WebSocket-Version (RFC 6455 4.2.1)", 426, cc::protocol_error},
    {error::unsupported_version, "Sec-WebSocket-Version must be 13 (RFC 6455 4.4)", 426, cc::protocol_error},
    {error::missing_key, "missing Sec-WebSocket-Key (RFC 6455 4.2.1)", 400, cc::protocol_error},
    {error::duplicate_key, "more than one Sec-WebSocket-Key (RFC 6455 11.3.1)", 400, cc::protocol_error},
    {error::bad_key, "Sec-WebSocket-Key must base64-decode to 16 bytes (RFC 6455 4.2.1)", 400, cc::protocol_error},
    {error::bad_extension_header, "malformed Sec-WebSocket-Extensions (RFC 6455 9.1)", 400, cc::protocol_error},
    {error::bad_protocol_header, "malformed Sec-WebSocket-Protocol (RFC 6455 11.3.4)", 400, cc::protocol_error},

    {error::response_not_101, "server did not answer 101 Switching Protocols (RFC 6455 4.1)", 502, cc::protocol_error},
    {error::response_missing_upgrade, "response lacks Upgrade: websocket (RFC 6455 4.1)", 502, cc::protocol_error},
    {error::response_missing_connection, "response lacks Connection: upgrade (RFC 6455 4.1)", 502, cc::protocol_error},
    {error::response_missing_accept, "response lacks Sec-WebSocket-Accept (RFC 6455 4.1)", 502, cc::protocol_error},
    {error::response_bad_accept, "Sec-WebSocket-Accept does not match the key (RFC 6455 4.1)", 502, cc::protocol_error},
    {error::response_unexpected_protocol, "server chose a subprotocol the client did not offer (RFC 6455 4.1)", 502, cc::protocol_error},
    {error::response_unexpected_extension, "server chose an extension the client did not offer (RFC 6455 4.1)", 502, cc::protocol_error},
    {error::response_deflate_bad_param, "server's permessage-deflate answer has an unknown, repeated, unoffered or out-of-range parameter (RFC 7692 7.1)", 502, cc::protocol_error},
    {error::response_deflate_missing_param, "server's permessage-deflate answer omits server_no_context_takeover or server_max_window_bits that the offer asked for (RFC 7692 7.1.1.1, 7.1.2.1)", 502, cc::protocol_error},
    {error::response_deflate_repeated, "server answered with permessage-deflate more than once (RFC 7692 5)", 502, cc::protocol_error},
    {error::response_deflate_window_8, "server limits the client to an 8-bit deflate window, which zlib cannot produce (RFC 7692 7.1.2.2)", 502, cc::protocol_error},

    {error::reserved_opcode, "reserved opcode (RFC 6455 5.2)", 400, cc::protocol_error},
    {error::reserved_bits, "RSV bit set without a negotiated extension (RFC 6455 5.2)", 400, cc::protocol_error},
    {error::control_frame_too_large, "control frame payload exceeds 125 bytes (RFC 6455 5.5)", 400, cc::protocol_error},
    {error::fragmented_control_frame, "control frame is fragmented (RFC 6455 5.5)", 400, cc::protocol_error},
    {error::length_msb_set, "64-bit payload length has its top bit set (RFC 6455 5.2)", 400, cc::protocol_error},
    {error::non_minimal_length, "payload length not minimally encoded (RFC 6455 5.2)", 400, cc::protocol_error},
    {error::unmasked_frame, "client frame is not masked (RFC 6455 5.1)", 400, cc::protocol_error},
    {error::masked_frame, "server frame is masked (RFC 6455 5.1)", 400, cc::protocol_error},

    {error::unexpected_continuation, "continuation frame with no message open (RFC 6455 5.4)", 400, cc::protocol_error},
    {error::expected_continuation, "new data frame inside a fragmented message (RFC 6455 5.4)", 400, cc::protocol_error},
    {error::message_too_big, "message exceeds the size limit", 400, cc::message_too_big},
    {error::invalid_utf8, "text message is not valid UTF-8 (RFC 6455 8.1)", 400, cc::invalid_payload},
    {error::close_payload_one_byte, "close payload of one byte (RFC 6455 5.5.1)", 400, cc::protocol_error},
    {error::bad_close_code, "close code not allowed on the wire (RFC 6455 7.4)", 400, cc::protocol_error},
    {error::close_reason_invalid_utf8, "close reason is not valid UTF-8 (RFC 6455 5.5.1)", 400, cc::invalid_payload},
    {error::data_after_close, "frame received after the close frame (RFC 6455 5.5.1)", 400, cc::protocol_error},

    {error::rsv1_on_continuation, "RSV1 set on a continuation frame (RFC 7692 6)", 400, cc::protocol_error},
    {error::rsv1_on_control, "RSV1 set on a control frame (RFC 7692 6)", 400, cc::protocol_error},
    {error::inflate_failed, "compressed payload does not inflate (RFC 7692 6.2)", 400, cc::invalid_payload},
    {error::deflate_failed, "could not compress a message (out of memory)", 500, cc::internal_error},
};

constexpr std::size_t k_count = static_cast<std::size_t>(error::deflate_failed) + 1;
static_assert(std::size(k_rows) == k_count, "every error needs exactly one row");

constexpr bool rows_in_order() {
  for (std::size_t i = 0; i < std::size(k_rows); ++i)
    if (static_cast<std::size_t>(k_rows[i].e) != i) return false;
  return true;
}
static_assert(rows_in_order(), "rows must be in enum order");

const row& row_of(error e) noexcept {
  auto i = static_cast<std::size_t>(e);
  return i < k_count ? k_rows[i] : k_rows[0];
}

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "switchboard.protocol"; }
  std::string message(int ev) const override {
    return std::string(describe(static_cast<error>(ev)));
  }
};

}  // namespace

std::string_view describe(error e) noexcept { return row_of(e).text; }
close_code close_code_for(error e) noexcept { return row_of(e).close; }
int http_status_for(error e) noexcept { return row_of(e).http_status; }

bool is_handshake_error(error e) noexcept {
  return e != error::none && e <= error::response_deflate_window_8;
}

const std::error_category& protocol_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace switchboard::protocol
