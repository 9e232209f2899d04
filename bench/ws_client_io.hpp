// ws_client_io.hpp — the client side of a WebSocket connection that
// switchboard_loadgen (loadgen_connection.cpp) and switchboard_fanout
// (fanout_client.cpp) share: the non-blocking connect (optionally from a
// given source address), the upgrade request and its 101 response, and
// reading frames with pings answered. Each connection class keeps its own
// state machine and counters; these are the steps they take alike.
//
// Thread-safety: none of its own; call from the connection's loop thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "switchboard/net/tcp_socket.hpp"
#include "switchboard/net/transport.hpp"
#include "switchboard/protocol/handshake.hpp"
#include "switchboard/protocol/http_head.hpp"
#include "switchboard/protocol/message_reader.hpp"
#include "switchboard/protocol/message_writer.hpp"

namespace switchboard::bench {

// Opens a non-blocking TCP socket for `remote`, binds it to `source` when not
// null, and starts connecting. Empty on any failure; otherwise wait for
// EPOLLOUT, then call connect_finished().
[[nodiscard]] net::unique_fd start_connect(const net::endpoint& remote,
                                           const net::endpoint* source);

// The non-blocking connect of `fd` has finished: true when it succeeded
// (TCP_NODELAY is then set); false, with `fd` closed, when it failed.
[[nodiscard]] bool connect_finished(net::unique_fd& fd);

// Sends the upgrade request `options` describes with a fresh key (kept in
// `key` for the response), written into `request` (the worker's buffer).
// False, with nothing sent, when the request cannot be written.
[[nodiscard]] bool send_upgrade_request(net::transport& stream, std::string& request,
                                        std::array<char, 24>& key,
                                        const protocol::client_request_options& options);

enum class upgrade_status { need_more, failed, done };

// Appends `data` to `head` (the response so far) and parses it as the answer
// to the request sent with `key`, offering `protocols` and `extensions`.
// done: a valid 101, whose head is still readable from `parser`, and the
// first `consumed` bytes of `head` were it (the rest are frames).
[[nodiscard]] upgrade_status read_upgrade_response(
    std::string& head, std::span<const std::byte> data, protocol::response_parser& parser,
    std::string_view key, std::span<const std::string_view> protocols,
    std::span<const std::string_view> extensions, std::size_t& consumed);

// Why read_frames() returned.
enum class frames_end { need_more, stopped, close, error };

// Reads the frames in `input`: answers each ping with a pong (counted in
// `pings` when not null), skips pongs and passes every data message to
// on_message(const protocol::reader_event&), which returns false to stop.
template <class OnMessage>
frames_end read_frames(protocol::message_reader& reader, std::span<char> input,
                       protocol::message_writer& writer, net::transport& stream,
                       OnMessage&& on_message, std::uint64_t* pings = nullptr) {
  for (;;) {
    const protocol::reader_event event = reader.next(input);
    switch (event.kind) {
      case protocol::event_kind::need_more:
        return frames_end::need_more;
      case protocol::event_kind::message:
      case protocol::event_kind::message_part:  // not in use: the reader does not stream
        if (!on_message(event)) return frames_end::stopped;
        break;
      case protocol::event_kind::ping: {
        if (pings != nullptr) ++*pings;
        char pong[protocol::message_writer::max_frame_size(protocol::k_max_control_payload)];
        const std::size_t n = writer.write_pong(pong, event.payload);
        stream.send(std::as_bytes(std::span(pong, n)));
        break;
      }
      case protocol::event_kind::pong:
        break;
      case protocol::event_kind::close:
        return frames_end::close;
      case protocol::event_kind::error:
        return frames_end::error;
    }
  }
}

}  // namespace switchboard::bench
