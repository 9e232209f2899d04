// hook_http.cpp — the hooks' HTTP/1.1 client (see hook_http.hpp).
#include "hook_http.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <switchboard/net/tcp_connector.hpp>
#include <switchboard/net/transport.hpp>

namespace switchboard::realtime::detail {

namespace {

std::string url_error(std::string_view url, std::string_view why) {
  std::string out("hook URL ");
  out.append(url);
  out.append(": ");
  out.append(why);
  return out;
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Longest chunk-size or trailer line read: a real one is a few bytes.
constexpr std::size_t k_max_line = 4096;
// Longest response head.
constexpr std::size_t k_max_head = 16384;

}  // namespace

// ---------------------------------------------------------------------------
// URLs

std::string parse_http_url_syntax(std::string_view url, http_url& out) {
  out = http_url{};
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    out.tls = true;
    out.port = 443;
    rest = url.substr(8);
  } else {
    return url_error(url, "expected http://host[:port]/path or https://…");
  }
  if (url.find_first_of(std::string_view("\0\r\n \t", 5)) != std::string_view::npos) {
    return url_error(url, "whitespace or control characters in the URL");
  }
  if (url.find('#') != std::string_view::npos)
    return url_error(url, "a fragment has no meaning here");
  const auto slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  out.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (out.path.front() == '?') out.path.insert(0, "/");
  // A password in a URL ends up in logs and ps: the secret goes in hooks.secret.
  if (authority.find('@') != std::string_view::npos) {
    return url_error(url, "no user:password@ in hook URLs (use hooks.secret and headers)");
  }
  std::string_view port_part;
  bool bracketed = false;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return url_error(url, "unclosed '[' in the host");
    out.host.assign(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (after.starts_with(':')) {
      port_part = after.substr(1);
      if (port_part.empty()) return url_error(url, "the port must be 1-65535");
    } else if (!after.empty()) {
      return url_error(url, "unexpected text after the host");
    }
    bracketed = true;
  } else {
    const auto colon = authority.rfind(':');
    out.host.assign(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_part = authority.substr(colon + 1);
      if (port_part.empty()) return url_error(url, "the port must be 1-65535");
    }
  }
  if (out.host.empty()) return url_error(url, "no host");
  if (out.host.find_first_of("/[]") != std::string::npos) {
    return url_error(url, "invalid character in the host");
  }
  if (!port_part.empty()) {
    unsigned port = 0;
    const auto [p, ec] =
        std::from_chars(port_part.data(), port_part.data() + port_part.size(), port);
    if (ec != std::errc{} || p != port_part.data() + port_part.size() || port == 0 ||
        port > 65535) {
      return url_error(url, "the port must be 1-65535");
    }
    out.port = static_cast<std::uint16_t>(port);
  }
  out.origin = out.tls ? "https://" : "http://";
  out.origin.append(bracketed ? "[" + out.host + "]" : out.host);
  out.origin.push_back(':');
  out.origin.append(std::to_string(out.port));
  return {};
}

std::string resolve_http_url(http_url& url) {
  if (auto numeric = net::endpoint::parse(url.host, url.port)) {
    url.address = *numeric;
    return {};
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_UNSPEC;
  addrinfo* found = nullptr;
  if (::getaddrinfo(url.host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return url_error(url.origin, "host " + url.host + " does not resolve");
  }
  // IPv4 first, as the server's own host resolution does.
  const addrinfo* pick = found;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    if (a->ai_family == AF_INET) {
      pick = a;
      break;
    }
  }
  auto ep = net::endpoint::from_sockaddr(pick->ai_addr, pick->ai_addrlen);
  ::freeaddrinfo(found);
  if (!ep) return url_error(url.origin, "host " + url.host + " has no usable address");
  url.address = ep->with_port(url.port);
  return {};
}

// ---------------------------------------------------------------------------
// The response reader

http_response_reader::http_response_reader(std::size_t max_body)
    : max_body_(max_body), parser_(protocol::http_limits{k_max_head, 64, 8192}) {}

void http_response_reader::reset() {
  parser_.reset();
  head_buf_.clear();
  line_.clear();
  body_.clear();
  error_.clear();
  left_ = 0;
  status_code_ = 0;
  state_ = state::head;
  keep_alive_ = true;
  started_ = false;
}

http_response_reader::status http_response_reader::fail(std::string why) {
  state_ = state::failed;
  keep_alive_ = false;
  error_ = std::move(why);
  return status::error;
}

http_response_reader::status http_response_reader::on_head_complete(
    const protocol::response_head& head) {
  status_code_ = head.status();
  // HTTP/1.0 keeps a connection only when asked; we never ask, so it closes.
  keep_alive_ = head.version_major() == 1 && head.version_minor() >= 1 &&
                !head.has_token("Connection", "close");
  if (status_code_ == 204 || status_code_ == 304) {
    state_ = state::done;
    return status::complete;
  }
  if (head.count("Transfer-Encoding") != 0) {
    // Only chunked, alone: other codings (gzip) were never asked for.
    std::string_view coding;
    std::size_t codings = 0;
    for (const auto& field : head.headers()) {
      if (!protocol::ascii_iequals(field.name, "Transfer-Encoding")) continue;
      protocol::list_cursor items(field.value);
      std::string_view item;
      while (items.next(item)) {
        coding = item;
        ++codings;
      }
    }
    if (codings != 1 || !protocol::ascii_iequals(coding, "chunked")) {
      return fail("unsupported Transfer-Encoding (only chunked)");
    }
    state_ = state::chunk_size;
    return status::need_more;
  }
  if (head.count("Content-Length") != 0) {
    bool any = false;
    std::uint64_t length = 0;
    for (const auto& field : head.headers()) {
      if (!protocol::ascii_iequals(field.name, "Content-Length")) continue;
      protocol::list_cursor items(field.value);
      std::string_view item;
      while (items.next(item)) {
        std::uint64_t v = 0;
        const auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
        // Two lengths that disagree: which body is meant cannot be known.
        if (ec != std::errc{} || p != item.data() + item.size() || (any && v != length)) {
          return fail("bad Content-Length");
        }
        length = v;
        any = true;
      }
    }
    if (!any) return fail("bad Content-Length");
    if (length > max_body_) return fail("response body over the limit");
    left_ = length;
    body_.reserve(static_cast<std::size_t>(length));
    state_ = length == 0 ? state::done : state::length;
    return length == 0 ? status::complete : status::need_more;
  }
  // Neither: the body runs to the end of the connection (RFC 9112 §6.3 rule 8).
  keep_alive_ = false;
  state_ = state::until_close;
  return status::need_more;
}

http_response_reader::status http_response_reader::feed(std::string_view data,
                                                        std::size_t& consumed) {
  consumed = 0;
  if (state_ == state::failed) return status::error;
  if (state_ == state::done) return status::complete;
  if (!data.empty()) started_ = true;
  std::string_view rest = data;
  while (true) {
    switch (state_) {
      case state::head: {
        if (rest.empty()) {
          consumed = data.size();
          return status::need_more;
        }
        const std::size_t before = head_buf_.size();
        const std::size_t take =
            std::min(rest.size(), k_max_head + 1 - std::min(before, k_max_head));
        head_buf_.append(rest.substr(0, take));
        const protocol::parse_result r = parser_.parse(head_buf_);
        if (r.status == protocol::parse_status::error) {
          return fail("bad response head: " + std::string(protocol::describe(r.err)));
        }
        if (r.status == protocol::parse_status::need_more) {
          if (take < rest.size()) return fail("response head over the limit");
          consumed = data.size();
          return status::need_more;
        }
        const std::size_t used = r.consumed - before;  // bytes of `rest` in the head
        rest.remove_prefix(used);
        const int code = parser_.head().status();
        if (code >= 100 && code < 200) {
          // 100 Continue and other interim answers: the real one follows.
          head_buf_.clear();
          parser_.reset();
          continue;
        }
        const status s = on_head_complete(parser_.head());
        head_buf_.clear();
        if (s != status::need_more) {
          consumed = data.size() - rest.size();
          return s;
        }
        continue;
      }
      case state::length: {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left_, rest.size()));
        body_.append(rest.substr(0, n));
        rest.remove_prefix(n);
        left_ -= n;
        if (left_ == 0) {
          state_ = state::done;
          consumed = data.size() - rest.size();
          return status::complete;
        }
        consumed = data.size();
        return status::need_more;
      }
      case state::until_close: {
        if (body_.size() + rest.size() > max_body_) return fail("response body over the limit");
        body_.append(rest);
        consumed = data.size();
        return status::need_more;
      }
      case state::chunk_size:
      case state::trailers:
      case state::chunk_crlf: {
        const auto lf = rest.find('\n');
        const std::string_view part =
            rest.substr(0, lf == std::string_view::npos ? rest.size() : lf + 1);
        if (line_.size() + part.size() > k_max_line) return fail("chunk line over the limit");
        line_.append(part);
        rest.remove_prefix(part.size());
        if (lf == std::string_view::npos) {
          consumed = data.size();
          return status::need_more;
        }
        // Every line ends in CRLF (RFC 9112 §7.1); a bare LF is refused.
        if (line_.size() < 2 || line_[line_.size() - 2] != '\r')
          return fail("chunk line without CRLF");
        std::string_view line(line_.data(), line_.size() - 2);
        if (state_ == state::chunk_crlf) {
          if (!line.empty()) return fail("chunk data longer than its size");
          state_ = state::chunk_size;
        } else if (state_ == state::trailers) {
          if (line.empty()) {
            state_ = state::done;
            line_.clear();
            consumed = data.size() - rest.size();
            return status::complete;
          }
        } else {
          // chunk-size [; extensions]
          std::size_t digits = 0;
          while (digits < line.size() && is_hex(line[digits])) ++digits;
          if (digits == 0 || digits > 15) return fail("bad chunk size");
          const std::string_view after = line.substr(digits);
          if (!after.empty() && after.front() != ';' && after.front() != ' ' &&
              after.front() != '\t') {
            return fail("bad chunk size");
          }
          std::uint64_t size = 0;
          std::from_chars(line.data(), line.data() + digits, size, 16);
          if (size > max_body_ || body_.size() + size > max_body_) {
            return fail("response body over the limit");
          }
          left_ = size;
          state_ = size == 0 ? state::trailers : state::chunk_data;
        }
        line_.clear();
        continue;
      }
      case state::chunk_data: {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left_, rest.size()));
        body_.append(rest.substr(0, n));
        rest.remove_prefix(n);
        left_ -= n;
        if (left_ == 0) {
          state_ = state::chunk_crlf;
          continue;
        }
        consumed = data.size();
        return status::need_more;
      }
      case state::done:
        consumed = data.size() - rest.size();
        return status::complete;
      case state::failed:
        return status::error;
    }
  }
}

http_response_reader::status http_response_reader::finish() {
  if (state_ == state::done) return status::complete;
  if (state_ == state::until_close) {
    state_ = state::done;
    return status::complete;
  }
  if (state_ == state::failed) return status::error;
  return fail(started_ ? "connection closed in the middle of the response"
                       : "connection closed before a response");
}

// ---------------------------------------------------------------------------
// The client

struct http_client::pending {
  http_client* owner = nullptr;
  pool* p = nullptr;
  http_request request;
  completion done;
  net::timer_node timer;
  connection* conn = nullptr;
  bool retried = false;

  void on_timer() { owner->on_timeout(this); }
};

struct http_client::pool {
  http_url url;  // a copy: the pool outlives any one request
  std::list<std::unique_ptr<connection>> conns;
  std::vector<connection*> idle;
  std::deque<pending*> queue;
  bool start_scheduled = false;
};

struct http_client::connection final : net::transport_handler {
  connection(http_client& o, pool& pl)
      : owner(o),
        p(pl),
        connector(o.loop_),
        t(o.loop_, *this, pl.url.tls ? o.tls_ : nullptr),
        reader(o.options_.max_body) {
    idle_timer.bind<&connection::on_idle>(this);
  }

  http_client& owner;
  pool& p;
  net::tcp_connector connector;
  net::transport t;
  http_response_reader reader;
  net::timer_node idle_timer;
  pending* req = nullptr;
  std::list<std::unique_ptr<connection>>::iterator self;
  bool ready = false;   // connected (and the TLS handshake done): requests can go out
  bool reused = false;  // has answered a request before: the server may have closed it meanwhile
  bool dead = false;

  void start() {
    connector.connect(
        p.url.address, std::chrono::milliseconds(0),
        [this](std::error_code ec, net::unique_fd fd) { on_connected(ec, std::move(fd)); });
  }

  void on_connected(std::error_code ec, net::unique_fd fd) {
    if (ec) return lost("connect to " + p.url.origin + ": " + ec.message());
    if (p.url.tls && owner.tls_ == nullptr) return lost("https:// without a TLS context");
    if (auto e =
            t.open(std::move(fd), p.url.tls ? std::string_view(p.url.host) : std::string_view())) {
      return lost("open " + p.url.origin + ": " + e.message());
    }
    if (!p.url.tls) {
      ready = true;
      if (req) write();
    }
  }

  void on_handshake(net::transport&) override {
    ready = true;
    if (req) write();
  }

  void write() {
    const http_request& r = req->request;
    thread_local std::string wire;
    wire.clear();
    wire.append("POST ");
    wire.append(p.url.path);
    wire.append(" HTTP/1.1\r\nHost: ");
    wire.append(p.url.origin.substr(p.url.tls ? 8 : 7));
    wire.append("\r\nContent-Type: application/json\r\nContent-Length: ");
    wire.append(std::to_string(r.body.size()));
    wire.append("\r\n");
    for (const auto& [name, value] : r.headers) {
      wire.append(name);
      wire.append(": ");
      wire.append(value);
      wire.append("\r\n");
    }
    wire.append("\r\n");
    wire.append(r.body);
    if (t.send(std::as_bytes(std::span(wire.data(), wire.size()))) == net::send_status::dropped) {
      lost("write to " + p.url.origin + " failed");
    }
  }

  void on_data(net::transport&, std::span<std::byte> data) override {
    if (!req) return lost("bytes from " + p.url.origin + " that answer no request");
    std::size_t consumed = 0;
    const auto s = reader.feed(
        std::string_view(reinterpret_cast<const char*>(data.data()), data.size()), consumed);
    if (s == http_response_reader::status::need_more) return;
    if (s == http_response_reader::status::error) {
      return lost("bad response from " + p.url.origin + ": " + reader.error());
    }
    // Bytes past the response answer nothing we asked: the connection is not reused.
    const bool keep = reader.keep_alive() && consumed == data.size();
    answered(keep);
  }

  void answered(bool keep) {
    http_result result;
    result.status = reader.status_code();
    result.body = reader.body();
    pending* r = req;
    req = nullptr;
    r->conn = nullptr;
    reader.reset();
    if (keep) {
      reused = true;
      p.idle.push_back(this);
      owner.loop_.timers().schedule(idle_timer, owner.options_.idle_timeout);
    } else {
      owner.retire(this);
    }
    owner.schedule_start(p);
    owner.finish(r, std::move(result));
  }

  void on_close(net::transport&, std::error_code error) override {
    if (req && reader.finish() == http_response_reader::status::complete) return answered(false);
    lost("connection to " + p.url.origin + " closed" +
         (error ? ": " + error.message() : std::string()));
  }

  void lost(std::string why) {
    pending* r = req;
    req = nullptr;
    const bool fresh_retry = r != nullptr && reused && !reader.started() && !r->retried;
    owner.retire(this);
    if (r == nullptr) return;
    r->conn = nullptr;
    if (fresh_retry) {
      // A kept-alive connection the server closed while idle: the request
      // never reached it, so it goes again on a new connection (once).
      r->retried = true;
      p.queue.push_front(r);
      owner.schedule_start(p);
      return;
    }
    owner.schedule_start(p);
    http_result result;
    result.error = std::move(why);
    owner.finish(r, std::move(result));
  }

  void on_idle() { owner.retire(this); }
};

http_client::http_client(net::event_loop& loop, net::tls_context* tls, http_client_options options)
    : loop_(loop), tls_(tls), options_(options) {}

http_client::~http_client() {
  *alive_ = false;
  for (auto& [origin, p] : pools_) {
    for (pending* r : p->queue) delete r;
    for (auto& c : p->conns) {
      delete c->req;
      c->req = nullptr;
    }
  }
}

std::size_t http_client::open_connections() const noexcept {
  std::size_t n = 0;
  for (const auto& [origin, p] : pools_) n += p->conns.size();
  return n;
}

void http_client::send(http_request request, completion done) {
  auto it = pools_.find(request.url->origin);
  if (it == pools_.end()) {
    auto p = std::make_unique<pool>();
    p->url = *request.url;
    it = pools_.emplace(request.url->origin, std::move(p)).first;
  }
  pool& p = *it->second;
  ++in_flight_;
  auto* r = new pending;
  r->owner = this;
  r->p = &p;
  r->request = std::move(request);
  r->done = std::move(done);
  r->timer.bind<&pending::on_timer>(r);
  if (p.queue.size() >= options_.max_queue) {
    // The backend is not keeping up: fail fast rather than queue without bound.
    loop_.defer([this, r, alive = std::weak_ptr<bool>(alive_)] {
      if (alive.expired()) return delete r;
      http_result result;
      result.error = "too many hook requests waiting (queue full)";
      finish(r, std::move(result));
    });
    return;
  }
  loop_.timers().schedule(r->timer, r->request.timeout);
  p.queue.push_back(r);
  schedule_start(p);
}

void http_client::schedule_start(pool& p) {
  if (p.start_scheduled) return;
  p.start_scheduled = true;
  loop_.defer([this, &p, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    p.start_scheduled = false;
    start_next(p);
  });
}

void http_client::start_next(pool& p) {
  while (!p.queue.empty()) {
    connection* c = nullptr;
    if (!p.idle.empty()) {
      c = p.idle.back();
      p.idle.pop_back();
      c->idle_timer.cancel();
    } else if (p.conns.size() < options_.max_connections) {
      p.conns.push_back(std::make_unique<connection>(*this, p));
      c = p.conns.back().get();
      c->self = std::prev(p.conns.end());
      c->start();
    } else {
      return;  // every connection busy: the queue waits for one
    }
    pending* r = p.queue.front();
    p.queue.pop_front();
    c->req = r;
    r->conn = c;
    if (c->ready) c->write();
  }
}

void http_client::retire(connection* c) {
  if (c->dead) return;
  c->dead = true;
  c->idle_timer.cancel();
  c->connector.cancel();
  c->t.close();
  pool& p = c->p;
  p.idle.erase(std::remove(p.idle.begin(), p.idle.end(), c), p.idle.end());
  // Destroyed after the callback that retired it has returned.
  std::shared_ptr<std::unique_ptr<connection>> doomed =
      std::make_shared<std::unique_ptr<connection>>(std::move(*c->self));
  p.conns.erase(c->self);
  loop_.defer([doomed] { doomed->reset(); });
}

void http_client::on_timeout(pending* r) {
  if (r->conn != nullptr) {
    // The response is late: this connection cannot carry another request.
    connection* c = r->conn;
    c->req = nullptr;
    r->conn = nullptr;
    retire(c);
    schedule_start(*r->p);
  } else {
    auto& q = r->p->queue;
    q.erase(std::remove(q.begin(), q.end(), r), q.end());
  }
  http_result result;
  result.error = "timed out";
  result.timed_out = true;
  finish(r, std::move(result));
}

void http_client::finish(pending* r, http_result result) {
  r->timer.cancel();
  --in_flight_;
  completion done = std::move(r->done);
  delete r;
  if (done) done(std::move(result));
}

}  // namespace switchboard::realtime::detail
