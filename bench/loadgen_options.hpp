// loadgen_options.hpp — the command line of switchboard_loadgen.
//
//   --url ws://127.0.0.1:PORT/path   server to load (numeric IPv4/IPv6 host);
//                                    wss:// for TLS, which needs one of:
//   --ca-file FILE                   PEM trust anchors the server certificate must
//                                    chain to (its name: the URL's address)
//   --insecure                       wss:// without verifying the certificate
//   --connections N                  concurrent connections            (100)
//   --size BYTES                     payload bytes per message          (16)
//   --inflight K                     messages in flight per connection  (1)
//   --duration S                     measured seconds                   (10)
//   --warmup S                       unmeasured seconds before that     (2)
//   --threads T                      event loops (threads)              (1)
//   --mode echo|connect-storm|idle                                      (echo)
//   --source-ips A,B,...             local addresses to spread connections over
//   --connect-timeout S              per connect + upgrade attempt      (10)
//   --raw                            raw TCP echo, no WebSocket
//   --payload bytes|json             'x' * SIZE binary, or SIZE-byte JSON-like text (bytes)
//   --deflate                        offer permessage-deflate (no context takeover)
//   --deflate-offer no-takeover|takeover   what to offer, implies --deflate (no-takeover)
//   --idle-messages N                idle mode: echo N messages first, then idle (0)
//   --json                           one JSON object on stdout
//   --server-pid PID                 also report PID's CPU time inside the measured window
//
// Thread-safety: plain values, parsed once in main().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "loadgen_deflate.hpp"
#include "switchboard/net/tcp_socket.hpp"

namespace switchboard::bench {

enum class load_mode { echo, connect_storm, idle };
enum class payload_kind { bytes, json };

struct loadgen_options {
  net::endpoint remote;
  std::string host_header;  // "127.0.0.1:9000", sent as Host
  std::string target = "/";
  std::size_t connections = 100;
  std::size_t size = 16;
  std::size_t inflight = 1;
  double duration_s = 10;
  double warmup_s = 2;
  std::size_t threads = 1;
  load_mode mode = load_mode::echo;
  std::vector<net::endpoint> sources;  // port 0; empty: the kernel chooses
  double connect_timeout_s = 10;
  bool raw = false;
  bool json = false;
  payload_kind payload = payload_kind::bytes;
  bool deflate = false;
  deflate_offer offer = deflate_offer::no_takeover;
  std::size_t idle_messages = 0;
  long server_pid = 0;  // --server-pid: 0 for none
  // wss://: one tls_context::client per loop thread, from these.
  bool tls = false;
  std::string ca_file;       // --ca-file
  bool insecure = false;     // --insecure
  std::string server_name;   // the URL's host without brackets: the certificate's IP SAN
};

// Parses argv. Throws std::invalid_argument with a message for the user on a
// bad or missing value; prints the usage and exits 0 for --help.
loadgen_options parse_loadgen_options(int argc, char** argv);

[[nodiscard]] const char* mode_name(load_mode mode) noexcept;
[[nodiscard]] const char* offer_name(deflate_offer offer) noexcept;

}  // namespace switchboard::bench
