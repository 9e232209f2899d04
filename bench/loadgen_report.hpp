// loadgen_report.hpp — what switchboard_loadgen counts and how it prints it
// (text, or one JSON object with --json).
//
// Thread-safety: each loop thread fills its own loop_stats; main() merges
// them after the threads are joined and prints once.
#pragma once

#include <cstdint>
#include <string>

#include "latency_histogram.hpp"
#include "loadgen_options.hpp"

namespace switchboard::bench {

// Per loop thread; read by main() after the threads are joined.
struct loop_stats {
  std::uint64_t messages = 0;    // echoes received inside the window
  std::uint64_t echoes = 0;      // echoes received in all, warm-up and wind-down included
  std::uint64_t handshakes = 0;  // 101s validated inside the window
  std::uint64_t cycles = 0;      // connect-storm: connect..close cycles completed in the window
  std::uint64_t upgrades = 0;    // 101s validated in all, warm-up included (server CPU per upgrade)
  std::uint64_t connect_errors = 0;
  std::uint64_t protocol_errors = 0;  // bad 101, reader errors, bad compressed data
  std::uint64_t closed_early = 0;     // server closed an echo/idle connection
  std::uint64_t timeouts = 0;
  std::uint64_t mismatches = 0;  // an echo that differs from what was sent
  // wss:// only.
  std::uint64_t tls_handshakes = 0;  // TLS handshakes completed inside the window
  std::uint64_t tls_handshakes_total = 0;  // and in all, warm-up included
  std::uint64_t tls_errors = 0;      // TLS failures (handshake, certificate, bad record)
  std::string tls_version;           // of the first handshake: "TLSv1.3"
  std::string tls_cipher;            // and its cipher suite
  // Compression, over the whole run (warm-up included): a ratio needs no window.
  std::uint64_t deflate_agreed = 0;  // upgrades where the server accepted permessage-deflate
  std::uint64_t payload_out = 0;     // message bytes sent, before compression
  std::uint64_t wire_out = 0;        // frame bytes sent (headers included)
  std::uint64_t payload_in = 0;      // message bytes received, after inflating
  std::uint64_t wire_in = 0;         // bytes received after the 101
  std::uint64_t compressed_in = 0;   // messages received with RSV1
  latency_histogram latency;
  // Set once by main() after the threads are joined: the load generator's own
  // CPU time (user + system, all threads), to tell a saturated loader apart.
  double cpu_s = 0;
  double window_cpu_s = 0;          // the same, inside the measured window only
  double window_server_cpu_s = -1;  // --server-pid's, inside the window; < 0: not measured

  void merge(const loop_stats& o);
};

void report(const loadgen_options& o, const loop_stats& s, std::uint64_t established,
            double seconds);

}  // namespace switchboard::bench
