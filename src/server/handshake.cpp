// handshake.cpp — from the first byte to the 101: reading the request head
// into a pooled buffer, routing by path, validating the upgrade, the
// application's decision (now or later), plain HTTP requests (with their
// bodies) and answers, and counting the handshakes the server turns away.
#include <algorithm>
#include <cassert>
#include <optional>
#include <string>

#include <switchboard/net/tcp_socket.hpp>
#include <switchboard/protocol/handshake.hpp>
#include <switchboard/protocol/permessage_deflate.hpp>
#include <switchboard/server/endpoint.hpp>
#include <switchboard/server/websocket.hpp>

#include "loop_context.hpp"

namespace switchboard::server {

namespace {

using protocol::error;

// The counter of a handshake error: the protocol::error of the same name.
handshake_failure failure_for(error e) noexcept {
  switch (e) {
    case error::head_too_large: return handshake_failure::head_too_large;
    case error::too_many_headers: return handshake_failure::too_many_headers;
    case error::header_line_too_long: return handshake_failure::header_line_too_long;
    case error::request_line_too_long: return handshake_failure::request_line_too_long;
    case error::bad_request_line: return handshake_failure::bad_request_line;
    case error::bad_http_version: return handshake_failure::bad_http_version;
    case error::bad_header_name: return handshake_failure::bad_header_name;
    case error::missing_header_colon: return handshake_failure::missing_header_colon;
    case error::bad_header_value: return handshake_failure::bad_header_value;
    case error::obs_fold: return handshake_failure::obs_fold;
    case error::bare_lf: return handshake_failure::bare_lf;
    case error::whitespace_before_colon: return handshake_failure::whitespace_before_colon;
    case error::method_not_get: return handshake_failure::method_not_get;
    case error::http_version_too_old: return handshake_failure::http_version_too_old;
    case error::missing_host: return handshake_failure::missing_host;
    case error::duplicate_host: return handshake_failure::duplicate_host;
    case error::missing_upgrade: return handshake_failure::missing_upgrade;
    case error::missing_connection_upgrade: return handshake_failure::missing_connection_upgrade;
    case error::missing_version: return handshake_failure::missing_version;
    case error::unsupported_version: return handshake_failure::unsupported_version;
    case error::missing_key: return handshake_failure::missing_key;
    case error::duplicate_key: return handshake_failure::duplicate_key;
    case error::bad_key: return handshake_failure::bad_key;
    case error::bad_extension_header: return handshake_failure::bad_extension_header;
    case error::bad_protocol_header: return handshake_failure::bad_protocol_header;
    default: return handshake_failure::bad_request;
  }
}

}  // namespace

void websocket::on_head_complete() {
  detail::handshake_state& hs = *handshake_;
  const protocol::request_head& head = hs.parser.head();
  detail::server_core& core = ctx_->core();
  // RFC 9110 §15.6.6: this server speaks HTTP/1.0 and 1.1 only; "HTTP/2.0"
  // or "HTTP/1.2" in a request line is not served as 1.1.
  if (head.version_major() != 1 || head.version_minor() > 1) {
    return reject_handshake(handshake_failure::unsupported_http_version, 505,
                            "HTTP version not supported");
  }
  // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host and for any
  // request with more than one, on every route (not only upgrades).
  if (const std::size_t hosts = head.count("Host"); hosts > 1) {
    return reject_handshake(error::duplicate_host);
  } else if (hosts == 0 && head.version_minor() == 1) {
    return reject_handshake(error::missing_host);
  }
  const detail::route* route = core.find_route(head.path());
  const bool upgrade = head.has_token("Upgrade", "websocket");
  if (route == nullptr) {
    // An upgrade to nowhere ends the connection as before; a plain request
    // is answered in turn and the connection kept (its body is skipped).
    if (upgrade) return reject_handshake(handshake_failure::not_found, 404, "no such path");
    ctx_->count_handshake_failure(handshake_failure::not_found, 404);
    hs.route_status = 404;
    return start_http();
  }

  if (!upgrade || !route->ws) {
    const http_handler* handler = route->find_http(head.method());
    // RFC 9110 §9.3.2: HEAD is GET without the body (serialize() leaves it out).
    if (handler == nullptr && head.method() == "HEAD") handler = route->find_http("GET");
    if (handler != nullptr) {
      hs.handler = handler;
      return start_http();
    }
    // An HTTP-only path without a handler for this method.
    if (!route->ws) {
      // RFC 9110 §15.5.6: Allow lists the methods the path has.
      std::string& allow = hs.allow;
      allow.clear();
      bool get = false, head_method = false;
      for (const auto& [method, h] : route->http) {
        if (!allow.empty()) allow.append(", ");
        allow.append(method);
        get = get || method == "GET";
        head_method = head_method || method == "HEAD";
      }
      if (get && !head_method) allow.append(", HEAD");
      ctx_->count_handshake_failure(handshake_failure::method_not_allowed, 405);
      hs.route_status = 405;
      return start_http();
    }
  }
  // An upgrade is answered after every earlier request of the connection:
  // it waits (and what the client sends meanwhile is kept for after the 101).
  if (!hs.answers.empty()) {
    hs.upgrade_waiting = true;
    hs.after.assign(hs.head, hs.start + hs.head_length);
    hs.head.resize(hs.start + hs.head_length);
    return;
  }
  start_upgrade();
}

void websocket::start_upgrade() {
  detail::handshake_state& hs = *handshake_;
  const protocol::request_head& head = hs.parser.head();
  detail::server_core& core = ctx_->core();
  const detail::route* route = core.find_route(head.path());
  // Bytes after the head are the first frames: they wait for the 101.
  if (!hs.upgrade_waiting) {
    hs.after.assign(hs.head, hs.start + hs.head_length);
    hs.head.resize(hs.start + hs.head_length);
  }
  hs.upgrade_waiting = false;

  // Not a valid opening handshake (RFC 6455 §4.2.1): 426 for a plain GET,
  // 405 for another method, 400 for a broken upgrade.
  const protocol::error err = protocol::validate_upgrade(head, hs.info);
  if (err != protocol::error::none) return reject_handshake(err);
  // max_connections: refuse before upgrading, so the client may retry elsewhere.
  if (!core.try_count_connection()) {
    return reject_handshake(handshake_failure::max_connections, 503, "too many connections");
  }
  counted_ = true;
  behavior_ = route->ws.get();
  if (behavior_->construct_user_data != nullptr) behavior_->construct_user_data(user_data());

  if (!behavior_->on_upgrade) {
    finish_upgrade({}, {});
  } else {
    upgrade_request request(*this, hs.info);
    behavior_->on_upgrade(request);
    if (state_ == state::closed) return;  // terminated inside on_upgrade
    if (request.deferred_ && !request.decided_) {
      if (state_ == state::handshake) state_ = state::upgrading;
      return;
    }
    if (!request.decided_) finish_upgrade({}, {});
  }
  if (state_ == state::open) start_open();
}

void websocket::finish_upgrade(std::string_view subprotocol,
                               std::span<const protocol::http_header> headers) {
  assert(state_ == state::handshake || state_ == state::upgrading);
  std::string& out = ctx_->scratch();
  out.clear();
  protocol::accept_options opts;
  opts.subprotocol = subprotocol;
  opts.extra_headers = headers;
  // permessage-deflate (RFC 7692 §5): the first offer this endpoint's mode can
  // honour, or none; declined offers are simply left out of the answer.
  std::optional<protocol::deflate_agreement> agreed;
  if (behavior_->compression.mode != compression_mode::off) {
    agreed = protocol::negotiate_deflate(handshake_->parser.head(), policy_for(behavior_->compression));
  }
  if (agreed) opts.extensions = agreed->response.view();
  if (!protocol::write_accept_response(out, handshake_->info.key, opts)) {
    // The application handed us a header that would break the head.
    return reject_handshake(handshake_failure::bad_response_header, 500, "invalid response header");
  }
  stream_.send({reinterpret_cast<const std::byte*>(out.data()), out.size()});
  state_ = state::open;
  if (agreed) {
    using protocol::role;
    deflate_ = true;
    deflate_takeover_ = !protocol::deflate_no_context_takeover(agreed->params, role::server);
    inflate_takeover_ = !protocol::inflate_no_context_takeover(agreed->params, role::server);
    deflate_window_ = protocol::deflate_window_bits(agreed->params, role::server) & 0xF;
    inflate_window_ = protocol::inflate_window_bits(agreed->params, role::server) & 0xF;
  }
}

void websocket::start_open() {
  detail::handshake_state* hs = handshake_;
  handshake_ = nullptr;  // reader_ from now on
  has_handshake_ = false;
  close_pending_ = true;
  last_receive_ = now_ms();
  schedule_keepalive();  // replaces the handshake timeout
  if (behavior_->on_open) behavior_->on_open(*this);
  if (state_ == state::open && !hs->after.empty()) {
    on_frames({hs->after.data(), hs->after.size()});
  }
  ctx_->release_handshake(hs);
}

void websocket::reject_handshake(handshake_failure reason, int status, std::string_view body) {
  ctx_->count_handshake_failure(reason, status);
  reject_upgrade(status, body);
}

void websocket::reject_handshake(protocol::error err) {
  ctx_->count_handshake_failure(failure_for(err), protocol::http_status_for(err));
  std::string& out = ctx_->scratch();
  out.clear();
  protocol::write_rejection(out, err);
  respond_http(out);
}

void websocket::drop_handshake(handshake_failure reason) {
  // No answer: the client is gone, too slow, or we are stopping.
  ctx_->count_handshake_failure(reason, 0);
  terminate();
}

void websocket::reject_upgrade(int status, std::string_view body) {
  if (counted_) {
    ctx_->core().uncount_connection();
    counted_ = false;
  }
  std::string& out = ctx_->scratch();
  out.clear();
  if (!protocol::write_error_response(out, status, body)) {
    out.clear();
    (void)protocol::write_error_response(out, 500, "invalid status");
  }
  respond_http(out);
}

void websocket::respond_http(std::string_view response) {
  // An answer that ends the connection: read no more requests; after the
  // answers before it (pipelining keeps their order), it goes out, then the
  // connection closes after the flush.
  if (has_handshake_ && !handshake_->answers.empty()) {
    detail::handshake_state& hs = *handshake_;
    hs.closing = true;
    detail::http_answer& a = hs.answers.emplace_back();
    a.seq = hs.next_seq++;
    a.ready = true;
    a.close_after = true;
    a.bytes.assign(response);
    return;  // drive_http() sends it in turn
  }
  if (has_handshake_) handshake_->closing = true;
  stream_.send({reinterpret_cast<const std::byte*>(response.data()), response.size()});
  timer_.cancel();
  linger(true);  // the client may still be sending its request
}

// --- upgrade_request / upgrade_handle ---------------------------------------

std::string upgrade_request::remote_address() const {
  std::error_code ec;
  const net::endpoint peer = net::peer_endpoint(ws_->stream_.native_handle(), ec);
  return ec ? std::string() : peer.address_string();
}

void upgrade_request::accept(std::string_view subprotocol,
                             std::span<const protocol::http_header> headers) {
  if (decided_) return;  // one answer per request
  decided_ = true;
  ws_->finish_upgrade(subprotocol, headers);
}

void upgrade_request::reject(int status, std::string_view body) {
  if (decided_) return;  // one answer per request
  decided_ = true;
  ws_->reject_upgrade(status, body);
}

upgrade_handle upgrade_request::defer() {
  deferred_ = true;
  return upgrade_handle(ws_->ctx_, ws_->id());
}

void upgrade_handle::accept(std::string subprotocol,
                            std::vector<std::pair<std::string, std::string>> headers) const {
  if (ctx_ == nullptr) return;
  detail::loop_context* ctx = ctx_;
  ctx->loop().post([ctx, id = id_, sub = std::move(subprotocol), hs = std::move(headers)] {
    ctx->complete_upgrade(id, 101, sub, hs);
  });
}

void upgrade_handle::reject(int status, std::string body) const {
  if (ctx_ == nullptr) return;
  detail::loop_context* ctx = ctx_;
  ctx->loop().post([ctx, id = id_, status, text = std::move(body)] {
    ctx->complete_upgrade(id, status, text, {});
  });
}

void detail::loop_context::complete_upgrade(
    connection_id id, int status, const std::string& text,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  websocket* ws = find(id);
  // Gone, timed out, or already answered: nothing to do.
  if (ws == nullptr || ws->state_ != websocket::state::upgrading) return;
  if (status != 101) return ws->reject_upgrade(status, text);
  std::vector<protocol::http_header> fields;
  fields.reserve(headers.size());
  for (const auto& [name, value] : headers) fields.push_back({name, value});
  ws->finish_upgrade(text, fields);
  if (ws->state_ == websocket::state::open) ws->start_open();
}

}  // namespace switchboard::server
