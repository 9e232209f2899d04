// uring_engine.cpp — see uring_engine.hpp.
#include "uring_engine.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstdio>
#include <thread>

namespace switchboard::net::detail {
namespace {

constexpr std::uint16_t k_buffer_group = 0;
constexpr std::uint32_t k_max_buffers = 32768;  // the kernel's limit for a buffer ring
// Incrementally consumed buffers (Linux 6.12; newer than liburing 2.3's headers).
constexpr std::uint16_t k_pbuf_ring_inc = 2;         // IOU_PBUF_RING_INC
constexpr std::uint32_t k_cqe_f_buf_more = 1U << 4;  // IORING_CQE_F_BUF_MORE
// An accept that ends with EAGAIN instead of waiting (Linux 6.10).
constexpr std::uint16_t k_accept_dontwait = 1U << 1;  // IORING_ACCEPT_DONTWAIT
// The socket command getsockopt (Linux 6.7; SOCKET_URING_OP_GETSOCKOPT).
constexpr std::uint32_t k_socket_op_getsockopt = 2;
// What a cleared registered-file slot holds (read by the kernel at submission).
constexpr int k_no_file = -1;

// Multishot receive arrived in Linux 6.0; the probe cannot tell, the release can.
bool kernel_at_least(int major, int minor) {
  utsname name{};
  if (::uname(&name) != 0) return false;
  int have_major = 0;
  int have_minor = 0;
  if (std::sscanf(name.release, "%d.%d", &have_major, &have_minor) != 2) return false;
  return have_major > major || (have_major == major && have_minor >= minor);
}

}  // namespace

std::unique_ptr<uring_engine> uring_engine::create(const event_loop_options& options,
                                                   std::error_code& error) {
  error.clear();
  std::unique_ptr<uring_engine> engine(new uring_engine());
  io_uring_params params{};
  int rc = -EINVAL;
  if (options.uring_single_thread && options.uring_entries != 0) {
    // SINGLE_ISSUER + DEFER_TASKRUN (Linux 6.1): completion work waits for
    // the loop's own io_uring_enter (GETEVENTS) instead of running on the
    // way out of any system call, e.g. in the middle of the direct write
    // of a large message. R_DISABLED: the ring belongs to the thread that
    // enables it, the first to run the loop (see bind_thread()), not to the
    // one creating it.
    params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
                   IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED;
    params.cq_entries = options.uring_entries * 4;
    rc = ::io_uring_queue_init_params(options.uring_entries, &engine->ring_, &params);
    if (rc == 0) {
      engine->single_thread_ = true;
      engine->enabled_ = false;
    }
  }
  if (rc == -EINVAL) {
    // CQSIZE: a multishot receive per connection can post many completions per
    // iteration. COOP_TASKRUN: completions are collected when the loop enters
    // the kernel anyway; no interrupt needed to run them earlier.
    params = io_uring_params{};
    params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN;
    params.cq_entries = options.uring_entries * 4;
    rc = ::io_uring_queue_init_params(options.uring_entries, &engine->ring_, &params);
  }
  if (rc == -EINVAL && options.uring_entries != 0) {
    // A kernel older than 5.19 has no COOP_TASKRUN; it does without.
    params = io_uring_params{};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = options.uring_entries * 4;
    rc = ::io_uring_queue_init_params(options.uring_entries, &engine->ring_, &params);
  }
  if (rc < 0) {
    error = errno_code(-rc);
    return nullptr;
  }
  engine->ring_ready_ = true;
  engine->accept_batches_ = kernel_at_least(6, 10);
  // Why: without NODROP a burst of completions could be lost; without EXT_ARG
  // the wait has no timeout; both are older than what the rest needs.
  if ((params.features & IORING_FEAT_NODROP) == 0 || (params.features & IORING_FEAT_EXT_ARG) == 0 ||
      !kernel_at_least(6, 0)) {
    error = std::make_error_code(std::errc::function_not_supported);
    return nullptr;
  }
  if (io_uring_probe* probe = ::io_uring_get_probe_ring(&engine->ring_)) {
    const bool all = io_uring_opcode_supported(probe, IORING_OP_POLL_ADD) &&
                     io_uring_opcode_supported(probe, IORING_OP_POLL_REMOVE) &&
                     io_uring_opcode_supported(probe, IORING_OP_RECV) &&
                     io_uring_opcode_supported(probe, IORING_OP_SEND) &&
                     io_uring_opcode_supported(probe, IORING_OP_SENDMSG) &&
                     io_uring_opcode_supported(probe, IORING_OP_ACCEPT) &&
                     io_uring_opcode_supported(probe, IORING_OP_ASYNC_CANCEL);
    engine->peer_commands_ =
        kernel_at_least(6, 7) && io_uring_opcode_supported(probe, IORING_OP_URING_CMD);
    ::io_uring_free_probe(probe);
    if (!all) {
      error = std::make_error_code(std::errc::function_not_supported);
      return nullptr;
    }
  } else {
    error = std::make_error_code(std::errc::function_not_supported);
    return nullptr;
  }

  // The receive buffers, handed to the kernel through a buffer ring it picks
  // from as data arrives. Since Linux 6.12 a buffer can be consumed
  // incrementally: receives on any socket fill it back to back, so a few
  // large buffers serve 16-byte and 64 KiB messages alike. Older kernels
  // take a whole buffer per receive, so there the same memory is cut into
  // 4 KiB buffers.
  const std::size_t total = std::max<std::size_t>(options.uring_buffers, 1) *
                            std::max<std::size_t>(options.uring_buffer_size, 64);
  for (const bool incremental : {true, false}) {
    const std::size_t size =
        incremental ? std::max<std::size_t>(options.uring_buffer_size, 64) : 4096;
    const auto count = static_cast<std::uint32_t>(
        std::bit_ceil(std::clamp<std::size_t>(total / size, 1, k_max_buffers)));
    const std::size_t ring_bytes = count * sizeof(io_uring_buf);
    void* ring_memory = ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE,
                               MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (ring_memory == MAP_FAILED) {
      error = errno_code();
      return nullptr;
    }
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(ring_memory);
    reg.ring_entries = count;
    reg.bgid = k_buffer_group;
    reg.pad = incremental ? k_pbuf_ring_inc : 0;  // "flags" in newer headers
    if ((rc = ::io_uring_register_buf_ring(&engine->ring_, &reg, 0)) < 0) {
      ::munmap(ring_memory, ring_bytes);
      if (incremental && rc == -EINVAL) continue;  // before 6.12: whole buffers
      error = errno_code(-rc);
      return nullptr;
    }
    engine->buf_ring_ = static_cast<io_uring_buf_ring*>(ring_memory);
    engine->buf_ring_bytes_ = ring_bytes;
    engine->buffers_ = std::make_unique_for_overwrite<std::byte[]>(std::size_t{count} * size);
    engine->buf_offsets_.assign(count, 0);
    engine->buf_count_ = count;
    engine->buf_size_ = static_cast<std::uint32_t>(size);
    break;
  }
  // The registered file table, a slot per descriptor number. The kernel
  // refuses a table larger than RLIMIT_NOFILE (no descriptor could reach the
  // slots beyond it anyway). Refused: streams use plain descriptors.
  if (options.uring_files > 0) {
    rlimit limit{};
    std::size_t slots = options.uring_files;
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
      slots = std::min<std::size_t>(slots, limit.rlim_cur);
    }
    slots = std::min<std::size_t>(slots, std::size_t{1} << 20);
    if (slots > 0 &&
        ::io_uring_register_files_sparse(&engine->ring_, static_cast<unsigned>(slots)) == 0) {
      engine->files_ = static_cast<std::uint32_t>(slots);
      engine->slot_fds_ = std::make_unique_for_overwrite<int[]>(slots);
    }
  }
  io_uring_buf_ring_init(engine->buf_ring_);
  for (std::uint32_t i = 0; i < engine->buf_count_; ++i) {
    engine->recycle(static_cast<std::uint16_t>(i));
  }
  io_uring_buf_ring_advance(engine->buf_ring_, static_cast<int>(engine->buf_recycled_));
  engine->buf_recycled_ = 0;
  return engine;
}

uring_engine::~uring_engine() {
  // Tears the ring down with whatever is in flight (cancelled by the kernel).
  // Connections accepted but not dispatched are ours to close.
  if (ring_ready_) {
    collect(false);
    for (const auto* list : {&early_, &batch_}) {
      for (const completion_entry& c : *list) {
        if ((c.user_data & 0xff) == op_accept && c.res >= 0) ::close(c.res);
      }
    }
    ::io_uring_queue_exit(&ring_);
  }
  if (buf_ring_ != nullptr) ::munmap(buf_ring_, buf_ring_bytes_);
}

bool uring_engine::bound_here() const noexcept {
  return !single_thread_ || (enabled_ && owner_ == std::this_thread::get_id());
}

std::error_code uring_engine::bind_thread() noexcept {
  if (!single_thread_) return {};
  if (enabled_) {
    return owner_ == std::this_thread::get_id() ? std::error_code{} : errno_code(EEXIST);
  }
  // io_uring_enable_rings() is newer than liburing 2.3's library.
  if (::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) <
      0) {
    return errno_code();
  }
  enabled_ = true;
  owner_ = std::this_thread::get_id();
  return {};
}

int uring_engine::submit() noexcept {
  // Why not ask the kernel: it refuses another thread's submissions
  // (EEXIST) and a disabled ring's (EBADFD); what is queued before the
  // first run goes with the loop's first submission.
  if (!bound_here()) return -EEXIST;
  return ::io_uring_submit(&ring_);
}

io_uring_sqe* uring_engine::next_sqe() noexcept {
  io_uring_sqe* sqe = ::io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    // The submission queue is full: hand it to the kernel now. Completions
    // stay in the completion queue until collected.
    // Why a scratch entry: a single-thread ring cannot take this thread's
    // submissions (see event_loop_options::uring_single_thread); the
    // request is dropped rather than waiting forever for room.
    if (submit() == -EEXIST) return scratch_sqe_.get();
    sqe = ::io_uring_get_sqe(&ring_);
  }
  return sqe;
}

uring_engine::registration* uring_engine::find(int fd, std::uint32_t gen) noexcept {
  if (fd < 0 || static_cast<std::size_t>(fd) >= regs_.size()) return nullptr;
  registration& r = regs_[static_cast<std::size_t>(fd)];
  return r.live && (r.gen & 0xff'ffffu) == gen ? &r : nullptr;
}

std::error_code uring_engine::add(int fd, std::uint32_t events, io_handler& handler) {
  // Why: epoll_ctl would refuse a closed descriptor; a poll request would
  // report it only later, as an error event. Interest 0 (a TCP stream about
  // to start its receive, which reports EBADF itself) skips the check: it
  // is a system call per connection.
  if (fd < 0 || (events != 0 && ::fcntl(fd, F_GETFD) < 0)) return errno_code(EBADF);
  if (static_cast<std::size_t>(fd) >= regs_.size()) {
    regs_.resize(std::max<std::size_t>(static_cast<std::size_t>(fd) + 1, regs_.size() * 2));
  }
  registration& r = regs_[static_cast<std::size_t>(fd)];
  if (r.live) return errno_code(EEXIST);
  r.handler = &handler;
  r.live = true;
  r.events = events;
  r.poll_armed = false;
  r.recv_armed = false;
  if (events != 0) arm_poll(fd, r);
  return {};
}

std::error_code uring_engine::modify(int fd, std::uint32_t events, io_handler& handler) {
  if (fd < 0 || static_cast<std::size_t>(fd) >= regs_.size() ||
      !regs_[static_cast<std::size_t>(fd)].live) {
    return errno_code(ENOENT);
  }
  registration& r = regs_[static_cast<std::size_t>(fd)];
  r.handler = &handler;
  if (r.events == events && (r.poll_armed || events == 0)) return {};
  r.events = events;
  if (r.poll_armed) {
    auto* sqe = next_sqe();
    ::io_uring_prep_poll_remove(sqe, tag(fd, r.poll_gen, op_poll));
    ::io_uring_sqe_set_data64(sqe, op_none);
    ++r.poll_gen;  // whatever the old poll still reports is stale
    r.poll_armed = false;
  }
  // While the handler is being dispatched the poll is re-armed after it returns.
  if (events != 0) arm_poll(fd, r);
  return {};
}

bool uring_engine::remove(int fd, io_handler& /*handler*/) noexcept {
  if (fd < 0 || static_cast<std::size_t>(fd) >= regs_.size()) return false;
  registration& r = regs_[static_cast<std::size_t>(fd)];
  if (!r.live) return false;
  const bool had_recv = r.recv_armed;
  const bool had_accept = r.accept_armed;
  if (r.poll_armed) {
    auto* sqe = next_sqe();
    ::io_uring_prep_poll_remove(sqe, tag(fd, r.poll_gen, op_poll));
    ::io_uring_sqe_set_data64(sqe, op_none);
  }
  if (had_recv) cancel(tag(fd, r.gen, op_recv));
  const bool had_file = r.file == file_asked || r.file == file_fixed;
  clear_file(fd, r);
  r = registration{.gen = r.gen + 1, .poll_gen = r.poll_gen + 1};
  // Why submit now: the receive holds a reference to the socket, so the
  // caller's close() would not end the connection until the next submission;
  // a queued accept batch must run before the descriptor is closed (and its
  // number maybe reused): what it accepts is closed as stale.
  // The slot holds a reference to the socket too: cleared in the same
  // submission, before the caller closes the descriptor (whose number a new
  // stream may get, and install again in a later submission).
  if (had_recv || had_accept || had_file) {
    // A deferred ring runs the cancelled receive's completion (which drops
    // its reference to the socket) only when asked to: ask now.
    if (single_thread_ && bound_here()) {
      (void)::io_uring_submit_and_get_events(&ring_);
    } else {
      (void)submit();
    }
  }
  return true;
}

void uring_engine::clear_file(int fd, registration& r) noexcept {
  switch (r.file) {
    case file_fixed:
      --fixed_files_;
      [[fallthrough]];
    case file_asked: {
      // Behind the install in the queue; the install's completion, if still
      // to come, is stale (gen bumped).
      auto* sqe = next_sqe();
      ::io_uring_prep_files_update(sqe, const_cast<int*>(&k_no_file), 1, fd);
      ::io_uring_sqe_set_data64(sqe, op_none);
      break;
    }
    default:
      break;
  }
  r.file = file_none;
}

void uring_engine::install_file(int fd, registration& r) noexcept {
  int& value = slot_fds_[static_cast<std::size_t>(fd)];
  value = fd;
  auto* sqe = next_sqe();
  ::io_uring_prep_files_update(sqe, &value, 1, fd);
  ::io_uring_sqe_set_data64(sqe, tag(fd, r.gen, op_files));
  r.file = file_asked;
}

void uring_engine::cancel(std::uint64_t user_data) noexcept {
  auto* sqe = next_sqe();
  ::io_uring_prep_cancel64(sqe, user_data, 0);
  ::io_uring_sqe_set_data64(sqe, op_none);
}

void uring_engine::arm_poll(int fd, registration& r) noexcept {
  auto* sqe = next_sqe();
  ::io_uring_prep_poll_add(sqe, fd, r.events);
  ::io_uring_sqe_set_data64(sqe, tag(fd, r.poll_gen, op_poll));
  r.poll_armed = true;
}

void uring_engine::arm_recv(int fd, registration& r) noexcept {
  auto* sqe = next_sqe();
  ::io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  if (r.file == file_fixed) sqe->flags |= IOSQE_FIXED_FILE;  // the slot is the fd's number
  sqe->buf_group = k_buffer_group;
  ::io_uring_sqe_set_data64(sqe, tag(fd, r.gen, op_recv));
  r.recv_armed = true;
}

std::error_code uring_engine::start_accept(int fd, socklen_t peer_length) {
  if (!accept_batches_) return std::make_error_code(std::errc::not_supported);
  if (fd < 0 || static_cast<std::size_t>(fd) >= regs_.size() ||
      !regs_[static_cast<std::size_t>(fd)].live) {
    return errno_code(ENOENT);
  }
  registration& r = regs_[static_cast<std::size_t>(fd)];
  r.peer_length = peer_length;
  if (r.accept_armed) return {};
  auto* sqe = next_sqe();
  // No address: every completion of a multishot accept would write it to the
  // same place. fetch_peers() asks for the batch's addresses instead.
  ::io_uring_prep_multishot_accept(sqe, fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  sqe->ioprio |= k_accept_dontwait;
  ::io_uring_sqe_set_data64(sqe, tag(fd, r.gen, op_accept));
  r.accept_armed = true;
  return {};
}

std::error_code uring_engine::start_receive(int fd) {
  if (fd < 0 || static_cast<std::size_t>(fd) >= regs_.size() ||
      !regs_[static_cast<std::size_t>(fd)].live) {
    return errno_code(ENOENT);
  }
  registration& r = regs_[static_cast<std::size_t>(fd)];
  // The first receive runs on the descriptor (a multishot receive looks its
  // file up once anyway); sends use the slot once its completion confirmed it.
  if (r.file == file_none && static_cast<std::uint32_t>(fd) < files_) install_file(fd, r);
  if (!r.recv_armed) arm_recv(fd, r);
  return {};
}

void uring_engine::recycle(std::uint16_t buffer_id) noexcept {
  io_uring_buf_ring_add(buf_ring_, buffers_.get() + std::size_t{buffer_id} * buf_size_, buf_size_,
                        buffer_id, io_uring_buf_ring_mask(buf_count_),
                        static_cast<int>(buf_recycled_));
  ++buf_recycled_;
}

void uring_engine::queue_send(int fd, std::span<const iovec> data, std::size_t total,
                              io_handler& handler) {
  sends_.push_back(send_op{&handler, fd, send_iov_.size(), data.size(), total, 0, false, {}});
  send_iov_.insert(send_iov_.end(), data.begin(), data.end());
}

void uring_engine::collect(bool sends_only_matter) {
  for (;;) {
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++seen;
      const std::uint64_t data = cqe->user_data;
      if ((data & 0xff) == op_send) {
        send_op& s = sends_[static_cast<std::size_t>(data >> 8)];
        s.result = cqe->res;
        s.done = true;
        --sends_outstanding_;
      } else if ((data & 0xff) == op_peer) {
        peer_op& p = peers_[static_cast<std::size_t>(data >> 8)];
        p.result = cqe->res;
        p.done = true;
        --peers_outstanding_;
      } else if ((data & 0xff) != op_none) {
        accepts_collected_ = accepts_collected_ || (data & 0xff) == op_accept;
        (sends_only_matter ? early_ : batch_)
            .push_back(completion_entry{data, cqe->res, cqe->flags});
      }
    }
    ::io_uring_cq_advance(&ring_, seen);
    if (seen != 0) continue;
    // Completions that did not fit the queue wait in the kernel: fetch them.
    if (!::io_uring_cq_has_overflow(&ring_) || !bound_here()) return;
    if (::io_uring_get_events(&ring_) < 0) return;
  }
}

void uring_engine::complete_sends() {
  if (sends_.empty()) return;
  for (std::size_t i = 0; i < sends_.size(); ++i) {
    send_op& s = sends_[i];
    auto* sqe = next_sqe();
    // MSG_DONTWAIT: finish within the submission (see the header). One
    // buffer (an echo, a corked batch) goes as a plain send: the kernel then
    // copies in no msghdr and no iovec array (io_msg_copy_hdr,
    // io_net_import_vec: ~1.6% of the server's CPU at 1,000 x 16 B echo).
    if (s.iov_count == 1) {
      const iovec& only = send_iov_[s.iov_offset];
      ::io_uring_prep_send(sqe, s.fd, only.iov_base, only.iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    } else {
      s.msg = msghdr{};
      s.msg.msg_iov = send_iov_.data() + s.iov_offset;
      s.msg.msg_iovlen = s.iov_count;
      ::io_uring_prep_sendmsg(sqe, s.fd, &s.msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    if (regs_[static_cast<std::size_t>(s.fd)].file == file_fixed) sqe->flags |= IOSQE_FIXED_FILE;
    ::io_uring_sqe_set_data64(sqe, (static_cast<std::uint64_t>(i) << 8) | op_send);
  }
  sends_outstanding_ = sends_.size();
  (void)submit();
  collect(true);
  while (sends_outstanding_ != 0) {
    // Not expected (MSG_DONTWAIT sends complete inline), but the bytes must
    // stay valid until the kernel is done with them.
    io_uring_cqe* cqe = nullptr;
    const int rc = ::io_uring_wait_cqe(&ring_, &cqe);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN) break;
    collect(true);
  }
  for (send_op& s : sends_) {
    const int result = s.done ? s.result : -EIO;
    s.handler->on_sent({send_iov_.data() + s.iov_offset, s.iov_count}, s.total, result);
  }
  sends_.clear();
  send_iov_.clear();
}

std::error_code uring_engine::wait(int timeout_ms) {
  if (!early_.empty()) timeout_ms = 0;  // collected during the last flush: run them now
  if (buf_recycled_ != 0) {
    io_uring_buf_ring_advance(buf_ring_, static_cast<int>(buf_recycled_));
    buf_recycled_ = 0;
  }
  int rc = 0;
  if (auto error = bind_thread()) return error;
  if (timeout_ms == 0) {
    // A deferred ring's completion work runs only when asked for (GETEVENTS).
    rc = single_thread_ ? ::io_uring_submit_and_get_events(&ring_) : ::io_uring_submit(&ring_);
  } else if (timeout_ms < 0) {
    rc = ::io_uring_submit_and_wait(&ring_, 1);
  } else {
    __kernel_timespec ts{};
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1'000'000;
    io_uring_cqe* cqe = nullptr;
    rc = ::io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  }
  if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EAGAIN && rc != -EBUSY) {
    return errno_code(-rc);
  }
  batch_.swap(early_);
  collect(false);
  early_.clear();
  return {};
}

void uring_engine::fetch_peers() {
  // Why the flag: this runs every iteration; most have no accept to scan for.
  if (!peer_commands_ || !accepts_collected_) return;
  accepts_collected_ = false;  // set again by what the submission below collects
  peers_.clear();
  for (completion_entry& c : batch_) {
    if ((c.user_data & 0xff) != op_accept || c.res < 0) continue;
    const registration* r = find(static_cast<int>(c.user_data >> 32),
                                 static_cast<std::uint32_t>((c.user_data >> 8) & 0xff'ffffu));
    if (r == nullptr || r->peer_length == 0) continue;
    c.peer = static_cast<std::uint32_t>(peers_.size());
    peers_.push_back(peer_op{{}, static_cast<std::int32_t>(r->peer_length), false});
  }
  if (peers_.empty()) return;
  for (const completion_entry& c : batch_) {
    if (c.peer == k_no_peer) continue;
    peer_op& p = peers_[c.peer];
    auto* sqe = next_sqe();
    // getsockopt(SOL_SOCKET, SO_PEERNAME) as a socket command; the fields
    // (level, optname, optlen, optval) are newer than liburing 2.3's sqe.
    ::io_uring_prep_rw(IORING_OP_URING_CMD, sqe, c.res, nullptr, 0, 0);
    sqe->cmd_op = k_socket_op_getsockopt;
    sqe->addr = SOL_SOCKET | (std::uint64_t{SO_PEERNAME} << 32);
    sqe->file_index = static_cast<std::uint32_t>(p.result);  // the size asked for
    sqe->addr3 = reinterpret_cast<std::uint64_t>(&p.address);
    ::io_uring_sqe_set_data64(sqe, (std::uint64_t{c.peer} << 8) | op_peer);
  }
  peers_outstanding_ = peers_.size();
  (void)submit();
  collect(true);
  while (peers_outstanding_ != 0) {
    // Not expected (the command completes inline); the addresses are written
    // into peers_, which must stay put until the kernel is done.
    io_uring_cqe* cqe = nullptr;
    const int rc = ::io_uring_wait_cqe(&ring_, &cqe);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN) break;
    collect(true);
  }
  // Why stop asking: a kernel without socket commands refuses each one; the
  // listener then asks getpeername (as it does for any entry that failed).
  const std::int32_t first = peers_.front().result;
  if (first == -EOPNOTSUPP || first == -EINVAL || first == -ENOTSUP) peer_commands_ = false;
}

void uring_engine::dispatch() {
  fetch_peers();
  for (std::size_t i = 0; i < batch_.size(); ++i) i += dispatch_one(i);
  batch_.clear();
  if (buf_recycled_ != 0) {
    io_uring_buf_ring_advance(buf_ring_, static_cast<int>(buf_recycled_));
    buf_recycled_ = 0;
  }
}

void uring_engine::dispatch_accept(const completion_entry& c, int fd, std::uint32_t gen) {
  registration* r = find(fd, gen);
  if (c.res >= 0) {
    // Why close: the listener is gone; the connection is reset as it would
    // be in a closed listener's queue.
    if (r == nullptr) {
      ::close(c.res);
      return;
    }
    const sockaddr* peer = nullptr;
    socklen_t peer_length = 0;
    if (c.peer != k_no_peer && peers_[c.peer].done && peers_[c.peer].result > 0) {
      peer = reinterpret_cast<const sockaddr*>(&peers_[c.peer].address);
      peer_length = static_cast<socklen_t>(peers_[c.peer].result);
    }
    r->handler->on_accepted(c.res, 0, peer, peer_length);
  }
  if ((c.flags & IORING_CQE_F_MORE) != 0) return;
  // The batch ended: the queue is empty (EAGAIN), an error (EMFILE, ...), or
  // the kernel stopped it (a full completion queue).
  if ((r = find(fd, gen)) == nullptr) return;
  r->accept_armed = false;
  // ECANCELED: the submitting thread exited (see dispatch_one); not the
  // listener's error, the poll is re-armed as after EAGAIN.
  if (c.res < 0 && c.res != -EAGAIN && c.res != -ECANCELED) {
    const std::uint32_t reg_gen = r->gen;
    r->handler->on_accepted(-1, -c.res, nullptr, 0);
    if ((r = find(fd, gen)) == nullptr || r->gen != reg_gen) return;
  }
  if (!r->poll_armed && !r->accept_armed && r->events != 0) arm_poll(fd, *r);
}

std::byte* uring_engine::received_bytes(const completion_entry& c, bool& give_back) noexcept {
  const auto buffer_id = static_cast<std::uint16_t>(c.flags >> IORING_CQE_BUFFER_SHIFT);
  std::uint32_t& offset = buf_offsets_[buffer_id];
  std::byte* data = buffers_.get() + std::size_t{buffer_id} * buf_size_ + offset;
  give_back = (c.flags & k_cqe_f_buf_more) == 0;
  offset = give_back ? 0 : offset + static_cast<std::uint32_t>(c.res);
  return data;
}

std::size_t uring_engine::dispatch_one(std::size_t index) {
  const completion_entry& c = batch_[index];
  const int fd = static_cast<int>(c.user_data >> 32);
  const auto gen = static_cast<std::uint32_t>((c.user_data >> 8) & 0xff'ffffu);
  if ((c.user_data & 0xff) == op_recv) return dispatch_receive(index, fd, gen);
  if ((c.user_data & 0xff) == op_accept) {
    dispatch_accept(c, fd, gen);
    return 0;
  }
  if ((c.user_data & 0xff) == op_files) {
    // Stale (the stream went) or replaced: remove() cleared the slot.
    registration* r = find(fd, gen);
    if (r == nullptr || r->file != file_asked) return 0;
    r->file = c.res >= 1 ? file_fixed : file_refused;
    if (r->file == file_fixed) ++fixed_files_;
    return 0;
  }
  if ((c.user_data & 0xff) == op_poll) {
    if (fd < 0 || static_cast<std::size_t>(fd) >= regs_.size()) return 0;
    registration* r = &regs_[static_cast<std::size_t>(fd)];
    if (!r->live || (r->poll_gen & 0xff'ffffu) != gen) return 0;  // removed or replaced
    r->poll_armed = false;
    const auto events = c.res < 0 ? std::uint32_t{EPOLLERR} : static_cast<std::uint32_t>(c.res);
    const std::uint32_t reg_gen = r->gen;
    r->handler->on_events(events);
    // The handler may have removed, re-added, modified (re-armed) or grown regs_.
    r = &regs_[static_cast<std::size_t>(fd)];
    // While an accept batch runs, its end re-arms the poll.
    if (r->live && r->gen == reg_gen && !r->poll_armed && !r->accept_armed && r->events != 0) {
      arm_poll(fd, *r);
    }
    return 0;
  }
  return 0;
}

std::size_t uring_engine::dispatch_receive(std::size_t index, int fd, std::uint32_t gen) {
  const completion_entry& c = batch_[index];
  // Only a receive that got bytes holds a buffer (the kernel keeps it for
  // an end of stream or an error). With incremental buffers the bytes start
  // where the last receive into the same buffer ended, and the buffer comes
  // back to us once the kernel has filled it (no F_BUF_MORE).
  std::byte* data = nullptr;
  std::size_t size = 0;
  std::size_t merged = 0;
  std::uint32_t flags = c.flags;
  give_back_.clear();
  if (c.res > 0 && (c.flags & IORING_CQE_F_BUFFER) != 0) {
    bool give_back = false;
    data = received_bytes(c, give_back);
    size = static_cast<std::size_t>(c.res);
    if (give_back) {
      give_back_.push_back(static_cast<std::uint16_t>(c.flags >> IORING_CQE_BUFFER_SHIFT));
    }
    // The same receive's next completions, if their bytes follow these in
    // memory (the rest of a buffer, or the next buffer of the array), go to
    // the handler with them: a message that crossed a buffer's end arrives
    // whole, and the reader need not assemble it in a buffer of its own
    // (a 64 KiB message never fits the rest of a 64 KiB buffer).
    while ((flags & IORING_CQE_F_MORE) != 0 && index + merged + 1 < batch_.size()) {
      const completion_entry& next = batch_[index + merged + 1];
      if (next.user_data != c.user_data || next.res <= 0 ||
          (next.flags & IORING_CQE_F_BUFFER) == 0) {
        break;
      }
      const auto next_id = static_cast<std::uint16_t>(next.flags >> IORING_CQE_BUFFER_SHIFT);
      if (buffers_.get() + std::size_t{next_id} * buf_size_ + buf_offsets_[next_id] !=
          data + size) {
        break;
      }
      bool next_back = false;
      (void)received_bytes(next, next_back);
      if (next_back) give_back_.push_back(next_id);
      size += static_cast<std::size_t>(next.res);
      flags = next.flags;
      ++merged;
    }
  }
  registration* r = find(fd, gen);
  if (r == nullptr) {
    // The buffers are ours again, whoever they were for.
    for (const std::uint16_t id : give_back_) recycle(id);
    return merged;
  }
  const bool more = (flags & IORING_CQE_F_MORE) != 0;
  if (!more) r->recv_armed = false;
  io_handler* handler = r->handler;
  if (c.res > 0) {
    assert(data != nullptr);
    handler->on_received({data, size}, 0);
    for (const std::uint16_t id : give_back_) recycle(id);  // valid until the handler returned
  } else if (c.res == -ENOBUFS) {
    // Every buffer was in use: the receive stopped; buffers come back at the
    // end of this batch, and the receive is re-armed below.
  } else if (c.res == -ECANCELED) {
    // Not ours (our cancels go with remove(), whose completions are stale by
    // then): the thread that submitted the receive exited, and the kernel
    // cancels a task's requests when it does. The loop may be run by another
    // thread next; the socket is fine: re-armed below.
  } else if (c.res == 0) {
    handler->on_received({}, 0);  // end of stream
    return merged;
  } else {
    handler->on_received({}, -c.res);
    return merged;
  }
  if (more) return merged;
  if ((r = find(fd, gen)) != nullptr && !r->recv_armed) arm_recv(fd, *r);
  return merged;
}

}  // namespace switchboard::net::detail
