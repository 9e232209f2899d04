// http_session.hpp — private: an HTTP session (docs/protocol.md, "HTTP
// sessions"): a switchboard.v1 connection without a socket. Commands come
// up in POST batches (http_peer::command()); every text message /ws would
// send goes into the session's downstream buffer with a sequence number
// (1, 2, 3 …) and out to whichever downstream is attached: an SSE stream
// (one `event: message` per message, `id:` its sequence number) or a held
// long-poll.
//
// The buffer keeps messages until acknowledged (a poll's `after`, a
// stream's Last-Event-ID); messages written to a live stream count as sent
// and are trimmed oldest first past sse.max_buffered; messages not yet sent
// past sse.max_buffered close the session as a slow consumer (1008).
//
// Thread-safety: every public member may be called from any thread; the
// downstream state has its own lock (a leaf, see http_peer.hpp).
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <switchboard/server/http.hpp>

#include "http_peer.hpp"

namespace switchboard::realtime::detail {

class http_session final : public http_peer {
 public:
  http_session(sessions& s, hub& h, const realtime_config& config, std::string id);

  const std::string& id() const noexcept { return id_; }

  void send(const std::string& text) override;
  std::string_view transport() const override { return "http_session"; }
  void deliver(std::string_view channel, std::string_view epoch, std::uint64_t offset,
               const std::string& push) override;

  // Downstream: a new SSE stream (replaces one already there, which gets
  // `event: reconnect` and ends) resuming after `last_seen` (nullopt: after
  // what was already written to a stream). Returns the stream's number for
  // stream_closed(), or 0 (the caller ends `stream`) when the session is
  // over or messages after `last_seen` are no longer kept.
  std::uint64_t attach_stream(server::http_stream stream, std::optional<std::uint64_t> last_seen);
  // The on_close of stream number `n` (a replaced one is ignored).
  void stream_closed(std::uint64_t n);
  // A long-poll: acknowledges up to `after`, then answers through
  // `responder` at once if there is something after it, else when there is
  // or after sse.poll_timeout (tick()). A poll held before is answered with
  // nothing.
  void poll(std::uint64_t after, server::http_responder responder);

  // Every 200 ms: heartbeats, long-poll timeouts. Returns the close code
  // (0: none) when the session must end: idle with no downstream past
  // session_idle_timeout (1001), buffer overflow (1008), a lost channel.
  std::uint16_t tick(std::uint64_t now_ms, std::string& reason);
  // Drain: the close push, `event: reconnect` on a stream, then the end.
  void drain();
  // Whether a request `verb` (send, poll, stream, delete) reaches the
  // session: every one while it is open; once closed, a poll or stream
  // while messages no downstream took are left (a denied connect's error
  // reply, the close push) and it did not expire, for
  // sse.session_idle_timeout at most.
  bool answers(std::string_view verb, std::uint64_t now_ms);
  // Closed and still holding such messages: the registry keeps it.
  bool lingering(std::uint64_t now_ms);

 protected:
  void on_closed(std::uint16_t code, std::string_view reason) override;

 private:
  void push_locked(const std::string& text);
  void answer_poll_locked(std::uint64_t now_ms);
  // {"messages":[{"seq":N,"data":"…"},…]} of what follows `after`.
  void messages_after_locked(std::uint64_t after, std::string& out) const;
  void acknowledge_locked(std::uint64_t upto);

  const realtime_config& config_;
  const std::string id_;
  std::mutex out_mutex_;
  std::uint64_t seq_ = 0;
  std::deque<std::pair<std::uint64_t, std::string>> buffer_;  // {seq, message}
  std::size_t buffered_ = 0;                                   // bytes in buffer_
  std::uint64_t sent_upto_ = 0;  // written to a stream (may be lost with it)
  server::http_stream stream_;
  std::uint64_t stream_number_ = 0;
  std::optional<server::http_responder> poll_;
  std::uint64_t poll_after_ = 0;
  std::uint64_t poll_deadline_ = 0;     // mono ms
  std::uint64_t detached_since_ = 0;    // mono ms; 0 while a downstream is attached
  std::uint64_t last_write_ = 0;        // mono ms of the stream's last bytes
  std::uint64_t ended_at_ = 0;          // mono ms of the close
  bool idle_expired_ = false;           // closed by tick() for session_idle_timeout
  bool ended_ = false;                  // closed: no more messages
  bool draining_ = false;
};

}  // namespace switchboard::realtime::detail
