// loop_context.cpp — per-loop server state: accepting, connection slots,
// deferred frees, pools of handshake and reader state, graceful shutdown.
#include "loop_context.hpp"

#include <algorithm>
#include <cassert>
#include <new>
#include <utility>

namespace switchboard::server::detail {

namespace {
// Pool bounds: what an idle loop keeps for the next burst of handshakes or
// messages. Beyond this, returned objects are freed.
constexpr std::size_t k_max_pooled_handshakes = 64;
constexpr std::size_t k_max_pooled_readers = 1024;
// Buffers larger than this are freed, not pooled (one big message or head
// must not pin memory forever).
constexpr std::size_t k_keep_buffer = 64 * 1024;
}  // namespace

loop_context::loop_context(server_core& core, net::event_loop& loop, std::uint32_t index)
    : core_(&core), loop_(&loop), index_(index) {
  gate_ = std::make_shared<post_gate>();
  gate_->loop = &loop;
  free_hook_ = loop_->add_iteration_hook([this] { free_retired(); });
  // A topic batch is written at the latest when the cork flushes, whatever
  // ran last in the iteration.
  loop_->cork().add_flush_hook(&loop_context::flush_batch_hook, this);
  shutdown_timer_.bind<&loop_context::on_shutdown_deadline>(this);
}

loop_context::~loop_context() {
  // REQUIRES: the loop is not running. Connections are dropped without callbacks.
  {
    // Stream handles left with the application stop posting here.
    std::lock_guard lock(gate_->mutex);
    gate_->loop = nullptr;
  }
  loop_->cork().remove_flush_hook(this);
  batch_.t = nullptr;  // its staged bytes go with the cork's next reset
  shutdown_timer_.cancel();
  listener_.reset();
  for (auto& s : slots_) {
    if (s.ws == nullptr) continue;
    websocket* ws = s.ws;
    s.ws = nullptr;
    ws->timer_.cancel();
    ws->stream_.close();
    ws->~websocket();
    ::operator delete(ws);
  }
  free_retired();
  loop_->remove_iteration_hook(free_hook_);
}

const server_options& loop_context::options() const noexcept { return core_->options; }

void loop_context::wake_later(loop_context& target) {
  // A target drained by its own posts meanwhile may come back: once each.
  if (std::find(wake_pending_.begin(), wake_pending_.end(), &target) != wake_pending_.end()) return;
  // Why a deferred task and not a hook: one deferred from a hook (or from a
  // deferred task) still makes the next iteration run at once, so a
  // publication made late in an iteration never waits for an event.
  if (wake_pending_.empty()) loop_->defer([this] { wake_pending(); });
  wake_pending_.push_back(&target);
}

void loop_context::wake_pending() noexcept {
  for (loop_context* target : wake_pending_) target->loop().wake();
  wake_pending_.clear();
}

net::tls_context* loop_context::tls() const noexcept { return core_->options.tls; }

std::error_code loop_context::listen(const net::endpoint& local, bool reuse_port) {
  net::listener_options opts;
  opts.reuse_port = reuse_port;
  // Out of descriptors, a spare one answers queued clients at once instead of
  // leaving them (and health checks) waiting; over TLS they are just closed.
  opts.reserve_descriptor = true;
  if (tls() == nullptr) {
    opts.overload_response =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 24\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        "out of file descriptors\n";
  }
  std::error_code error;
  listener_ = net::tcp_listener::listen(
      *loop_, local, opts,
      [this](net::unique_fd socket, const net::endpoint&) { on_accept(std::move(socket)); },
      error);
  return error;
}

std::uint32_t loop_context::now_ms() const noexcept {
  return static_cast<std::uint32_t>(loop_->now().time_since_epoch().count());
}

void loop_context::on_accept(net::unique_fd socket) {
  std::uint32_t index;
  if (!free_slots_.empty()) {
    index = free_slots_.back();
    free_slots_.pop_back();
  } else {
    index = static_cast<std::uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  // Without user data, no padding: every byte counts for idle connections.
  const std::size_t user = core_->user_data_size;
  void* memory = ::operator new(user == 0 ? sizeof(websocket) : k_user_data_offset + user);
  auto* ws = ::new (memory) websocket(*this, index, slots_[index].generation);
  slots_[index].ws = ws;
  ++live_;
  if (shutting_down_) {
    ws->state_ = websocket::state::closed;
    retire(*ws);
    return;
  }
  if (ws->stream_.open(std::move(socket))) {
    // Registration or TLS state failed (descriptors, memory): nothing to answer with.
    ws->state_ = websocket::state::closed;
    retire(*ws);
    count_handshake_failure(handshake_failure::open_failed, 0);
    return;
  }
  ws->last_receive_ = now_ms();
  // Slowloris: the whole head must arrive within handshake_timeout.
  if (options().handshake_timeout.count() > 0) {
    loop_->timers().schedule(ws->timer_, options().handshake_timeout);
  }
}

websocket* loop_context::find(connection_id id) const noexcept {
  if (id.loop != index_ || id.slot >= slots_.size()) return nullptr;
  const slot& s = slots_[id.slot];
  return s.generation == id.generation ? s.ws : nullptr;
}

void loop_context::retire(websocket& ws) noexcept {
  slot& s = slots_[ws.slot_];
  assert(s.ws == &ws);
  s.ws = nullptr;
  ++s.generation;  // stale connection_ids stop matching
  free_slots_.push_back(ws.slot_);
  --live_;
  ws.timer_.cancel();
  unsubscribe_all(ws);
  retired_.push_back(&ws);
  ws.end_http_streams();  // their on_close: the connection went away
  check_done();
}

void loop_context::free_retired() noexcept {
  // Freed here, after every callback of the iteration, so no callback can be
  // running on a connection that is gone.
  for (websocket* ws : retired_) {
    ws->~websocket();
    ::operator delete(ws);
  }
  retired_.clear();
}

handshake_state* loop_context::acquire_handshake() {
  if (handshakes_.empty()) return new handshake_state(core_->limits);
  handshake_state* hs = handshakes_.back().release();
  handshakes_.pop_back();
  return hs;
}

void loop_context::release_handshake(handshake_state* hs) noexcept {
  std::unique_ptr<handshake_state> owned(hs);
  if (handshakes_.size() >= k_max_pooled_handshakes) return;
  // Streams still referenced by handles: writes are refused from now on
  // (the connection is gone; on_close ran in retire(), or the server is
  // being destroyed and calls nothing).
  for (http_answer& a : hs->answers) {
    if (!a.stream) continue;
    std::lock_guard lock(a.stream->mutex);
    a.stream->gone = true;
  }
  hs->answers.clear();
  hs->parser.reset();
  hs->head.clear();
  hs->start = 0;
  hs->after.clear();
  hs->handler = nullptr;
  hs->route_status = 0;
  hs->head_length = 0;
  hs->body_length = 0;
  hs->head_live = false;
  hs->body_in_after = false;
  hs->upgrade_waiting = false;
  hs->closing = false;
  hs->restart_timer = false;
  hs->next_seq = 0;
  hs->requests = 0;
  if (hs->head.capacity() > k_keep_buffer) std::string().swap(hs->head);
  if (hs->after.capacity() > k_keep_buffer) std::string().swap(hs->after);
  handshakes_.push_back(std::move(owned));
}

namespace {
std::size_t reader_pool(bool streaming, bool allow_rsv1) noexcept {
  return (streaming ? 1 : 0) + (allow_rsv1 ? 2 : 0);
}
// A codec buffer larger than this is freed after its message.
constexpr std::size_t k_keep_codec_buffer = 1024 * 1024;
}  // namespace

protocol::message_reader* loop_context::acquire_reader(bool streaming, bool allow_rsv1) {
  auto& pool = readers_[reader_pool(streaming, allow_rsv1)];
  if (pool.empty()) {
    protocol::reader_options opts;
    opts.role = protocol::role::server;
    opts.max_message_size = options().max_message_size;
    opts.stream = streaming;
    opts.allow_rsv1 = allow_rsv1;
    return new protocol::message_reader(opts);
  }
  protocol::message_reader* reader = pool.back().release();
  pool.pop_back();
  return reader;
}

void loop_context::release_reader(protocol::message_reader* reader) noexcept {
  std::unique_ptr<protocol::message_reader> owned(reader);
  auto& pool = readers_[reader_pool(reader->options().stream, reader->options().allow_rsv1)];
  if (pool.size() >= k_max_pooled_readers) return;
  reader->reset();
  reader->shrink_buffer(k_keep_buffer);
  pool.push_back(std::move(owned));
}

protocol::deflater& loop_context::shared_deflater(std::uint8_t window_bits, std::uint8_t level) {
  for (auto& d : deflaters_) {
    if (d.window_bits == window_bits && d.level == level) return d.deflater;
  }
  // Every message from scratch (no context takeover), so any connection
  // whose agreed window is window_bits can take its output.
  protocol::deflate_options opts;
  opts.window_bits = window_bits;
  opts.level = level;
  opts.no_context_takeover = true;
  // REQUIRES of callers: a reference is used before the next call (the vector may move).
  deflaters_.push_back({window_bits, level, protocol::deflater(opts)});
  return deflaters_.back().deflater;
}

protocol::inflater& loop_context::shared_inflater() {
  if (!inflater_) {
    // Window 15 inflates whatever window the client agreed to.
    protocol::inflate_options opts;
    opts.window_bits = protocol::k_max_window_bits;
    opts.no_context_takeover = true;
    opts.max_message_size = options().max_message_size;
    inflater_ = std::make_unique<protocol::inflater>(opts);
  }
  return *inflater_;
}

void loop_context::trim(std::string& buffer) noexcept {
  buffer.clear();
  if (buffer.capacity() > k_keep_codec_buffer) std::string().swap(buffer);
}

void loop_context::count_handshake_failure(handshake_failure reason, int status) {
  loop_counters::add(counters_.handshake_failures[static_cast<std::size_t>(reason)], 1);
  if (const auto& hook = options().on_handshake_failure) {
    hook(status, handshake_failure_token(reason));
  }
}

void loop_context::begin_shutdown(bool graceful) {
  if (!shutting_down_) {
    shutting_down_ = true;
    if (listener_) listener_->pause();
    if (graceful && options().shutdown_timeout.count() > 0) {
      loop_->timers().schedule(shutdown_timer_, options().shutdown_timeout);
    } else {
      graceful = false;
    }
  }
  const auto code = protocol::to_underlying(options().shutdown_code);
  // Index loop: terminate() retires, which edits slots_ but never resizes it.
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    websocket* ws = slots_[i].ws;
    if (ws == nullptr) continue;
    if (graceful && ws->state_ == websocket::state::open) {
      ws->close(code, "server shutting down");
    } else if (ws->state_ == websocket::state::handshake && ws->stop_http(graceful)) {
      // An idle keep-alive connection closed, or a stream finished.
    } else if (ws->state_ == websocket::state::handshake ||
               ws->state_ == websocket::state::upgrading) {
      ws->drop_handshake(handshake_failure::shutdown);
    } else if (!graceful) {
      ws->terminate();
    }
  }
  check_done();
}

void loop_context::on_shutdown_deadline() { begin_shutdown(false); }

void loop_context::check_done() noexcept {
  if (!shutting_down_ || done_ || live_ != 0) return;
  done_ = true;
  shutdown_timer_.cancel();
  core_->loop_done();
}

}  // namespace switchboard::server::detail
