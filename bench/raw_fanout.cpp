// raw_fanout.cpp — see raw_fanout.hpp.
#include "raw_fanout.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pubsub_wire.hpp"
#include "switchboard/net/tcp_stream.hpp"
#include "switchboard/protocol/handshake.hpp"
#include "switchboard/protocol/http_head.hpp"
#include "switchboard/protocol/message_reader.hpp"
#include "switchboard/protocol/message_writer.hpp"

namespace switchboard::bench {
namespace {

// A subscriber that lets this much pile up is cut off (a safety limit, not a
// policy under test).
constexpr std::size_t k_max_buffered = 64 * 1024 * 1024;
constexpr std::size_t k_max_message = 1024 * 1024;

class connection;

struct channel {
  std::vector<connection*> subscribers;
  std::string pending;  // this iteration's publications, framed, back to back
  bool queued = false;  // in state::dirty
};

}  // namespace

struct raw_fanout_loop::state {
  explicit state(net::event_loop& l) : loop(l) {}
  net::event_loop& loop;
  net::event_loop::hook_id hook = 0;
  protocol::request_parser parser;
  protocol::message_writer writer{protocol::role::server};
  std::unordered_map<std::string, channel> channels;
  std::vector<channel*> dirty;  // channels with publications this iteration
  connection* head = nullptr;   // every connection (teardown)
  std::string out;              // scratch for replies and pushes
  std::string frame;

  void write_pending();
};

namespace {

class connection final : private net::stream_handler {
 public:
  explicit connection(raw_fanout_loop::state& s) : stream_(s.loop, *this), s_(s) {
    next_ = s.head;
    if (next_ != nullptr) next_->prev_ = this;
    s.head = this;
  }
  ~connection() {
    for (channel* c : channels_) std::erase(c->subscribers, this);
    if (prev_ != nullptr) prev_->next_ = next_;
    if (next_ != nullptr) next_->prev_ = prev_;
    if (s_.head == this) s_.head = next_;
  }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  std::error_code open(net::unique_fd socket) { return stream_.open(std::move(socket)); }

  // One write of `bytes` (shared, not copied) unless bytes are already
  // waiting: then they queue behind them.
  void write(std::string_view bytes) {
    const auto all = std::as_bytes(std::span(bytes.data(), bytes.size()));
    if (stream_.buffered_bytes() == 0) {
      const ssize_t n =
          ::send(stream_.native_handle(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n == static_cast<ssize_t>(bytes.size())) return;
      // Short, EAGAIN or an error: the stream keeps the rest (and reports
      // an error from its own flush on a later iteration).
      const std::size_t written = n > 0 ? static_cast<std::size_t>(n) : 0;
      stream_.send(all.subspan(written));
      return;
    }
    stream_.send(all);
    // Shut down rather than closed: epoll reports it and on_close frees us.
    if (stream_.buffered_bytes() > k_max_buffered) ::shutdown(stream_.native_handle(), SHUT_RDWR);
  }

 private:
  void on_data(net::tcp_stream& /*stream*/, std::span<std::byte> data) override {
    if (!upgraded_) return on_head(data);
    on_frames({reinterpret_cast<char*>(data.data()), data.size()});
  }
  void on_close(net::tcp_stream& /*stream*/, std::error_code /*error*/) override { delete this; }

  void on_head(std::span<std::byte> data) {
    head_.append(reinterpret_cast<const char*>(data.data()), data.size());
    s_.parser.reset();
    const protocol::parse_result r = s_.parser.parse(head_);
    if (r.status == protocol::parse_status::need_more) return;
    protocol::upgrade_request info;
    if (r.status == protocol::parse_status::error ||
        protocol::validate_upgrade(s_.parser.head(), info) != protocol::error::none) {
      delete this;
      return;
    }
    const std::string_view supported[] = {pubsub::k_subprotocol};
    const auto chosen = protocol::select_subprotocol(s_.parser.head(), supported);
    s_.out.clear();
    if (!protocol::write_accept_response(s_.out, info.key,
                                         {.subprotocol = chosen.value_or(std::string_view{})})) {
      delete this;
      return;
    }
    stream_.send(std::as_bytes(std::span(s_.out.data(), s_.out.size())));
    upgraded_ = true;
    std::string rest = head_.substr(r.consumed);
    std::string().swap(head_);
    reader_ = std::make_unique<protocol::message_reader>(protocol::reader_options{
        .role = protocol::role::server, .max_message_size = k_max_message});
    if (!rest.empty()) on_frames({rest.data(), rest.size()});
  }

  void on_frames(std::span<char> input) {
    for (;;) {
      const protocol::reader_event ev = reader_->next(input);
      switch (ev.kind) {
        case protocol::event_kind::need_more:
          return;
        case protocol::event_kind::message:
          on_message(ev.payload);
          break;
        case protocol::event_kind::ping: {
          char pong[protocol::message_writer::max_frame_size(protocol::k_max_control_payload)];
          const std::size_t n = s_.writer.write_pong(pong, ev.payload);
          stream_.send(std::as_bytes(std::span(pong, n)));
          break;
        }
        case protocol::event_kind::pong:
          break;
        default:  // close, error, fragments: this tool does not need them
          delete this;
          return;
      }
    }
  }

  void on_message(std::string_view text) {
    const pubsub::command c = pubsub::parse_command(text);
    if (c.kind == pubsub::command_kind::subscribe) {
      channel& ch = s_.channels[std::string(c.channel)];
      ch.subscribers.push_back(this);
      channels_.push_back(&ch);
    } else if (c.kind == pubsub::command_kind::publish) {
      channel& ch = s_.channels[std::string(c.channel)];
      s_.out.clear();
      pubsub::append_push(s_.out, c);
      append_frame(ch.pending, s_.out);
      if (!ch.queued) {
        ch.queued = true;
        s_.dirty.push_back(&ch);
      }
    }
    s_.out.clear();
    pubsub::append_reply(s_.out, c);
    s_.frame.clear();
    append_frame(s_.frame, s_.out);
    stream_.send(std::as_bytes(std::span(s_.frame.data(), s_.frame.size())));
  }

  void append_frame(std::string& to, std::string_view payload) {
    const std::size_t at = to.size();
    to.resize(at + protocol::message_writer::max_frame_size(payload.size()));
    const std::size_t n = s_.writer.write_message(to.data() + at, protocol::opcode::text, payload);
    to.resize(at + n);
  }

  net::tcp_stream stream_;
  raw_fanout_loop::state& s_;
  std::string head_;
  std::unique_ptr<protocol::message_reader> reader_;
  std::vector<channel*> channels_;
  bool upgraded_ = false;
  connection* prev_ = nullptr;
  connection* next_ = nullptr;
};

}  // namespace

void raw_fanout_loop::state::write_pending() {
  // Runs before the cork flush: what write() hands to the stream leaves in
  // this iteration too. Writes never delete a connection (errors surface
  // on a later iteration), so the lists are stable here.
  for (channel* c : dirty) {
    for (connection* sub : c->subscribers) sub->write(c->pending);
    c->pending.clear();
    c->queued = false;
  }
  dirty.clear();
}

raw_fanout_loop::raw_fanout_loop(net::event_loop& loop) : state_(std::make_unique<state>(loop)) {
  state_->hook = loop.add_iteration_hook([s = state_.get()] { s->write_pending(); });
}

raw_fanout_loop::~raw_fanout_loop() {
  while (state_->head != nullptr) delete state_->head;
  state_->loop.remove_iteration_hook(state_->hook);
}

void raw_fanout_loop::accept(net::unique_fd socket) {
  auto* c = new connection(*state_);
  if (c->open(std::move(socket))) delete c;
}

}  // namespace switchboard::bench
