// http.cpp — serializing plain HTTP responses and the heads of streamed ones.
#include <switchboard/server/http.hpp>

#include <switchboard/protocol/handshake.hpp>

namespace switchboard::server {

bool http_response::add_header(std::string_view name, std::string_view value) {
  // Header injection: a name must be a token, a value free of CR, LF and controls.
  if (!protocol::is_token(name) || !protocol::is_field_value(value)) return false;
  // The server owns framing and keep-alive: Content-Length, Transfer-Encoding
  // and Connection are written by serialize().
  if (protocol::ascii_iequals(name, "Content-Length") ||
      protocol::ascii_iequals(name, "Transfer-Encoding") ||
      protocol::ascii_iequals(name, "Connection")) {
    return false;
  }
  if (protocol::ascii_iequals(name, "Content-Type")) {
    content_type_ = value;
    return true;
  }
  headers_.append(name).append(": ").append(value).append("\r\n");
  return true;
}

namespace {
void status_line(std::string& out, int status_code) {
  const int status = status_code >= 100 && status_code <= 599 ? status_code : 500;
  out.append("HTTP/1.1 ").append(std::to_string(status)).append(" ");
  out.append(protocol::reason_phrase(status)).append("\r\n");
}
}  // namespace

void http_response::serialize(std::string& out, bool include_body) const {
  serialize(out, include_body, "close");
}

void http_response::serialize(std::string& out, bool include_body,
                              std::string_view connection) const {
  status_line(out, status_);
  if (!content_type_.empty() && protocol::is_field_value(content_type_)) {
    out.append("Content-Type: ").append(content_type_).append("\r\n");
  }
  out.append("Content-Length: ").append(std::to_string(body_.size())).append("\r\n");
  if (!connection.empty()) out.append("Connection: ").append(connection).append("\r\n");
  out.append(headers_).append("\r\n");
  if (include_body) out.append(body_);
}

void http_response::serialize_stream_head(std::string& out, bool chunked,
                                          std::string_view connection) const {
  status_line(out, status_);
  if (!content_type_.empty() && protocol::is_field_value(content_type_)) {
    out.append("Content-Type: ").append(content_type_).append("\r\n");
  }
  // RFC 9112 §6.1: chunked framing lets the body end without ending the
  // connection; HTTP/1.0 ends it by closing.
  if (chunked) out.append("Transfer-Encoding: chunked\r\n");
  if (!connection.empty()) out.append("Connection: ").append(connection).append("\r\n");
  out.append(headers_).append("\r\n");
}

}  // namespace switchboard::server
