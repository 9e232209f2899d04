// tls_stream.cpp — the BIO that feeds OpenSSL from the loop's buffers, the
// handshake, decrypting into the shared receive buffer, one SSL_write per
// flush, and backpressure on ciphertext (see tls_stream.hpp).
#include "switchboard/net/tls_stream.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>

#include "switchboard/net/tcp_socket.hpp"
#include "tls_detail.hpp"

namespace switchboard::net {
namespace {

// Under sustained backpressure the written prefix of the pending buffer is
// dropped once it is both this large and more than half the buffer.
constexpr std::size_t k_compact_min = std::size_t{64} * 1024;
// Per-thread scratch that grew past this in a burst is given back.
constexpr std::size_t k_max_retained_scratch = std::size_t{4} * 1024 * 1024;

// Per-thread buffers (one loop per thread): the records one SSL call produced,
// on their way to one send, and corked plaintext made contiguous for one
// SSL_write. Both are empty whenever user code runs.
struct scratch_buffers {
  std::vector<std::byte> cipher;
  std::vector<std::byte> plain;
  // Completion I/O: each stream's records of one flush, queued as a send
  // that the kernel reads at the end of the flush (uring_engine), so they
  // must outlive the next stream's SSL_write. The cipher buffer is swapped
  // into a slot here and a spare comes back in its place; all slots are
  // free again once every queued send has reported (in_flight 0). Their
  // capacity is kept: steady sends allocate nothing.
  std::vector<std::vector<std::byte>> flight;
  std::size_t in_flight = 0;
};

scratch_buffers& scratch() {
  thread_local scratch_buffers buffers;
  return buffers;
}

void trim(std::vector<std::byte>& buffer) {
  buffer.clear();
  if (buffer.capacity() > k_max_retained_scratch) std::vector<std::byte>().swap(buffer);
}

// SSL_get_error needs an empty error queue before SSL_read. After our own calls
// it is empty (failures drain it), so peek (cheap) instead of always clearing
// (ERR_clear_error wipes all 16 slots); other code on the thread may have left
// something.
inline void clear_stale_errors() noexcept {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

bool is_ip_address(const std::string& host) {
  std::array<unsigned char, sizeof(in6_addr)> address{};
  return ::inet_pton(AF_INET, host.c_str(), address.data()) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), address.data()) == 1;
}

}  // namespace

namespace detail {

// The BIO between OpenSSL and the stream: reads come from stream.input_ (a
// span of the loop's receive buffer), writes go to the per-thread cipher
// scratch, or straight behind the bytes already waiting when write-blocked.
struct tls_stream_access {
  static int read(BIO* bio, char* out, std::size_t size, std::size_t* got) {
    auto& stream = *static_cast<tls_stream*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    *got = 0;
    if (stream.input_.empty()) {
      // More may come: OpenSSL reports WANT_READ. After the peer's FIN: EOF.
      if (!stream.input_eof_) BIO_set_retry_read(bio);
      return 0;
    }
    const std::size_t n = std::min(size, stream.input_.size());
    std::memcpy(out, stream.input_.data(), n);
    stream.input_ = stream.input_.subspan(n);
    *got = n;
    return 1;
  }

  static int write(BIO* bio, const char* data, std::size_t size, std::size_t* written) {
    auto& stream = *static_cast<tls_stream*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    // While blocked, new records queue behind the refused ones; else they
    // collect for one send after the SSL call. Never refused: see the header.
    std::vector<std::byte>& out = stream.write_blocked() ? stream.pending_ : scratch().cipher;
    const auto* bytes = reinterpret_cast<const std::byte*>(data);
    out.insert(out.end(), bytes, bytes + size);
    if (&out == &stream.pending_) stream.count_pending();
    *written = size;
    return 1;
  }

  static long control(BIO* bio, int command, long /*number*/, void* /*pointer*/) {
    switch (command) {
      case BIO_CTRL_FLUSH:  // our writes are collected, then sent by the stream
        return 1;
      case BIO_CTRL_PENDING:
        return static_cast<long>(static_cast<tls_stream*>(BIO_get_data(bio))->input_.size());
      case BIO_CTRL_WPENDING:
        return 0;
      default:
        return 0;
    }
  }

  static int create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
  }
};

}  // namespace detail

namespace {

// The BIO method, created once per process (freed at exit).
BIO_METHOD* stream_bio_method() {
  struct method_holder {
    method_holder()
        : method(BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "switchboard")) {
      using access = detail::tls_stream_access;
      BIO_meth_set_read_ex(method, access::read);
      BIO_meth_set_write_ex(method, access::write);
      BIO_meth_set_ctrl(method, access::control);
      BIO_meth_set_create(method, access::create);
    }
    ~method_holder() { BIO_meth_free(method); }
    BIO_METHOD* method;
  };
  static const method_holder holder;
  return holder.method;
}

}  // namespace

void tls_stream_handler::on_handshake(tls_stream& /*stream*/) {}
void tls_stream_handler::on_drained(tls_stream& /*stream*/) {}

void tls_stream::ssl_deleter::operator()(ssl_st* ssl) const noexcept {
  SSL_free(ssl);
}

tls_stream::tls_stream(event_loop& loop, tls_stream_handler& handler, tls_context& context) noexcept
    : loop_(&loop), handler_(&handler), context_(&context) {
  release_timer_.bind<&tls_stream::on_release_timer>(this);
}

tls_stream::~tls_stream() {
  close();
}

std::error_code tls_stream::open(unique_fd socket, std::string_view server_name) {
  assert(!is_open() && "tls_stream::open on an open stream");
  assert(loop_->in_loop_thread());
  failure_.clear();
  error_text_.clear();
  ERR_clear_error();
  auto give_up = [this](tls_error error) {
    error_text_ = std::move(error.text);
    ssl_.reset();
    snapshot_.reset();
    return error.code;
  };

  snapshot_ = context_->snapshot();
  ssl_.reset(SSL_new(snapshot_->main->ctx.get()));
  if (!ssl_) return give_up(detail::openssl_failure("SSL_new"));
  BIO* bio = BIO_new(stream_bio_method());
  if (bio == nullptr) return give_up(detail::openssl_failure("BIO_new"));
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_.get(), bio, bio);  // one BIO both ways: one reference, owned by the SSL

  if (context_->side() == tls_context::role::client) {
    const std::string host(server_name);
    if (host.empty()) {
      // Without a name any certificate the CA ever signed would pass.
      if (snapshot_->verify_peer) {
        return give_up({std::make_error_code(std::errc::invalid_argument),
                        "a verifying TLS client needs the server's name"});
      }
    } else if (is_ip_address(host)) {
      // RFC 6066 §3: no SNI for literal addresses; check the certificate's IP SAN.
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_.get()), host.c_str()) != 1) {
        return give_up(detail::openssl_failure("server address " + host));
      }
    } else if (SSL_set_tlsext_host_name(ssl_.get(), host.c_str()) != 1 ||
               SSL_set1_host(ssl_.get(), host.c_str()) != 1) {
      return give_up(detail::openssl_failure("server name " + host));
    }
    SSL_set_connect_state(ssl_.get());
  } else {
    SSL_set_accept_state(ssl_.get());
  }

  // io_uring: ciphertext arrives as receive completions (on_received) and
  // readiness is polled only for EPOLLOUT while write-blocked.
  interest_ = loop_->completion_io() ? 0 : EPOLLIN | EPOLLRDHUP;
  if (auto error = loop_->add(socket.get(), interest_, *this)) {
    ssl_.reset();
    snapshot_.reset();
    return error;
  }
  if (loop_->completion_io()) {
    if (auto error = loop_->start_receive(socket.get())) {
      loop_->remove(socket.get(), *this);
      ssl_.reset();
      snapshot_.reset();
      return error;
    }
  }
  fd_ = std::move(socket);
  if (context_->side() == tls_context::role::client) {
    // Send the ClientHello now; its answer arrives through on_events.
    const int rc = SSL_do_handshake(ssl_.get());
    const int ssl_error = SSL_get_error(ssl_.get(), rc);
    transmit();
    if (ssl_error != SSL_ERROR_WANT_READ) fail(take_ssl_error(ssl_error));
  }
  return {};
}

void tls_stream::close() noexcept {
  if (!is_open()) return;
  loop_->remove(fd_.get(), *this);
  loop_->cork().discard(*this);
  release_timer_.cancel();
  keep_buffers_ = false;
  last_read_ = last_write_ = steady_time::min();
  ssl_.reset();  // before the snapshot: its callbacks' data must outlive the SSL
  snapshot_.reset();
  input_ = {};
  std::vector<std::byte>().swap(pending_);
  pending_head_ = 0;
  count_pending();
  std::vector<std::byte>().swap(early_);
  failure_.clear();
  input_eof_ = handshake_done_ = write_shut_ = shut_after_drain_ = false;
  fd_.reset();
}

std::size_t tls_stream::buffered_bytes() const noexcept {
  return write_cork::corked_bytes(*this) + early_.size() + (pending_.size() - pending_head_);
}

send_status tls_stream::send(std::span<const std::byte> data) {
  const std::span<const std::byte> parts[] = {data};
  return send_parts(parts);
}

send_status tls_stream::send(std::initializer_list<std::span<const std::byte>> parts) {
  return send_parts({parts.begin(), parts.size()});
}

send_status tls_stream::send_parts(std::span<const std::span<const std::byte>> parts) {
  assert(loop_->in_loop_thread() && "tls_stream::send called from another thread");
  if (!is_open() || failure_ || write_shut_) return send_status::dropped;
  if (!handshake_done_) {
    // Encrypted as one write once the handshake completes.
    for (const auto& part : parts) early_.insert(early_.end(), part.begin(), part.end());
    return send_status::ok;
  }
  // Even while blocked: corked now, encrypted at the flush, queued behind.
  for (const auto& part : parts) loop_->cork().append(*this, part);
  return write_blocked() ? send_status::backpressure : send_status::ok;
}

void tls_stream::flush_corked(std::span<const iovec> data, std::size_t total) {
  if (failure_) return;  // already failed: the bytes are dropped
  encrypt(data, total);
  if (loop_->completion_io()) return queue_transmit();
  transmit();
}

void tls_stream::queue_transmit() {
  scratch_buffers& buffers = scratch();
  std::vector<std::byte>& out = buffers.cipher;
  if (out.empty()) return;
  if (!is_open() || failure_) return trim(out);
  assert(!write_blocked() && "records would overtake ones the kernel refused");
  if (buffers.in_flight == buffers.flight.size()) buffers.flight.emplace_back();
  std::vector<std::byte>& slot = buffers.flight[buffers.in_flight++];
  slot.swap(out);  // the records stay put; `out` gets the slot's spare capacity
  const iovec records{slot.data(), slot.size()};
  // Submitted with every other stream's sends once the flush has visited
  // them all; the result comes back in on_sent, still within the flush.
  loop_->queue_send(fd_.get(), {&records, 1}, slot.size(), *this);
}

void tls_stream::on_sent(std::span<const iovec> data, std::size_t total, int result) {
  scratch_buffers& buffers = scratch();
  if (result < 0 && result != -EAGAIN && result != -EWOULDBLOCK) {
    fail(errno_code(-result));
  } else if (const auto written = static_cast<std::size_t>(std::max(result, 0)); written < total) {
    // What the kernel refused waits as on epoll (write_pending on EPOLLOUT).
    const auto* records = static_cast<const std::byte*>(data[0].iov_base);
    pending_.assign(records + written, records + total);
    pending_head_ = 0;
    count_pending();
    set_write_interest(true);
  }
  // The last report of the flush frees the slots (the engine reports every
  // queued send, in one go).
  assert(buffers.in_flight > 0);
  if (--buffers.in_flight == 0) {
    for (std::vector<std::byte>& slot : buffers.flight) trim(slot);
  }
}

void tls_stream::encrypt(std::span<const iovec> data, std::size_t total) {
  if (total == 0) return;
  if (data.size() == 1) {
    return encrypt({static_cast<const std::byte*>(data[0].iov_base), data[0].iov_len});
  }
  // One SSL_write per flush: fewer, fuller records (each costs ~22 bytes and
  // an AEAD call) than one per segment.
  std::vector<std::byte>& plain = scratch().plain;
  plain.reserve(total);
  for (const iovec& v : data) {
    const auto* base = static_cast<const std::byte*>(v.iov_base);
    plain.insert(plain.end(), base, base + v.iov_len);
  }
  encrypt(plain);
  trim(plain);
}

void tls_stream::encrypt(std::span<const std::byte> data) {
  if (data.empty() || failure_) return;
  note_use(last_write_);
  std::size_t written = 0;
  ++ssl_writes_;
  // No clear_stale_errors(): see the header.
  const int rc = SSL_write_ex(ssl_.get(), data.data(), data.size(), &written);
  // The BIO takes everything, so a short or refused write is a real failure
  // (what SSL_get_error says only picks the fallback text).
  if (rc != 1) return fail(take_ssl_error(SSL_get_error(ssl_.get(), rc)));
  assert(written == data.size());
}

void tls_stream::transmit() {
  std::vector<std::byte>& out = scratch().cipher;
  if (out.empty()) return;
  if (!is_open() || failure_) return trim(out);
  assert(!write_blocked() && "records would overtake ones the kernel refused");
  const io_result result = write_some(fd_.get(), std::span<const std::byte>(out));
  if (result.error && !result.would_block()) {
    trim(out);
    return fail(result.error);
  }
  if (result.bytes < out.size()) {
    pending_.assign(out.begin() + static_cast<std::ptrdiff_t>(result.bytes), out.end());
    pending_head_ = 0;
    count_pending();
    set_write_interest(true);
  }
  trim(out);
}

void tls_stream::shutdown_write() {
  if (!is_open() || failure_ || write_shut_) return;
  write_shut_ = true;
  if (handshake_done_) {
    // What was corked this iteration goes out before the close_notify.
    const std::size_t corked = write_cork::corked_bytes(*this);
    encrypt(loop_->cork().take(*this, {}), corked);
    clear_stale_errors();
    SSL_shutdown(ssl_.get());  // queues close_notify (returns 0: the peer's not seen yet)
    ERR_clear_error();
    transmit();
  }
  if (write_blocked()) {
    shut_after_drain_ = true;
  } else if (!failure_) {
    ::shutdown(fd_.get(), SHUT_WR);
  }
}

void tls_stream::set_write_interest(bool on) {
  const std::uint32_t wanted = on ? (interest_ | EPOLLOUT) : (interest_ & ~std::uint32_t{EPOLLOUT});
  if (wanted == interest_) return;
  if (auto error = loop_->modify(fd_.get(), wanted, *this)) return fail(error);
  interest_ = wanted;
}

std::error_code tls_stream::take_ssl_error(int ssl_error) {
  const bool verify_failed = ssl_ && SSL_get_verify_result(ssl_.get()) != X509_V_OK;
  // OpenSSL queues nothing for an EOF in some paths; name it anyway.
  const unsigned long fallback = ssl_error == SSL_ERROR_SYSCALL || input_eof_
                                     ? ERR_PACK(ERR_LIB_SSL, 0, SSL_R_UNEXPECTED_EOF_WHILE_READING)
                                     : 0;
  tls_error error = detail::openssl_failure("TLS", fallback);
  const unsigned long code = openssl_error_of(error.code);
  if (verify_failed && ERR_GET_LIB(code) == ERR_LIB_SSL &&
      ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    error.text = std::string("certificate verify failed: ") +
                 X509_verify_cert_error_string(SSL_get_verify_result(ssl_.get())) + " (" +
                 error.text + ")";
  }
  error_text_ = std::move(error.text);
  return error.code;
}

void tls_stream::fail(std::error_code error) noexcept {
  if (failure_) return;
  failure_ = error;
  loop_->cork().discard(*this);
  std::vector<std::byte>().swap(pending_);
  pending_head_ = 0;
  count_pending();
  // Not from here (inside send, open or the cork flush): shutting the socket
  // down makes epoll report it next iteration; on_events then reports `error`.
  ::shutdown(fd_.get(), SHUT_RDWR);
}

void tls_stream::count_pending() noexcept {
  // The loop sums what its streams hold for slow peers (a server's global
  // outbound bound): the ciphertext refused by the kernel, not yet written.
  const std::size_t now = pending_.size() - pending_head_;
  loop_->count_held_write_bytes(static_cast<std::ptrdiff_t>(now) -
                                static_cast<std::ptrdiff_t>(counted_pending_));
  counted_pending_ = now;
}

bool tls_stream::write_pending() {
  const std::span<const std::byte> rest(pending_.data() + pending_head_,
                                        pending_.size() - pending_head_);
  const io_result result = write_some(fd_.get(), rest);
  if (result.error) {
    if (result.would_block()) return true;
    close_and_notify(result.error);
    return false;
  }
  pending_head_ += result.bytes;
  count_pending();
  if (pending_head_ == pending_.size()) {
    std::vector<std::byte>().swap(pending_);  // an idle stream keeps no buffer
    pending_head_ = 0;
    count_pending();
    set_write_interest(false);
    if (shut_after_drain_) {
      shut_after_drain_ = false;
      ::shutdown(fd_.get(), SHUT_WR);
    }
  } else if (pending_head_ >= k_compact_min && pending_head_ > pending_.size() / 2) {
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(pending_head_));
    pending_head_ = 0;
  }
  return true;
}

void tls_stream::close_and_notify(std::error_code error) {
  tls_stream_handler* handler = handler_;
  close();
  handler->on_close(*this, error);  // may destroy *this
}

void tls_stream::on_events(std::uint32_t events) {
  if (failure_) return close_and_notify(failure_);
  detail::lifetime_flag::scope alive(lifetime_);

  // With completion I/O only write readiness is polled, and a hang-up or an
  // error there is found by the write (reads report theirs as completions).
  const std::uint32_t write_events =
      loop_->completion_io() ? std::uint32_t{EPOLLOUT | EPOLLERR | EPOLLHUP} : EPOLLOUT;
  if ((events & write_events) != 0 && write_blocked()) {
    if (!write_pending()) return;
    if (!write_blocked() && handshake_done_) {
      handler_->on_drained(*this);
      if (alive.destroyed() || !is_open()) return;
    }
  }
  if (loop_->completion_io()) return;
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0) return;
  if (failure_) return close_and_notify(failure_);

  // Ciphertext into the upper half of the loop's buffer, plaintext into the
  // lower half: disjoint, so OpenSSL never reads what it is writing.
  const std::span<std::byte> buffer = loop_->recv_buffer();
  const std::size_t half = buffer.size() / 2;
  const io_result result = read_some(fd_.get(), buffer.subspan(half));
  if (result.error) {
    if (!result.would_block()) close_and_notify(result.error);
    return;
  }
  input_eof_ = result.bytes == 0;
  input_ = buffer.subspan(half, result.bytes);
  receive(buffer.first(half), alive);
}

void tls_stream::on_received(std::span<std::byte> data, int error) {
  // fail() shut the socket down: the receive ends, and the recorded error is
  // what the owner hears.
  if (failure_) return close_and_notify(failure_);
  if (error != 0) return close_and_notify(errno_code(error));
  detail::lifetime_flag::scope alive(lifetime_);
  // The ciphertext is in the engine's receive buffer (valid during this
  // call, and consumed by OpenSSL before it returns); the whole loop buffer
  // is free for plaintext. Empty: the peer ended TCP.
  input_eof_ = data.empty();
  input_ = data;
  receive(loop_->recv_buffer(), alive);
}

bool tls_stream::finish_handshake(detail::lifetime_flag::scope& alive) {
  clear_stale_errors();
  const int rc = SSL_do_handshake(ssl_.get());
  const int ssl_error = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_.get(), rc);
  std::error_code error;
  if (ssl_error != SSL_ERROR_NONE && (ssl_error != SSL_ERROR_WANT_READ || input_eof_)) {
    error = take_ssl_error(ssl_error);
  }
  transmit();  // our handshake flight, or the alert that tells the peer why
  if (error) {
    context_->count_handshake(error);
    close_and_notify(error);
    return false;
  }
  if (ssl_error == SSL_ERROR_WANT_READ) return false;  // the peer's next flight is due
  handshake_done_ = true;
  context_->count_handshake({});
  if (!early_.empty()) {
    encrypt(early_);
    std::vector<std::byte>().swap(early_);
    transmit();
  }
  handler_->on_handshake(*this);
  return !alive.destroyed() && is_open();
}

void tls_stream::receive(std::span<std::byte> plain, detail::lifetime_flag::scope& alive) {
  if (handshake_done_) {
    note_use(last_read_);
  } else if (!finish_handshake(alive)) {
    return;  // the handshake goes on, failed, or the handler closed the stream
  }
  // (The pass that completes the handshake is not counted: see the header.)
  clear_stale_errors();
  std::size_t filled = 0;
  auto deliver = [&]() -> bool {
    const std::size_t size = std::exchange(filled, 0);
    if (size == 0) return true;
    handler_->on_data(*this, plain.first(size));
    return !alive.destroyed() && is_open();
  };
  for (;;) {
    std::size_t got = 0;
    const int rc = SSL_read_ex(ssl_.get(), plain.data() + filled, plain.size() - filled, &got);
    if (rc == 1) {
      filled += got;
      if (filled == plain.size()) {
        // More plaintext than the half holds (a partial record was waiting):
        // hand this much over and go on.
        transmit();
        if (!deliver()) return;
        clear_stale_errors();  // user code ran
        continue;
      }
      // Every byte read went in and OpenSSL holds none back (no record, not
      // even a partial one): another SSL_read could only say WANT_READ. Skip
      // it and its SSL_get_error, ~1,000 instructions a pass.
      if (input_.empty() && !input_eof_ && SSL_has_pending(ssl_.get()) == 0) break;
      continue;
    }
    const int ssl_error = SSL_get_error(ssl_.get(), rc);
    if (ssl_error == SSL_ERROR_WANT_READ && !input_eof_) break;  // all input consumed
    std::error_code error;
    if (ssl_error == SSL_ERROR_ZERO_RETURN) {
      // The peer's close_notify ends its data, not ours. What came before it
      // goes to the handler first, which may still answer (a WebSocket close
      // frame is echoed, RFC 6455 5.5.1); shutdown_write() then sends that
      // answer and our close_notify after it (best effort), and we end in order.
      if (!deliver()) return;
      shutdown_write();
      ERR_clear_error();
    } else {
      error = take_ssl_error(ssl_error);
    }
    transmit();
    if (!deliver()) return;
    return close_and_notify(error);
  }
  assert(input_.empty());
  transmit();  // e.g. an answer to a KeyUpdate
  // A quiet stream: SSL_MODE_RELEASE_BUFFERS frees the read buffer only after
  // application data; after post-handshake messages (a client's
  // NewSessionTicket) it would keep 17 KiB. This frees whatever holds no
  // partial record (usually nothing). A busy one keeps them (see the header).
  if (!keep_buffers_) SSL_free_buffers(ssl_.get());
  if (failure_) {
    if (!deliver()) return;
    return close_and_notify(failure_);
  }
  deliver();
}

void tls_stream::note_use(steady_time& last) noexcept {
  const steady_time now = loop_->now();
  const std::chrono::milliseconds delay = context_->release_buffers_after();
  // The second use within `delay`: busy. (min() + delay cannot overflow.)
  if (!keep_buffers_ && now < last + delay) {
    keep_buffers_ = true;
    SSL_clear_mode(ssl_.get(), SSL_MODE_RELEASE_BUFFERS);
    loop_->timers().schedule(release_timer_, delay);
  }
  last = now;
}

void tls_stream::on_release_timer() noexcept {
  if (!is_open() || !keep_buffers_) return;
  const std::chrono::milliseconds delay = context_->release_buffers_after();
  const auto idle = loop_->now() - std::max(last_read_, last_write_);
  if (idle < delay) {
    // Used since the timer was armed: look again when it may have gone idle.
    loop_->timers().schedule(release_timer_, delay - idle);
    return;
  }
  keep_buffers_ = false;
  SSL_set_mode(ssl_.get(), SSL_MODE_RELEASE_BUFFERS);
  // Fails only while a partial record waits for the rest; the read pass that
  // completes it frees the buffers then (quiet streams do at every pass).
  SSL_free_buffers(ssl_.get());
}

std::string_view tls_stream::alpn_protocol() const noexcept {
  if (!ssl_) return {};
  const unsigned char* data = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(ssl_.get(), &data, &length);
  return {reinterpret_cast<const char*>(data), length};
}

std::string_view tls_stream::protocol_version() const noexcept {
  return ssl_ ? SSL_get_version(ssl_.get()) : std::string_view{};
}

std::string_view tls_stream::server_name() const noexcept {
  const char* name = ssl_ ? SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name) : nullptr;
  return name != nullptr ? name : std::string_view{};
}

std::string tls_stream::peer_subject() const {
  X509* cert = ssl_ ? SSL_get0_peer_certificate(ssl_.get()) : nullptr;
  if (cert == nullptr) return {};
  std::array<char, 512> text{};
  X509_NAME_oneline(X509_get_subject_name(cert), text.data(), static_cast<int>(text.size()));
  return text.data();
}

}  // namespace switchboard::net
