// fanout_options.cpp — argument parsing for switchboard_fanout: plain argv
// walking, as switchboard_loadgen does.
#include "fanout_options.hpp"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "cli_parse.hpp"

namespace switchboard::bench {
namespace {

constexpr const char* k_usage =
    "usage: switchboard_fanout --url ws://HOST:PORT/ws [options]\n"
    "  --scenario S          fanout | channels | memory (fanout)\n"
    "  --subscribers N       subscriber connections (1000)\n"
    "  --namespace NS        namespace of the channels used (bench)\n"
    "  --publish P           channels: individual | shared | mixed (individual)\n"
    "  --shared-every K      mixed: one publication in K goes to NS:all (100)\n"
    "  --memory-channel C    memory: own (NS:m<i> each) | shared (NS:mem) (own)\n"
    "  --rates R1,R2,...     publications/s, one measured step each (1,10,100)\n"
    "  --until-saturated     stop at the first step that does not keep up, then bisect\n"
    "  --refine N            bisection steps after the first failure (2)\n"
    "  --half                a last step at half the highest sustained rate\n"
    "  --half-duration S     measured seconds of that step (--duration)\n"
    "  --duration S          measured seconds per step (5)\n"
    "  --warmup S            unmeasured seconds before each step (1)\n"
    "  --drain S             most seconds to wait for late deliveries after a step (30)\n"
    "(0)\n"
    "  --settle S            memory: idle seconds before each VmRSS reading (2)\n"
    "  --max-p99-ms MS       a step with a higher p99 has not kept up (500)\n"
    "  --min-ratio F         nor one delivering less than F of what was published (0.95)\n"
    "  --inflight K          most publishes awaiting their reply (1000)\n"
    "  --pad BYTES           extra bytes in each publication's data (0)\n"
    "  --threads T           subscriber event loops; the publisher has its own (1)\n"
    "  --source-ips A,B,...  local IPv4 addresses to spread connections over\n"
    "  --connect-timeout S   per connect + upgrade + subscribe (20)\n"
    "  --server-pid PID      report that process's CPU time and VmRSS (from /proc)\n"
    "  --json                one JSON object per step instead of text\n";

using cli::for_each_item;
using cli::to_count;
using cli::to_number;

// ws://HOST[:PORT][/PATH]; HOST is numeric.
void parse_url(std::string_view url, fanout_options& out) {
  if (!url.starts_with("ws://")) {
    throw std::invalid_argument("--url: expected ws://HOST:PORT/PATH (wss:// is not supported)");
  }
  url.remove_prefix(5);
  cli::url_rest rest = cli::parse_url_rest(url, 80, "/ws");
  out.remote = rest.remote;
  out.host_header = std::move(rest.host_header);
  out.target = std::move(rest.target);
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
  bool have_url = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(k_usage, stdout);
      std::exit(0);
    }
    if (flag == "--json") {
      out.json = true;
      continue;
    }
    if (flag == "--until-saturated") {
      out.until_saturated = true;
      continue;
    }
    if (flag == "--half") {
      out.half = true;
      continue;
    }
    if (i + 1 >= argc) throw std::invalid_argument(std::string(flag) + ": missing value");
    const std::string value = argv[++i];
    if (flag == "--url") {
      parse_url(value, out);
      have_url = true;
    } else if (flag == "--scenario") {
      if (value == "fanout") {
        out.scenario = fanout_scenario::fanout;
      } else if (value == "channels") {
        out.scenario = fanout_scenario::channels;
      } else if (value == "memory") {
        out.scenario = fanout_scenario::memory;
      } else {
        throw std::invalid_argument("--scenario: expected fanout, channels or memory");
      }
    } else if (flag == "--subscribers") {
      out.subscribers = to_count(flag, value, 1);
    } else if (flag == "--namespace") {
      out.ns = value;
    } else if (flag == "--publish") {
      if (value == "individual") {
        out.publish = publish_target::individual;
      } else if (value == "shared") {
        out.publish = publish_target::shared;
      } else if (value == "mixed") {
        out.publish = publish_target::mixed;
      } else {
        throw std::invalid_argument("--publish: expected individual, shared or mixed");
      }
    } else if (flag == "--shared-every") {
      out.shared_every = to_count(flag, value, 2);
    } else if (flag == "--memory-channel") {
      if (value != "own" && value != "shared") {
        throw std::invalid_argument("--memory-channel: expected own or shared");
      }
      out.memory_shared_channel = value == "shared";
    } else if (flag == "--rates") {
      out.rates.clear();
      for_each_item(value, [&](std::string_view item) {
        out.rates.push_back(to_number(flag, std::string(item), 0.001));
      });
      if (out.rates.empty()) throw std::invalid_argument("--rates: at least one rate");
    } else if (flag == "--refine") {
      out.refine = to_count(flag, value, 0);
    } else if (flag == "--half-duration") {
      out.half_duration_s = to_number(flag, value, 0.1);
    } else if (flag == "--duration") {
      out.duration_s = to_number(flag, value, 0.1);
    } else if (flag == "--warmup") {
      out.warmup_s = to_number(flag, value, 0);
    } else if (flag == "--drain") {
      out.drain_s = to_number(flag, value, 0);
    } else if (flag == "--settle") {
      out.settle_s = to_number(flag, value, 0);
    } else if (flag == "--max-p99-ms") {
      out.max_p99_ms = to_number(flag, value, 0.001);
    } else if (flag == "--min-ratio") {
      out.min_ratio = to_number(flag, value, 0);
    } else if (flag == "--inflight") {
      out.inflight = to_count(flag, value, 1);
    } else if (flag == "--pad") {
      out.pad = to_count(flag, value, 0);
    } else if (flag == "--threads") {
      out.threads = to_count(flag, value, 1);
    } else if (flag == "--source-ips") {
      cli::parse_source_ips(value, out.sources);
    } else if (flag == "--connect-timeout") {
      out.connect_timeout_s = to_number(flag, value, 0.1);
    } else if (flag == "--server-pid") {
      out.server_pid = static_cast<long>(to_count(flag, value, 1));
    } else {
      throw std::invalid_argument("unknown option '" + std::string(flag) + "'\n" + k_usage);
    }
  }
  if (!have_url) throw std::invalid_argument(std::string("--url is required\n") + k_usage);
  if (out.scenario == fanout_scenario::memory && out.server_pid == 0) {
    throw std::invalid_argument("--scenario memory needs --server-pid");
  }
  cli::check_source_families(out.sources, out.remote);
  if (out.half_duration_s < 0) out.half_duration_s = out.duration_s;
  return out;
}

}  // namespace switchboard::bench
