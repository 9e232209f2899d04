// handshake.cpp — from the first byte to the 101: reading the request head
// into a pooled buffer, routing by path, validating the upgrade, the
// application's decision (now or later), and plain HTTP answers.
#include <cassert>
#include <optional>
#include <string>

#include <switchboard/protocol/handshake.hpp>
#include <switchboard/protocol/permessage_deflate.hpp>
#include <switchboard/server/endpoint.hpp>
#include <switchboard/server/websocket.hpp>

#include "loop_context.hpp"

namespace switchboard::server {

void websocket::on_handshake_data(std::span<std::byte> data) {
  if (!has_handshake_) {
    handshake_ = ctx_->acquire_handshake();
    has_handshake_ = true;
  }
  detail::handshake_state& hs = *handshake_;
  hs.head.append(reinterpret_cast<const char*>(data.data()), data.size());
  const protocol::parse_result r = hs.parser.parse(hs.head);
  if (r.status == protocol::parse_status::need_more) return;
  if (r.status == protocol::parse_status::error) {
    // A malformed or oversized head (431, 414, 400): answer and close.
    std::string& out = ctx_->scratch();
    out.clear();
    protocol::write_rejection(out, r.err);
    respond_http(out);
    return;
  }
  // Bytes after the head are the first frames: they wait for the 101.
  hs.after.assign(hs.head, r.consumed);
  on_head_complete();
}

void websocket::on_head_complete() {
  detail::handshake_state& hs = *handshake_;
  const protocol::request_head& head = hs.parser.head();
  detail::server_core& core = ctx_->core();
  const detail::route* route = core.find_route(head.path());
  if (route == nullptr) return reject_upgrade(404, "no such path");

  const bool upgrade = head.has_token("Upgrade", "websocket");
  if (!upgrade || !route->ws) {
    if (const http_handler* handler = route->find_http(head.method())) {
      http_request request(head);
      http_response response;
      (*handler)(request, response);
      if (state_ != state::handshake) return;  // the handler terminated us
      std::string& out = ctx_->scratch();
      out.clear();
      response.serialize(out, head.method() != "HEAD");
      return respond_http(out);
    }
    // An HTTP-only path without a handler for this method.
    if (!route->ws) return reject_upgrade(405, "method not allowed");
  }

  protocol::error err = protocol::validate_upgrade(head, hs.info);
  if (err != protocol::error::none) {
    // Not a valid opening handshake (RFC 6455 §4.2.1): 426 for a plain GET,
    // 405 for another method, 400 for a broken upgrade.
    std::string& out = ctx_->scratch();
    out.clear();
    protocol::write_rejection(out, err);
    return respond_http(out);
  }
  // max_connections: refuse before upgrading, so the client may retry elsewhere.
  if (!core.try_count_connection()) return reject_upgrade(503, "too many connections");
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
    return reject_upgrade(500, "invalid response header");
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
  // One request per connection: the response, then close (after the flush).
  stream_.send({reinterpret_cast<const std::byte*>(response.data()), response.size()});
  timer_.cancel();
  linger(true);  // the client may still be sending its request
}

// --- upgrade_request / upgrade_handle ---------------------------------------

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
