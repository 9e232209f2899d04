// raw_fanout.hpp — the fan-out ceiling of switchboard_raw_echo --fanout: the
// switchboard.v1 messages of pubsub_wire.hpp on the bare net::event_loop, with
// the least work a fan-out can do there. Each publication is framed once into
// its channel's buffer for the iteration; an iteration hook then writes that
// buffer — every publication of the iteration, back to back — to each
// subscriber with one send() from the shared bytes (no copy per subscriber),
// and only what a socket refuses goes through tcp_stream's buffering. No
// topic tree, no sequence filter, no backpressure cap other than a large
// safety limit: what a WebSocket server's fan-out on this loop can approach
// but not pass.
//
// Thread-safety: a raw_fanout_loop belongs to its loop's thread (construct
// and destroy it while the loop is not running).
#pragma once

#include <memory>

#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/tcp_socket.hpp"

namespace switchboard::bench {

class raw_fanout_loop {
 public:
  explicit raw_fanout_loop(net::event_loop& loop);
  ~raw_fanout_loop();
  raw_fanout_loop(const raw_fanout_loop&) = delete;
  raw_fanout_loop& operator=(const raw_fanout_loop&) = delete;

  // Takes a connected, non-blocking socket (from the listener).
  void accept(net::unique_fd socket);

  struct state;

 private:
  std::unique_ptr<state> state_;
};

}  // namespace switchboard::bench
