// session_forward.hpp — private: HTTP sessions across nodes (docs/protocol.md,
// "HTTP transports across nodes"). A session lives on the node that made it
// (its home), and its id names that node: "<node id>.<random>". A request
// for it that lands on another node (a load balancer without stickiness) is
// forwarded to the home node over the broker's node messages
// (broker::send_node) and answered from there:
//
//   POST send, DELETE   run on the home node; the answer comes back.
//   GET poll            held on the home node; its answer comes back when
//                       it is made (data, or the poll timeout).
//   GET stream          the home node writes the session's stream as if it
//                       were local (http_stream::relay); every write travels
//                       to the node that holds the HTTP connection, in order.
//
// Why relay instead of moving the session to the node of its stream: the
// session's subscriptions, presence and buffer live in the hub and the
// broker of its home node; moving them would race with the publications in
// flight, and the next request may land on a third node anyway.
//
// The node messages are one header line and a body:
//
//   q <from> <rid> <verb> <session> <arg>\n<body>   a request (verb: send,
//                                                    poll, stream, delete)
//   a <from> <rid> <status>\n<body>                 its answer (a stream's
//                                                    200: the stream starts)
//   w <from> <rid>\n<bytes>                         bytes of a relayed stream
//   e <from> <rid>\n                                 the relayed stream ends
//   c <from> <rid>\n                                 its reader is gone
//
// <from> is the sending node's id, <rid> the request number of the node that
// forwarded it. Only nodes of this deployment write them (the broker's key
// prefix is the trust boundary); the parser still checks every field.
//
// Thread-safety: the free functions are pure; relay_sink is thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <switchboard/server/http.hpp>

namespace switchboard::realtime::detail {

class broker;

struct node_message {
  char kind = 0;  // q a w e c
  std::string_view from;
  std::uint64_t rid = 0;
  std::string_view verb;     // q
  std::string_view session;  // q
  std::string_view arg;      // q: poll's after, stream's last seen ("-": none)
  int status = 0;            // a
  std::string_view body;
};

// Parses `text` into `out` (views into `text`). Returns "" or what is wrong.
std::string parse_node_message(std::string_view text, node_message& out);

// The header line of each kind, then `body`.
std::string node_request(std::string_view from, std::uint64_t rid, std::string_view verb,
                         std::string_view session, std::string_view arg, std::string_view body);
std::string node_answer(std::string_view from, std::uint64_t rid, int status,
                        std::string_view body);
std::string node_stream_message(char kind, std::string_view from, std::uint64_t rid,
                                std::string_view bytes = {});

// A node id as service.cpp makes them (random_hex(8)): 16 lower-case hex digits.
bool is_node_id(std::string_view id) noexcept;
// The home node of a session id "<node id>.<32 hex digits>", or "" when the
// id does not have that shape.
std::string_view session_home(std::string_view session_id) noexcept;

// The home node's end of a relayed stream: what the session writes goes to
// `reader_node` as `w` messages, end() as `e`. on_close (the session's
// stream_closed) runs at most once, when the reader is gone (reader_gone(),
// or a write its node did not take), on the broker's thread: never inside
// write() or end(), which the session calls with its lock held. Not after
// end(): the session that ends a stream has no use for it.
class relay_sink final : public server::http_stream_sink,
                         public std::enable_shared_from_this<relay_sink> {
 public:
  relay_sink(broker& b, std::string self, std::string reader_node, std::uint64_t rid,
             std::function<void()> on_close);

  bool write(std::string bytes) override;
  void end() override;
  bool is_open() const noexcept override { return open_.load(std::memory_order_acquire); }
  // The reader's node says the HTTP stream is gone (`c`), or cannot be
  // reached: closed, on_close runs now. Not under the session's lock.
  void reader_gone();

 private:
  void run_on_close();

  broker& broker_;
  const std::string self_;
  const std::string reader_node_;
  const std::uint64_t rid_;
  std::function<void()> on_close_;
  std::atomic<bool> open_{true};
  std::atomic<bool> closed_ran_{false};
};

}  // namespace switchboard::realtime::detail
