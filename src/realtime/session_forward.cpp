// session_forward.cpp — node messages of HTTP sessions across nodes and the
// home node's end of a relayed stream (see session_forward.hpp).
#include "session_forward.hpp"

#include <charconv>

#include "broker.hpp"

namespace switchboard::realtime::detail {

namespace {

bool is_hex(std::string_view s) noexcept {
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The next space-separated token of `line` (empty at the end).
std::string_view next_token(std::string_view& line) {
  const auto sp = line.find(' ');
  const std::string_view token = line.substr(0, sp);
  line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
  return token;
}

// Decimal digits, no leading zero (one spelling per number).
bool parse_u64(std::string_view text, std::uint64_t& out) {
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

void append_header(std::string& out, char kind, std::string_view from, std::uint64_t rid) {
  out.push_back(kind);
  out.push_back(' ');
  out.append(from);
  out.push_back(' ');
  out.append(std::to_string(rid));
}

// Thread-local: true while relay_sink::write() is inside broker::send_node,
// where a stopped broker runs the completion at once (under the session's
// lock, which on_close must not take again).
thread_local bool t_in_send = false;

}  // namespace

bool is_node_id(std::string_view id) noexcept { return id.size() == 16 && is_hex(id); }

std::string_view session_home(std::string_view session_id) noexcept {
  const auto dot = session_id.find('.');
  if (dot == std::string_view::npos) return {};
  const std::string_view home = session_id.substr(0, dot);
  const std::string_view rest = session_id.substr(dot + 1);
  if (!is_node_id(home) || rest.size() != 32 || !is_hex(rest)) return {};
  return home;
}

std::string parse_node_message(std::string_view text, node_message& out) {
  out = node_message{};
  const auto nl = text.find('\n');
  // Why: every kind has a header line; without its end nothing is known.
  if (nl == std::string_view::npos) return "no header line";
  std::string_view line = text.substr(0, nl);
  out.body = text.substr(nl + 1);
  // One spelling per message: fields split by single spaces.
  if (line.empty() || line.back() == ' ' || line.find("  ") != std::string_view::npos) {
    return "fields must be split by single spaces";
  }
  const std::string_view kind = next_token(line);
  if (kind.size() != 1 || std::string_view("qawec").find(kind[0]) == std::string_view::npos) {
    return "unknown kind";
  }
  out.kind = kind[0];
  out.from = next_token(line);
  if (!is_node_id(out.from)) return "bad sender node id";
  if (!parse_u64(next_token(line), out.rid)) return "bad request number";
  if (out.kind == 'q') {
    out.verb = next_token(line);
    if (out.verb != "send" && out.verb != "poll" && out.verb != "stream" && out.verb != "delete") {
      return "unknown verb";
    }
    out.session = next_token(line);
    if (session_home(out.session).empty()) return "bad session id";
    out.arg = next_token(line);
    std::uint64_t n = 0;
    if (out.arg != "-" && !parse_u64(out.arg, n)) return "bad argument";
  } else if (out.kind == 'a') {
    std::uint64_t status = 0;
    if (!parse_u64(next_token(line), status) || status < 100 || status > 599) return "bad status";
    out.status = static_cast<int>(status);
  }
  // Why: a longer header is not one this version wrote.
  if (!line.empty()) return "extra fields in the header";
  if ((out.kind == 'e' || out.kind == 'c') && !out.body.empty()) return "unexpected body";
  return {};
}

std::string node_request(std::string_view from, std::uint64_t rid, std::string_view verb,
                         std::string_view session, std::string_view arg, std::string_view body) {
  std::string out;
  out.reserve(64 + session.size() + body.size());
  append_header(out, 'q', from, rid);
  out.push_back(' ');
  out.append(verb);
  out.push_back(' ');
  out.append(session);
  out.push_back(' ');
  out.append(arg);
  out.push_back('\n');
  out.append(body);
  return out;
}

std::string node_answer(std::string_view from, std::uint64_t rid, int status,
                        std::string_view body) {
  std::string out;
  out.reserve(40 + body.size());
  append_header(out, 'a', from, rid);
  out.push_back(' ');
  out.append(std::to_string(status));
  out.push_back('\n');
  out.append(body);
  return out;
}

std::string node_stream_message(char kind, std::string_view from, std::uint64_t rid,
                                std::string_view bytes) {
  std::string out;
  out.reserve(40 + bytes.size());
  append_header(out, kind, from, rid);
  out.push_back('\n');
  out.append(bytes);
  return out;
}

relay_sink::relay_sink(broker& b, std::string self, std::string reader_node, std::uint64_t rid,
                       std::function<void()> on_close)
    : broker_(b),
      self_(std::move(self)),
      reader_node_(std::move(reader_node)),
      rid_(rid),
      on_close_(std::move(on_close)) {}

bool relay_sink::write(std::string bytes) {
  if (!is_open()) return false;
  if (bytes.empty()) return true;
  t_in_send = true;
  broker_.send_node(reader_node_, node_stream_message('w', self_, rid_, bytes),
                    [weak = weak_from_this()](broker::node_send_result r) {
                      if (!r.error && r.receivers > 0) return;
                      auto self = weak.lock();
                      if (!self) return;
                      // The reader's node is gone (or the broker is): the
                      // session's stream is over.
                      if (t_in_send) {
                        self->open_.store(false, std::memory_order_release);
                      } else {
                        self->reader_gone();
                      }
                    });
  t_in_send = false;
  return true;
}

void relay_sink::end() {
  if (!open_.exchange(false, std::memory_order_acq_rel)) return;
  broker_.send_node(reader_node_, node_stream_message('e', self_, rid_), nullptr);
}

void relay_sink::reader_gone() {
  if (!open_.exchange(false, std::memory_order_acq_rel)) return;  // ended or gone already
  run_on_close();
}

void relay_sink::run_on_close() {
  if (closed_ran_.exchange(true, std::memory_order_acq_rel)) return;
  std::function<void()> f = std::move(on_close_);
  if (f) f();
}

}  // namespace switchboard::realtime::detail
