// sans_io_echo — the protocol layer without any I/O: a server-side
// connection driven entirely by byte strings. It answers an upgrade request,
// then echoes every message, answers pings and completes the close handshake.
// A real server does the same with bytes from a socket; see README.md.
//
// Build: a standalone CMake project (CMakeLists.txt here) or one command:
//   c++ -std=c++20 sans_io_echo.cpp $(pkg-config --cflags --libs switchboard)
// Run: ./sans_io_echo   (prints what it would send)
#include <cstdio>
#include <span>
#include <string>

#include "switchboard/protocol/handshake.hpp"
#include "switchboard/protocol/http_head.hpp"
#include "switchboard/protocol/message_reader.hpp"
#include "switchboard/protocol/message_writer.hpp"

namespace sp = switchboard::protocol;

// Everything the server would write to the socket.
static std::string g_out;

// Handles the bytes after the handshake. Returns false once the connection
// should be closed (the close handshake is done, or the peer broke a rule).
static bool on_frames(sp::message_reader& reader, std::span<char> input) {
  sp::message_writer writer(sp::role::server);
  for (;;) {
    sp::reader_event ev = reader.next(input);
    switch (ev.kind) {
      case sp::event_kind::need_more:
        return true;
      case sp::event_kind::message:
        std::printf("message (%s): %.*s\n", ev.op == sp::opcode::text ? "text" : "binary",
                    static_cast<int>(ev.payload.size()), ev.payload.data());
        writer.append_frame(g_out, ev.op, ev.payload);
        break;
      case sp::event_kind::ping:
        writer.append_pong(g_out, ev.payload);  // same payload (RFC 6455 5.5.3)
        break;
      case sp::event_kind::pong:
      case sp::event_kind::message_part:  // only in streaming mode
        break;
      case sp::event_kind::close:
        std::printf("peer closed: %u\n", ev.code);
        // Echo the code back; 1005 (no code) is answered with an empty close.
        writer.append_close(g_out, ev.code == 1005 ? 0 : ev.code);
        return false;
      case sp::event_kind::error:
        std::printf("protocol error: %.*s\n", static_cast<int>(sp::describe(ev.err).size()),
                    sp::describe(ev.err).data());
        writer.append_close(g_out, sp::to_underlying(sp::close_code_for(ev.err)));
        return false;
    }
  }
}

int main() {
  // What a client sends: the RFC 6455 1.3 example request, then (in the same
  // read) a masked "Hello" text frame, a masked ping and a masked close 1000.
  std::string received =
      "GET /chat HTTP/1.1\r\n"
      "Host: server.example.com\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n"
      "\r\n";
  sp::message_writer client(sp::role::client);
  client.append_frame(received, sp::opcode::text, "Hello");
  client.append_ping(received, "are you there?");
  client.append_close(received, 1000, "bye");

  sp::request_parser parser;
  sp::parse_result r = parser.parse(received);
  if (r.status != sp::parse_status::complete) {
    // need_more: read more and call parse again; error: answer with a status.
    if (r.status == sp::parse_status::error) sp::write_rejection(g_out, r.err);
    return 1;
  }
  sp::upgrade_request upgrade;
  if (sp::error e = sp::validate_upgrade(parser.head(), upgrade); e != sp::error::none) {
    sp::write_rejection(g_out, e);  // 400, 405, 426 ... with a short text body
    std::fputs(g_out.c_str(), stdout);
    return 1;
  }
  if (!sp::write_accept_response(g_out, upgrade.key)) return 1;
  std::fputs(g_out.c_str(), stdout);

  // The bytes after the head are frames that came in the same read.
  sp::message_reader reader(sp::reader_options{.role = sp::role::server});
  std::span<char> rest(received.data() + r.consumed, received.size() - r.consumed);
  on_frames(reader, rest);
  std::printf("server wrote %zu bytes in all\n", g_out.size());
  return 0;
}
