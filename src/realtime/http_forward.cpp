// http_forward.cpp — the HTTP transports' side of sessions across nodes
// (session_forward.hpp): requests for a session held by another node sent
// there, requests of other nodes served here, and relayed streams.
#include <algorithm>
#include <tuple>

#include "broker.hpp"
#include "event_id.hpp"
#include "http_session.hpp"
#include "http_transports.hpp"
#include "sse_wire.hpp"
#include "support.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

namespace {

// How long a forwarded request waits for the home node's answer: its own
// work is quick; a poll is held there up to sse.poll_timeout first.
constexpr std::uint64_t k_forward_timeout_ms = 5000;
// How long a request is sent again while no node listens under the session's
// node id before the session is taken for gone: a live node's subscription
// to its id comes back within this after Redis drops its pub/sub connection.
constexpr std::uint64_t k_gone_after_ms = 2000;

void json_answer(server::http_response& res, int status, std::string_view message) {
  res.set_status(status);
  res.set_content_type("application/json");
  res.set_body(http_error_body(status, message));
}

std::string sink_key(std::string_view node, std::uint64_t rid) {
  std::string k(node);
  k.push_back(' ');
  k.append(std::to_string(rid));
  return k;
}

}  // namespace

void http_transports::send_node(std::string_view node, std::string message) {
  hub_.backend().send_node(node, std::move(message), nullptr);
}

void http_transports::forward(std::string_view home, std::string_view id, const session_call& call,
                              server::http_response& res) {
  broker& b = hub_.backend();
  if (!b.reaches_other_nodes()) {
    // Why: the embedded broker serves one node; the session's node cannot be
    // asked (docs/scaling.md: sticky sessions or the Redis broker).
    json_answer(res, 404,
                "session_not_found: this node does not hold the session and the embedded "
                "memory broker cannot reach other nodes (use sticky sessions or the Redis "
                "broker)");
    return;
  }
  if (draining_.load(std::memory_order_acquire)) {
    json_answer(res, 503, "server shutting down");
    return;
  }
  std::string arg = "-";
  if (call.verb == "poll") arg = std::to_string(call.after);
  if (call.verb == "stream" && call.last_seen) arg = std::to_string(*call.last_seen);
  std::uint64_t rid = 0;
  std::string message;
  {
    std::lock_guard lock(forward_mutex_);
    rid = next_rid_++;
    message = node_request(node_id_, rid, call.verb, id, arg, call.body);
    pending_forward& p = forwards_[rid];
    p.responder = res.defer();
    p.stream = call.verb == "stream";
    const std::uint64_t now = mono_ms();
    p.deadline_ms = now + k_forward_timeout_ms;
    p.gone_ms = now + k_gone_after_ms;
    if (call.verb == "poll") {
      p.deadline_ms += static_cast<std::uint64_t>(to_ms(config_.sse_poll_timeout).count());
    }
  }
  send_forward(rid, std::string(home), std::move(message));
}

void http_transports::send_forward(std::uint64_t rid, const std::string& home,
                                   std::string message) {
  hub_.backend().send_node(
      home, message, [this, rid, home, message](broker::node_send_result r) mutable {
        if (!r.error && r.receivers > 0) return;
        server::http_responder responder;
        {
          std::lock_guard lock(forward_mutex_);
          const auto it = forwards_.find(rid);
          if (it == forwards_.end()) return;
          if (!r.error && mono_ms() < it->second.gone_ms) {
            // Nobody listens under the id right now: its node may be
            // resubscribing (a pub/sub reconnect). The tick sends it again.
            it->second.home = std::move(home);
            it->second.message = std::move(message);
            it->second.resend = true;
            return;
          }
          responder = std::move(it->second.responder);
          forwards_.erase(it);
        }
        server::http_response res;
        count_forward(r.error ? "unavailable" : "gone");
        if (r.error) {
          json_answer(res, r.error->code, r.error->message);
        } else {
          // Why 404: no node listens under the id (it stopped or
          // died), so the session is gone; the client opens a new
          // one and recovers from history.
          json_answer(res, 404, "session_not_found: the node that held the session is gone");
        }
        responder.respond(std::move(res));
      });
}

void http_transports::on_node_message(std::string_view message) {
  node_message m;
  if (std::string e = parse_node_message(message, m); !e.empty()) {
    // Only our nodes write these: a bad one is a bug or another version.
    return;
  }
  switch (m.kind) {
    case 'q':
      serve_forwarded(m);
      break;
    case 'a':
      answer_forwarded(m);
      break;
    case 'w':
    case 'e':
      relay_in(m);
      break;
    case 'c':
      reader_gone(m);
      break;
    default:
      break;
  }
}

void http_transports::node_messages_lost() {
  std::vector<std::pair<std::uint64_t, relayed_stream>> lost;
  std::vector<server::http_responder> waiting;
  {
    std::lock_guard lock(forward_mutex_);
    for (auto& [rid, r] : relayed_) lost.emplace_back(rid, std::move(r));
    relayed_.clear();
    for (auto& [rid, p] : forwards_) waiting.push_back(std::move(p.responder));
    forwards_.clear();
  }
  // Their answers may be lost too: say so now rather than at the timeout.
  for (const server::http_responder& r : waiting) {
    count_forward("unavailable");
    server::http_response res;
    json_answer(res, 503, "broker unavailable: the answer of the session's node was lost");
    r.respond(std::move(res));
  }
  // Why: a write lost on the way would be a gap the client cannot see (the
  // SDK takes sequence numbers as they come); a new stream resumes from the
  // session's buffer after the client's Last-Event-ID.
  for (auto& [rid, r] : lost) {
    r.stream.end();
    send_node(r.home, node_stream_message('c', node_id_, rid));
  }
}

void http_transports::serve_forwarded(const node_message& m) {
  const std::string from(m.from);
  const std::uint64_t rid = m.rid;
  std::shared_ptr<http_session> s = find(m.session);
  if (!s || !s->answers(m.verb, mono_ms()) || draining_.load(std::memory_order_acquire)) {
    send_node(from, node_answer(node_id_, rid, 404, http_error_body(404, "session_not_found")));
    return;
  }
  session_call call;
  call.verb = m.verb;
  call.body = m.body;
  if (m.arg != "-") {
    const std::optional<std::uint64_t> n = parse_seq(m.arg);
    if (call.verb == "poll") call.after = n.value_or(0);
    if (call.verb == "stream") call.last_seen = n;
  }
  server::http_response res;  // answers made now
  bool later = false;         // a poll answers through its responder
  bool streaming = false;
  run_call(
      s, call, res,
      [&] {
        later = true;
        return server::http_responder::relay([this, from, rid](server::http_response r) {
          send_node(from, node_answer(node_id_, rid, r.status(), r.body()));
        });
      },
      [&](std::function<void()> on_close) {
        streaming = true;
        // The 200 goes first: the reader's node starts its stream with it,
        // then takes the writes, which follow on the same path in order.
        send_node(from, node_answer(node_id_, rid, 200, {}));
        auto sink =
            std::make_shared<relay_sink>(hub_.backend(), node_id_, from, rid, std::move(on_close));
        {
          std::lock_guard lock(forward_mutex_);
          sinks_[sink_key(from, rid)] = sink;
        }
        return server::http_stream::relay(std::move(sink));
      });
  if (!later && !streaming) send_node(from, node_answer(node_id_, rid, res.status(), res.body()));
}

void http_transports::answer_forwarded(const node_message& m) {
  pending_forward p;
  {
    std::lock_guard lock(forward_mutex_);
    const auto it = forwards_.find(m.rid);
    if (it != forwards_.end()) {
      p = std::move(it->second);
      forwards_.erase(it);
    } else {
      p.deadline_ms = 0;  // answered already (timed out)
    }
  }
  if (p.deadline_ms == 0) {
    // A stream nobody waits for any more: the home node stops writing it.
    if (m.status == 200) send_node(m.from, node_stream_message('c', node_id_, m.rid));
    return;
  }
  count_forward("answered");
  if (p.stream && m.status == 200) {
    server::http_response head;
    head.set_content_type("text/event-stream");
    head.add_header("Cache-Control", "no-cache");
    head.add_header("X-Accel-Buffering", "no");
    const std::uint64_t rid = m.rid;
    std::string home(m.from);
    server::http_stream stream = p.responder.stream(std::move(head), [this, rid, home] {
      bool mine = false;
      {
        std::lock_guard lock(forward_mutex_);
        mine = relayed_.erase(rid) > 0;
      }
      // The client went away (or the stream ended): the home node detaches.
      if (mine) send_node(home, node_stream_message('c', node_id_, rid));
    });
    std::lock_guard lock(forward_mutex_);
    relayed_[rid] = relayed_stream{std::move(stream), std::move(home), mono_ms()};
    return;
  }
  server::http_response res;
  res.set_status(m.status);
  if (!m.body.empty()) {
    res.set_content_type("application/json");
    res.set_body(std::string(m.body));
  }
  p.responder.respond(std::move(res));
}

void http_transports::relay_in(const node_message& m) {
  server::http_stream stream;
  bool found = false;
  {
    std::lock_guard lock(forward_mutex_);
    const auto it = relayed_.find(m.rid);
    if (it != relayed_.end() && it->second.home == m.from) {
      found = true;
      stream = it->second.stream;
      it->second.last_ms = mono_ms();
      if (m.kind == 'e') relayed_.erase(it);
    }
  }
  if (m.kind == 'e') {
    if (found) stream.end();
    return;
  }
  if (found && stream.write(std::string(m.body))) return;
  // Why: the home node would keep writing to a stream nobody reads.
  if (found) {
    std::lock_guard lock(forward_mutex_);
    relayed_.erase(m.rid);
  }
  send_node(m.from, node_stream_message('c', node_id_, m.rid));
}

void http_transports::reader_gone(const node_message& m) {
  std::shared_ptr<relay_sink> sink;
  {
    std::lock_guard lock(forward_mutex_);
    const auto it = sinks_.find(sink_key(m.from, m.rid));
    if (it == sinks_.end()) return;
    sink = it->second.lock();
    sinks_.erase(it);
  }
  if (sink) sink->reader_gone();
}

void http_transports::tick_forwards(std::uint64_t now_ms) {
  std::vector<server::http_responder> late;
  std::vector<server::http_stream> dead;
  std::vector<std::tuple<std::uint64_t, std::string, std::string>> again;
  {
    std::lock_guard lock(forward_mutex_);
    for (auto it = forwards_.begin(); it != forwards_.end();) {
      if (it->second.deadline_ms <= now_ms) {
        late.push_back(std::move(it->second.responder));
        it = forwards_.erase(it);
      } else {
        if (it->second.resend) {
          it->second.resend = false;
          again.emplace_back(it->first, std::move(it->second.home), std::move(it->second.message));
        }
        ++it;
      }
    }
    // Relayed streams whose home node fell silent: its session writes at
    // least a heartbeat every sse.heartbeat, so it died (kill -9, lost
    // Redis). The client's next request finds out (404) and starts anew.
    const auto silent_ms =
        2 * static_cast<std::uint64_t>(to_ms(config_.sse_heartbeat).count()) + 1000;
    for (auto it = relayed_.begin(); it != relayed_.end();) {
      if (now_ms - it->second.last_ms > silent_ms) {
        dead.push_back(std::move(it->second.stream));
        it = relayed_.erase(it);
      } else {
        ++it;
      }
    }
    // Sinks whose stream is over (ended, or the session let it go).
    for (auto it = sinks_.begin(); it != sinks_.end();) {
      const auto sink = it->second.lock();
      if (!sink || !sink->is_open()) {
        it = sinks_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const server::http_responder& r : late) {
    count_forward("timeout");
    server::http_response res;
    json_answer(res, 504, "the node that holds the session did not answer in time");
    r.respond(std::move(res));
  }
  for (const server::http_stream& s : dead) s.end();
  for (auto& [rid, home, message] : again) send_forward(rid, home, std::move(message));
}

void http_transports::drain_forwards() {
  std::vector<server::http_responder> waiting;
  std::vector<std::shared_ptr<relay_sink>> sinks;
  std::vector<server::http_stream> relayed;
  {
    std::lock_guard lock(forward_mutex_);
    for (auto& [rid, p] : forwards_) waiting.push_back(std::move(p.responder));
    forwards_.clear();
    for (auto& [rid, r] : relayed_) relayed.push_back(r.stream);
    for (auto& [key, weak] : sinks_) {
      if (auto sink = weak.lock()) sinks.push_back(std::move(sink));
    }
    sinks_.clear();
  }
  for (const server::http_responder& r : waiting) {
    server::http_response res;
    json_answer(res, 503, "server shutting down");
    r.respond(std::move(res));
  }
  // The drained sessions wrote `event: reconnect` to their relayed streams;
  // the server ends only its own streams, so these end here.
  for (const auto& sink : sinks) sink->end();
  // Streams of sessions held elsewhere: as a local session's, the client
  // reconnects (to another node; the server finishes these streams).
  std::string event;
  append_sse_event(event, "reconnect", {}, "{\"reason\":\"server shutting down\"}");
  for (const server::http_stream& s : relayed) s.write(event);
}

}  // namespace switchboard::realtime::detail
