// client.cpp — realtime::client: the switchboard.v1 client side on
// switchboard::client::websocket_client (see client.hpp for the contract).
//
// The public object is a thin handle: every call posts a task to the loop,
// where detail::client_core does the work. Tasks hold a weak_ptr to the
// core, so one queued when the client is destroyed finds nothing to do.
//
// One connection at a time goes through
//   idle → opening (WebSocket) → authenticating (`connect` sent) → connected
// and back to idle, or to waiting (a reconnect timer) when the application
// still wants a connection. The core owns the reconnect schedule rather than
// websocket_client's, because a connection only counts as made when
// `connect` succeeded, the token must be fetched before each attempt, and an
// authentication failure must stop it.
//
// Reentrancy: websocket_client calls back synchronously from terminate() and
// close() (and may from send()), so after any call into ws_ the connection
// may be gone; `connection_` counts connections to tell a stale one apart.
// Application callbacks only post tasks, so they never re-enter the core.
#include "switchboard/realtime/client.hpp"

#include <simdjson.h>

#include <deque>
#include <map>
#include <unordered_map>
#include <utility>

#include "client_wire.hpp"
#include "switchboard/client/backoff.hpp"
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

namespace ws = ::switchboard::client;

constexpr std::uint16_t k_close_abnormal = 1006;
constexpr std::uint16_t k_close_auth = 4001;

request_error make_error(int code, std::string message) {
  return request_error{code, std::move(message)};
}

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

class client_core {
 public:
  client_core(net::event_loop& loop, client_options options, client_handlers handlers);
  ~client_core();
  client_core(const client_core&) = delete;
  client_core& operator=(const client_core&) = delete;

  void start();
  void stop();
  void reconnect_now();
  void subscribe(std::string channel, subscribe_options options,
                 std::function<void(const subscribe_result&)> done);
  void unsubscribe(std::string channel, std::function<void(const unsubscribe_result&)> done);
  void publish(std::string channel, std::string data,
               std::function<void(const publish_result&)> done);
  void presence(std::string channel, std::function<void(const presence_result&)> done);
  void history(std::string channel, history_options options,
               std::function<void(const history_result&)> done);

  [[nodiscard]] connection_state state() const noexcept {
    return state_.load(std::memory_order_acquire);
  }

 private:
  enum class phase : std::uint8_t { idle, opening, authenticating, connected, closing, waiting };

  // What a reply is handed to: the error (null on success) and `result`.
  using reply_fn = std::function<void(const request_error* error, simdjson::dom::element result)>;
  struct queued_command {
    std::string body;  // the command's fields without "id", braces excluded
    reply_fn done;
  };

  struct subscription {
    std::string channel;
    subscribe_options options;
    std::function<void(const subscribe_result&)> first_done;  // until settled once
    bool has_position = false;
    std::string epoch;
    std::uint64_t offset = 0;      // the highest delivered, or the stream position
    bool subscribed = false;       // pushes are delivered only then
    bool want_history = false;     // the first subscribe starts with `history`
    std::uint64_t generation = 0;  // bumped per (re)subscribe: stale replies are ignored
  };

  // --- connection lifecycle
  void open_attempt();
  void on_open();
  void on_connected(simdjson::dom::element result);
  void on_ws_closed(std::uint16_t code);
  void lost(std::uint16_t code, std::string reason);
  void schedule_reconnect(bool now);
  void on_reconnect_timer();
  void on_phase_timer();
  void drop(std::string reason);
  void set_state(state_event event);
  void report(std::string channel, request_error error);

  // --- commands
  void request(std::string body, reply_fn done);
  void send_command(std::string_view body, reply_fn done);
  void fail_queue(const request_error& error);
  void on_text(std::string_view text);
  void on_push(simdjson::dom::element message);
  bool valid_json(std::string_view text, std::string& minified);

  // --- subscriptions
  void send_subscribe(subscription& sub);
  void send_subscribe_command(subscription& sub);
  void on_subscribe_reply(const std::string& channel, std::uint64_t generation, bool resumed,
                          const request_error* error, simdjson::dom::element result);
  void end_subscription(const std::string& channel, const request_error& error);
  void deliver(subscription& sub, publication pub);
  subscription* find(std::string_view channel);

  net::event_loop& loop_;
  client_options options_;
  client_handlers handlers_;
  ws::backoff backoff_;
  std::unique_ptr<ws::websocket_client> ws_;
  net::timer_node reconnect_timer_;
  net::timer_node phase_timer_;  // connect deadline while opening, heartbeat once connected

  phase phase_ = phase::idle;
  bool wanted_ = false;            // connect() called and not close() since
  bool auth_failed_ = false;       // `connect` got 401: the coming close is final
  bool ping_outstanding_ = false;  // heartbeat sent, no reply yet
  bool retry_now_ = false;         // reconnect(): the next attempt without delay
  std::uint32_t attempt_ = 0;      // attempts since the last successful connect (backoff index)
  std::uint32_t failures_ = 0;     // attempts since then that never got to connected
  std::uint64_t connection_ = 0;   // bumped when a connection ends
  std::uint64_t next_id_ = 1;
  std::uint16_t close_code_ = 0;  // of the current connection, from on_close
  std::string close_reason_;      // from on_close, on_error or drop()
  std::unordered_map<std::uint64_t, reply_fn> pending_;
  std::deque<queued_command> queue_;
  std::map<std::string, subscription, std::less<>> subs_;
  std::atomic<connection_state> state_{connection_state::disconnected};
  simdjson::dom::parser parser_;       // messages from the server
  simdjson::dom::parser data_parser_;  // `data` and `info` from the application
  std::string frame_;                  // reused for each command sent
};

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
  wo.protocols = {"switchboard.v1"};
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
  // What was in flight is recovered with `since` after the reconnect.
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
    set_state(disconnected_event(code, reason));
    report({}, error);
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
    set_state(disconnected_event(code, reason));
    report({}, error);
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

void client_core::on_push(simdjson::dom::element message) {
  const std::string kind = string_field(message, "push");
  const std::string channel = string_field(message, "channel");
  subscription* sub = find(channel);
  // Pushes still in flight after an unsubscribe, or from before a
  // resubscribe's reply (recovery covers those), are dropped.
  if (!sub || !sub->subscribed) return;
  if (kind == "message") {
    deliver(*sub, read_publication(message, channel, sub->epoch));
  } else if (kind == "join" || kind == "leave") {
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

// --- subscriptions ------------------------------------------------------------------------

client_core::subscription* client_core::find(std::string_view channel) {
  const auto it = subs_.find(channel);
  return it == subs_.end() ? nullptr : &it->second;
}

void client_core::send_subscribe(subscription& sub) {
  ++sub.generation;
  sub.subscribed = false;
  if (!sub.want_history) {
    send_subscribe_command(sub);
    return;
  }
  // The latest kept publications first, then a subscribe `since` the
  // position they end at: the server fills anything published in between,
  // so there is no gap and no duplicate, without holding live pushes.
  std::string body = "\"cmd\":\"history\"," + channel_field(sub.channel);
  body.append(",\"limit\":");
  append_uint(body, sub.options.history);
  const std::uint64_t generation = sub.generation;
  const std::string channel = sub.channel;
  send_command(body,
               [this, channel, generation](const request_error* error, simdjson::dom::element r) {
                 subscription* s = find(channel);
                 if (!s || s->generation != generation) return;
                 if (error && error->code == k_error_no_reply)
                   return;  // retried after the reconnect
                 if (error && error->code != 405) {
                   end_subscription(channel, *error);
                   return;
                 }
                 s->want_history = false;
                 if (!error) {
                   const std::string epoch = string_field(r, "epoch");
                   simdjson::dom::array pubs;
                   // An empty history keeps no channel state on the server, so its epoch
                   // may not outlive this reply: subscribe afresh then.
                   if (!r["publications"].get(pubs) && pubs.size() > 0) {
                     s->has_position = true;
                     s->epoch = epoch;
                     s->offset = 0;
                     for (simdjson::dom::element p : pubs)
                       deliver(*s, read_publication(p, channel, epoch));
                     s->offset = uint_field(r, "offset");
                   }
                 }
                 send_subscribe_command(*s);
               });
}

void client_core::send_subscribe_command(subscription& sub) {
  std::string body = "\"cmd\":\"subscribe\"," + channel_field(sub.channel);
  const bool resumed = sub.has_position;
  if (resumed) append_since(body, stream_position{sub.epoch, sub.offset});
  const std::string channel = sub.channel;
  const std::uint64_t generation = sub.generation;
  send_command(body, [this, channel, generation, resumed](const request_error* error,
                                                          simdjson::dom::element r) {
    on_subscribe_reply(channel, generation, resumed, error, r);
  });
}

void client_core::on_subscribe_reply(const std::string& channel, std::uint64_t generation,
                                     bool resumed, const request_error* error,
                                     simdjson::dom::element result) {
  subscription* sub = find(channel);
  if (!sub || sub->generation != generation) return;
  if (error) {
    if (error->code == k_error_no_reply) return;  // subscribed again after the reconnect
    end_subscription(channel, *error);
    return;
  }
  subscribe_result event;
  event.channel = channel;
  event.epoch = string_field(result, "epoch");
  event.offset = uint_field(result, "offset");
  event.resumed = resumed;
  event.recovered = resumed && bool_field(result, "recovered");
  sub->subscribed = true;
  if (event.recovered) {
    sub->epoch = event.epoch;
  } else {
    if (resumed) {
      event.reason = string_field(result, "reason");
      if (event.reason.empty()) event.reason = "not recovered";
    }
    sub->has_position = true;
    sub->epoch = event.epoch;
    sub->offset = event.offset;
  }
  if (handlers_.on_subscribed) handlers_.on_subscribed(event);
  if (sub->first_done) {
    auto done = std::move(sub->first_done);
    sub->first_done = nullptr;
    done(event);
  }
  if (event.recovered) {
    simdjson::dom::array pubs;
    if (!result["publications"].get(pubs)) {
      for (simdjson::dom::element p : pubs) deliver(*sub, read_publication(p, channel, sub->epoch));
    }
  }
}

void client_core::end_subscription(const std::string& channel, const request_error& error) {
  const auto it = subs_.find(channel);
  if (it == subs_.end()) return;
  auto done = std::move(it->second.first_done);
  subs_.erase(it);
  if (done) {
    subscribe_result r;
    r.error = error;
    r.channel = channel;
    done(r);
  } else {
    report(channel, error);
  }
}

void client_core::deliver(subscription& sub, publication pub) {
  if (sub.has_position && pub.epoch != sub.epoch) {
    // The stream started over under us: offsets of the old epoch mean nothing.
    sub.epoch = pub.epoch;
    sub.offset = 0;
    if (handlers_.on_subscribed) {
      subscribe_result event;
      event.channel = sub.channel;
      event.epoch = pub.epoch;
      event.offset = pub.offset > 0 ? pub.offset - 1 : 0;
      event.reason = "epoch changed";
      handlers_.on_subscribed(event);
    }
  } else if (sub.has_position && pub.offset <= sub.offset) {
    return;  // already delivered: the server promises none, the client checks anyway
  }
  sub.has_position = true;
  sub.epoch = pub.epoch;
  sub.offset = pub.offset;
  if (handlers_.on_message) handlers_.on_message(pub);
}

void client_core::subscribe(std::string channel, subscribe_options options,
                            std::function<void(const subscribe_result&)> done) {
  if (find(channel)) {
    if (done) {
      subscribe_result r;
      r.error = make_error(409, "already subscribed: " + channel);
      r.channel = channel;
      done(r);
    }
    return;
  }
  subscription sub;
  sub.channel = channel;
  sub.first_done = std::move(done);
  if (options.since) {
    sub.has_position = true;
    sub.epoch = options.since->epoch;
    sub.offset = options.since->offset;
  } else {
    sub.want_history = options.history > 0;
  }
  sub.options = std::move(options);
  subscription& s = subs_.emplace(channel, std::move(sub)).first->second;
  if (phase_ == phase::connected) send_subscribe(s);
}

void client_core::unsubscribe(std::string channel,
                              std::function<void(const unsubscribe_result&)> done) {
  const auto it = subs_.find(channel);
  if (it == subs_.end()) {
    if (done) done(unsubscribe_result{make_error(404, "not subscribed: " + channel)});
    return;
  }
  auto first_done = std::move(it->second.first_done);
  subs_.erase(it);
  if (first_done) {
    subscribe_result r;
    r.error = make_error(k_error_no_reply, "unsubscribed before the subscribe completed");
    r.channel = channel;
    first_done(r);
  }
  if (phase_ != phase::connected) {
    if (done) done(unsubscribe_result{});
    return;
  }
  send_command("\"cmd\":\"unsubscribe\"," + channel_field(channel),
               [done = std::move(done)](const request_error* error, simdjson::dom::element) {
                 if (!done) return;
                 // Not subscribed on the server (or no connection left): the goal is met.
                 if (!error || error->code == 404 || error->code == k_error_no_reply) {
                   done(unsubscribe_result{});
                 } else {
                   done(unsubscribe_result{*error});
                 }
               });
}

void client_core::publish(std::string channel, std::string data,
                          std::function<void(const publish_result&)> done) {
  std::string value;
  if (!valid_json(data, value)) {
    // A command that is not JSON gets a reply without an id: never send one.
    if (done) {
      publish_result r;
      r.error = make_error(k_error_bad_json, "data is not a JSON value; not sent");
      done(r);
    }
    return;
  }
  std::string body = "\"cmd\":\"publish\"," + channel_field(channel) + ",\"data\":" + value;
  request(std::move(body),
          [done = std::move(done)](const request_error* error, simdjson::dom::element r) {
            if (!done) return;
            publish_result out;
            if (error) {
              out.error = *error;
            } else {
              out.epoch = string_field(r, "epoch");
              out.offset = uint_field(r, "offset");
            }
            done(out);
          });
}

void client_core::presence(std::string channel, std::function<void(const presence_result&)> done) {
  request("\"cmd\":\"presence\"," + channel_field(channel),
          [done = std::move(done), channel](const request_error* error, simdjson::dom::element r) {
            if (!done) return;
            presence_result out;
            out.channel = channel;
            simdjson::dom::array clients;
            if (error) {
              out.error = *error;
            } else if (!r["clients"].get(clients)) {
              for (simdjson::dom::element c : clients)
                out.clients.push_back(read_presence_entry(c));
            }
            done(out);
          });
}

void client_core::history(std::string channel, history_options options,
                          std::function<void(const history_result&)> done) {
  std::string body = "\"cmd\":\"history\"," + channel_field(channel);
  if (options.limit > 0) {
    body.append(",\"limit\":");
    append_uint(body, options.limit);
  }
  if (options.since) append_since(body, *options.since);
  request(std::move(body),
          [done = std::move(done), channel](const request_error* error, simdjson::dom::element r) {
            if (!done) return;
            history_result out;
            out.channel = channel;
            if (error) {
              out.error = *error;
              done(out);
              return;
            }
            out.epoch = string_field(r, "epoch");
            out.offset = uint_field(r, "offset");
            out.recovered = bool_field(r, "recovered");
            out.reason = string_field(r, "reason");
            simdjson::dom::array pubs;
            if (!r["publications"].get(pubs)) {
              for (simdjson::dom::element p : pubs) {
                out.publications.push_back(read_publication(p, channel, out.epoch));
              }
            }
            done(out);
          });
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
