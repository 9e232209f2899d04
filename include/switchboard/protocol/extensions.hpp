// switchboard/protocol/extensions.hpp — the Sec-WebSocket-Extensions header.
//
// Grammar (RFC 6455 §9.1, with HTTP's implied OWS around every separator):
//   extension-list  = 1#extension
//   extension       = token *( ";" extension-param )
//   extension-param = token [ "=" ( token / quoted-string ) ]
// A quoted value must still be a token once unquoted and unescaped. Both the
// client's offers and the server's answer use it; RFC 7692 (permessage-deflate)
// defines parameters on top of it. Empty list elements ("a, , b") are skipped
// (RFC 9110 §5.6.1), but a field must hold at least one extension.
//
// parse_extensions() builds a vector and may allocate; it runs only when the
// header is present. check_extensions() and check_extension_names() only
// validate, without allocating, for the handshake validators.
//
// Thread-safety: stateless; safe from any thread.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <switchboard/protocol/error.hpp>
#include <switchboard/protocol/export.hpp>
#include <switchboard/protocol/http_head.hpp>
#include <vector>

namespace switchboard::protocol {

// The header field holding extension offers and answers (RFC 6455 §11.3.2).
inline constexpr std::string_view k_extensions_field = "Sec-WebSocket-Extensions";

struct extension_param {
  std::string_view name;   // points into the parsed field value
  std::string value = {};  // unquoted and unescaped; empty when !has_value
  bool has_value = false;
};

struct extension {
  std::string_view name;  // points into the parsed field value
  std::vector<extension_param> params = {};
};

// Parses one Sec-WebSocket-Extensions field value and appends its extensions
// to `out` in order (call once per field, or use the overload below). Names
// are views into `field_value`, which must outlive `out`'s use.
// Errors: bad_extension_header on any syntax error (RFC 6455 §9.1); `out` is
// then left as it was. May throw std::bad_alloc.
SWITCHBOARD_PROTOCOL_EXPORT error parse_extensions(std::string_view field_value,
                                                   std::vector<extension>& out);

// Parses every Sec-WebSocket-Extensions field of a request or response head,
// in wire order, into `out` (appending). Errors as above.
SWITCHBOARD_PROTOCOL_EXPORT error parse_extensions(const header_fields& head,
                                                   std::vector<extension>& out);

// Syntax check of one field value, without allocating.
// Returns error::none or bad_extension_header.
SWITCHBOARD_PROTOCOL_EXPORT error check_extensions(std::string_view field_value) noexcept;

// Syntax check plus: every extension name appears in `allowed` (compared
// case-sensitively). Returns error::none, bad_extension_header, or
// response_unexpected_extension (a name not in `allowed`). Does not allocate.
SWITCHBOARD_PROTOCOL_EXPORT error check_extension_names(
    std::string_view field_value, std::span<const std::string_view> allowed) noexcept;

}  // namespace switchboard::protocol
