// sse_peer.hpp — private: GET /sse of ONE channel on a server event-stream
// connection (server::http_response::open_event_stream), built like a /ws
// client: its session state (connection_state, push_form::sse) lives in the
// connection's user data, and this view of the connection, made for one
// call on its loop as ws_peer is, turns what a /ws client would receive into
// the SSE events of docs/protocol.md "GET /sse" (`subscribed`, `error`,
// `publication` with id EPOCH:OFFSET, `message`). Publications do not pass
// here: the stream subscribes the channel's SSE-form server topic
// (hub::topic_for(topic, push_form::sse)), whose bytes are the complete
// `publication` event, built once per publication per node (hub.cpp) —
// every one-channel stream writes the same bytes for it. The final events
// (`close`, or `reconnect` on drain) are written by the endpoint's
// on_closing (http_transports.cpp); streams of several channels keep the
// sse_stream path (their ids carry every channel's position).
//
// Thread-safety: a view is used on its connection's loop thread only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "event_id.hpp"
#include "peer.hpp"

namespace switchboard::realtime::detail {

class sse_ws_peer final : public peer {
 public:
  sse_ws_peer(server::websocket& ws, server::server& srv, hub& h) : ws_(ws), srv_(srv), hub_(h) {}
  connection_state& state() override;
  peer_ref ref() override { return peer_ref::websocket(srv_, ws_.id(), hub_); }
  // Any other message (a push to the client): `event: message`.
  void send(const std::string& text) override;
  void close(std::uint16_t code, std::string_view reason) override { ws_.close(code, reason); }
  bool is_open() override { return ws_.is_open(); }
  std::string_view transport() const override { return "sse"; }
  bool takes_server_subscriptions() const override { return false; }
  // `id`: the subscribe command's id — 0, or (recovery) the Last-Event-ID as
  // a JSON string, which the `subscribed` event carries when recovered (the
  // position before the recovered publications), so that nothing per stream
  // holds it while the read is in flight.
  void reply_subscribed(std::string_view id, const local_channel& ch, const read_result& r) override;
  void reply_error(std::string_view id, const failure& f) override;
  bool attach(local_channel& ch, std::string_view epoch) override;
  void start(local_channel& ch, std::uint64_t after) override;
  void detach(local_channel& ch, bool closing) override;

  // The subscribe command a stream starts with (its id as above).
  static std::string subscribe_command(std::string_view channel, const channel_position& since);

 private:
  server::websocket& ws_;
  server::server& srv_;
  hub& hub_;
};

}  // namespace switchboard::realtime::detail
