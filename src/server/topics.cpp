// topics.cpp — per-loop pub/sub: each loop keeps its own subscriber lists;
// a publish frames the message once into a shared, immutable buffer and posts
// it to every loop, which writes the same bytes to each of its subscribers
// whose subscription position (`after`) the message's sequence passes.
//
// The topic batch. A loop copies each publication once into its cork's
// staging arena. Publications to one topic that follow each other within an
// iteration are held there as a batch, back to back, and written when
// anything could tell the difference — before anything else is written to
// one of the topic's subscribers (a direct send, pong or close frame),
// before a subscription to it changes, before a publication to another
// topic or one written at once, and at the latest when the loop flushes its
// cork — so each subscriber takes the whole batch as one span of its one
// write, its `after` filter and backpressure cap applied per publication,
// exactly as if each had been written when published. Large frames and topics
// with permessage-deflate subscribers are written at once (deliver_now).
#include <algorithm>
#include <cassert>
#include <memory>
#include <string>

#include <switchboard/protocol/frame.hpp>
#include <switchboard/server/websocket.hpp>

#include "loop_context.hpp"

namespace switchboard::server {

bool websocket::subscribe(std::string_view topic, std::uint64_t after) {
  if (state_ != state::open) return false;  // nothing would reach it
  return ctx_->subscribe(*this, topic, after);
}

bool websocket::unsubscribe(std::string_view topic) { return ctx_->unsubscribe(*this, topic); }

namespace detail {

bool loop_context::subscribe(websocket& ws, std::string_view name, std::uint64_t after) {
  auto it = topics_.find(name);
  if (it == topics_.end()) {
    it = topics_.emplace(std::string(name), topic{}).first;
    it->second.name = &it->first;
  }
  topic* t = &it->second;
  if (ws.topics_.contains(t)) return false;  // already subscribed
  // What was published before the subscription is not for it.
  if (batch_.t == t) flush_batch();
  ws.topics_.insert(t);
  t->subscribers.push_back({&ws, after});
  if (ws.deflate_) ++t->deflate_subscribers;
  if (ws.event_stream_) ++t->chunk_subscribers;
  return true;
}

namespace {
// Removes the first element that `matches` by moving the last one into its
// place: order among subscribers does not matter; each one's messages stay ordered.
template <class T, class Pred>
bool erase_one_if(std::vector<T>& v, Pred matches) noexcept {
  auto it = std::find_if(v.begin(), v.end(), matches);
  if (it == v.end()) return false;
  *it = v.back();
  v.pop_back();
  return true;
}

bool erase_one(std::vector<topic_subscriber>& v, const websocket* ws) noexcept {
  return erase_one_if(v, [ws](const topic_subscriber& s) { return s.ws == ws; });
}
}  // namespace

// --- topic_set ---------------------------------------------------------------

bool topic_set::contains(const topic* t) const noexcept {
  if ((bits_ & 1) == 0) return bits_ != 0 && reinterpret_cast<const topic*>(bits_) == t;
  const auto& v = *list();
  return std::find(v.begin(), v.end(), t) != v.end();
}

void topic_set::insert(topic* t) {
  const auto bits = reinterpret_cast<std::uintptr_t>(t);
  assert((bits & 1) == 0);  // a topic is aligned: the low bit is the tag
  if (bits_ == 0) {
    bits_ = bits;
    return;
  }
  if ((bits_ & 1) == 0) {
    auto* v = new std::vector<topic*>{reinterpret_cast<topic*>(bits_), t};
    bits_ = reinterpret_cast<std::uintptr_t>(v) | 1;
    return;
  }
  list()->push_back(t);
}

bool topic_set::erase(const topic* t) noexcept {
  if ((bits_ & 1) == 0) {
    if (bits_ == 0 || reinterpret_cast<const topic*>(bits_) != t) return false;
    bits_ = 0;
    return true;
  }
  auto* v = list();
  if (!erase_one_if(*v, [t](const topic* x) { return x == t; })) return false;
  if (v->size() == 1) {  // back to one inline: the list's memory goes
    bits_ = reinterpret_cast<std::uintptr_t>(v->front());
    delete v;
  }
  return true;
}

void topic_set::clear() noexcept {
  if (bits_ & 1) delete list();
  bits_ = 0;
}

bool loop_context::unsubscribe(websocket& ws, std::string_view name) {
  auto it = topics_.find(name);
  if (it == topics_.end()) return false;
  topic* t = &it->second;
  if (!ws.topics_.contains(t)) return false;
  // What was published before the unsubscription is still for it.
  if (batch_.t == t) flush_batch();
  ws.topics_.erase(t);
  erase_one(t->subscribers, &ws);
  if (ws.deflate_) --t->deflate_subscribers;
  if (ws.event_stream_) --t->chunk_subscribers;
  if (t->subscribers.empty()) topics_.erase(it);
  return true;
}

void loop_context::unsubscribe_all(websocket& ws) noexcept {
  if (ws.topics_.empty()) return;
  flush_batch_if_subscribed(ws);  // the batch's topic may be erased below
  ws.topics_.for_each([&](topic* t) {
    erase_one(t->subscribers, &ws);
    if (ws.deflate_) --t->deflate_subscribers;
    if (ws.event_stream_) --t->chunk_subscribers;
    if (t->subscribers.empty()) topics_.erase(topics_.find(*t->name));
  });
  ws.topics_.clear();
}

namespace {
std::span<const std::byte> as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
}  // namespace

void loop_context::deliver(std::string_view name, protocol::opcode op, std::string_view framed,
                           std::size_t header_size, std::uint64_t sequence) {
  auto it = topics_.find(name);
  if (it == topics_.end()) return;
  topic& t = it->second;
  // sequence > after, with 0 (unsequenced) wrapping to the maximum so it
  // passes every `after`: one unsigned compare per subscriber.
  const std::uint64_t position = sequence - 1;
  // Every subscriber's messages keep their order: a batch of another topic
  // goes out before this publication.
  if (batch_.t != nullptr && batch_.t != &t) flush_batch();
  if (t.deflate_subscribers == 0 && t.chunk_subscribers == 0 &&
      framed.size() < net::tcp_stream::k_direct_write_min) {
    batch(t, framed, position, framed.size() - header_size);
    return;
  }
  if (batch_.t != nullptr) flush_batch();
  deliver_now(t, op, framed, header_size, position);
}

void loop_context::batch(topic& t, std::string_view framed, std::uint64_t position,
                         std::size_t payload_size) {
  const net::staged_bytes staged = loop_->cork().stage(as_bytes(framed));
  if (batch_.t == nullptr) {
    batch_.t = &t;
    batch_.staged = staged;
    batch_.min_position = position;
    batch_.payload_bytes = 0;
  } else {
    // Nothing else is staged while a batch is open (deliver_now flushes it
    // first), so the frames lie back to back.
    assert(staged.offset == batch_.staged.offset + batch_.staged.length);
    batch_.staged.length += staged.length;
    batch_.min_position = std::min(batch_.min_position, position);
  }
  batch_.last_length = staged.length;
  batch_.payload_bytes += payload_size;
  batch_.items.push_back({staged.length, position, payload_size});
}

void loop_context::flush_batch_if_subscribed(const websocket& ws) {
  if (batch_.t == nullptr || ws.topics_.empty()) return;
  if (ws.topics_.contains(batch_.t)) flush_batch();
}

void loop_context::flush_batch() {
  if (batch_.t == nullptr) return;
  // Closed first: what this writes (a close frame for the close policy)
  // must not flush the batch again.
  topic& t = *batch_.t;
  batch_.t = nullptr;
  flushing_items_.swap(batch_.items);
  batch_.items.clear();
  const std::vector<batched_publication>& items = flushing_items_;
  const net::staged_bytes whole = batch_.staged;
  const std::size_t cap = options().max_backpressure;
  // The bytes a message may find queued and still be accepted: the last one
  // is accepted if everything before it left the queue within the cap.
  const std::size_t all_but_last = whole.length - batch_.last_length;
  std::uint64_t sent = 0;
  std::uint64_t bytes = 0;
  // Writes never retire a connection (errors surface on a later iteration),
  // so the list is stable while we walk it; index anyway, for safety.
  for (std::size_t i = 0; i < t.subscribers.size(); ++i) {
    const topic_subscriber& sub = t.subscribers[i];
    websocket& ws = *sub.ws;
    if (ws.state_ != websocket::state::open) continue;  // dropped, as send() drops
    // The usual case, one compare each: every publication passes `after`
    // and fits under the cap.
    if (sub.after <= batch_.min_position && ws.buffered_amount() + all_but_last <= cap) {
      if (ws.write_admitted(whole) != send_status::dropped) {
        sent += items.size();
        bytes += batch_.payload_bytes;
      }
      continue;
    }
    // Publication by publication: runs of accepted ones go out as one span.
    net::staged_bytes run{whole.offset, 0, whole.flush};
    std::uint64_t run_messages = 0;
    std::uint64_t run_bytes = 0;
    std::size_t at = whole.offset;
    auto emit = [&] {
      if (run.length != 0 && ws.write_admitted(run) != send_status::dropped) {
        sent += run_messages;
        bytes += run_bytes;
      }
      run.length = 0;
      run_messages = 0;
      run_bytes = 0;
    };
    for (const batched_publication& p : items) {
      const std::size_t here = at;
      at += p.length;
      if (p.position < sub.after) {  // it already has this one
        emit();
        continue;
      }
      if (ws.state_ != websocket::state::open) break;  // closed for backpressure
      if (ws.buffered_amount() + run.length > cap) {
        emit();
        // Over the cap now: admit_send() counts the drop and, with the close
        // policy, closes (its close frame after what went out).
        if (!ws.admit_send()) continue;
      }
      if (run.length == 0) run.offset = here;
      run.length += p.length;
      ++run_messages;
      run_bytes += p.payload_size;
    }
    emit();
  }
  count_sent(sent, bytes);
}

void loop_context::deliver_now(topic& t, protocol::opcode op, std::string_view framed,
                               std::size_t header_size, std::uint64_t position) {
  const std::string_view payload = framed.substr(header_size);
  // A frame under the stream's direct-write size is staged once in the cork
  // and referred to by every subscriber; larger ones are written at once,
  // from the shared buffer, as any large send is (tcp_stream::k_direct_write_min).
  net::write_cork& cork = loop_->cork();
  net::staged_bytes staged;
  bool is_staged = false;
  auto write_plain = [&](websocket& ws) -> send_status {
    if (framed.size() >= net::tcp_stream::k_direct_write_min) {
      return ws.write_admitted(as_bytes(framed));
    }
    if (!is_staged) {
      staged = cork.stage(as_bytes(framed));
      is_staged = true;
    }
    return ws.write_admitted(staged);
  };
  // Compressed lazily, once per (window, level) that a subscriber needs, with
  // the loop's shared deflater: no context, so any subscriber that agreed to
  // that window can take the same bytes (RFC 7692 §7.1.2.1).
  publish_frames_.clear();
  net::staged_bytes chunk;  // event-stream subscribers' form, staged on first use
  bool chunk_staged = false;
  auto compressed = [&](std::uint8_t bits, std::uint8_t level) -> compressed_frame& {
    for (auto& f : publish_frames_) {
      if (f.window_bits == bits && f.level == level) return f;
    }
    std::string& body = deflate_buffer_;
    body.clear();
    compressed_frame f{bits, level, false, {}, {}, false};
    if (shared_deflater(bits, level).compress(payload, body) == protocol::error::none) {
      protocol::frame_header h;
      h.op = op;
      h.rsv1 = true;  // the message's only frame (RFC 7692 §6.1)
      h.length = body.size();
      f.framed.resize(protocol::frame_header_size(body.size(), false));
      protocol::encode_frame_header(h, f.framed.data());
      f.framed.append(body);
      f.ok = true;
      count_compressed();
    }
    trim(body);
    publish_frames_.push_back(std::move(f));
    return publish_frames_.back();
  };
  // Sends never retire a connection (errors surface on a later iteration), so
  // the list is stable while we walk it; index anyway, for safety.
  auto& subscribers = t.subscribers;
  std::uint64_t sent = 0;  // counted once at the end, not per subscriber
  for (std::size_t i = 0; i < subscribers.size(); ++i) {
    // The subscriber already has it (it caught up on history to `after`).
    if (position < subscribers[i].after) continue;
    websocket* ws = subscribers[i].ws;
    // Not open, or over its backpressure cap (counted; closed by the close
    // policy): nothing is framed, compressed or staged for it.
    if (!ws->admit_send()) continue;
    if (ws->event_stream_) {
      // One HTTP chunk (event_stream.cpp), staged once per loop and call.
      if (payload.empty()) continue;  // an empty chunk would end the body
      send_status status;
      if (payload.size() >= net::tcp_stream::k_direct_write_min) {
        status = ws->write_chunk_admitted(payload);
      } else {
        if (!chunk_staged) {
          chunk = stage_chunk(payload);
          chunk_staged = true;
        }
        status = ws->write_chunk_admitted(chunk);
      }
      if (status != send_status::dropped) ++sent;
      continue;
    }
    if (ws->wants_compression(payload.size())) {
      compressed_frame& f = compressed(ws->deflate_window_, ws->behavior_->compression.level);
      if (f.ok) {
        send_status status;
        if (f.framed.size() >= net::tcp_stream::k_direct_write_min) {
          status = ws->write_admitted(as_bytes(f.framed));
        } else {
          if (!f.is_staged) {
            f.staged = cork.stage(as_bytes(f.framed));
            f.is_staged = true;
          }
          status = ws->write_admitted(f.staged);
        }
        if (status != send_status::dropped) ++sent;
        // The peer's window now holds this message and our dedicated
        // deflater's does not: its next message must not refer back.
        if (ws->deflate_takeover_ && ws->codec_) ws->codec_->deflate.reset();
        continue;
      }
    }
    if (write_plain(*ws) != send_status::dropped) ++sent;
  }
  publish_frames_.clear();
  count_sent(sent, sent * payload.size());
}

}  // namespace detail

// A framed message shared by every loop it is posted to. Everything about
// it lives here, so the task posted to each loop holds two pointers.
struct published_message {
  std::string topic;
  std::string framed;
  std::uint64_t sequence;
  std::size_t header_size;
  protocol::opcode op;
};

std::size_t detail::publish_to_loops(detail::server_core& core, std::string_view topic,
                                     std::string_view payload, protocol::opcode op,
                                     std::uint64_t sequence, bool queued) {
  auto message = std::make_shared<published_message>();
  message->topic.assign(topic);
  message->sequence = sequence;
  message->header_size = protocol::frame_header_size(payload.size(), false);
  message->op = op;
  // Framed once: every subscriber on every loop gets these same bytes.
  protocol::frame_header h;
  h.op = op;
  h.length = payload.size();
  message->framed.resize(message->header_size);
  protocol::encode_frame_header(h, message->framed.data());
  message->framed.append(payload);
  std::shared_ptr<const published_message> shared = std::move(message);
  // This thread's loop, if it runs one of this server's.
  detail::loop_context* const self =
      detail::current_context != nullptr && &detail::current_context->core() == &core
          ? detail::current_context
          : nullptr;
  std::size_t loops = 0;
  for (auto& ctx : core.contexts) {
    detail::loop_context* c = ctx.get();
    auto deliver = [c, shared] {
      c->deliver(shared->topic, shared->op, shared->framed, shared->header_size, shared->sequence);
    };
    static_assert(sizeof(deliver) <= net::task::k_inline_size, "posting must not allocate");
    // On its own loop thread a publisher writes at once: its messages then keep
    // their order with its direct sends. Other loops get it through post(),
    // which is FIFO per posting thread, so each publisher's order holds there too.
    // `queued` sends the own loop's share through its queue as well: then the
    // order of every loop is the order of the posts, whichever thread made them.
    // The hand-off is one queue entry per loop (two pointers; no copy of the
    // message), and the wake-up one per loop per batch: the own loop runs
    // what it posts to itself before its hooks (no eventfd), and from a loop
    // thread the other loops are woken once at the end of its callbacks
    // (wake_later), so every publication of one read of a publisher's socket
    // reaches them with one eventfd write each, and is written to each
    // subscriber there as one batch.
    if (c == self && !queued) {
      deliver();
    } else if (c == self || self == nullptr) {
      c->loop().post(std::move(deliver));
    } else if (c->loop().post_unwoken(std::move(deliver))) {
      self->wake_later(*c);
    }
    ++loops;
  }
  return loops;
}

}  // namespace switchboard::server
