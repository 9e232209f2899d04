// redis_broker.cpp — the broker shared through Redis (see redis_broker.hpp):
// its connections to each shard, their health, the scripts, start and stop,
// and the public calls, each posted to the broker's loop. The rest of the
// state's work is in the redis_broker_*.cpp files (redis_broker_state.hpp).
#include <openssl/sha.h>

#include <algorithm>

#include "redis_broker_state.hpp"
#include "support.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

std::string redis_broker::state::sha1_hex(std::string_view text) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char b : digest) {
    out.push_back(k_hex[b >> 4]);
    out.push_back(k_hex[b & 15]);
  }
  return out;
}

failure redis_broker::state::unavailable(const shard& s) {
  std::string why = s.cmd->last_error();
  if (s.cmd->ready()) {
    why = s.cmd->saturated() ? s.cmd->url().text + " is not keeping up"
                             : "lost the connection to " + s.cmd->url().text;
  }
  if (why.empty()) why = "not connected to " + s.cmd->url().text;
  return make_failure(errors::broker_unavailable, why);
}

void redis_broker::state::update_health() {
  std::string h;
  for (const auto& s : shards) {
    for (const redis_connection* c : {s->cmd.get(), s->sub.get()}) {
      if (c->ready() || !h.empty()) continue;
      h = "redis " + c->url().text + ": " +
          (c->last_error().empty() ? std::string("connecting") : c->last_error());
    }
  }
  std::lock_guard lock(owner.mutex_);
  if (h != owner.health_ && owner.options_.log) {
    say(h.empty() ? log_level::info : log_level::warn, h.empty() ? "redis: connected" : h);
  }
  owner.health_ = std::move(h);
}

void redis_broker::state::run(shard& s, const script& sc, std::vector<std::string> args,
                              net::unique_function<void(const redisReply*)> done) {
  if (&sc != &publish_script) flush_publishes(s);
  std::vector<std::string_view> argv;
  argv.reserve(args.size() + 2);
  argv.push_back("EVALSHA");
  argv.push_back(sc.sha);
  for (const std::string& a : args) argv.push_back(a);
  redis_connection* conn = s.cmd.get();
  conn->command(argv, [conn, &sc, args = std::move(args),
                       done = std::move(done)](const redisReply* r) mutable {
    if (r && r->type == REDIS_REPLY_ERROR && reply_text(r).starts_with("NOSCRIPT")) {
      std::vector<std::string_view> again;
      again.push_back("EVAL");
      again.push_back(sc.body);
      for (const std::string& a : args) again.push_back(a);
      conn->command(again, std::move(done));
      return;
    }
    done(r);
  });
}

void redis_broker::state::on_cmd_ready(shard& s) {
  // First in the pipe: the EVALSHAs behind them find their scripts (a
  // restarted Redis has none; NOSCRIPT + EVAL would cost a round trip each).
  for (const script* sc : {&publish_script, &read_script, &presence_script}) {
    s.cmd->command({"SCRIPT", "LOAD", sc->body}, [](const redisReply*) {});
  }
  update_health();
  // Recoveries that could not be sent while the command connection was away.
  for (auto& [name, c] : channels) {
    if (c->home == &s) send_recovery(*c);
  }
  // Redis may have restarted empty: put our presence entries back now.
  refresh_presence(&s);
}

void redis_broker::state::on_sub_ready(shard& s) {
  update_health();
  // The server API's control messages travel on one shard (api_shard()).
  if (&s == &api_shard()) s.sub->command({"SUBSCRIBE", control_key()}, [](const redisReply*) {});
  // Node messages (send_node) travel there too.
  if (&s == &api_shard() && !owner.node_id_.empty())
    s.sub->command({"SUBSCRIBE", node_key(owner.node_id_)}, [](const redisReply*) {});
  for (auto& [name, c] : channels) {
    if (c->home == &s) send_subscribe(*c);
  }
}

void redis_broker::state::on_sub_down(shard& s) {
  update_health();
  if (&s == &api_shard() && !owner.node_id_.empty()) events->on_node_messages_lost();
  for (auto& [name, c] : channels) {
    if (c->home != &s) continue;
    c->confirmed = false;
    fail_waiting(*c, unavailable(s));
  }
}

// ---------------------------------------------------------------------------

redis_broker::redis_broker(const realtime_config& config, redis_broker_options options)
    : config_(config), options_(std::move(options)) {}

redis_broker::~redis_broker() {
  stop();
}

std::string redis_broker::start(broker_events& events) {
  if (options_.urls.empty()) return "redis broker: no URL";
  std::vector<redis_url> urls;
  for (const std::string& u : options_.urls) {
    redis_url parsed;
    if (std::string e = parse_redis_url(u, parsed); !e.empty()) return e;
    urls.push_back(std::move(parsed));
  }
  std::error_code ec;
  loop_ = net::event_loop::create(ec);
  if (!loop_) return "redis broker: event loop: " + ec.message();
  state_ = std::make_unique<state>(*this, *loop_);
  state& st = *state_;
  st.events = &events;
  for (std::size_t i = 0; i < urls.size(); ++i) {
    auto s = std::make_unique<state::shard>();
    state::shard* sp = s.get();
    redis_connection::callbacks cmd_cb;
    cmd_cb.on_ready = [&st, sp] { st.on_cmd_ready(*sp); };
    cmd_cb.on_down = [&st](const std::string&) { st.update_health(); };
    s->cmd =
        std::make_unique<redis_connection>(*loop_, urls[i], redis_connection_options{}, cmd_cb);
    redis_connection::callbacks sub_cb;
    sub_cb.on_ready = [&st, sp] { st.on_sub_ready(*sp); };
    sub_cb.on_down = [&st, sp](const std::string&) { st.on_sub_down(*sp); };
    sub_cb.on_message = [&st](std::string_view k, std::string_view p) { st.on_message(k, p); };
    redis_connection_options so;
    so.pubsub = true;
    s->sub = std::make_unique<redis_connection>(*loop_, urls[i], so, sub_cb);
    // 64 points per shard, placed by the URL as written: every node must
    // list the same URLs (in any order) to agree on where a channel lives.
    for (int p = 0; p < 64; ++p) {
      st.ring.emplace_back(stable_hash(options_.urls[i] + "#" + std::to_string(p)), sp);
    }
    st.shards.push_back(std::move(s));
  }
  std::sort(st.ring.begin(), st.ring.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  {
    std::lock_guard lock(mutex_);
    running_ = true;
    health_ = "redis " + urls.front().text + ": connecting";
  }
  loop_->post([&st] {
    for (auto& s : st.shards) {
      s->cmd->start();
      s->sub->start();
    }
  });
  thread_ = std::thread([this] { (void)loop_->run(); });
  return {};
}

void redis_broker::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!running_) return;
    running_ = false;
  }
  state* st = state_.get();
  loop_->post([st, loop = loop_.get()] {
    for (auto& s : st->shards) {
      st->flush_publishes(*s);  // sent if the kernel takes them; answered or failed
      s->cmd->stop();
      s->sub->stop();
    }
    loop->stop();
  });
  if (thread_.joinable()) thread_.join();
  // Connections leave the loop before it goes.
  state_.reset();
}

std::string redis_broker::health() const {
  std::lock_guard lock(mutex_);
  return health_;
}

bool redis_broker::post(net::unique_function<void()> fn) {
  std::lock_guard lock(mutex_);
  if (!running_) return false;
  loop_->post(std::move(fn));
  return true;
}

namespace {
failure stopped_failure() {
  return make_failure(errors::broker_unavailable, "shutting down");
}
}  // namespace

void redis_broker::subscribe_node(std::string_view channel, const namespace_options& ns) {
  post([this, name = std::string(channel), &ns] { state_->subscribe_node(name, ns); });
}

void redis_broker::unsubscribe_node(std::string_view channel) {
  post([this, name = std::string(channel)] { state_->unsubscribe_node(name); });
}

void redis_broker::publish(std::string_view channel, const namespace_options& ns, std::string tail,
                           completion<publish_result> done) {
  auto shared = std::make_shared<completion<publish_result>>(std::move(done));
  if (!post([this, name = std::string(channel), &ns, t = std::move(tail), shared]() mutable {
        state_->publish(name, ns, std::move(t), std::move(*shared));
      })) {
    (*shared)(publish_result{stopped_failure(), {}, 0});
  }
}

void redis_broker::read(std::string_view channel, const namespace_options& ns, read_request request,
                        completion<read_result> done) {
  auto shared = std::make_shared<completion<read_result>>(std::move(done));
  if (!post([this, name = std::string(channel), &ns, rq = std::move(request), shared]() mutable {
        state_->read(name, ns, std::move(rq), std::move(*shared));
      })) {
    (*shared)(state::read_failed(stopped_failure()));
  }
}

void redis_broker::presence_add(std::string_view channel,
                                std::shared_ptr<const presence_entry> entry) {
  post([this, name = std::string(channel), e = std::move(entry)]() mutable {
    state_->presence_add(name, std::move(e));
  });
}

void redis_broker::presence_remove(std::string_view channel, std::string_view client) {
  post([this, name = std::string(channel), c = std::string(client)] {
    state_->presence_remove(name, c);
  });
}

void redis_broker::presence(std::string_view channel, presence_request request,
                            completion<presence_result> done) {
  auto shared = std::make_shared<completion<presence_result>>(std::move(done));
  if (!post([this, name = std::string(channel), rq = std::move(request), shared]() mutable {
        state_->presence(name, std::move(rq), std::move(*shared));
      })) {
    (*shared)(presence_result{stopped_failure(), 0, false, {}, {}});
  }
}

void redis_broker::channels(completion<channels_result> done) {
  auto shared = std::make_shared<completion<channels_result>>(std::move(done));
  if (!post([this, shared] { state_->channels_call(std::move(*shared)); })) {
    (*shared)(channels_result{stopped_failure(), {}});
  }
}

void redis_broker::tick() {
  post([this] { state_->tick(); });
}

void redis_broker::remove_history(std::string_view channel,
                                  completion<std::optional<failure>> done) {
  auto shared = std::make_shared<completion<std::optional<failure>>>(std::move(done));
  if (!post([this, name = std::string(channel), shared] {
        state_->remove_history(name, std::move(*shared));
      })) {
    (*shared)(stopped_failure());
  }
}

void redis_broker::send_control(std::string message, completion<std::optional<failure>> done) {
  auto shared = std::make_shared<completion<std::optional<failure>>>(std::move(done));
  if (!post([this, m = std::move(message), shared] {
        state_->send_control(m, std::move(*shared));
      })) {
    (*shared)(stopped_failure());
  }
}

void redis_broker::publish_node(std::string_view node_id, std::string json) {
  post([this, id = std::string(node_id), j = std::move(json)] { state_->publish_node(id, j); });
}

void redis_broker::send_node(std::string_view node_id, std::string message,
                             completion<node_send_result> done) {
  auto shared = std::make_shared<completion<node_send_result>>(std::move(done));
  if (!post([this, id = std::string(node_id), m = std::move(message), shared] {
        state_->send_node(id, m, std::move(*shared));
      })) {
    if (*shared) (*shared)(node_send_result{stopped_failure(), 0});
  }
}

void redis_broker::nodes(completion<nodes_result> done) {
  auto shared = std::make_shared<completion<nodes_result>>(std::move(done));
  if (!post([this, shared] { state_->nodes(std::move(*shared)); })) {
    (*shared)(nodes_result{stopped_failure(), {}});
  }
}

}  // namespace switchboard::realtime::detail
