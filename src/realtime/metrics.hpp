// metrics.hpp — private: a small Prometheus registry: counters,
// one-label counter families, gauges and counters read from callbacks, and
// one-label histograms, rendered in the text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/).
//
// Hot path: counter::inc and histogram::observe are relaxed atomic operations
// and never allocate or lock. counter_family::with and histogram_family::with /
// observe(label, v) look the label value up in a map under a mutex (a
// std::shared_mutex, shared for look-ups, for histograms), allocating only the
// first time a label value is seen; keep the returned reference when the same
// label is used often. A counter shared by every loop thread bounces one cache
// line between cores; for per-message figures prefer per-loop statistics summed
// at render time through add_counter_fn.
//
// Thread-safety: everything may be called from any thread at any time.
// References returned by add_* and with() stay valid as long as the registry.
// render() calls the gauge and counter callbacks on the calling thread, with
// the registry's lock held: a callback must be safe to call from that thread
// and must not call back into the registry.
//
// Names are used as given and must be valid Prometheus names (metric:
// [a-zA-Z_:][a-zA-Z0-9_:]*, label: [a-zA-Z_][a-zA-Z0-9_]*, not "le" for a
// histogram); a bad or repeated metric name throws std::invalid_argument
// (registration happens at start-up).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace switchboard::realtime {

// A monotonically increasing count.
class counter {
 public:
  counter() noexcept = default;
  counter(const counter&) = delete;
  counter& operator=(const counter&) = delete;

  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// Counters that share a name and differ by the value of one label
// (closes_total{code="1000"}).
class counter_family {
 public:
  counter_family(std::string name, std::string help, std::string label_name);
  counter_family(const counter_family&) = delete;
  counter_family& operator=(const counter_family&) = delete;

  // The counter for `label_value`, created at 0 on first use. Takes a mutex;
  // allocates only when the label value is new.
  counter& with(std::string_view label_value);

  const std::string& name() const noexcept { return name_; }

 private:
  friend class registry;
  void render(std::string& out) const;

  std::string name_, help_, label_name_;
  mutable std::mutex mutex_;
  std::map<std::string, counter, std::less<>> counters_;  // nodes never move
};

// One histogram series: fixed buckets, a sum and (implicitly) a count.
class histogram {
 public:
  // REQUIRES: `bounds` sorted, finite, distinct; it outlives the histogram.
  explicit histogram(const std::vector<double>& bounds);
  histogram(const histogram&) = delete;
  histogram& operator=(const histogram&) = delete;

  // Records one observation in seconds: no lock, no allocation. NaN is ignored.
  void observe(double seconds) noexcept;

  // Observations so far (the +Inf bucket).
  std::uint64_t count() const noexcept;
  double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

 private:
  friend class histogram_family;
  const std::vector<double>& bounds_;
  // Per-bucket (not cumulative) counts; the last one is (last bound, +Inf].
  // Rendering accumulates them, so _count always equals the +Inf bucket.
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
  std::atomic<double> sum_{0.0};
};

// Histograms that share a name and bucket bounds and differ by one label
// (command_duration_seconds{cmd="publish"}).
class histogram_family {
 public:
  // `bounds` are upper bounds in seconds; they are sorted, duplicates and
  // non-finite values dropped (+Inf is always the implicit last bucket).
  histogram_family(std::string name, std::string help, std::string label_name,
                   std::vector<double> bounds);
  histogram_family(const histogram_family&) = delete;
  histogram_family& operator=(const histogram_family&) = delete;

  // observe(v) on with(label_value).
  void observe(std::string_view label_value, double seconds);

  // The series for `label_value`, created empty on first use. A shared lock
  // for a known label value; an exclusive one and an allocation for a new one.
  histogram& with(std::string_view label_value);

  const std::string& name() const noexcept { return name_; }
  const std::vector<double>& bounds() const noexcept { return bounds_; }

 private:
  friend class registry;
  void render(std::string& out) const;

  std::string name_, help_, label_name_;
  std::vector<double> bounds_;
  mutable std::shared_mutex mutex_;
  std::map<std::string, histogram, std::less<>> series_;  // nodes never move
};

class registry {
 public:
  registry();
  ~registry();
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  // A counter without labels.
  counter& add_counter(std::string name, std::string help);
  // Counters with one label.
  counter_family& add_counter_family(std::string name, std::string help, std::string label_name);
  // A gauge whose value `read` returns at render time.
  void add_gauge(std::string name, std::string help, std::function<double()> read);
  // A counter whose value lives elsewhere (server statistics), read at render time.
  void add_counter_fn(std::string name, std::string help, std::function<std::uint64_t()> read);
  // Histograms with one label and the given bucket upper bounds in seconds.
  histogram_family& add_histogram_family(std::string name, std::string help, std::string label_name,
                                         std::vector<double> bounds);

  // Every metric in registration order, each with "# HELP" and "# TYPE"
  // lines; label values in sorted order. Text format 0.0.4: serve it as
  // "text/plain; version=0.0.4; charset=utf-8".
  std::string render() const;

 private:
  struct metric;
  metric& add(std::string name, std::string help);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<metric>> metrics_;
};

}  // namespace switchboard::realtime
