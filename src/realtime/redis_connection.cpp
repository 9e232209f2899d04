// redis_connection.cpp — RESP over our own socket (see redis_connection.hpp).
#include "redis_connection.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <vector>

namespace switchboard::realtime::detail {

namespace {

// Most bytes read per recv(); the loop reads again while a read fills it.
constexpr std::size_t k_read_chunk = 256 * 1024;

// Errors name the URL, without its credentials (they end up in logs).
std::string url_error(std::string_view url, std::string_view why) {
  std::string shown(url);
  if (url.starts_with("redis://")) {
    const auto at = url.rfind('@');
    if (at != std::string_view::npos) shown = "redis://***" + std::string(url.substr(at));
  }
  return "redis URL " + shown + ": " + std::string(why);
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      unsigned v = 0;
      if (std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16).ec == std::errc{}) {
        out.push_back(static_cast<char>(v));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace

std::string parse_redis_url_syntax(std::string_view url, redis_url& out) {
  out = redis_url{};
  if (url.starts_with("unix://")) {
    const std::string_view path = url.substr(7);
    // unix:///run/redis.sock: the path is absolute; no password, no db.
    if (path.empty() || path.front() != '/') {
      return url_error(url, "the socket path must be absolute (unix:///path)");
    }
    if (path.size() >= sizeof(sockaddr_un::sun_path)) {
      return url_error(url, "the socket path is too long");
    }
    if (path.find('\0') != std::string_view::npos) return url_error(url, "NUL in the path");
    out.unix_path.assign(path);
    out.text.assign(url);
    return {};
  }
  if (!url.starts_with("redis://")) {
    return url_error(url, "expected redis://[:password@]host:port[/db] or unix:///path");
  }
  std::string_view rest = url.substr(8);
  std::string_view db_part;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    db_part = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = cred.find(':');
    if (colon == std::string_view::npos) {
      out.password = percent_decode(cred);  // redis://password@host
    } else {
      out.user = percent_decode(cred.substr(0, colon));
      out.password = percent_decode(cred.substr(colon + 1));
    }
  }
  std::string_view port_part;
  bool bracketed = false;
  if (rest.starts_with('[')) {  // [IPv6]:port
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return url_error(url, "unclosed '[' in the host");
    out.host.assign(rest.substr(1, close - 1));
    rest = rest.substr(close + 1);
    bracketed = true;
    if (rest.starts_with(':')) {
      port_part = rest.substr(1);
    } else if (!rest.empty()) {
      return url_error(url, "unexpected text after the host");
    }
  } else {
    const auto colon = rest.rfind(':');
    out.host.assign(rest.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_part = rest.substr(colon + 1);
      // An empty port after ':' is not the default port.
      if (port_part.empty()) return url_error(url, "the port must be 1-65535");
    }
  }
  if (out.host.empty()) return url_error(url, "no host");
  if (out.host.find_first_of(std::string_view("\0/@[] ", 6)) != std::string::npos) {
    return url_error(url, "invalid character in the host");
  }
  if (!port_part.empty()) {
    unsigned port = 0;
    const auto [p, ec] = std::from_chars(port_part.data(), port_part.data() + port_part.size(), port);
    if (ec != std::errc{} || p != port_part.data() + port_part.size() || port == 0 || port > 65535) {
      return url_error(url, "the port must be 1-65535");
    }
    out.port = static_cast<std::uint16_t>(port);
  }
  if (!db_part.empty()) {
    const auto [p, ec] = std::from_chars(db_part.data(), db_part.data() + db_part.size(), out.db);
    if (ec != std::errc{} || p != db_part.data() + db_part.size() || out.db < 0) {
      return url_error(url, "the database must be a number (redis://host:port/0)");
    }
  }
  out.text = "redis://" + (bracketed ? "[" + out.host + "]" : out.host) + ":" +
             std::to_string(out.port) + (out.db ? "/" + std::to_string(out.db) : "");
  return {};
}

std::string resolve_redis_url(redis_url& url) {
  if (!url.unix_path.empty()) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, url.unix_path.data(), url.unix_path.size());
    std::memcpy(&url.address, &sun, sizeof(sun));
    url.address_size =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + url.unix_path.size() + 1);
    return {};
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_UNSPEC;
  addrinfo* found = nullptr;
  if (::getaddrinfo(url.host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return url_error(url.text, "host " + url.host + " does not resolve");
  }
  std::memcpy(&url.address, found->ai_addr, found->ai_addrlen);
  url.address_size = found->ai_addrlen;
  ::freeaddrinfo(found);
  if (url.address.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in&>(url.address).sin_port = htons(url.port);
  } else {
    reinterpret_cast<sockaddr_in6&>(url.address).sin6_port = htons(url.port);
  }
  return {};
}

std::string parse_redis_url(std::string_view url, redis_url& out) {
  if (std::string e = parse_redis_url_syntax(url, out); !e.empty()) return e;
  return resolve_redis_url(out);
}

std::string_view reply_text(const redisReply* r) noexcept {
  if (r == nullptr || r->str == nullptr) return {};
  return {r->str, r->len};
}

redis_connection::redis_connection(net::event_loop& loop, redis_url url,
                                   redis_connection_options options, callbacks cb)
    : loop_(loop),
      url_(std::move(url)),
      options_(options),
      cb_(std::move(cb)),
      backoff_(client::reconnect_policy{true, options.backoff_base, options.backoff_cap, 0}) {
  timer_.bind<&redis_connection::on_timer>(this);
}

redis_connection::~redis_connection() {
  *alive_ = false;
  stop();
}

void redis_connection::start() {
  if (state_ != state::stopped) return;
  connect_now();
}

void redis_connection::stop() {
  const bool was_stopped = state_ == state::stopped;
  if (fd_ && state_ == state::ready && !out_.empty()) {
    // Commands of this iteration not flushed yet (the leave pushes of a
    // shutdown): best effort, whatever the kernel takes now goes out.
    (void)::send(fd_.get(), out_.data(), out_.size(), MSG_NOSIGNAL);
  }
  timer_.cancel();
  if (fd_) {
    loop_.remove(fd_.get(), *this);
    fd_.reset();
  }
  state_ = state::stopped;
  if (reader_ != nullptr) {
    redisReaderFree(reader_);
    reader_ = nullptr;
  }
  out_.clear();
  handshake_replies_ = 0;
  std::deque<reply_handler> failed;
  failed.swap(pending_);
  if (was_stopped && failed.empty()) return;
  const std::weak_ptr<bool> alive = alive_;
  for (reply_handler& h : failed) {
    if (alive.expired()) return;
    if (h) h(nullptr);
  }
}

void redis_connection::command(std::span<const std::string_view> argv, reply_handler done) {
  if (state_ != state::ready || saturated()) {
    // Not connected, or Redis not keeping up: fail fast (the caller answers
    // 503) rather than queue without bound.
    loop_.defer([done = std::move(done)]() mutable {
      if (done) done(nullptr);
    });
    return;
  }
  append(argv);
  pending_.push_back(std::move(done));
  schedule_flush();
}

void redis_connection::schedule_flush() {
  // One write per loop iteration, after everything posted in it: Redis then
  // reads a batch of commands per read, and both sides save a syscall each.
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  loop_.defer([this, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    flush_scheduled_ = false;
    flush();
  });
}

void redis_connection::append(std::span<const std::string_view> argv) {
  // hiredis's formatter; argv is copied into pointer/length arrays it reads.
  thread_local std::vector<const char*> ptrs;
  thread_local std::vector<std::size_t> lens;
  ptrs.clear();
  lens.clear();
  for (const std::string_view a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  char* cmd = nullptr;
  const int n = redisFormatCommandArgv(&cmd, static_cast<int>(argv.size()), ptrs.data(), lens.data());
  if (n > 0 && cmd != nullptr) out_.append(cmd, static_cast<std::size_t>(n));
  redisFreeCommand(cmd);
}

void redis_connection::connect_now() {
  state_ = state::connecting;
  const int fd = ::socket(url_.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return lose("socket: " + std::string(std::strerror(errno)));
  fd_.reset(fd);
  if (url_.address.ss_family != AF_UNIX) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&url_.address), url_.address_size);
  if (rc != 0 && errno != EINPROGRESS && errno != EAGAIN) {
    return lose("connect " + url_.text + ": " + std::strerror(errno));
  }
  armed_ = EPOLLOUT;
  if (auto ec = loop_.add(fd, armed_, *this)) return lose("epoll: " + ec.message());
  loop_.update_now();
  loop_.timers().schedule(timer_, options_.connect_timeout);
}

void redis_connection::on_connected() {
  reader_ = redisReaderCreate();
  state_ = state::handshake;
  handshake_replies_ = 0;
  if (!url_.password.empty()) {
    if (url_.user.empty()) {
      const std::string_view argv[] = {"AUTH", url_.password};
      append(argv);
    } else {
      const std::string_view argv[] = {"AUTH", url_.user, url_.password};
      append(argv);
    }
    ++handshake_replies_;
  }
  if (url_.db != 0) {
    const std::string db = std::to_string(url_.db);
    const std::string_view argv[] = {"SELECT", db};
    append(argv);
    ++handshake_replies_;
  }
  armed_ = EPOLLIN;
  (void)loop_.modify(fd_.get(), armed_, *this);
  if (handshake_replies_ == 0) {
    state_ = state::ready;
    attempt_ = 0;
    if (cb_.on_ready) cb_.on_ready();
    return;
  }
  flush();
}

void redis_connection::on_events(std::uint32_t events) {
  if (state_ == state::connecting) {
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return lose("connect " + url_.text + ": " + std::strerror(err));
    if ((events & (EPOLLERR | EPOLLHUP)) != 0) return lose("connect " + url_.text + ": refused");
    timer_.cancel();
    return on_connected();
  }
  if ((events & EPOLLOUT) != 0) flush();
  if (!fd_) return;
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) on_readable();
}

void redis_connection::on_readable() {
  const std::weak_ptr<bool> alive = alive_;
  // The loop's shared receive buffer: the reader copies what it keeps.
  const std::span<std::byte> space = loop_.recv_buffer();
  char* buf = reinterpret_cast<char*>(space.data());
  const std::size_t cap = std::min(space.size(), k_read_chunk);
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), buf, cap, 0);
    if (n == 0) return lose("connection to " + url_.text + " closed by the server");
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      return lose("read from " + url_.text + ": " + std::strerror(errno));
    }
    if (redisReaderFeed(reader_, buf, static_cast<std::size_t>(n)) != REDIS_OK) {
      return lose("bad reply from " + url_.text + ": " + reader_->errstr);
    }
    for (;;) {
      void* reply = nullptr;
      if (redisReaderGetReply(reader_, &reply) != REDIS_OK) {
        return lose("bad reply from " + url_.text + ": " + reader_->errstr);
      }
      if (reply == nullptr) break;
      handle_reply(static_cast<redisReply*>(reply));
      freeReplyObject(reply);
      // A callback may have stopped, lost or destroyed the connection.
      if (alive.expired() || !fd_ || reader_ == nullptr) return;
    }
    if (static_cast<std::size_t>(n) < cap) return;
  }
}

void redis_connection::handle_reply(redisReply* reply) {
  if (state_ == state::handshake) {
    if (reply->type == REDIS_REPLY_ERROR) {
      return lose("AUTH/SELECT refused by " + url_.text + ": " + std::string(reply_text(reply)));
    }
    if (--handshake_replies_ == 0) {
      state_ = state::ready;
      attempt_ = 0;
      if (cb_.on_ready) cb_.on_ready();
    }
    return;
  }
  // A push on a subscriber connection answers no command.
  if (options_.pubsub && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
      reply_text(reply->element[0]) == "message") {
    if (cb_.on_message) cb_.on_message(reply_text(reply->element[1]), reply_text(reply->element[2]));
    return;
  }
  if (pending_.empty()) return;  // unsolicited (a server that sent more than asked): ignore
  reply_handler h = std::move(pending_.front());
  pending_.pop_front();
  if (h) h(reply);
}

void redis_connection::flush() {
  while (!out_.empty() && fd_) {
    const ssize_t n = ::send(fd_.get(), out_.data(), out_.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return lose("write to " + url_.text + ": " + std::strerror(errno));
    }
    out_.erase(0, static_cast<std::size_t>(n));
  }
  if (!fd_) return;
  const std::uint32_t want = EPOLLIN | (out_.empty() ? 0u : static_cast<std::uint32_t>(EPOLLOUT));
  if (want != armed_) {
    armed_ = want;
    (void)loop_.modify(fd_.get(), armed_, *this);
  }
}

void redis_connection::lose(std::string why) {
  const std::weak_ptr<bool> alive = alive_;
  last_error_ = std::move(why);  // before the failed callbacks run: they may ask why
  stop();  // fails the pending callbacks
  if (alive.expired() || state_ != state::stopped) return;  // a callback restarted or destroyed it
  state_ = state::waiting;
  const auto delay = backoff_.delay(attempt_++);
  loop_.update_now();
  loop_.timers().schedule(timer_, delay);
  if (cb_.on_down) cb_.on_down(last_error_);
}

void redis_connection::on_timer() {
  if (state_ == state::waiting) return connect_now();
  if (state_ == state::connecting) return lose("connect " + url_.text + ": timed out");
}

}  // namespace switchboard::realtime::detail
