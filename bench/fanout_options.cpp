// fanout_options.cpp — argument parsing for switchboard_fanout, with CLI11
// (as the switchboard binary does); what CLI11 cannot check alone (the URL,
// the source addresses, combinations) is checked after it.
#include "fanout_options.hpp"

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "cli_parse.hpp"

namespace switchboard::bench {
namespace {

// ws://HOST[:PORT][/PATH]; HOST is numeric.
cli::url_rest parse_url(std::string_view url, const char* option) {
  if (!url.starts_with("ws://")) {
    throw std::invalid_argument(std::string(option) +
                                ": expected ws://HOST:PORT/PATH (wss:// is not supported)");
  }
  url.remove_prefix(5);
  return cli::parse_url_rest(url, 80, "/ws");
}

}  // namespace

const char* scenario_name(fanout_scenario s) noexcept {
  switch (s) {
    case fanout_scenario::fanout:
      return "fanout";
    case fanout_scenario::channels:
      return "channels";
    case fanout_scenario::memory:
      return "memory";
  }
  return "?";
}

const char* target_name(publish_target t) noexcept {
  switch (t) {
    case publish_target::individual:
      return "individual";
    case publish_target::shared:
      return "shared";
    case publish_target::mixed:
      return "mixed";
  }
  return "?";
}

fanout_options parse_fanout_options(int argc, char** argv) {
  fanout_options out;
  std::string url;
  std::string publish_url;
  std::string sources;
  std::string memory_channel = "own";
  CLI::App app{"switchboard_fanout: publish/subscribe load for `switchboard serve`",
               "switchboard_fanout"};
  app.option_defaults()->always_capture_default();
  app.add_option("--url", url, "ws://HOST:PORT/PATH of the server (numeric host)")->required();
  cli::add_choice(app, "--scenario", out.scenario,
                  {{"fanout", fanout_scenario::fanout},
                   {"channels", fanout_scenario::channels},
                   {"memory", fanout_scenario::memory}},
                  "fanout | channels | memory");
  app.add_option("--subscribers", out.subscribers, "subscriber connections")
      ->check(cli::at_least(1));
  app.add_option("--namespace", out.ns, "namespace of the channels used");
  cli::add_choice(app, "--publish", out.publish,
                  {{"individual", publish_target::individual},
                   {"shared", publish_target::shared},
                   {"mixed", publish_target::mixed}},
                  "channels: individual | shared | mixed");
  app.add_option("--shared-every", out.shared_every, "mixed: one publication in K goes to NS:all")
      ->check(cli::at_least(2));
  app.add_option("--memory-channel", memory_channel, "memory: own (NS:m<i> each) | shared (NS:mem)")
      ->check(CLI::IsMember({"own", "shared"}));
  app.add_option("--rates", out.rates, "publications/s, one measured step each")
      ->delimiter(',')
      ->check(cli::at_least(0.001));
  app.add_flag("--until-saturated", out.until_saturated,
               "stop at the first step that does not keep up, then bisect");
  app.add_option("--refine", out.refine, "bisection steps after the first failure");
  app.add_flag("--half", out.half, "a last step at half the highest sustained rate");
  app.add_option("--half-duration", out.half_duration_s, "measured seconds of that step")
      ->check(cli::at_least(0.1))
      ->default_str("--duration");
  app.add_option("--duration", out.duration_s, "measured seconds per step")
      ->check(cli::at_least(0.1));
  app.add_option("--warmup", out.warmup_s, "unmeasured seconds before each step")
      ->check(cli::at_least(0));
  app.add_option("--drain", out.drain_s, "most seconds to wait for late deliveries after a step")
      ->check(cli::at_least(0));
  app.add_option("--settle", out.settle_s, "memory: idle seconds before each VmRSS reading")
      ->check(cli::at_least(0));
  app.add_option("--max-p99-ms", out.max_p99_ms, "a step with a higher p99 has not kept up")
      ->check(cli::at_least(0.001));
  app.add_option("--min-ratio", out.min_ratio,
                 "nor one delivering less than F of what was published")
      ->check(cli::at_least(0));
  app.add_option("--inflight", out.inflight, "most publishes awaiting their reply")
      ->check(cli::at_least(1));
  app.add_option("--pad", out.pad, "extra bytes in each publication's data");
  app.add_option("--threads", out.threads, "subscriber event loops; the publisher has its own")
      ->check(cli::at_least(1));
  app.add_option("--source-ips", sources,
                 "local IPv4 addresses to spread connections over (A,B,...)");
  app.add_option("--connect-timeout", out.connect_timeout_s, "per connect + upgrade + subscribe")
      ->check(cli::at_least(0.1));
  app.add_option("--server-pid", out.server_pid,
                 "report that process's CPU time and VmRSS (from /proc)")
      ->check(cli::at_least(1));
  app.add_option("--publish-url", publish_url,
                 "ws://HOST:PORT/PATH the publisher connects to instead of --url");
  app.add_option("--publish-server-pid", out.publish_server_pid,
                 "that server's process: its CPU time is added to --server-pid's")
      ->check(cli::at_least(1));
  app.add_option("--hold", out.hold_s,
                 "keep every connection open this many seconds after the last step")
      ->check(cli::at_least(0));
  app.add_flag("--json", out.json, "one JSON object per step instead of text");
  bool compact = false;
  app.add_flag("--compact", compact,
               "offer switchboard.v1.compact: publications in the compact envelope");
  app.add_option("--compact-every", out.compact_every,
                 "mixed forms: every K-th connection offers switchboard.v1.compact");
  cli::parse_or_throw(app, argc, argv);

  cli::url_rest rest = parse_url(url, "--url");
  out.remote = rest.remote;
  out.host_header = std::move(rest.host_header);
  out.target = std::move(rest.target);
  if (!publish_url.empty()) {
    cli::url_rest p = parse_url(publish_url, "--publish-url");
    out.separate_publisher = true;
    out.publish_remote = p.remote;
    out.publish_host_header = std::move(p.host_header);
    out.publish_path = std::move(p.target);
  }
  if (out.publish_server_pid != 0 && out.server_pid == 0) {
    throw std::invalid_argument("--publish-server-pid needs --server-pid");
  }
  out.memory_shared_channel = memory_channel == "shared";
  if (!sources.empty()) cli::parse_source_ips(sources, out.sources);
  if (out.scenario == fanout_scenario::memory && out.server_pid == 0) {
    throw std::invalid_argument("--scenario memory needs --server-pid");
  }
  cli::check_source_families(out.sources, out.remote);
  if (compact) {
    if (out.compact_every > 1) throw std::invalid_argument("--compact is --compact-every 1");
    out.compact_every = 1;
  }
  if (out.half_duration_s < 0) out.half_duration_s = out.duration_s;
  return out;
}

}  // namespace switchboard::bench
