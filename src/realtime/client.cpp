// client.cpp — realtime::client (client.hpp): the handle, and the core's
// connection lifecycle and command plumbing (client_core.hpp says how they
// fit together; subscriptions and requests are in client_subscriptions.cpp).
#include "switchboard/realtime/client.hpp"

#include <simdjson.h>

#include <utility>

#include "client_core.hpp"
#include "client_wire.hpp"
#include "switchboard/client/url.hpp"

namespace switchboard::realtime {

std::string_view to_string(connection_state state) noexcept {
  switch (state) {
    case connection_state::disconnected:
      return "disconnected";
    case connection_state::connecting:
      return "connecting";
    case connection_state::connected:
      return "connected";
  }
  return "unknown";
}

namespace detail {
namespace {

constexpr std::uint16_t k_close_abnormal = 1006;
constexpr std::uint16_t k_close_auth = 4001;
constexpr std::uint16_t k_close_disconnected = 4003;  // the server API's disconnect

state_event connecting_event(std::uint32_t attempt) {
  state_event e;
  e.state = connection_state::connecting;
  e.attempt = attempt;
  return e;
}

state_event connected_event(std::string client_id, std::string user) {
  state_event e;
  e.state = connection_state::connected;
  e.client_id = std::move(client_id);
  e.user = std::move(user);
  return e;
}

state_event disconnected_event(std::uint16_t code, std::string reason,
                               std::chrono::milliseconds delay = std::chrono::milliseconds{-1}) {
  state_event e;
  e.state = connection_state::disconnected;
  e.code = code;
  e.reason = std::move(reason);
  e.will_reconnect = delay.count() >= 0;
  if (e.will_reconnect) e.delay = delay;
  return e;
}

}  // namespace

client_core::client_core(net::event_loop& loop, client_options options, client_handlers handlers)
    : loop_(loop),
      options_(std::move(options)),
      handlers_(std::move(handlers)),
      backoff_(ws::reconnect_policy{.enabled = true,
                                    .base = options_.backoff_base,
                                    .cap = options_.backoff_cap,
                                    .max_attempts = options_.max_attempts},
               options_.random_seed) {
  reconnect_timer_.bind<&client_core::on_reconnect_timer>(this);
  phase_timer_.bind<&client_core::on_phase_timer>(this);
  ws::client_options wo = options_.websocket;
  if (options_.compact_pushes) {
    wo.protocols = {"switchboard.v1.compact", "switchboard.v1"};
  } else {
    wo.protocols = {"switchboard.v1"};
  }
  wo.reconnect = ws::reconnect_policy{};  // off: reconnecting is decided here
  ws::client_handlers h;
  h.on_open = [this](std::string_view) { on_open(); };
  h.on_message = [this](std::string_view payload, protocol::opcode op) {
    // The protocol is text JSON; the server never sends binary.
    if (op != protocol::opcode::text) {
      report({}, make_error(500, "binary message from the server ignored"));
      return;
    }
    on_text(payload);
  };
  h.on_close = [this](std::uint16_t code, std::string_view reason) {
    close_code_ = code;
    if (close_reason_.empty()) close_reason_ = std::string(reason);
  };
  h.on_error = [this](std::error_code, std::string_view text) {
    if (close_reason_.empty()) close_reason_ = std::string(text);
  };
  h.on_state = [this](const ws::state_change& change) {
    if (change.state == ws::client_state::closed) on_ws_closed(change.code);
  };
  ws_ = std::make_unique<ws::websocket_client>(loop_, std::move(wo), std::move(h));
}

client_core::~client_core() {
  // The websocket_client's destructor closes the socket without callbacks;
  // the timers cancel themselves.
  ws_.reset();
}

// --- connection lifecycle ----------------------------------------------------------

void client_core::start() {
  if (wanted_ && phase_ == phase::waiting) {
    // connect() during a backoff wait: try now.
    reconnect_timer_.cancel();
    open_attempt();
    return;
  }
  if (wanted_) return;
  wanted_ = true;
  auth_failed_ = false;
  attempt_ = 0;
  failures_ = 0;
  if (phase_ == phase::idle) open_attempt();
  // Otherwise a connection is still closing after close(): when it is gone,
  // lost() sees wanted_ and reconnects.
}

void client_core::stop() {
  const bool was_wanted = wanted_;
  wanted_ = false;
  reconnect_timer_.cancel();
  fail_queue(make_error(k_error_no_reply, "client closed"));
  switch (phase_) {
    case phase::opening:
    case phase::authenticating:
    case phase::connected:
      phase_ = phase::closing;
      close_reason_ = "client closed";
      close_code_ = 1000;
      ws_->close(1000, "client closed");  // on_ws_closed() follows, maybe at once
      return;
    case phase::closing:
      return;
    case phase::waiting:
      phase_ = phase::idle;
      [[fallthrough]];
    case phase::idle:
      if (was_wanted) {
        set_state(disconnected_event(1000, "client closed"));
      }
      return;
  }
}

void client_core::reconnect_now() {
  if (!wanted_) return;
  if (phase_ == phase::waiting) {
    reconnect_timer_.cancel();
    open_attempt();
    return;
  }
  if (phase_ == phase::idle || phase_ == phase::closing) return;
  retry_now_ = true;
  drop("reconnect requested");
}

void client_core::open_attempt() {
  phase_ = phase::opening;
  close_code_ = 0;
  close_reason_.clear();
  ping_outstanding_ = false;
  set_state(connecting_event(attempt_ + 1));
  loop_.update_now();
  loop_.timers().schedule(phase_timer_, options_.connect_timeout);
  if (const std::error_code error = ws_->connect(options_.url)) {
    // The URL was checked by client::connect(); this is a failed name lookup
    // or similar, worth retrying.
    phase_timer_.cancel();
    lost(k_close_abnormal, error.message());
  }
}

void client_core::on_open() {
  phase_ = phase::authenticating;
  std::string token = options_.token;
  if (options_.token_provider) {
    try {
      token = options_.token_provider();
    } catch (const std::exception& e) {
      report({}, make_error(k_error_not_sent, std::string("token callback failed: ") + e.what()));
      drop("token callback failed");
      return;
    } catch (...) {
      report({}, make_error(k_error_not_sent, "token callback failed"));
      drop("token callback failed");
      return;
    }
  }
  std::string body = "\"cmd\":\"connect\"";
  if (!token.empty()) {
    body.append(",\"token\":");
    append_json_string(body, token);
  } else if (!options_.info.empty()) {
    std::string info;
    if (!valid_json(options_.info, info)) {
      report({}, make_error(k_error_bad_json, "client_options::info is not JSON; not sent"));
    } else {
      body.append(",\"info\":");
      body.append(info);
    }
  }
  const std::uint64_t connection = connection_;
  // Sent straight away, ahead of the queue: nothing goes before its reply.
  send_command(body, [this, connection](const request_error* error, simdjson::dom::element r) {
    // close() may have come meanwhile: then the connection is closing.
    if (connection != connection_ || phase_ != phase::authenticating) return;
    if (!error) {
      on_connected(r);
    } else if (error->code == 401) {
      // The server closes with 4001 next (the connect deadline covers one
      // that does not); either way the same credentials would fail again.
      auth_failed_ = true;
      close_reason_ = error->message;
    } else {
      report({}, *error);
      drop("connect refused: " + error->message);
    }
  });
}

void client_core::on_connected(simdjson::dom::element result) {
  phase_ = phase::connected;
  attempt_ = 0;
  failures_ = 0;
  const std::uint64_t connection = connection_;
  // Subscriptions first, then what waited: a queued publish may need its
  // subscription, and the server answers in order.
  for (auto& [name, sub] : subs_) {
    send_subscribe(sub);
    if (connection != connection_) return;  // the send failed: the connection is gone
  }
  while (!queue_.empty() && connection == connection_) {
    queued_command c = std::move(queue_.front());
    queue_.pop_front();
    send_command(c.body, std::move(c.done));
  }
  if (connection != connection_) return;
  if (options_.heartbeat_interval.count() > 0) {
    loop_.timers().schedule(phase_timer_, options_.heartbeat_interval);
  } else {
    phase_timer_.cancel();
  }
  set_state(connected_event(string_field(result, "client"), string_field(result, "user")));
}

void client_core::on_ws_closed(std::uint16_t code) {
  if (phase_ == phase::idle || phase_ == phase::waiting) return;
  if (close_code_ != 0) code = close_code_;
  if (code == 0) code = k_close_abnormal;
  std::string reason = std::move(close_reason_);
  close_reason_.clear();
  lost(code, std::move(reason));
}

void client_core::lost(std::uint16_t code, std::string reason) {
  const bool retry_now = std::exchange(retry_now_, false);
  // A connection that got to `connected` and ended is not a failed attempt.
  if (phase_ != phase::connected) ++failures_;
  ++connection_;
  phase_timer_.cancel();
  phase_ = phase::idle;
  ping_outstanding_ = false;

  // Replies that will never come; the queue stays for the next connection.
  auto pending = std::move(pending_);
  pending_.clear();
  const request_error no_reply = make_error(k_error_no_reply, "connection lost before the reply");
  for (auto& [id, done] : pending) done(&no_reply, {});
  // What was in flight is recovered with `since` after the reconnect; what
  // the server subscribed ends with the connection (subscribe_result::by_server).
  std::erase_if(subs_, [](const auto& entry) { return entry.second.by_server; });
  for (auto& [name, sub] : subs_) {
    sub.subscribed = false;
    ++sub.generation;
  }

  if (wanted_ && (code == k_close_auth || auth_failed_)) {
    wanted_ = false;
    const request_error error =
        make_error(k_error_auth, "authentication failed: " +
                                     (reason.empty() ? std::string("closed with 4001") : reason));
    fail_queue(error);
    report({}, error);  // first, as client.hpp says: on_error, then disconnected for good
    set_state(disconnected_event(code, reason));
    return;
  }
  if (wanted_ && code == k_close_disconnected) {
    wanted_ = false;
    const request_error error = make_error(
        k_error_disconnected,
        "disconnected by the server: " + (reason.empty() ? std::string("closed with 4003") : reason));
    fail_queue(error);
    report({}, error);  // first, as client.hpp says: on_error, then disconnected for good
    set_state(disconnected_event(code, reason));
    return;
  }
  if (!wanted_) {
    fail_queue(make_error(k_error_no_reply, "client closed"));
    set_state(disconnected_event(code, reason));
    return;
  }
  if (options_.max_attempts != 0 && failures_ >= options_.max_attempts) {
    wanted_ = false;
    const request_error error =
        make_error(k_error_not_sent,
                   "gave up after " + std::to_string(failures_) +
                       (failures_ == 1 ? " failed attempt: " : " failed attempts: ") + reason);
    fail_queue(error);
    report({}, error);  // first, as client.hpp says: on_error, then disconnected for good
    set_state(disconnected_event(code, reason));
    return;
  }
  // reconnect() asked for a new connection now; otherwise the backoff.
  std::chrono::milliseconds delay{0};
  if (!retry_now) delay = backoff_.delay(attempt_++);
  phase_ = phase::waiting;
  loop_.update_now();
  loop_.timers().schedule(reconnect_timer_, delay);
  set_state(disconnected_event(code, std::move(reason), delay));
}

void client_core::on_reconnect_timer() {
  if (phase_ != phase::waiting || !wanted_) return;
  open_attempt();
}

void client_core::on_phase_timer() {
  switch (phase_) {
    case phase::opening:
    case phase::authenticating:
      drop("connect timeout");
      return;
    case phase::connected: {
      if (ping_outstanding_) {
        drop("heartbeat timeout");
        return;
      }
      ping_outstanding_ = true;
      const std::uint64_t connection = connection_;
      // Any reply proves the connection alive, even an error (a 429).
      send_command("\"cmd\":\"ping\"",
                   [this, connection](const request_error* error, simdjson::dom::element) {
                     if (connection != connection_ || (error && error->code == k_error_no_reply))
                       return;
                     ping_outstanding_ = false;
                   });
      if (connection == connection_) {
        loop_.timers().schedule(phase_timer_, options_.heartbeat_interval);
      }
      return;
    }
    case phase::idle:
    case phase::closing:
    case phase::waiting:
      return;
  }
}

void client_core::drop(std::string reason) {
  close_reason_ = std::move(reason);
  close_code_ = k_close_abnormal;
  ws_->terminate();  // on_ws_closed() runs from inside
}

void client_core::set_state(state_event event) {
  state_.store(event.state, std::memory_order_release);
  if (handlers_.on_state) handlers_.on_state(event);
}

void client_core::report(std::string channel, request_error error) {
  if (handlers_.on_error) handlers_.on_error(error_event{std::move(channel), std::move(error)});
}

// --- commands --------------------------------------------------------------------------

void client_core::request(std::string body, reply_fn done) {
  if (phase_ == phase::connected) {
    send_command(body, std::move(done));
    return;
  }
  if (!wanted_) {
    const request_error e = make_error(k_error_not_sent, "not connected: call connect() first");
    done(&e, {});
    return;
  }
  if (queue_.size() >= options_.max_queued) {
    const request_error e =
        make_error(k_error_not_sent, "not sent: " + std::to_string(queue_.size()) +
                                         " commands already wait for the connection");
    done(&e, {});
    return;
  }
  queue_.push_back(queued_command{std::move(body), std::move(done)});
}

void client_core::send_command(std::string_view body, reply_fn done) {
  const std::uint64_t id = next_id_++;
  frame_.assign("{\"id\":");
  append_uint(frame_, id);
  frame_.push_back(',');
  frame_.append(body);
  frame_.push_back('}');
  pending_.emplace(id, std::move(done));
  const std::uint64_t connection = connection_;
  if (ws_->send_text(frame_) == ws::send_status::dropped && connection == connection_) {
    // Over the send buffer cap or not open: this connection cannot carry
    // commands any more.
    drop("send failed");
  }
}

void client_core::fail_queue(const request_error& error) {
  auto queue = std::move(queue_);
  queue_.clear();
  for (auto& c : queue) c.done(&error, {});
}

void client_core::on_text(std::string_view text) {
  simdjson::dom::element message;
  if (parser_.parse(text.data(), text.size()).get(message) || !message.is_object()) {
    report({}, make_error(500, "a message from the server is not a JSON object"));
    return;
  }
  if (message["push"].error() == simdjson::SUCCESS) {
    on_push(message);
    return;
  }
  if (message["m"].error() == simdjson::SUCCESS) {  // a compact publication push
    on_compact_push(message);
    return;
  }
  std::uint64_t id = 0;
  if (message["id"].get(id)) return;  // a reply to nothing we sent
  const auto it = pending_.find(id);
  if (it == pending_.end()) return;
  reply_fn done = std::move(it->second);
  pending_.erase(it);
  simdjson::dom::element error;
  if (message["error"].get(error) == simdjson::SUCCESS) {
    const request_error e = read_error(error);
    done(&e, {});
    return;
  }
  simdjson::dom::element result;
  if (message["result"].get(result)) {
    const request_error e = make_error(500, "a reply without result or error");
    done(&e, {});
    return;
  }
  done(nullptr, result);
}

void client_core::on_compact_push(simdjson::dom::element message) {
  // {"m":CHANNEL,"o":N,"d":…[,"c":…][,"u":…]}: no epoch, the subscription's.
  const std::string channel = string_field(message, "m");
  subscription* sub = find(channel);
  // As for full pushes: dropped after an unsubscribe or before the reply.
  if (!sub || !sub->subscribed) return;
  deliver(*sub, read_publication(message, channel, sub->epoch));
}

void client_core::on_push(simdjson::dom::element message) {
  const std::string kind = string_field(message, "push");
  const std::string channel = string_field(message, "channel");
  subscription* sub = find(channel);
  if (kind == "subscribe") {  // the server subscribed us (server API, connect hook)
    if (sub || channel.empty()) return;  // ours already: the server skips those too
    subscription& s = subs_[channel];
    s.channel = channel;
    s.by_server = true;
    s.subscribed = true;
    s.has_position = true;
    s.epoch = string_field(message, "epoch");
    s.offset = uint_field(message, "offset");
    if (handlers_.on_subscribed) {
      subscribe_result event;
      event.channel = channel;
      event.epoch = s.epoch;
      event.offset = s.offset;
      event.by_server = true;
      handlers_.on_subscribed(event);
    }
    return;
  }
  if (kind == "unsubscribe") {  // the server ended it (a refresh without the grant, the API)
    if (!sub) return;
    std::string reason = string_field(message, "reason");
    end_subscription(channel, make_error(k_error_unsubscribed,
                                         "unsubscribed by the server" +
                                             (reason.empty() ? std::string() : ": " + reason)));
    return;
  }
  // Pushes still in flight after an unsubscribe, or from before a
  // resubscribe's reply (recovery covers those), are dropped.
  if (!sub || !sub->subscribed) return;
  if (kind == "message") {
    deliver(*sub, read_publication(message, channel, sub->epoch));
  } else if (kind == "presence") {
    // One push per server tick: the channel's count and the net joins and
    // leaves since the last one (none past presence_max_members: counts only).
    if (!handlers_.on_presence) return;
    std::uint64_t count = 0;
    const bool has_count = message["count"].get(count) == simdjson::SUCCESS;
    bool any = false;
    for (const auto& [key, what] : {std::pair{"joins", presence_event::kind::join},
                                    std::pair{"leaves", presence_event::kind::leave}}) {
      simdjson::dom::array list;
      if (message[key].get(list) != simdjson::SUCCESS) continue;
      for (simdjson::dom::element entry : list) {
        presence_event e;
        e.what = what;
        e.channel = channel;
        e.count = count;
        e.who = read_presence_entry(entry);
        handlers_.on_presence(e);
        any = true;
      }
    }
    if (!any && has_count) {
      presence_event e;
      e.what = presence_event::kind::count;
      e.channel = channel;
      e.count = count;
      handlers_.on_presence(e);
    }
  } else if (kind == "join" || kind == "leave") {  // servers before 0.2's coalesced pushes
    if (!handlers_.on_presence) return;
    presence_event e;
    e.what = kind == "join" ? presence_event::kind::join : presence_event::kind::leave;
    e.channel = channel;
    simdjson::dom::element info;
    if (message["info"].get(info) == simdjson::SUCCESS) e.who = read_presence_entry(info);
    handlers_.on_presence(e);
  }
}

bool client_core::valid_json(std::string_view text, std::string& minified) {
  simdjson::dom::element e;
  if (data_parser_.parse(text.data(), text.size()).get(e)) return false;
  minified = simdjson::minify(e);
  return true;
}

}  // namespace detail

// --- the handle ------------------------------------------------------------------------------

client::client(client_options options, client_handlers handlers)
    : url_(options.url), has_tls_(options.websocket.tls != nullptr) {
  own_loop_ = net::event_loop::create(loop_error_);
  if (!own_loop_) return;
  loop_ = own_loop_.get();
  core_ = std::make_shared<detail::client_core>(*loop_, std::move(options), std::move(handlers));
  thread_ = std::thread([loop = loop_] { (void)loop->run(); });
}

client::client(net::event_loop& loop, client_options options, client_handlers handlers)
    : url_(options.url),
      has_tls_(options.websocket.tls != nullptr),
      loop_(&loop),
      core_(std::make_shared<detail::client_core>(loop, std::move(options), std::move(handlers))) {}

client::~client() {
  if (thread_.joinable()) {
    loop_->stop();
    thread_.join();
  }
  // Tasks still queued hold weak pointers: they find nothing once this is gone.
  core_.reset();
}

namespace {

// Runs `fn(core)` on the loop, if the core still exists then.
template <class Fn>
void post_to(net::event_loop* loop, const std::shared_ptr<detail::client_core>& core, Fn fn) {
  if (!loop || !core) return;
  loop->post([weak = std::weak_ptr<detail::client_core>(core), fn = std::move(fn)]() mutable {
    if (auto c = weak.lock()) fn(*c);
  });
}

}  // namespace

std::error_code client::connect() {
  if (!core_) return loop_error_;
  // What the URL alone tells is final (it cannot change); the rest is retried.
  ::switchboard::client::url parsed;
  if (auto error = ::switchboard::client::parse_url(url_, parsed)) return error;
  if (parsed.secure && !has_tls_) return ::switchboard::client::client_error::tls_not_supported;
  post_to(loop_, core_, [](detail::client_core& c) { c.start(); });
  return {};
}

void client::close() {
  post_to(loop_, core_, [](detail::client_core& c) { c.stop(); });
}

void client::reconnect() {
  post_to(loop_, core_, [](detail::client_core& c) { c.reconnect_now(); });
}

void client::subscribe(std::string channel, subscribe_options options,
                       std::function<void(const subscribe_result&)> done) {
  post_to(loop_, core_,
          [channel = std::move(channel), options = std::move(options),
           done = std::move(done)](detail::client_core& c) mutable {
            c.subscribe(std::move(channel), std::move(options), std::move(done));
          });
}

void client::unsubscribe(std::string channel, std::function<void(const unsubscribe_result&)> done) {
  post_to(loop_, core_,
          [channel = std::move(channel), done = std::move(done)](detail::client_core& c) mutable {
            c.unsubscribe(std::move(channel), std::move(done));
          });
}

void client::publish(std::string channel, std::string data,
                     std::function<void(const publish_result&)> done) {
  post_to(loop_, core_,
          [channel = std::move(channel), data = std::move(data),
           done = std::move(done)](detail::client_core& c) mutable {
            c.publish(std::move(channel), std::move(data), std::move(done));
          });
}

void client::presence(std::string channel, std::function<void(const presence_result&)> done) {
  post_to(loop_, core_,
          [channel = std::move(channel), done = std::move(done)](detail::client_core& c) mutable {
            c.presence(std::move(channel), std::move(done));
          });
}

void client::history(std::string channel, history_options options,
                     std::function<void(const history_result&)> done) {
  post_to(loop_, core_,
          [channel = std::move(channel), options = std::move(options),
           done = std::move(done)](detail::client_core& c) mutable {
            c.history(std::move(channel), std::move(options), std::move(done));
          });
}

connection_state client::state() const noexcept {
  return core_ ? core_->state() : connection_state::disconnected;
}

}  // namespace switchboard::realtime
