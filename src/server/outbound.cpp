// outbound.cpp — the server-wide bound on bytes queued for slow readers
// (server_options::max_outbound_memory). Each loop counts the write buffers
// its streams hold (net::event_loop::held_write_bytes()); a send to a
// connection that already has a queue checks the sum over all loops, and
// over the limit the connections with the largest queues on this loop are
// closed at a safe point (a deferred task: never from inside another
// connection's send or a topic delivery, whose subscriber list it would edit).
#include <algorithm>
#include <utility>
#include <vector>

#include <switchboard/server/websocket.hpp>

#include "loop_context.hpp"

namespace switchboard::server {

namespace detail {

std::size_t server_core::outbound_bytes() const noexcept {
  std::size_t total = 0;
  for (const auto& ctx : contexts) total += ctx->loop().held_write_bytes();
  return total;
}

bool loop_context::outbound_over_limit(websocket& ws) {
  const std::size_t limit = options().max_outbound_memory;
  const std::size_t total = core_->outbound_bytes();
  if (total <= limit) return false;
  if (options().policy == backpressure_policy::drop) {
    // Only connections that already lag lose messages; readers keep theirs.
    count_outbound_memory_drop();
    return true;
  }
  if (!shed_scheduled_) {
    shed_scheduled_ = true;
    loop_->defer([this] { shed_outbound(); });
  }
  // Until the shed runs, queues may grow by an eighth of the limit; past
  // that this message is lost, and a connection that lost one is closed (the
  // close policy never leaves a gap in what a connection receives).
  if (total - limit <= limit / 8) return false;
  shed_marked_.push_back(ws.id());
  count_outbound_memory_drop();
  return true;
}

void loop_context::shed_outbound() {
  shed_scheduled_ = false;
  for (const connection_id id : shed_marked_) {
    if (websocket* ws = find(id)) ws->shed();
  }
  shed_marked_.clear();
  const std::size_t limit = options().max_outbound_memory;
  const std::size_t target = limit - limit / 8;  // some room, so one shed lasts a while
  std::size_t total = core_->outbound_bytes();
  if (total <= target) return;
  // Largest first: the readers furthest behind free the most and are the
  // least likely to catch up.
  std::vector<std::pair<std::size_t, websocket*>> queues;
  for (const slot& s : slots_) {
    websocket* ws = s.ws;
    if (ws == nullptr || !ws->stream_.write_blocked()) continue;
    if (ws->state_ != websocket::state::open && ws->state_ != websocket::state::closing &&
        ws->state_ != websocket::state::lingering && !ws->http_streaming()) {
      continue;  // a handshake's answer: bounded by the head limits
    }
    queues.emplace_back(ws->stream_.buffered_bytes(), ws);
  }
  std::sort(queues.begin(), queues.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& [size, ws] : queues) {
    if (total <= target) break;
    ws->shed();
    count_outbound_memory_drop();
    total = core_->outbound_bytes();
  }
}

}  // namespace detail

void websocket::shed() {
  if (state_ == state::closed) return;
  // A close frame would queue behind bytes the peer does not read: the queue
  // and the connection go now, and the application hears 1008 (policy).
  const auto code = protocol::to_underlying(protocol::close_code::policy_violation);
  if (close_sent_ == 0) close_sent_ = code;
  state_ = state::closed;
  stream_.close();
  timer_.cancel();
  notify_close(code, "outbound memory limit");
  ctx_->retire(*this);
}

}  // namespace switchboard::server
