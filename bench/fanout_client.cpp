// fanout_client.cpp — switchboard_fanout's connections: non-blocking connect,
// upgrade with the switchboard.v1 subprotocol, then subscribe and time pushes
// (subscriber) or publish at a paced rate (publisher). See fanout_client.hpp.
#include "fanout_client.hpp"

#include <sys/timerfd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>

#include "ws_client_io.hpp"

namespace switchboard::bench {
namespace {

// Set-ups in flight per loop (connect, upgrade and subscribe): well under the
// server's accept backlog.
constexpr std::size_t k_max_pending_per_loop = 256;
constexpr std::string_view k_subprotocol = "switchboard.v1";
// --compact: the envelope of docs/protocol.md "Compact pushes".
constexpr std::string_view k_subprotocol_compact = "switchboard.v1.compact";
// The publisher's pacing tick. Each tick sends every publication that has
// come due, so rates above 1,000/s go out in bursts of rate / 1,000.
constexpr long k_tick_ns = 1'000'000;
// What a publication's data starts with; the subscriber looks for it.
constexpr std::string_view k_time_key = "\"data\":{\"t\":";
constexpr std::string_view k_message_push = "{\"push\":\"message\"";
constexpr std::string_view k_compact_time_key = "\"d\":{\"t\":";
constexpr std::string_view k_compact_push = "{\"m\":";

void append_number(std::string& out, std::uint64_t value) {
  char digits[24];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  (void)ec;
  out.append(digits, end);
}

}  // namespace

std::int64_t fanout_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void client_counters::merge(const client_counters& o) {
  connect_errors += o.connect_errors;
  protocol_errors += o.protocol_errors;
  closed += o.closed;
  timeouts += o.timeouts;
  refused += o.refused;
  joins += o.joins;
  pings += o.pings;
  late += o.late;
  if (first_error.empty()) first_error = o.first_error;
}

// ---------------------------------------------------------------------------
// client_worker

client_worker::client_worker(net::event_loop& l, const fanout_options& o, fanout_shared& s)
    : loop(l),
      options(o),
      shared(s),
      scratch(protocol::message_writer::max_frame_size(o.pad + 512)) {}

client_worker::~client_worker() = default;

void client_worker::start_all() {
  for (auto& c : connections) queued.push_back(c.get());
  handshake_finished();
}

void client_worker::handshake_finished() {
  while (pending < k_max_pending_per_loop && !queued.empty()) {
    ws_client* next = queued.front();
    queued.pop_front();
    next->start();
  }
}

// ---------------------------------------------------------------------------
// ws_client

ws_client::ws_client(client_worker& w, const net::endpoint* source)
    : w_(w),
      source_(source),
      stream_(w.loop, *this),
      reader_(protocol::reader_options{.role = protocol::role::client,
                                       .max_message_size = 16 * 1024 * 1024}) {
  timer_.bind<&ws_client::on_timer>(this);
  const std::size_t every = w.options.compact_every;
  compact_ = every != 0 && w.made++ % every == 0;
}

ws_client::~ws_client() {
  if (connecting_fd_) w_.loop.remove(connecting_fd_.get(), *this);
}

void ws_client::start() {
  if (w_.shared.stopping.load(std::memory_order_relaxed)) return;
  holds_slot_ = true;
  ++w_.pending;
  net::unique_fd fd = start_connect(w_.options.remote, source_);
  if (!fd) return fail(&client_counters::connect_errors);
  if (w_.loop.add(fd.get(), EPOLLOUT, *this)) return fail(&client_counters::connect_errors);
  connecting_fd_ = std::move(fd);
  state_ = state::connecting;
  w_.loop.timers().schedule(
      timer_, std::chrono::milliseconds(static_cast<long>(w_.options.connect_timeout_s * 1000)));
}

void ws_client::on_events(std::uint32_t /*events*/) {
  w_.loop.remove(connecting_fd_.get(), *this);
  if (!connect_finished(connecting_fd_)) return fail(&client_counters::connect_errors);
  if (stream_.open(std::move(connecting_fd_))) return fail(&client_counters::connect_errors);
  state_ = state::upgrading;
  head_.clear();
  const std::string_view protocols[] = {compact_ ? k_subprotocol_compact : k_subprotocol};
  if (!send_upgrade_request(
          stream_, w_.request, key_,
          {.host = w_.options.host_header, .target = w_.options.target, .protocols = protocols})) {
    return fail(&client_counters::protocol_errors);
  }
}

void ws_client::on_data(net::transport& /*t*/, std::span<std::byte> data) {
  const std::int64_t now = fanout_now_ns();
  if (state_ == state::upgrading) return on_upgrade_bytes(data, now);
  on_frames({reinterpret_cast<char*>(data.data()), data.size()}, now);
}

void ws_client::on_upgrade_bytes(std::span<std::byte> data, std::int64_t now) {
  const std::string_view protocols[] = {compact_ ? k_subprotocol_compact : k_subprotocol};
  std::size_t consumed = 0;
  switch (read_upgrade_response(head_, data, w_.parser, std::string_view(key_.data(), key_.size()),
                                protocols, {}, consumed)) {
    case upgrade_status::need_more:
      return;
    case upgrade_status::failed:
      return fail(&client_counters::protocol_errors);
    case upgrade_status::done:
      break;
  }
  // Frames that came with the 101 are fed to the reader from a mutable copy.
  std::string rest = head_.substr(consumed);
  std::string().swap(head_);
  state_ = state::open;
  on_ready();
  if (!rest.empty() && state_ == state::open) on_frames({rest.data(), rest.size()}, now);
}

void ws_client::on_frames(std::span<char> input, std::int64_t now) {
  const auto on_message = [&](const protocol::reader_event& event) {
    if (event.op != protocol::opcode::text) {
      fail(&client_counters::protocol_errors);
      return false;
    }
    on_text(event.payload, now);
    return state_ == state::open;  // else failed: the reader was reset
  };
  switch (read_frames(reader_, input, w_.writer, stream_, on_message, &w_.counters.pings)) {
    case frames_end::need_more:
    case frames_end::stopped:
      return;
    case frames_end::close:
      return fail(&client_counters::closed);
    case frames_end::error:
      return fail(&client_counters::protocol_errors);
  }
}

void ws_client::send_text(std::string_view payload) {
  const std::size_t room = protocol::message_writer::max_frame_size(payload.size());
  if (w_.scratch.size() < room) w_.scratch.resize(room);
  const std::size_t n = w_.writer.write_message(w_.scratch.data(), protocol::opcode::text, payload);
  stream_.send(std::as_bytes(std::span(w_.scratch.data(), n)));
}

void ws_client::on_close(net::transport& /*t*/, std::error_code /*error*/) {
  fail(&client_counters::closed);
}

void ws_client::on_timer() {
  fail(&client_counters::timeouts);
}

void ws_client::release_slot() {
  timer_.cancel();
  if (!holds_slot_) return;
  holds_slot_ = false;
  --w_.pending;
  w_.loop.defer([&w = w_] { w.handshake_finished(); });
}

void ws_client::fail(std::uint64_t client_counters::*counter) {
  if (state_ == state::failed) return;
  if (!w_.shared.stopping.load(std::memory_order_relaxed)) ++(w_.counters.*counter);
  if (connecting_fd_) {
    w_.loop.remove(connecting_fd_.get(), *this);
    connecting_fd_.reset();
  }
  stream_.close();
  reader_.reset();
  state_ = state::failed;
  release_slot();
  on_failed();
}

// ---------------------------------------------------------------------------
// subscriber

subscriber::subscriber(client_worker& w, const net::endpoint* source,
                       std::vector<std::string> channels, bool subscribe_on_open)
    : ws_client(w, source), channels_(std::move(channels)), subscribe_on_open_(subscribe_on_open) {}

void subscriber::on_ready() {
  w_.shared.opened.fetch_add(1, std::memory_order_relaxed);
  if (subscribe_on_open_) return subscribe();
  release_slot();
}

void subscriber::subscribe() {
  if (!is_open() || subscribing_) return;
  subscribing_ = true;
  std::string command;
  for (std::size_t i = 0; i < channels_.size(); ++i) {
    command.assign("{\"id\":");
    append_number(command, i + 1);
    command.append(",\"cmd\":\"subscribe\",\"channel\":\"");
    command.append(channels_[i]);
    command.append("\"}");
    send_text(command);  // corked: all of them go out in one send
  }
}

void subscriber::on_failed() {
  if (done_) return;
  done_ = true;
  w_.shared.given_up.fetch_add(1, std::memory_order_relaxed);
}

void subscriber::on_text(std::string_view payload, std::int64_t now) {
  if (payload.starts_with(k_message_push) || payload.starts_with(k_compact_push)) {
    return on_delivery(payload, now);
  }
  if (payload.starts_with("{\"push\":")) {
    ++w_.counters.joins;  // join / leave
    return;
  }
  if (payload.starts_with("{\"id\":") && subscribing_ && replies_ < channels_.size()) {
    if (payload.find("\"result\":") == std::string_view::npos) {
      if (w_.counters.first_error.empty()) w_.counters.first_error = std::string(payload);
      return fail(&client_counters::refused);
    }
    if (++replies_ == channels_.size()) {
      done_ = true;
      w_.shared.subscribed.fetch_add(1, std::memory_order_relaxed);
      release_slot();
    }
    return;
  }
  ++w_.counters.protocol_errors;  // nothing else is expected
}

void subscriber::on_delivery(std::string_view payload, std::int64_t now) {
  const bool compact = payload.starts_with(k_compact_push);
  const std::string_view key = compact ? k_compact_time_key : k_time_key;
  const std::size_t at = payload.find(key);
  std::uint64_t t = 0;
  if (at == std::string_view::npos) {
    ++w_.counters.protocol_errors;
    return;
  }
  const char* first = payload.data() + at + key.size();
  if (std::from_chars(first, payload.data() + payload.size(), t).ec != std::errc{}) {
    ++w_.counters.protocol_errors;
    return;
  }
  const auto sent = static_cast<std::int64_t>(t);
  // The step this publication belongs to: the latest one that started by T.
  const std::size_t published = w_.shared.steps_published.load(std::memory_order_acquire);
  std::size_t step = published;
  while (step > 0 && sent < w_.shared.steps[step - 1].start) --step;
  if (step == 0) return;  // not from a measured step (cannot happen)
  --step;
  if (step + 1 < published) ++w_.counters.late;
  const step_plan& plan = w_.shared.steps[step];
  delivery_stats& s = w_.steps[step];
  ++s.delivered;
  w_.step_received[step].fetch_add(1, std::memory_order_relaxed);
  if (now >= plan.window_start && now < plan.window_end) {
    ++s.in_window;
    s.bytes_in_window += payload.size();
  }
  if (sent >= plan.window_start && sent < plan.window_end) {
    s.latency.record(static_cast<std::uint64_t>(std::max<std::int64_t>(now - sent, 0)));
  }
}

// ---------------------------------------------------------------------------
// publisher

publisher::publisher(client_worker& w, std::size_t subscribers)
    : ws_client(w, nullptr), subscribers_(subscribers), ring_(w.options.inflight) {
  pad_.assign(w.options.pad, 'x');
}

publisher::~publisher() {
  if (timer_fd_) w_.loop.remove(timer_fd_.get(), pacer_);
}

void publisher::on_ready() {
  release_slot();
  timer_fd_ = net::unique_fd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  itimerspec spec{};
  spec.it_interval.tv_nsec = k_tick_ns;
  spec.it_value.tv_nsec = k_tick_ns;
  if (!timer_fd_ || ::timerfd_settime(timer_fd_.get(), 0, &spec, nullptr) != 0 ||
      w_.loop.add(timer_fd_.get(), EPOLLIN, pacer_)) {
    return fail(&client_counters::connect_errors);
  }
  ready_.store(true, std::memory_order_release);
}

void publisher::pacer::on_events(std::uint32_t /*events*/) {
  std::uint64_t expirations = 0;
  (void)::read(owner.timer_fd_.get(), &expirations, sizeof expirations);
  owner.on_tick();
}

void publisher::begin_step(std::size_t step) {
  const step_plan& plan = w_.shared.steps[step];
  step_ = step;
  stats_[step].planned = static_cast<std::uint64_t>(
      std::ceil(static_cast<double>(plan.end - plan.start) * plan.rate / 1e9));
  active_ = true;
  on_tick();
}

void publisher::on_tick() {
  if (!active_ || !is_open()) return;
  const step_plan& plan = w_.shared.steps[step_];
  const std::int64_t now = fanout_now_ns();
  if (now < plan.start) return;
  publish_stats& s = stats_[step_];
  const double interval = 1e9 / plan.rate;
  // Publications k = 0, 1, … are meant for start + k × interval.
  const auto due = std::min<std::uint64_t>(
      s.planned, static_cast<std::uint64_t>(static_cast<double>(now - plan.start) / interval) + 1);
  while (s.sent < due && ring_size_ < ring_.size() && !write_blocked()) {
    const std::uint64_t k = s.sent;
    publish_one(step_, k,
                plan.start + static_cast<std::int64_t>(static_cast<double>(k) * interval));
  }
  // What is still unsent at the end stays unsent: the step did not keep up.
  if (now >= plan.end) {
    active_ = false;
    step_finished[step_].store(true, std::memory_order_release);
  }
}

void publisher::publish_one(std::size_t step, std::uint64_t k, std::int64_t t) {
  const fanout_options& o = w_.options;
  bool to_all = o.scenario == fanout_scenario::fanout;
  if (o.scenario == fanout_scenario::channels) {
    to_all = o.publish == publish_target::shared ||
             (o.publish == publish_target::mixed && k % o.shared_every == 0);
  }
  message_.assign("{\"cmd\":\"publish\",\"channel\":\"");
  message_.append(o.ns);
  if (o.scenario == fanout_scenario::fanout) {
    message_.append(":fan");
  } else if (to_all) {
    message_.append(":all");
  } else {
    message_.append(":c");
    append_number(message_, individual_++ % subscribers_);
  }
  message_.append("\",\"data\":{\"t\":");
  append_number(message_, static_cast<std::uint64_t>(t));
  if (!pad_.empty()) {
    message_.append(",\"p\":\"");
    message_.append(pad_);
    message_.push_back('"');
  }
  message_.append("}}");
  const std::size_t slot = (ring_head_ + ring_size_) % ring_.size();
  ring_[slot] = in_flight{static_cast<std::uint32_t>(step),
                          static_cast<std::uint32_t>(to_all ? subscribers_ : 1)};
  ++ring_size_;
  step_sent[step].fetch_add(1, std::memory_order_relaxed);
  publish_stats& s = stats_[step];
  ++s.sent;
  const step_plan& plan = w_.shared.steps[step];
  if (t >= plan.window_start && t < plan.window_end) ++s.sent_in_window;
  send_text(message_);
}

void publisher::on_text(std::string_view payload, std::int64_t /*now*/) {
  if (ring_size_ == 0) {
    ++w_.counters.protocol_errors;  // a reply to nothing
    return;
  }
  const in_flight f = ring_[ring_head_];
  ring_head_ = (ring_head_ + 1) % ring_.size();
  --ring_size_;
  publish_stats& s = stats_[f.step];
  if (payload.starts_with("{\"result\":")) {
    ++s.acked;
    s.expected += f.audience;
    step_expected[f.step].fetch_add(f.audience, std::memory_order_relaxed);
  } else {
    ++s.refused;
    if (w_.counters.first_error.empty()) w_.counters.first_error = std::string(payload);
  }
  step_answered[f.step].fetch_add(1, std::memory_order_release);
  // A reply frees an in-flight slot: send what came due meanwhile.
  if (active_ && ring_size_ + 1 == ring_.size()) on_tick();
}

}  // namespace switchboard::bench
