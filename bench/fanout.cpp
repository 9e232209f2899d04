// fanout.cpp — switchboard_fanout: publish/subscribe load for `switchboard
// serve`. One process plays every client: N subscribers spread over
// --threads event loops (thousands of connections per loop, no thread per
// connection) and one publisher on a loop of its own.
//
// fanout / channels: connect and subscribe everyone (at most 256 set-ups in
// flight per loop), then run one step per rate: the publisher publishes at
// that rate for --warmup + --duration seconds, then late deliveries get up
// to --drain seconds to arrive. Per step: deliveries/s (received inside the
// measured window), delivery latency percentiles (of publications meant for
// the window, whenever they arrived), deliveries lost, and the server's and
// our own CPU time in the window, so that deliveries per server CPU-second
// can be given whatever share of a core the server got. --until-saturated
// stops at the first step that does not keep up (under --min-ratio of the
// publications sent or delivered, or p99 over --max-p99-ms) and bisects
// between it and the last good step; --half then measures half the highest
// sustained rate.
//
// memory: VmRSS of --server-pid before connecting, after every subscriber has
// upgraded and sat idle, and after each has subscribed to one channel (its
// own, or one for all) and sat idle; reported per connection.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fanout_client.hpp"
#include "fanout_options.hpp"
#include "process_stats.hpp"
#include "switchboard/net/loop_group.hpp"

namespace switchboard::bench {
namespace {

using namespace std::chrono_literals;

// Time between planning a step and its first publication, so that every
// loop has seen the plan before it matters.
constexpr std::int64_t k_step_lead_ns = 100'000'000;
// A drain gives up on the missing deliveries once none has arrived for this
// long (an overloaded server can stall for a second copying its backlog).
constexpr std::int64_t k_drain_quiet_ns = 3'000'000'000;
// Set-up gives up when no connection progressed for this long.
constexpr std::int64_t k_setup_stall_ns = 30'000'000'000;

void sleep_until_ns(std::int64_t deadline) {
  for (std::int64_t left; (left = deadline - fanout_now_ns()) > 0;) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(std::min<std::int64_t>(left, 50'000'000)));
  }
}

// Runs `f` on loop `index` and waits for it: how main() reads loop-owned state.
void run_on(net::loop_group& group, std::size_t index, const std::function<void()>& f) {
  std::promise<void> done;
  auto future = done.get_future();
  group.post(index, [&f, &done] {
    f();
    done.set_value();
  });
  future.wait();
}

struct step_result {
  std::size_t index = 0;
  double rate = 0;
  double seconds = 0;  // measured window
  publish_stats pub;
  delivery_stats del;
  double server_cpu_s = -1;
  double server_wait_s = -1;  // runnable but waiting for a CPU (other processes had it)
  double loadgen_cpu_s = 0;
  double loadgen_wait_s = -1;
  long server_rss_kib = -1;
  double drain_s = 0;
  bool half = false;
  bool drained = false;  // every reply and every delivery owed arrived within --drain
  bool sustained = false;

  [[nodiscard]] double deliveries_per_s() const {
    return static_cast<double>(del.in_window) / seconds;
  }
  [[nodiscard]] double ms(double q) const {
    return static_cast<double>(del.latency.percentile(q)) / 1e6;
  }
  [[nodiscard]] double max_ms() const { return static_cast<double>(del.latency.max()) / 1e6; }
};

class fanout_run {
 public:
  explicit fanout_run(const fanout_options& o) : o_(o) {}
  int run();

 private:
  [[nodiscard]] std::vector<std::string> channels_of(std::size_t i) const;
  bool wait_for(const char* what, const std::atomic<std::uint64_t>& done);
  int run_memory(long rss_before);
  int run_steps();
  step_result run_step(double rate, double duration_s, bool half);
  void print_step(const step_result& r) const;
  [[nodiscard]] bool keeps_up(const step_result& r) const;
  [[nodiscard]] std::uint64_t step_received(std::size_t step) const;
  // CPU seconds of --server-pid, plus --publish-server-pid's; -1 without one.
  [[nodiscard]] double servers_cpu_seconds() const {
    if (o_.server_pid <= 0) return -1;
    double total = process_cpu_seconds(o_.server_pid);
    if (o_.publish_server_pid > 0 && o_.publish_server_pid != o_.server_pid && total >= 0) {
      const double other = process_cpu_seconds(o_.publish_server_pid);
      total = other < 0 ? -1 : total + other;
    }
    return total;
  }
  client_counters collect_counters();

  const fanout_options& o_;
  fanout_options publisher_options_;  // o_, aimed at --publish-url when given
  std::unique_ptr<net::loop_group> group_;
  fanout_shared shared_;
  std::vector<std::unique_ptr<client_worker>> workers_;  // o_.threads subscriber loops + 1
  publisher* publisher_ = nullptr;
  double setup_s_ = 0;
};

std::vector<std::string> fanout_run::channels_of(std::size_t i) const {
  const std::string& ns = o_.ns;
  switch (o_.scenario) {
    case fanout_scenario::fanout:
      return {ns + ":fan"};
    case fanout_scenario::channels:
      return {ns + ":c" + std::to_string(i), ns + ":all"};
    case fanout_scenario::memory:
      return {o_.memory_shared_channel ? ns + ":mem" : ns + ":m" + std::to_string(i)};
  }
  return {};
}

int fanout_run::run() {
  raise_fd_limit();
  std::error_code error;
  net::loop_group_options group_options;
  group_options.threads = o_.threads + 1;
  group_ = net::loop_group::create(group_options, error);
  if (!group_) {
    std::fprintf(stderr, "fanout: cannot create event loops: %s\n", error.message().c_str());
    return 1;
  }
  publisher_options_ = o_;
  if (o_.separate_publisher) {
    publisher_options_.remote = o_.publish_remote;
    publisher_options_.host_header = o_.publish_host_header;
    publisher_options_.target = o_.publish_path;
  }
  for (std::size_t i = 0; i <= o_.threads; ++i) {
    // The last loop is the publisher's.
    workers_.push_back(std::make_unique<client_worker>(
        group_->loop(i), i == o_.threads ? publisher_options_ : o_, shared_));
  }
  const bool memory = o_.scenario == fanout_scenario::memory;
  for (std::size_t i = 0; i < o_.subscribers; ++i) {
    client_worker& w = *workers_[i % o_.threads];
    const net::endpoint* source = o_.sources.empty() ? nullptr : &o_.sources[i % o_.sources.size()];
    auto s = std::make_unique<subscriber>(w, source, channels_of(i), !memory);
    w.connections.push_back(std::move(s));
  }
  if (!memory) {
    client_worker& w = *workers_.back();
    auto p = std::make_unique<publisher>(w, o_.subscribers);
    publisher_ = p.get();
    w.connections.push_back(std::move(p));
  }
  const long rss_before = memory ? process_rss_kib(o_.server_pid) : -1;
  const std::int64_t setup_start = fanout_now_ns();
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    group_->post(i, [w = workers_[i].get()] { w->start_all(); });
  }
  if (auto e = group_->start()) {
    std::fprintf(stderr, "fanout: cannot start threads: %s\n", e.message().c_str());
    return 1;
  }
  int status = 0;
  if (memory) {
    status = run_memory(rss_before);
  } else if (!wait_for("subscribed", shared_.subscribed)) {
    status = 1;
  } else {
    while (!publisher_->ready() && shared_.given_up.load() == 0 &&
           fanout_now_ns() - setup_start < k_setup_stall_ns) {
      std::this_thread::sleep_for(5ms);
    }
    setup_s_ = static_cast<double>(fanout_now_ns() - setup_start) / 1e9;
    if (!publisher_->ready()) {
      std::fprintf(stderr, "fanout: the publisher did not connect\n");
      status = 1;
    } else {
      status = run_steps();
    }
  }
  if (o_.hold_s > 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(o_.hold_s));
  }
  shared_.stopping.store(true);
  const client_counters c = collect_counters();
  group_->stop();
  (void)group_->join();
  // Loops are stopped: tear the connections down from this thread, before the loops.
  workers_.clear();
  if (o_.json) {
    std::printf(
        "{\"summary\":true,\"errors\":{\"connect\":%llu,\"protocol\":%llu,\"closed\":%llu,"
        "\"timeout\":%llu,\"refused\":%llu},\"late\":%llu,\"presence_pushes\":%llu,"
        "\"pings\":%llu}\n",
        static_cast<unsigned long long>(c.connect_errors),
        static_cast<unsigned long long>(c.protocol_errors),
        static_cast<unsigned long long>(c.closed), static_cast<unsigned long long>(c.timeouts),
        static_cast<unsigned long long>(c.refused), static_cast<unsigned long long>(c.late),
        static_cast<unsigned long long>(c.joins), static_cast<unsigned long long>(c.pings));
  } else {
    std::printf(
        "errors: connect %llu, protocol %llu, closed by server %llu, timeouts %llu, refused "
        "%llu; late deliveries %llu; presence pushes %llu; pings %llu\n",
        static_cast<unsigned long long>(c.connect_errors),
        static_cast<unsigned long long>(c.protocol_errors),
        static_cast<unsigned long long>(c.closed), static_cast<unsigned long long>(c.timeouts),
        static_cast<unsigned long long>(c.refused), static_cast<unsigned long long>(c.late),
        static_cast<unsigned long long>(c.joins), static_cast<unsigned long long>(c.pings));
  }
  if (!c.first_error.empty())
    std::fprintf(stderr, "fanout: first error reply: %s\n", c.first_error.c_str());
  std::fflush(stdout);
  return status;
}

// Waits until every subscriber is `done` or has given up; false (after a
// message) if any gave up or progress stalled.
bool fanout_run::wait_for(const char* what, const std::atomic<std::uint64_t>& done) {
  std::uint64_t last = 0;
  std::int64_t last_progress = fanout_now_ns();
  for (;;) {
    const std::uint64_t n = done.load() + shared_.given_up.load();
    if (n >= o_.subscribers) break;
    if (n != last) {
      last = n;
      last_progress = fanout_now_ns();
    } else if (fanout_now_ns() - last_progress > k_setup_stall_ns) {
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  const std::uint64_t ok = done.load();
  if (ok < o_.subscribers) {
    std::fprintf(stderr, "fanout: only %llu of %zu subscribers %s (%llu gave up)\n",
                 static_cast<unsigned long long>(ok), o_.subscribers, what,
                 static_cast<unsigned long long>(shared_.given_up.load()));
    return false;
  }
  return true;
}

client_counters fanout_run::collect_counters() {
  client_counters total;
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    run_on(*group_, i, [&] { total.merge(workers_[i]->counters); });
  }
  return total;
}

std::uint64_t fanout_run::step_received(std::size_t step) const {
  std::uint64_t n = 0;
  for (const auto& w : workers_) n += w->step_received[step].load(std::memory_order_relaxed);
  return n;
}

// ---------------------------------------------------------------------------
// memory

int fanout_run::run_memory(long rss_before) {
  if (!wait_for("opened", shared_.opened)) return 1;
  std::this_thread::sleep_for(std::chrono::duration<double>(o_.settle_s));
  const long rss_open = process_rss_kib(o_.server_pid);
  for (std::size_t i = 0; i < o_.threads; ++i) {
    group_->post(i, [w = workers_[i].get()] {
      for (auto& c : w->connections) static_cast<subscriber&>(*c).subscribe();
    });
  }
  if (!wait_for("subscribed", shared_.subscribed)) return 1;
  std::this_thread::sleep_for(std::chrono::duration<double>(o_.settle_s));
  const long rss_subscribed = process_rss_kib(o_.server_pid);
  const auto n = static_cast<double>(o_.subscribers);
  const double per_open = static_cast<double>(rss_open - rss_before) * 1024 / n;
  const double per_sub = static_cast<double>(rss_subscribed - rss_open) * 1024 / n;
  const double per_total = static_cast<double>(rss_subscribed - rss_before) * 1024 / n;
  if (o_.json) {
    std::printf(
        "{\"scenario\":\"memory\",\"channel\":\"%s\",\"connections\":%zu,"
        "\"rss_kib\":{\"before\":%ld,\"open\":%ld,\"subscribed\":%ld},"
        "\"bytes_per_connection\":{\"open\":%.1f,\"subscription\":%.1f,\"total\":%.1f}}\n",
        o_.memory_shared_channel ? "shared" : "own", o_.subscribers, rss_before, rss_open,
        rss_subscribed, per_open, per_sub, per_total);
  } else {
    std::printf(
        "memory: %zu connections, each subscribed to %s channel\n"
        "server VmRSS KiB: before %ld, all open %ld, all subscribed %ld\n"
        "bytes per connection: open %.1f + subscription %.1f = %.1f (%.3f KiB)\n",
        o_.subscribers, o_.memory_shared_channel ? "one shared" : "its own", rss_before, rss_open,
        rss_subscribed, per_open, per_sub, per_total, per_total / 1024);
  }
  return 0;
}

// ---------------------------------------------------------------------------
// rate steps

bool fanout_run::keeps_up(const step_result& r) const {
  if (r.pub.planned == 0) return false;
  const double sent = static_cast<double>(r.pub.sent) / static_cast<double>(r.pub.planned);
  const double delivered = r.pub.expected == 0 ? 0
                                               : static_cast<double>(r.del.delivered) /
                                                     static_cast<double>(r.pub.expected);
  return r.drained && r.pub.refused == 0 && sent >= o_.min_ratio && delivered >= o_.min_ratio &&
         r.ms(0.99) <= o_.max_p99_ms;
}

step_result fanout_run::run_step(double rate, double duration_s, bool half) {
  const std::size_t index = shared_.steps_published.load();
  if (index >= k_max_steps) throw std::runtime_error("too many steps");
  step_plan& plan = shared_.steps[index];
  plan.rate = rate;
  plan.start = fanout_now_ns() + k_step_lead_ns;
  plan.window_start = plan.start + static_cast<std::int64_t>(o_.warmup_s * 1e9);
  plan.window_end = plan.window_start + static_cast<std::int64_t>(duration_s * 1e9);
  plan.end = plan.window_end;
  shared_.steps_published.store(index + 1, std::memory_order_release);
  const std::size_t publisher_loop = workers_.size() - 1;
  group_->post(publisher_loop, [p = publisher_, index] { p->begin_step(index); });

  sleep_until_ns(plan.window_start);
  const double server_0 = servers_cpu_seconds();
  const double server_wait_0 = o_.server_pid > 0 ? process_wait_seconds(o_.server_pid) : -1;
  const double own_0 = own_cpu_seconds();
  const double own_wait_0 = process_wait_seconds(::getpid());
  sleep_until_ns(plan.window_end);
  const double server_1 = servers_cpu_seconds();
  const double server_wait_1 = o_.server_pid > 0 ? process_wait_seconds(o_.server_pid) : -1;
  const double own_1 = own_cpu_seconds();
  const double own_wait_1 = process_wait_seconds(::getpid());

  // Drain: until the step's publishing is over, every publication of it was
  // answered and every delivery the answered ones owe arrived; or until
  // nothing of it arrived for k_drain_quiet_ns with every answer in (the rest
  // is lost: dropped for backpressure); or --drain.
  const std::int64_t drain_end = plan.end + static_cast<std::int64_t>(o_.drain_s * 1e9);
  std::uint64_t last = 0;
  std::int64_t last_change = fanout_now_ns();
  bool drained = false;
  for (;;) {
    const std::int64_t now = fanout_now_ns();
    const std::uint64_t got = step_received(index);
    if (got != last) {
      last = got;
      last_change = now;
    }
    const publisher& p = *publisher_;
    const bool answered = p.step_finished[index].load(std::memory_order_acquire) &&
                          p.step_answered[index].load(std::memory_order_acquire) ==
                              p.step_sent[index].load(std::memory_order_relaxed);
    if (answered && got >= p.step_expected[index].load(std::memory_order_relaxed)) {
      drained = true;
      break;
    }
    if (now >= drain_end || (answered && now - last_change > k_drain_quiet_ns)) break;
    std::this_thread::sleep_for(2ms);
  }

  step_result r;
  r.index = index;
  r.rate = rate;
  r.half = half;
  r.seconds = duration_s;
  r.drained = drained;
  r.drain_s = static_cast<double>(std::max<std::int64_t>(fanout_now_ns() - plan.end, 0)) / 1e9;
  if (server_0 >= 0 && server_1 >= 0) r.server_cpu_s = server_1 - server_0;
  if (server_wait_0 >= 0 && server_wait_1 >= 0) r.server_wait_s = server_wait_1 - server_wait_0;
  r.loadgen_cpu_s = own_1 - own_0;
  if (own_wait_0 >= 0 && own_wait_1 >= 0) r.loadgen_wait_s = own_wait_1 - own_wait_0;
  if (o_.server_pid > 0) r.server_rss_kib = process_rss_kib(o_.server_pid);
  for (std::size_t i = 0; i < o_.threads; ++i) {
    run_on(*group_, i, [&] { r.del.merge(workers_[i]->steps[index]); });
  }
  run_on(*group_, publisher_loop, [&] { r.pub = publisher_->stats(index); });
  r.sustained = keeps_up(r);
  return r;
}

void fanout_run::print_step(const step_result& r) const {
  // Deliveries owed by acknowledged publications that never came (or had not
  // come by the end of the drain).
  const double lost =
      std::max(0.0, static_cast<double>(r.pub.expected) - static_cast<double>(r.del.delivered));
  const double per_cpu =
      r.server_cpu_s > 0 ? static_cast<double>(r.del.in_window) / r.server_cpu_s : 0;
  const double bytes = r.del.in_window > 0 ? static_cast<double>(r.del.bytes_in_window) /
                                                 static_cast<double>(r.del.in_window)
                                           : 0;
  if (o_.json) {
    std::printf(
        "{\"scenario\":\"%s\",\"publish\":\"%s\",\"subscribers\":%zu,\"step\":%zu,\"half\":%s,"
        "\"rate\":%.3f,\"seconds\":%.3f,\"planned\":%llu,\"sent\":%llu,\"sent_in_window\":%llu,"
        "\"acked\":%llu,\"refused\":%llu,\"expected\":%llu,\"delivered\":%llu,\"lost\":%.0f,"
        "\"deliveries_in_window\":%llu,\"deliveries_per_s\":%.1f,\"payload_bytes\":%.1f,"
        "\"latency_ms\":{\"samples\":%llu,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
        "\"max\":%.3f},\"server_cpu_s\":%.3f,\"server_wait_s\":%.3f,\"loadgen_cpu_s\":%.3f,"
        "\"loadgen_wait_s\":%.3f,"
        "\"deliveries_per_server_cpu_s\":%.1f,\"server_rss_kib\":%ld,\"drain_s\":%.3f,"
        "\"drained\":%s,\"sustained\":%s}\n",
        scenario_name(o_.scenario), target_name(o_.publish), o_.subscribers, r.index,
        r.half ? "true" : "false", r.rate, r.seconds,
        static_cast<unsigned long long>(r.pub.planned), static_cast<unsigned long long>(r.pub.sent),
        static_cast<unsigned long long>(r.pub.sent_in_window),
        static_cast<unsigned long long>(r.pub.acked),
        static_cast<unsigned long long>(r.pub.refused),
        static_cast<unsigned long long>(r.pub.expected),
        static_cast<unsigned long long>(r.del.delivered), lost,
        static_cast<unsigned long long>(r.del.in_window), r.deliveries_per_s(), bytes,
        static_cast<unsigned long long>(r.del.latency.count()), r.ms(0.5), r.ms(0.9), r.ms(0.99),
        r.ms(0.999), r.max_ms(), r.server_cpu_s, r.server_wait_s, r.loadgen_cpu_s, r.loadgen_wait_s,
        per_cpu, r.server_rss_kib, r.drain_s, r.drained ? "true" : "false",
        r.sustained ? "true" : "false");
  } else {
    std::printf(
        "step %zu%s: %.1f publications/s: sent %llu of %llu, deliveries/s %.0f (%.0f B each), "
        "lost %.0f\n"
        "  latency ms p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f | CPU in window: server %.2f s "
        "(%.0f deliveries per server CPU-s; waited %.2f s for a CPU), loadgen %.2f s (waited "
        "%.2f s) | %s\n",
        r.index, r.half ? " (half of max)" : "", r.rate,
        static_cast<unsigned long long>(r.pub.sent), static_cast<unsigned long long>(r.pub.planned),
        r.deliveries_per_s(), bytes, lost, r.ms(0.5), r.ms(0.99), r.ms(0.999), r.max_ms(),
        r.server_cpu_s, per_cpu, r.server_wait_s, r.loadgen_cpu_s, r.loadgen_wait_s,
        r.sustained ? "kept up" : "did NOT keep up");
  }
  std::fflush(stdout);
}

int fanout_run::run_steps() {
  // With --json on stderr, for scripts that act once the set-up is done
  // (run_topic_bench.sh starts counting instructions then).
  std::fprintf(o_.json ? stderr : stdout, "%s%s%s: %zu subscribers set up in %.2f s\n",
               scenario_name(o_.scenario), o_.scenario == fanout_scenario::channels ? " / " : "",
               o_.scenario == fanout_scenario::channels ? target_name(o_.publish) : "",
               o_.subscribers, setup_s_);
  std::fflush(o_.json ? stderr : stdout);
  double good = 0;
  double bad = 0;
  for (const double rate : o_.rates) {
    const step_result r = run_step(rate, o_.duration_s, false);
    print_step(r);
    if (r.sustained) {
      good = std::max(good, rate);
    } else if (o_.until_saturated) {
      bad = rate;
      break;
    }
  }
  for (std::size_t i = 0; bad > 0 && i < o_.refine; ++i) {
    const double mid = good > 0 ? std::round((good + bad) / 2) : bad / 2;
    if (mid <= good || mid >= bad) break;
    const step_result r = run_step(mid, o_.duration_s, false);
    print_step(r);
    (r.sustained ? good : bad) = mid;
  }
  if (o_.half && good > 0) print_step(run_step(good / 2, o_.half_duration_s, true));
  if (o_.json) {
    std::printf("{\"max_sustained_rate\":%.3f,\"first_failed_rate\":%.3f}\n", good, bad);
  } else {
    std::printf("highest sustained rate %.1f/s%s\n", good,
                bad > 0 ? (" (first failure at " + std::to_string(bad) + "/s)").c_str() : "");
  }
  return 0;
}

}  // namespace
}  // namespace switchboard::bench

int main(int argc, char** argv) {
  switchboard::bench::fanout_options options;
  try {
    options = switchboard::bench::parse_fanout_options(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "switchboard_fanout: %s\n", e.what());
    return 2;
  }
  return switchboard::bench::fanout_run(options).run();
}
