// sse_stream.hpp — private: GET /sse, the plain Server-Sent Events stream a
// bare EventSource reads (docs/protocol.md, "GET /sse"). A read-only
// switchboard.v1 client: at start it subscribes its channels through the
// session logic (with `since` from the Last-Event-ID), and turns what a
// /ws client would receive into SSE events: `subscribed` / `error` for the
// subscribe replies, `publication` (with the id: every channel's position)
// for message pushes and recovered publications, `presence` for presence
// pushes, `reconnect` on drain, `close` for any other end.
//
// Thread-safety: every public member may be called from any thread; the
// stream state has its own lock (a leaf, see http_peer.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>
#include <switchboard/server/http.hpp>

#include "event_id.hpp"
#include "http_peer.hpp"

namespace switchboard::realtime::detail {

class sse_stream final : public http_peer {
 public:
  // `since`: one entry per channel (from the Last-Event-ID), or empty.
  sse_stream(sessions& s, hub& h, const realtime_config& config,
             std::vector<std::string> channels, std::vector<channel_position> since);

  // Writes the retry hint and subscribes every channel. REQUIRES: opened().
  // The stream needs no on_close of its own: tick() sees it end
  // (http_stream::is_open()), and the registry then closes the peer.
  void begin(server::http_stream stream, std::uint64_t retry_ms);

  void send(const std::string& text) override;
  std::string_view transport() const override { return "sse"; }
  bool takes_server_subscriptions() const override { return false; }
  void reply_subscribed(std::string_view id, const local_channel& ch, const read_result& r) override;
  void reply_error(std::string_view id, const failure& f) override;
  void deliver(std::string_view channel, std::string_view epoch, std::uint64_t offset,
               const std::string& push) override;

  // Every 200 ms: a heartbeat after sse.heartbeat of silence. Returns the
  // close code (0: none) when the stream must end.
  std::uint16_t tick(std::uint64_t now_ms, std::string& reason);
  // Drain: `event: reconnect`, then close (1012-like: the client comes back).
  void drain();

 protected:
  void on_closed(std::uint16_t code, std::string_view reason) override;

 private:
  void write_locked(std::string_view event);
  // The index of `channel` in channels_, or SIZE_MAX.
  std::size_t index_of(std::string_view channel) const;
  void publication_locked(std::size_t index, std::string_view epoch, std::uint64_t offset,
                          std::string_view push);

  const realtime_config& config_;
  const std::vector<std::string> channels_;
  std::vector<channel_position> positions_;  // the id: every channel's position
  server::http_stream stream_;
  std::uint64_t last_write_ = 0;  // mono ms, as of the tick after the last write
  net::compact_mutex out_mutex_;  // 4 bytes: one per idle subscriber
  bool wrote_ = false;            // since the last tick
  bool draining_ = false;
  bool gone_ = false;   // the HTTP stream ended (or the peer closed it)
  bool begun_ = false;  // begin() ran: stream_ is the answer's
};

}  // namespace switchboard::realtime::detail
