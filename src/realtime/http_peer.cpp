// http_peer.cpp — the shared part of HTTP sessions and SSE streams (see
// http_peer.hpp).
#include "http_peer.hpp"

#include <algorithm>

#include "wire.hpp"

namespace switchboard::realtime::detail {

void http_peer::opened(net::unique_function<void(const failure*)> decided) {
  std::lock_guard lock(cmd_mutex_);
  conn_.http = this;
  sessions_.open(*this, std::move(decided));
}

void http_peer::prepare(local_channel& ch) {
  pending_.push_back(&ch);
  hub_.http_prepare(ch, *this);
}

namespace {
void forget(channel_list& list, const local_channel& ch) {
  const auto it = std::find(list.begin(), list.end(), &ch);
  if (it != list.end()) list.erase(it);
}
}  // namespace

void http_peer::cancel(local_channel& ch) {
  forget(pending_, ch);
  hub_.http_remove(ch, *this, true);
}

bool http_peer::attach(local_channel& ch, std::string_view epoch) {
  return hub_.http_attach(ch, epoch);
}

void http_peer::start(local_channel& ch, std::uint64_t after) {
  forget(pending_, ch);
  hub_.http_start(ch, *this, after);
}

void http_peer::detach(local_channel& ch, bool) { hub_.http_remove(ch, *this); }

void http_peer::close(std::uint16_t code, std::string_view reason) {
  std::lock_guard lock(cmd_mutex_);
  if (closed_.exchange(true, std::memory_order_acq_rel)) return;
  // Reads in flight: their completions see nullptr and leave the hub themselves.
  for (local_channel* ch : pending_) hub_.http_remove(*ch, *this, true);
  while (!pending_.empty()) pending_.erase(pending_.begin());
  sessions_.closed(*this, code, reason);
  on_closed(code, reason);
}

void http_peer::run(net::unique_function<void(peer*)> f) {
  std::lock_guard lock(cmd_mutex_);
  f(closed_.load(std::memory_order_acquire) ? nullptr : this);
}

void http_peer::command(std::string_view line) {
  std::lock_guard lock(cmd_mutex_);
  if (closed_.load(std::memory_order_acquire)) return;
  sessions_.handle(*this, line);
}

void http_peer::refuse_line() {
  std::lock_guard lock(cmd_mutex_);
  if (closed_.load(std::memory_order_acquire)) return;
  // The /ws connection would be closed 1009; a batch line gets an error reply.
  reply_error({}, make_failure(errors::command_too_large));
}

void http_peer::stream_lost(std::string_view) {
  request_close(1012, "channel stream lost: reconnect and subscribe again");
}

void http_peer::request_close(std::uint16_t code, std::string_view reason) {
  std::lock_guard lock(close_mutex_);
  if (close_code_ != 0) return;
  close_code_ = code;
  close_reason_ = reason;
}

bool http_peer::must_close(std::uint16_t& code, std::string& reason) const {
  std::lock_guard lock(close_mutex_);
  if (close_code_ == 0) return false;
  code = close_code_;
  reason.assign(close_reason_);
  return true;
}

void send_http_peer(http_peer& p, const std::string& text) {
  p.run([&text](peer* w) {
    if (w) w->send(text);
  });
}

void close_http_peer(http_peer& p, std::uint16_t code, std::string_view reason) {
  p.close(code, reason);
}

}  // namespace switchboard::realtime::detail
