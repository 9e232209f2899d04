// uring_engine.hpp — the io_uring half of event_loop (internal to switchboard::net).
//
// One ring per loop. It stands in for epoll in two ways:
//
//   * Readiness, for every handler registered with event_loop::add (listeners,
//     connectors, the loop's eventfd, a write-blocked stream's EPOLLOUT): a
//     one-shot IORING_OP_POLL_ADD per descriptor, re-armed after each report.
//     A one-shot poll completes at once if the descriptor is ready when
//     armed, so re-arming after dispatch gives epoll's level-triggered
//     semantics, which the handlers rely on.
//   * Completions, for TCP and TLS streams (event_loop::start_receive and
//     queue_send): a multishot receive per stream into buffers the loop
//     provides from one buffer ring, and the write cork's sends queued as
//     send requests (sendmsg where a send has several buffers) that go to
//     the kernel in one submission per iteration.
//   * Accept batches, for listeners (event_loop::start_accept, Linux 6.10):
//     when a listener's readiness is reported it asks for one multishot
//     accept with IORING_ACCEPT_DONTWAIT. It goes to the kernel with the next
//     submission, which takes every queued connection at once (a completion
//     each) and ends with EAGAIN instead of waiting: nothing is accepted
//     between iterations, behind the loop's back, and each batch sees the
//     descriptor limit of its time. The readiness poll is re-armed when the
//     batch ends. (A multishot accept left armed would keep accepting while
//     the listener is paused or the loop is not running, and would keep the
//     RLIMIT_NOFILE it was armed with.)
//
// Completions are matched to registrations by descriptor and generation,
// encoded in the request's user_data: a registration removed (and its fd
// number reused) never receives a completion meant for the old one. The
// requests of a removed registration are cancelled in the next submission.
//
// Registered files (event_loop_options::uring_files): a sparse file table
// set up with the ring, where a stream's slot is its descriptor's number.
// start_receive() queues an IORING_OP_FILES_UPDATE that rides the next
// submission (ahead of the receive); once its completion says the slot holds the socket, the
// stream's sends and re-armed receives name the slot (IOSQE_FIXED_FILE)
// instead of the descriptor, which the kernel would look up (and reference
// count) per request. remove() clears the slot in a submission made before
// it returns, so the caller's close() really closes the socket, and a
// descriptor number reused later is installed again by its own stream: no
// request can reach a socket through a slot meant for another. Descriptors
// beyond the table (or a kernel that refuses one) use plain files.
//
// A receive's completions that arrive back to back and whose bytes follow
// each other in the buffer array (the rest of a buffer, then the next) are
// handed over as one span: a message that crossed a buffer's end needs no
// reassembly by the handler.
//
// Single-thread rings (event_loop_options::uring_single_thread): set up with
// SINGLE_ISSUER | DEFER_TASKRUN | R_DISABLED and enabled by the first thread
// that waits on the ring, which alone submits from then on (bind_thread());
// the kernel's completion work runs only when that thread asks for events.
//
// Sends are MSG_DONTWAIT: the kernel completes them during the submission
// (bytes taken, or EAGAIN) instead of parking them until the socket drains,
// so the cork's arena can be reused as soon as the submission returns, and
// what the kernel refused goes to the stream's backlog as with epoll.
//
// Thread-safety: none; the engine belongs to its loop's thread.
#pragma once

#include <liburing.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <system_error>
#include <thread>
#include <vector>

#include "switchboard/net/event_loop.hpp"
#include "switchboard/net/io_handler.hpp"

namespace switchboard::net::detail {

class uring_engine {
 public:
  // Sets up the ring and the receive buffer ring. Returns nullptr and sets
  // `error` when the kernel refuses (io_uring disabled, filtered by seccomp,
  // too old for multishot receive or buffer rings).
  [[nodiscard]] static std::unique_ptr<uring_engine> create(const event_loop_options& options,
                                                            std::error_code& error);
  ~uring_engine();
  uring_engine(const uring_engine&) = delete;
  uring_engine& operator=(const uring_engine&) = delete;

  // Registration, as event_loop::add/modify/remove. `events` 0 arms no poll
  // (and add() then does not check that `fd` is open: see add()).
  std::error_code add(int fd, std::uint32_t events, io_handler& handler);
  std::error_code modify(int fd, std::uint32_t events, io_handler& handler);
  // Returns true if `fd` was registered.
  bool remove(int fd, io_handler& handler) noexcept;
  // Starts the multishot receive of a registered `fd`.
  std::error_code start_receive(int fd);
  // Queues an accept batch for a registered listening `fd` (see above);
  // ENOTSUP before Linux 6.10. With `peer_length`, each connection's peer
  // address is asked for (getsockopt SO_PEERNAME as a socket command), all of
  // a batch's in one submission before they are dispatched.
  std::error_code start_accept(int fd, socklen_t peer_length);
  // Streams whose requests use their registered file now (tests, statistics).
  [[nodiscard]] std::size_t fixed_files() const noexcept { return fixed_files_; }

  // Queues a send of `data` (copied: only the bytes must stay valid) for the
  // cork's flush; its result reaches `handler` in complete_sends().
  void queue_send(int fd, std::span<const iovec> data, std::size_t total, io_handler& handler);
  // Submits the queued sends and reports each result. Runs from the cork's
  // flush, before its arena is reset. Does nothing if none is queued.
  void complete_sends();

  // A single-thread ring (event_loop_options::uring_single_thread) is bound
  // to the first thread that calls this (wait() does); EEXIST from any
  // other thread afterwards. Nothing to do for other rings.
  std::error_code bind_thread() noexcept;

  // Submits what is queued and waits up to `timeout_ms` (-1: no limit, 0: no
  // wait) for completions, collecting them for dispatch().
  std::error_code wait(int timeout_ms);
  // Delivers the collected completions to their handlers.
  void dispatch();

 private:
  // The kinds of request, in user_data's low byte.
  enum op : std::uint8_t {
    op_none = 0,
    op_poll = 1,
    op_recv = 2,
    op_send = 3,
    op_accept = 4,
    op_peer = 5,
    op_files = 6  // a registered file's slot filled (see above)
  };
  // Where a registration's registered file stands.
  enum file_state : std::uint8_t {
    file_none = 0,    // not asked for (or beyond the table)
    file_asked = 1,   // the update is queued or running: its completion decides
    file_fixed = 2,   // the slot holds the socket: requests use it
    file_refused = 3  // the kernel refused the update: plain descriptor
  };
  struct registration {
    io_handler* handler = nullptr;
    std::uint32_t gen = 0;       // bumped when removed: completions of the old one are stale
    std::uint32_t poll_gen = 0;  // bumped when a poll is replaced
    std::uint32_t events = 0;    // the poll interest
    bool live = false;
    bool poll_armed = false;
    bool recv_armed = false;
    bool accept_armed = false;  // an accept batch is queued or running
    socklen_t peer_length = 0;  // of the accept batch: the peer address size
    file_state file = file_none;
  };
  struct completion_entry {
    std::uint64_t user_data;
    std::int32_t res;
    std::uint32_t flags;
    std::uint32_t peer = k_no_peer;  // an accepted connection's entry in peers_
  };
  static constexpr std::uint32_t k_no_peer = ~std::uint32_t{0};
  struct peer_op {
    sockaddr_storage address;
    std::int32_t result;  // the address length, or -errno
    bool done;
  };
  struct send_op {
    io_handler* handler;
    int fd;
    std::size_t iov_offset;
    std::size_t iov_count;
    std::size_t total;
    std::int32_t result;
    bool done;
    msghdr msg;
  };

  uring_engine() = default;
  io_uring_sqe* next_sqe() noexcept;
  // io_uring_submit(), or -EEXIST where this thread cannot submit (a
  // single-thread ring not yet bound, or bound to another thread).
  int submit() noexcept;
  [[nodiscard]] bool bound_here() const noexcept;
  void arm_poll(int fd, registration& r) noexcept;
  void arm_recv(int fd, registration& r) noexcept;
  void install_file(int fd, registration& r) noexcept;
  void clear_file(int fd, registration& r) noexcept;
  void dispatch_accept(const completion_entry& c, int fd, std::uint32_t gen);
  // Asks the peer address of every accepted connection in batch_.
  void fetch_peers();
  void cancel(std::uint64_t user_data) noexcept;
  void recycle(std::uint16_t buffer_id) noexcept;
  void collect(bool sends_only_matter);
  // Dispatches batch_[index]; returns how many entries after it went with it
  // (a receive's completions whose bytes follow in memory: see the .cpp).
  std::size_t dispatch_one(std::size_t index);
  std::size_t dispatch_receive(std::size_t index, int fd, std::uint32_t gen);
  // A receive completion's bytes; updates the buffer's fill offset and says
  // whether the kernel is done with the buffer.
  std::byte* received_bytes(const completion_entry& c, bool& give_back) noexcept;
  [[nodiscard]] registration* find(int fd, std::uint32_t gen) noexcept;
  [[nodiscard]] static std::uint64_t tag(int fd, std::uint32_t gen, op kind) noexcept {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(fd)) << 32) |
           (static_cast<std::uint64_t>(gen & 0xff'ffffu) << 8) | kind;
  }

  io_uring ring_{};
  bool ring_ready_ = false;
  // SINGLE_ISSUER + DEFER_TASKRUN (event_loop_options::uring_single_thread):
  // enabled by the first thread that waits on it, its owner from then on.
  bool single_thread_ = false;
  bool enabled_ = true;
  std::thread::id owner_;
  // What a request that cannot be queued is written to (see next_sqe()).
  std::unique_ptr<io_uring_sqe> scratch_sqe_ = std::make_unique<io_uring_sqe>();
  bool accept_batches_ = false;  // IORING_ACCEPT_DONTWAIT (Linux 6.10)
  bool peer_commands_ = false;   // SOCKET_URING_OP_GETSOCKOPT (Linux 6.7)
  bool accepts_collected_ = false;  // an accept completion was collected since fetch_peers()
  io_uring_buf_ring* buf_ring_ = nullptr;
  std::size_t buf_ring_bytes_ = 0;
  std::unique_ptr<std::byte[]> buffers_;
  std::uint32_t buf_count_ = 0;
  std::uint32_t buf_size_ = 0;
  std::uint32_t buf_recycled_ = 0;  // added to the ring since the last advance
  std::vector<std::uint32_t> buf_offsets_;  // bytes of each buffer already received into
  std::vector<std::uint16_t> give_back_;  // buffers to recycle after a receive's handler

  std::uint32_t files_ = 0;         // registered file table's size (0: none)
  std::size_t fixed_files_ = 0;     // registrations in file_fixed
  // The value each slot update reads (slot i's descriptor is i): the kernel
  // reads it when the request runs, so it needs a place that never changes.
  std::unique_ptr<int[]> slot_fds_;
  std::vector<registration> regs_;  // by descriptor
  std::vector<completion_entry> batch_;
  std::vector<completion_entry> early_;  // collected while completing sends
  std::vector<send_op> sends_;
  std::vector<iovec> send_iov_;
  std::size_t sends_outstanding_ = 0;
  std::vector<peer_op> peers_;
  std::size_t peers_outstanding_ = 0;
};

}  // namespace switchboard::net::detail
