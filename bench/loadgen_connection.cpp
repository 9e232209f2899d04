// loadgen_connection.cpp — a switchboard_loadgen connection: non-blocking
// connect, TLS handshake (wss://), upgrade, then echo / connect-storm / idle
// traffic (see loadgen.cpp for the timeline, loadgen_connection.hpp for TLS).
#include "loadgen_connection.hpp"

#include <openssl/ssl.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "switchboard/net/tls_error.hpp"
#include "ws_client_io.hpp"

namespace switchboard::bench {
namespace {

using namespace std::chrono_literals;

// Handshakes in flight per loop: well under the usual accept backlog (1024+).
constexpr std::size_t k_max_pending_per_loop = 256;
// How long a connect-storm connection waits for the server to close TCP.
constexpr auto k_close_timeout = 2000ms;
// Delay before a connect-storm connection retries after a failure.
constexpr auto k_retry_delay = 10ms;
// Different JSON messages per loop (--payload json), sent in turn.
constexpr std::size_t k_json_payloads = 64;

}  // namespace

worker::worker(net::event_loop& l, const loadgen_options& o, shared_state& s, std::uint32_t index,
               std::unique_ptr<net::tls_context> tls_context)
    : loop(l),
      options(o),
      shared(s),
      tls(std::move(tls_context)),
      payloads(o.payload == payload_kind::json
                   ? make_json_payloads(o.size, k_json_payloads, 1 + index)
                   : std::vector<std::string>{std::string(o.size, 'x')}),
      op(o.payload == payload_kind::json ? protocol::opcode::text : protocol::opcode::binary),
      offer(client_offer(o.offer)),
      offer_header(protocol::write_deflate_offer(offer)),
      scratch(protocol::message_writer::max_frame_size(o.size) + 256) {}

worker::~worker() = default;

client_connection::client_connection(worker& w, const net::endpoint* source)
    : w_(w),
      source_(source),
      stream_(w.loop, *this, w.tls.get()),
      reader_(protocol::reader_options{.role = protocol::role::client,
                                       .max_message_size = 1ULL << 30,
                                       .allow_rsv1 = w.options.deflate}),
      sent_at_(w.options.inflight),
      sent_index_(w.options.inflight) {
  timer_.bind<&client_connection::on_timer>(this);
}

client_connection::~client_connection() {
  if (connecting_fd_) w_.loop.remove(connecting_fd_.get(), *this);
}

void worker::start_all() {
  for (auto& c : connections) queued.push_back(c.get());
  handshake_finished();
}

void worker::handshake_finished() {
  while (pending < k_max_pending_per_loop && !queued.empty()) {
    client_connection* next = queued.front();
    queued.pop_front();
    next->start();
  }
}

void worker::start_traffic() {
  traffic = true;
  const std::int64_t now = now_ns();
  for (auto& c : connections) c->start_traffic(now);
}

void client_connection::start_traffic(std::int64_t now) {
  if (state_ != state::open || w_.options.mode != load_mode::echo) return;
  for (std::size_t i = 0; i < w_.options.inflight; ++i) send_message(now);
}

void client_connection::start() {
  if (w_.shared.stopping.load(std::memory_order_relaxed)) return;
  if (!holds_slot_ && w_.options.mode != load_mode::connect_storm) {
    holds_slot_ = true;
    ++w_.pending;
  }
  net::unique_fd fd = start_connect(w_.options.remote, source_);
  if (!fd) return fail(&loop_stats::connect_errors);
  if (w_.loop.add(fd.get(), EPOLLOUT, *this)) return fail(&loop_stats::connect_errors);
  connecting_fd_ = std::move(fd);
  state_ = state::connecting;
  w_.loop.timers().schedule(
      timer_, std::chrono::milliseconds(static_cast<long>(w_.options.connect_timeout_s * 1000)));
}

void client_connection::on_events(std::uint32_t /*events*/) {
  w_.loop.remove(connecting_fd_.get(), *this);
  if (!connect_finished(connecting_fd_)) return fail(&loop_stats::connect_errors);
  // TLS: the ClientHello goes out now; the certificate must name the URL's address.
  if (auto error = stream_.open(std::move(connecting_fd_), w_.options.server_name)) {
    if (stream_.is_tls() && w_.first_tls_error.empty()) {
      const std::string_view text = stream_.last_error_text();
      w_.first_tls_error = text.empty() ? error.message() : std::string(text);
    }
    return fail(stream_.is_tls() ? &loop_stats::tls_errors : &loop_stats::connect_errors);
  }
  if (stream_.is_tls()) {
    state_ = state::tls_handshake;  // on_handshake goes on
    return;
  }
  on_connected();
}

void client_connection::on_handshake(net::transport& t) {
  ++w_.stats.tls_handshakes_total;
  if (in_window(now_ns())) ++w_.stats.tls_handshakes;
  if (w_.stats.tls_version.empty()) {
    w_.stats.tls_version = std::string(t.protocol_version());
    if (const SSL* ssl = t.tls() != nullptr ? t.tls()->native_ssl() : nullptr) {
      if (const char* cipher = SSL_get_cipher_name(ssl)) w_.stats.tls_cipher = cipher;
    }
  }
  on_connected();
}

void client_connection::on_connected() {
  if (w_.options.raw) return on_open(now_ns());
  state_ = state::upgrading;
  head_.clear();
  const std::string_view extensions = w_.options.deflate ? w_.offer_header.view() : "";
  if (!send_upgrade_request(stream_, w_.request, key_,
                            {.host = w_.options.host_header,
                             .target = w_.options.target,
                             .extensions = extensions})) {
    return fail(&loop_stats::protocol_errors);
  }
}

void client_connection::on_data(net::transport& /*t*/, std::span<std::byte> data) {
  const std::int64_t now = now_ns();
  if (state_ == state::upgrading) return on_upgrade_bytes(data, now);
  w_.stats.wire_in += data.size();
  if (w_.options.raw) return on_raw_bytes(data.size(), now);
  on_frames({reinterpret_cast<char*>(data.data()), data.size()}, now);
}

void client_connection::on_upgrade_bytes(std::span<std::byte> data, std::int64_t now) {
  const std::string_view offered[] = {protocol::k_permessage_deflate};
  const auto offered_extensions =
      w_.options.deflate ? std::span(offered) : std::span<const std::string_view>();
  std::size_t consumed = 0;
  switch (read_upgrade_response(head_, data, w_.parser, std::string_view(key_.data(), key_.size()),
                                {}, offered_extensions, consumed)) {
    case upgrade_status::need_more:
      return;
    case upgrade_status::failed:
      return fail(&loop_stats::protocol_errors);
    case upgrade_status::done:
      break;
  }
  if (w_.options.deflate) {
    if (deflate_.negotiate(w_.parser.head(), w_.offer) != protocol::error::none) {
      return fail(&loop_stats::protocol_errors);
    }
    if (deflate_.active()) ++w_.stats.deflate_agreed;
  }
  ++w_.stats.upgrades;
  // Frames that came with the 101 are fed to the reader from a mutable copy.
  const std::size_t rest = head_.size() - consumed;
  std::memcpy(w_.scratch.data(), head_.data() + consumed, std::min(rest, w_.scratch.size()));
  std::string().swap(head_);
  w_.stats.wire_in += rest;
  on_open(now);
  if (rest > 0 && state_ == state::open) on_frames({w_.scratch.data(), rest}, now);
}

void client_connection::on_open(std::int64_t now) {
  timer_.cancel();
  state_ = state::open;
  if (holds_slot_) {
    holds_slot_ = false;
    --w_.pending;
    w_.loop.defer([&w = w_] { w.handshake_finished(); });
  }
  switch (w_.options.mode) {
    case load_mode::echo:
      count_open();
      // Traffic waits until every connection is open, so handshakes never compete with it.
      if (w_.traffic) start_traffic(now);
      break;
    case load_mode::idle:
      // Open once its --idle-messages echoes are back: then it is idle for good.
      if (idle_echoes_ >= w_.options.idle_messages) {
        count_open();
      } else {
        send_message(now);
      }
      break;
    case load_mode::connect_storm: {
      count_open();
      if (in_window(now)) ++w_.stats.handshakes;
      state_ = state::closing;
      const std::size_t n = w_.writer.write_close(w_.scratch.data(), 1000);
      stream_.send(std::as_bytes(std::span(w_.scratch.data(), n)));
      w_.loop.timers().schedule(timer_, k_close_timeout);
      break;
    }
  }
}

void client_connection::count_open() {
  if (counted_open_) return;
  counted_open_ = true;
  w_.shared.established.fetch_add(1, std::memory_order_relaxed);
}

void client_connection::send_message(std::int64_t now) {
  if (ring_size_ == sent_at_.size()) return;  // REQUIRES-like guard: never more than K in flight
  const std::size_t index = next_payload_++ % w_.payloads.size();
  const std::string& payload = w_.payloads[index];
  const std::size_t slot = (ring_head_ + ring_size_) % sent_at_.size();
  sent_at_[slot] = now;
  sent_index_[slot] = static_cast<std::uint32_t>(index);
  ++ring_size_;
  w_.stats.payload_out += payload.size();
  if (w_.options.raw) {
    w_.stats.wire_out += payload.size();
    stream_.send(std::as_bytes(std::span(payload)));
    return;
  }
  std::string_view body = payload;
  const bool compress = deflate_.active();
  if (compress) {
    if (deflate_.compress(payload, w_.codecs) != protocol::error::none) {
      return fail(&loop_stats::protocol_errors);
    }
    body = w_.codecs.compressed;
  }
  const std::size_t room = protocol::message_writer::max_frame_size(body.size());
  if (w_.scratch.size() < room) w_.scratch.resize(room);  // deflate may expand
  char* frame = w_.scratch.data();
  const std::size_t n = w_.writer.write_message(frame, w_.op, body, 0, compress);
  w_.stats.wire_out += n;
  stream_.send(std::as_bytes(std::span(frame, n)));
}

// A data message: inflate it if compressed, check it is the echo of the oldest
// message in flight, then count it.
void client_connection::on_message(const protocol::reader_event& event, std::int64_t now) {
  std::string_view body = event.payload;
  if (event.compressed) {
    if (!deflate_.active()) return fail(&loop_stats::protocol_errors);  // RSV1 not agreed
    ++w_.stats.compressed_in;
    if (deflate_.inflate(body, event.op == protocol::opcode::text, w_.codecs) !=
        protocol::error::none) {
      return fail(&loop_stats::protocol_errors);
    }
    body = w_.codecs.inflated;
  }
  w_.stats.payload_in += body.size();
  if (ring_size_ == 0 || event.op != w_.op || body != w_.payloads[sent_index_[ring_head_]]) {
    return fail(&loop_stats::mismatches);
  }
  if (w_.options.mode == load_mode::echo) return on_echo(now);
  if (w_.options.mode != load_mode::idle) return;
  ring_head_ = (ring_head_ + 1) % sent_at_.size();
  --ring_size_;
  if (++idle_echoes_ < w_.options.idle_messages) return send_message(now);
  count_open();
}

void client_connection::on_echo(std::int64_t now) {
  ++w_.stats.echoes;
  if (ring_size_ > 0) {
    const std::int64_t sent = sent_at_[ring_head_];
    ring_head_ = (ring_head_ + 1) % sent_at_.size();
    --ring_size_;
    if (in_window(now)) {
      ++w_.stats.messages;
      w_.stats.latency.record(static_cast<std::uint64_t>(std::max<std::int64_t>(now - sent, 0)));
    }
  }
  if (!w_.shared.stopping.load(std::memory_order_relaxed)) send_message(now);
}

void client_connection::on_raw_bytes(std::size_t bytes, std::int64_t now) {
  raw_partial_ += bytes;
  while (raw_partial_ >= w_.options.size) {
    raw_partial_ -= w_.options.size;
    w_.stats.payload_in += w_.options.size;
    on_echo(now);
  }
}

void client_connection::on_frames(std::span<char> input, std::int64_t now) {
  const auto on_data_message = [&](const protocol::reader_event& event) {
    on_message(event, now);
    return state_ == state::open;  // else failed: the reader was reset
  };
  switch (read_frames(reader_, input, w_.writer, stream_, on_data_message)) {
    case frames_end::need_more:
    case frames_end::stopped:
      return;
    case frames_end::close:
      // connect-storm: the server answered our close; it closes TCP next (RFC 6455 §7.1.1).
      if (state_ != state::closing) return fail(&loop_stats::closed_early);
      return;
    case frames_end::error:
      return fail(&loop_stats::protocol_errors);
  }
}

void client_connection::on_close(net::transport& t, std::error_code error) {
  if (state_ == state::closing) {
    // TLS: the server's close_notify ({}) or a plain end of TCP (unexpected_eof) alike.
    // A full connect / upgrade / close cycle; go again.
    timer_.cancel();
    if (in_window(now_ns())) ++w_.stats.cycles;
    reader_.reset();
    state_ = state::idle;
    return start();
  }
  // A TLS failure (handshake, certificate, bad record) other than a bare end of TCP.
  if (error.category() == net::tls_category() && error != net::tls_failure::unexpected_eof) {
    if (w_.first_tls_error.empty()) {
      const std::string_view text = t.last_error_text();
      w_.first_tls_error = text.empty() ? error.message() : std::string(text);
    }
    return fail(&loop_stats::tls_errors);
  }
  fail(&loop_stats::closed_early);
}

void client_connection::on_timer() {
  if (state_ == state::retry_wait) {
    state_ = state::idle;
    return start();
  }
  if (state_ == state::closing) {
    // The server did not close TCP after the close handshake: give up on it and go on.
    ++w_.stats.timeouts;
    stream_.close();
    reader_.reset();
    state_ = state::idle;
    return start();
  }
  fail(&loop_stats::timeouts);
}

void client_connection::fail(std::uint64_t loop_stats::*counter) {
  const bool stopping = w_.shared.stopping.load(std::memory_order_relaxed);
  if (!stopping) ++(w_.stats.*counter);
  timer_.cancel();
  if (connecting_fd_) {
    w_.loop.remove(connecting_fd_.get(), *this);
    connecting_fd_.reset();
  }
  stream_.close();
  reader_.reset();
  deflate_.reset();
  ring_size_ = 0;
  raw_partial_ = 0;
  state_ = state::idle;
  if (w_.options.mode == load_mode::connect_storm) {
    // Keep storming: retry shortly, never from inside this call (bounded recursion).
    state_ = state::retry_wait;
    w_.loop.timers().schedule(timer_, k_retry_delay);
    return;
  }
  if (holds_slot_) {
    holds_slot_ = false;
    --w_.pending;
    w_.loop.defer([&w = w_] { w.handshake_finished(); });
  }
  if (!counted_open_ && !stopping) {
    counted_open_ = true;  // never opened: tell main() not to wait for it
    w_.shared.given_up.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace switchboard::bench
