// topics.cpp — per-loop pub/sub: each loop keeps its own subscriber lists;
// a publish frames the message once into a shared, immutable buffer and posts
// it to every loop, which writes the same bytes to each of its subscribers.
#include <algorithm>
#include <cassert>
#include <memory>
#include <string>

#include <switchboard/protocol/frame.hpp>
#include <switchboard/server/websocket.hpp>

#include "loop_context.hpp"

namespace switchboard::server {

bool websocket::subscribe(std::string_view topic) {
  if (state_ != state::open) return false;  // nothing would reach it
  return ctx_->subscribe(*this, topic);
}

bool websocket::unsubscribe(std::string_view topic) { return ctx_->unsubscribe(*this, topic); }

namespace detail {

bool loop_context::subscribe(websocket& ws, std::string_view name) {
  auto it = topics_.find(name);
  if (it == topics_.end()) it = topics_.emplace(std::string(name), topic{std::string(name), {}}).first;
  topic* t = &it->second;
  if (!ws.topics_) ws.topics_ = std::make_unique<std::vector<topic*>>();
  auto& mine = *ws.topics_;
  if (std::find(mine.begin(), mine.end(), t) != mine.end()) return false;  // already subscribed
  mine.push_back(t);
  t->subscribers.push_back(&ws);
  return true;
}

namespace {
template <class T>
bool erase_one(std::vector<T>& v, const T& value) noexcept {
  auto it = std::find(v.begin(), v.end(), value);
  if (it == v.end()) return false;
  // Order among subscribers does not matter; each one's messages stay ordered.
  *it = v.back();
  v.pop_back();
  return true;
}
}  // namespace

bool loop_context::unsubscribe(websocket& ws, std::string_view name) {
  auto it = topics_.find(name);
  if (it == topics_.end() || !ws.topics_) return false;
  topic* t = &it->second;
  if (!erase_one(*ws.topics_, t)) return false;
  erase_one(t->subscribers, &ws);
  if (t->subscribers.empty()) topics_.erase(it);
  if (ws.topics_->empty()) ws.topics_.reset();
  return true;
}

void loop_context::unsubscribe_all(websocket& ws) noexcept {
  if (!ws.topics_) return;
  for (topic* t : *ws.topics_) {
    erase_one(t->subscribers, &ws);
    if (t->subscribers.empty()) topics_.erase(t->name);
  }
  ws.topics_.reset();
}

void loop_context::deliver(std::string_view name, std::span<const std::byte> framed) {
  auto it = topics_.find(name);
  if (it == topics_.end()) return;
  // Sends never retire a connection (errors surface on a later iteration), so
  // the list is stable while we walk it; index anyway, for safety.
  auto& subscribers = it->second.subscribers;
  for (std::size_t i = 0; i < subscribers.size(); ++i) subscribers[i]->send_raw(framed);
}

}  // namespace detail

// A framed message shared by every loop it is posted to.
struct published_message {
  std::string topic;
  std::string framed;
};

std::size_t detail::publish_to_loops(detail::server_core& core, std::string_view topic,
                             std::string_view payload, protocol::opcode op) {
  auto message = std::make_shared<published_message>();
  message->topic.assign(topic);
  // Framed once: every subscriber on every loop gets these same bytes.
  protocol::frame_header h;
  h.op = op;
  h.length = payload.size();
  message->framed.resize(protocol::frame_header_size(payload.size(), false));
  protocol::encode_frame_header(h, message->framed.data());
  message->framed.append(payload);
  std::shared_ptr<const published_message> shared = std::move(message);
  std::size_t loops = 0;
  for (auto& ctx : core.contexts) {
    detail::loop_context* c = ctx.get();
    auto deliver = [c, shared] {
      c->deliver(shared->topic, {reinterpret_cast<const std::byte*>(shared->framed.data()),
                                 shared->framed.size()});
    };
    // On its own loop thread a publisher writes at once: its messages then keep
    // their order with its direct sends. Other loops get it through post(),
    // which is FIFO per posting thread, so each publisher's order holds there too.
    if (detail::current_context == c) {
      deliver();
    } else {
      c->loop().post(std::move(deliver));
    }
    ++loops;
  }
  return loops;
}

}  // namespace switchboard::server
