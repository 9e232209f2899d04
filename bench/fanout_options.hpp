// fanout_options.hpp — the command line of switchboard_fanout, the load
// generator for `switchboard serve` (the switchboard.v1 protocol on /ws).
//
//   --url ws://127.0.0.1:PORT/ws     the server (numeric host; ws:// only)
//   --scenario fanout|channels|memory                                   (fanout)
//       fanout    every subscriber subscribes NS:fan; one publisher publishes there
//       channels  subscriber i subscribes NS:c<i> and NS:all; the publisher
//                 publishes per --publish
//       memory    VmRSS of --server-pid before, after N idle connections, and
//                 after each subscribed to a channel (--memory-channel)
//   --subscribers N                  subscriber connections               (1000)
//   --namespace NS                   channels' namespace                  (bench)
//   --publish individual|shared|mixed   channels: round-robin over NS:c<i>, or
//                                    NS:all, or every --shared-every-th to NS:all
//   --shared-every K                 mixed: one publication in K to NS:all  (100)
//   --memory-channel own|shared      memory: NS:m<i> each, or NS:mem for all (own)
//   --rates R1,R2,...                publications/s, one measured step each (1,10,100)
//   --until-saturated                stop the sweep at the first step that does not
//                                    keep up, then bisect (--refine times)
//   --refine N                       bisection steps after the first failure (2)
//   --half                           a last step at half the highest sustained rate
//   --half-duration S                its measured seconds (--duration)
//   --duration S                     measured seconds per step            (5)
//   --warmup S                       unmeasured seconds before each       (1)
//   --drain S                        most seconds to wait for stragglers  (30)
//   --settle S                       memory: idle seconds before each VmRSS reading (2)
//   --max-p99-ms MS                  a step whose p99 is over this has not kept up (500)
//   --min-ratio F                    nor one delivering under F of the expected (0.95)
//   --inflight K                     publishes without a reply, at most (1000)
//   --pad BYTES                      extra bytes in each publication's data (0)
//   --threads T                      subscriber event loops (the publisher has its own) (1)
//   --source-ips A,B,...             local addresses to spread connections over
//   --connect-timeout S              per connect + upgrade + subscribe     (20)
//   --server-pid PID                 report its CPU time and VmRSS (from /proc)
//   --publish-url ws://HOST:PORT/ws  the publisher connects here instead of --url
//                                    (another node of a cluster: subscribers on one
//                                    node, publications made on another)
//   --publish-server-pid PID         that node's process: its CPU time is added
//                                    to --server-pid's in server_cpu_s
//   --hold S                         keep every connection open S seconds after
//                                    the last step (a script reads the server
//                                    before the closes begin)             (0)
//   --json                           one JSON object per step on stdout
//
// Thread-safety: plain values, parsed once in main().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "switchboard/net/tcp_socket.hpp"

namespace switchboard::bench {

enum class fanout_scenario { fanout, channels, memory };
enum class publish_target { individual, shared, mixed };

struct fanout_options {
  net::endpoint remote;
  std::string host_header;  // "127.0.0.1:9000", sent as Host
  std::string target = "/ws";
  bool separate_publisher = false;  // --publish-url given: the next three apply
  net::endpoint publish_remote;
  std::string publish_host_header;
  std::string publish_path = "/ws";
  long publish_server_pid = 0;  // 0: none
  fanout_scenario scenario = fanout_scenario::fanout;
  std::size_t subscribers = 1000;
  std::string ns = "bench";
  publish_target publish = publish_target::individual;
  std::size_t shared_every = 100;
  bool memory_shared_channel = false;
  std::vector<double> rates = {1, 10, 100};
  bool until_saturated = false;
  std::size_t refine = 2;
  bool half = false;
  double half_duration_s = -1;  // < 0: duration_s
  double duration_s = 5;
  double warmup_s = 1;
  double drain_s = 30;
  double settle_s = 2;
  double max_p99_ms = 500;
  double min_ratio = 0.95;
  std::size_t inflight = 1000;
  std::size_t pad = 0;
  std::size_t threads = 1;
  std::vector<net::endpoint> sources;  // port 0; empty: the kernel chooses
  double connect_timeout_s = 20;
  long server_pid = 0;  // 0: none
  double hold_s = 0;
  bool json = false;
  // Every K-th connection offers switchboard.v1.compact (compact publication
  // pushes); 0: none, 1: all (--compact).
  std::size_t compact_every = 0;
};

// Parses argv. Throws std::invalid_argument with a message for the user on a
// bad or missing value; prints the usage and exits 0 for --help.
fanout_options parse_fanout_options(int argc, char** argv);

[[nodiscard]] const char* scenario_name(fanout_scenario s) noexcept;
[[nodiscard]] const char* target_name(publish_target t) noexcept;

}  // namespace switchboard::bench
