// Writes a registry's render() output, with every kind of metric and awkward
// label values, to the file named by argv[1]. The ctest
// realtime.metrics_exposition then parses it with Debian's prometheus_client
// (parse_metrics.py): an independent reader of the text format.
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <limits>
#include "metrics.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " OUTPUT_FILE\n";
    return 2;
  }
  switchboard::realtime::registry r;

  r.add_gauge("switchboard_connections", "WebSocket connections open.", [] { return 3.0; });
  r.add_gauge("switchboard_test_nan", "A gauge that is NaN.",
              [] { return std::numeric_limits<double>::quiet_NaN(); });
  r.add_counter_fn("switchboard_messages_received_total", "WebSocket messages received.",
                   [] { return std::uint64_t{12345}; });
  r.add_counter("switchboard_publications_total", "Publications accepted.\nSecond \\ line.").inc(7);

  auto& closes =
      r.add_counter_family("switchboard_closes_total", "Connections ended, by code.", "code");
  closes.with("1000").inc(5);
  closes.with("1001").inc(1);

  auto& failures = r.add_counter_family("switchboard_handshake_failures_total",
                                        "Upgrades refused, by reason.", "reason");
  failures.with("bad \"origin\"").inc(2);
  failures.with("back\\slash").inc(3);
  failures.with("new\nline").inc(4);
  failures.with("ünïcödé ✓").inc(1);

  auto& durations = r.add_histogram_family("switchboard_command_duration_seconds",
                                           "Time to handle a command, by command.", "cmd",
                                           {0.0001, 0.001, 0.01, 0.1, 1});
  for (const double s : {0.00005, 0.0005, 0.0005, 0.02, 3.0}) durations.observe("publish", s);
  durations.observe("subscribe", 0.002);
  r.add_histogram_family("switchboard_empty_seconds", "A histogram never observed.", "cmd", {1});

  std::ofstream out(argv[1], std::ios::binary);
  out << r.render();
  out.close();
  if (!out) {
    std::perror(argv[1]);
    return 1;
  }
  return 0;
}
