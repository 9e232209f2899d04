// http.cpp — serializing plain HTTP responses (one per connection).
#include <switchboard/server/http.hpp>

#include <switchboard/protocol/handshake.hpp>

namespace switchboard::server {

bool http_response::add_header(std::string_view name, std::string_view value) {
  // Header injection: a name must be a token, a value free of CR, LF and controls.
  if (!protocol::is_token(name) || !protocol::is_field_value(value)) return false;
  // The server owns framing: Content-Length and Connection are written by serialize().
  if (protocol::ascii_iequals(name, "Content-Length") || protocol::ascii_iequals(name, "Connection")) {
    return false;
  }
  if (protocol::ascii_iequals(name, "Content-Type")) {
    content_type_ = value;
    return true;
  }
  headers_.append(name).append(": ").append(value).append("\r\n");
  return true;
}

void http_response::serialize(std::string& out, bool include_body) const {
  const int status = status_ >= 100 && status_ <= 599 ? status_ : 500;
  out.append("HTTP/1.1 ").append(std::to_string(status)).append(" ");
  out.append(protocol::reason_phrase(status)).append("\r\n");
  if (!content_type_.empty() && protocol::is_field_value(content_type_)) {
    out.append("Content-Type: ").append(content_type_).append("\r\n");
  }
  out.append("Content-Length: ").append(std::to_string(body_.size())).append("\r\n");
  out.append("Connection: close\r\n");
  out.append(headers_).append("\r\n");
  if (include_body) out.append(body_);
}

}  // namespace switchboard::server
