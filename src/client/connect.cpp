// connect.cpp — the first half of websocket_client: URL and name lookup,
// TCP connect (each resolved address in turn), the upgrade request, and the
// server's response head up to the open state.
#include <cassert>

#include "client_detail.hpp"
#include "switchboard/client/websocket_client.hpp"
#include "switchboard/protocol/error.hpp"
#include "switchboard/protocol/handshake.hpp"

namespace switchboard::client {

using detail::as_bytes;
using detail::k_abnormal;

std::error_code websocket_client::connect(std::string_view ws_url) {
  if (state_ != client_state::idle && state_ != client_state::closed) {
    return client_error::already_connecting;
  }
  url parsed;
  if (auto error = parse_url(ws_url, parsed)) return error;
  if (parsed.secure && options_.tls == nullptr) return client_error::tls_not_supported;
  std::vector<net::endpoint> endpoints;
  if (auto error = resolve(parsed.host, parsed.port, endpoints)) return error;

  // Refuse now what write_upgrade_request would refuse on every attempt.
  std::string probe;
  const protocol::client_request_options request{parsed.host_header, parsed.target,
                                                 options_.origin, protocol_views_, {},
                                                 header_views_};
  if (!protocol::write_upgrade_request(probe, request, std::string_view("AAAAAAAAAAAAAAAAAAAAAA=="))) {
    return client_error::bad_request;
  }

  // Closed here (idle or closed), so the transport may change mode; also
  // from inside the old connection's callbacks.
  stream_.set_tls(parsed.secure ? options_.tls : nullptr);
  url_ = std::move(parsed);
  endpoints_ = std::move(endpoints);
  attempt_ = 0;
  user_closed_ = false;
  start_attempt();
  return {};
}

void websocket_client::start_attempt() {
  ++attempt_;
  was_open_ = false;
  tls_established_ = false;
  close_sent_ = false;
  close_received_ = false;
  server_code_ = 0;
  server_reason_.clear();
  subprotocol_.clear();
  head_buffer_.clear();
  parser_.reset();
  if (reader_.options().allow_rsv1) {
    // The last connection was compressed; this one starts without RSV1.
    reader_ = protocol::message_reader(protocol::reader_options{
        protocol::role::client, options_.max_message_size, /*stream=*/false, /*allow_rsv1=*/false});
  } else {
    reader_.reset();
  }
  deflate_params_.reset();
  deflater_.reset();
  inflater_.reset();
  endpoint_index_ = 0;
  // The connector never reports from inside connect(), so starting it before
  // on_state runs is safe, and a close() from on_state cancels it.
  try_endpoint();
  set_state(client_state::connecting);
}

void websocket_client::try_endpoint() {
  connector_.connect(endpoints_[endpoint_index_], options_.connect_timeout,
                     [this](std::error_code error, net::unique_fd socket) {
                       on_connected(error, std::move(socket));
                     });
}

void websocket_client::on_connected(std::error_code error, net::unique_fd socket) {
  if (error) {
    // localhost and resolved names may have several addresses: try each.
    if (++endpoint_index_ < endpoints_.size()) {
      try_endpoint();
      return;
    }
    const std::string text = "cannot connect to " + endpoints_.back().to_string() + ": " +
                             error.message();
    finish(error, text, k_abnormal, {}, true);
    return;
  }
  // wss://: the TLS handshake starts here (the ClientHello goes out now); the
  // upgrade request below waits inside the stream until it completes, and
  // phase_timer_ bounds both. The URL's host is the name the server's
  // certificate must carry (a DNS name, also sent as SNI, or an IP address).
  if (auto open_error = stream_.open(std::move(socket), url_.host)) {
    const std::string text =
        stream_.is_tls() ? "cannot start TLS with " + url_.host + ": " + describe(open_error)
                         : "cannot watch the socket: " + open_error.message();
    finish(open_error, text, k_abnormal, {}, true);
    return;
  }
  key_ = protocol::generate_key();
  frame_buffer_.clear();
  protocol::client_request_options request{url_.host_header, url_.target, options_.origin,
                                           protocol_views_, {}, header_views_};
  if (options_.deflate) {
    deflate_offer_ = protocol::write_deflate_offer(options_.deflate_offer);
    request.extensions = deflate_offer_.view();
  }
  const bool written = protocol::write_upgrade_request(
      frame_buffer_, request, std::string_view(key_.data(), key_.size()));
  assert(written && "checked by connect()");
  (void)written;
  loop_->timers().schedule(phase_timer_, options_.handshake_timeout);
  (void)stream_.send(as_bytes(frame_buffer_));
  set_state(client_state::handshaking);
}

void websocket_client::on_handshake_data(std::span<std::byte> data) {
  head_buffer_.append(reinterpret_cast<const char*>(data.data()), data.size());
  const protocol::parse_result result = parser_.parse(head_buffer_);
  if (result.status == protocol::parse_status::need_more) return;
  if (result.status == protocol::parse_status::error) {
    const std::string text = "handshake failed: malformed response: " +
                             std::string(protocol::describe(result.err));
    finish(result.err, text, k_abnormal, {}, true);
    return;
  }
  finish_handshake(result.consumed);
}

bool websocket_client::finish_handshake(std::size_t head_size) {
  protocol::handshake_response response;
  const std::string_view offered[] = {protocol::k_permessage_deflate};
  const protocol::error error = protocol::validate_response(
      parser_.head(), std::string_view(key_.data(), key_.size()), protocol_views_,
      options_.deflate ? std::span<const std::string_view>(offered)
                       : std::span<const std::string_view>(),
      response);
  if (error != protocol::error::none) {
    std::string text = "handshake failed: ";
    if (error == protocol::error::response_not_101) {
      text.append("server answered ").append(std::to_string(response.status));
      if (!parser_.head().reason().empty()) text.append(" ").append(parser_.head().reason());
    } else {
      text.append(protocol::describe(error));
    }
    finish(error, text, k_abnormal, {}, true);
    return false;
  }
  if (!accept_deflate()) return false;
  phase_timer_.cancel();
  subprotocol_.assign(response.subprotocol);
  // Frames the server sent right behind its 101 arrived in the same read.
  std::string early_frames = head_buffer_.substr(head_size);
  std::string().swap(head_buffer_);
  was_open_ = true;
  attempt_ = 0;

  net::detail::lifetime_flag::scope alive(lifetime_);
  set_state(client_state::open);
  if (alive.destroyed() || state_ != client_state::open) return false;
  if (handlers_.on_open) {
    handlers_.on_open(subprotocol_);
    if (alive.destroyed()) return false;
  }
  // on_open may have started closing; the server's frames still count then.
  if (!early_frames.empty() && (state_ == client_state::open || state_ == client_state::closing)) {
    read_frames(early_frames);
  }
  return true;
}

bool websocket_client::accept_deflate() {
  if (!options_.deflate) return true;
  // RFC 7692 §5: an answer we cannot honour fails the connection.
  const protocol::error error =
      protocol::validate_deflate_response(parser_.head(), options_.deflate_offer, deflate_params_);
  if (error != protocol::error::none) {
    deflate_params_.reset();
    finish(error, "handshake failed: " + std::string(protocol::describe(error)), k_abnormal, {},
           true);
    return false;
  }
  if (!deflate_params_) return true;  // declined: an uncompressed connection
  using protocol::role;
  // RSV1 now marks compressed messages from the server.
  reader_ = protocol::message_reader(protocol::reader_options{
      role::client, options_.max_message_size, /*stream=*/false, /*allow_rsv1=*/true});
  protocol::deflate_options d;
  d.window_bits = protocol::deflate_window_bits(*deflate_params_, role::client);
  d.no_context_takeover = protocol::deflate_no_context_takeover(*deflate_params_, role::client);
  deflater_.emplace(d);
  protocol::inflate_options i;
  i.window_bits = protocol::inflate_window_bits(*deflate_params_, role::client);
  i.no_context_takeover = protocol::inflate_no_context_takeover(*deflate_params_, role::client);
  i.max_message_size = options_.max_message_size;
  inflater_.emplace(i);
  return true;
}

}  // namespace switchboard::client
