// metrics.cpp — the Prometheus registry and its text exposition (format 0.0.4).
#include "metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace switchboard::realtime {

namespace {

bool is_name_start(char c, bool colon_ok) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':');
}

bool is_name_char(char c, bool colon_ok) noexcept {
  return is_name_start(c, colon_ok) || (c >= '0' && c <= '9');
}

// Prometheus data model: metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names
// [a-zA-Z_][a-zA-Z0-9_]* (colons are for recording rules only).
bool is_valid_name(std::string_view s, bool colon_ok) noexcept {
  if (s.empty() || !is_name_start(s.front(), colon_ok)) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return is_name_char(c, colon_ok); });
}

void check_label_name(std::string_view label) {
  // Names starting with "__" are reserved for Prometheus itself.
  if (!is_valid_name(label, false) || label.starts_with("__")) {
    throw std::invalid_argument("metrics: invalid label name: " + std::string(label));
  }
}

// Text format 0.0.4: in HELP, '\' and newline are escaped; in label values
// also '"'. Everything else (UTF-8 included) is written as it is.
void append_escaped(std::string& out, std::string_view s, bool quote) {
  for (const char c : s) {
    switch (c) {
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '"':
        if (quote) {
          out.append("\\\"");
          break;
        }
        [[fallthrough]];
      default:
        out.push_back(c);
    }
  }
}

void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// The shortest text that reads back as the same double, spelled as Go's
// strconv.FormatFloat(v, 'g', -1, 64) does (what the Go client writes, so le
// labels read "0.0001", "1e-05", "1e+06" everywhere), and NaN / +Inf / -Inf.
void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out.append("NaN");
  } else if (std::isinf(v)) {
    out.append(v > 0 ? "+Inf" : "-Inf");
  } else {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);
    out.append(buf, r.ptr);
  }
}

void append_header(std::string& out, std::string_view name, std::string_view help,
                   std::string_view type) {
  out.append("# HELP ").append(name).push_back(' ');
  append_escaped(out, help, false);
  out.append("\n# TYPE ").append(name).push_back(' ');
  out.append(type).push_back('\n');
}

// name{label="value"} or name{label="value",le="bound"}
void append_series(std::string& out, std::string_view name, std::string_view suffix,
                   std::string_view label, std::string_view value) {
  out.append(name).append(suffix).push_back('{');
  out.append(label).append("=\"");
  append_escaped(out, value, true);
  out.push_back('"');
}

}  // namespace

// --- counter_family ----------------------------------------------------------

counter_family::counter_family(std::string name, std::string help, std::string label_name)
    : name_(std::move(name)), help_(std::move(help)), label_name_(std::move(label_name)) {
  check_label_name(label_name_);
}

counter& counter_family::with(std::string_view label_value) {
  const std::lock_guard lock(mutex_);
  if (const auto it = counters_.find(label_value); it != counters_.end()) return it->second;
  return counters_.try_emplace(std::string(label_value)).first->second;
}

void counter_family::render(std::string& out) const {
  const std::lock_guard lock(mutex_);
  for (const auto& [value, c] : counters_) {
    append_series(out, name_, "", label_name_, value);
    out.append("} ");
    append_uint(out, c.value());
    out.push_back('\n');
  }
}

// --- histogram ---------------------------------------------------------------

histogram::histogram(const std::vector<double>& bounds)
    : bounds_(bounds),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds.size() + 1)) {}

void histogram::observe(double seconds) noexcept {
  // NaN fits no bucket and would poison the sum for good.
  if (std::isnan(seconds)) return;
  // Bucket i counts bounds[i-1] < v <= bounds[i] (Prometheus' "le").
  const auto i = static_cast<std::size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(seconds, std::memory_order_relaxed);
}

std::uint64_t histogram::count() const noexcept {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i)
    n += buckets_[i].load(std::memory_order_relaxed);
  return n;
}

// --- histogram_family --------------------------------------------------------

histogram_family::histogram_family(std::string name, std::string help, std::string label_name,
                                   std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_name_(std::move(label_name)),
      bounds_(std::move(bounds)) {
  check_label_name(label_name_);
  // "le" is the bucket label of every histogram sample.
  if (label_name_ == "le") throw std::invalid_argument("metrics: a histogram label cannot be le");
  std::erase_if(bounds_, [](double b) { return !std::isfinite(b); });
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
}

histogram& histogram_family::with(std::string_view label_value) {
  {
    const std::shared_lock lock(mutex_);
    if (const auto it = series_.find(label_value); it != series_.end()) return it->second;
  }
  const std::unique_lock lock(mutex_);
  // try_emplace finds the series another thread may have added meanwhile.
  return series_.try_emplace(std::string(label_value), bounds_).first->second;
}

void histogram_family::observe(std::string_view label_value, double seconds) {
  with(label_value).observe(seconds);
}

void histogram_family::render(std::string& out) const {
  const std::shared_lock lock(mutex_);
  for (const auto& [value, h] : series_) {
    // Cumulative counts from one pass over the buckets, so the +Inf bucket
    // and _count agree even while observations keep arriving.
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
      cumulative += h.buckets_[i].load(std::memory_order_relaxed);
      append_series(out, name_, "_bucket", label_name_, value);
      out.append(",le=\"");
      if (i < bounds_.size()) {
        append_double(out, bounds_[i]);
      } else {
        out.append("+Inf");
      }
      out.append("\"} ");
      append_uint(out, cumulative);
      out.push_back('\n');
    }
    append_series(out, name_, "_sum", label_name_, value);
    out.append("} ");
    append_double(out, h.sum());
    out.push_back('\n');
    append_series(out, name_, "_count", label_name_, value);
    out.append("} ");
    append_uint(out, cumulative);
    out.push_back('\n');
  }
}

// --- registry ----------------------------------------------------------------

struct registry::metric {
  enum class kind : std::uint8_t { counter, counter_family, gauge, counter_fn, histogram_family };

  std::string name;
  std::string help;
  kind type = kind::counter;
  std::unique_ptr<counter> plain;
  std::unique_ptr<counter_family> family;
  std::unique_ptr<histogram_family> histograms;
  std::function<double()> read_gauge;
  std::function<std::uint64_t()> read_counter;
};

registry::registry() = default;
registry::~registry() = default;

// REQUIRES: mutex_ held.
registry::metric& registry::add(std::string name, std::string help) {
  if (!is_valid_name(name, true)) {
    throw std::invalid_argument("metrics: invalid metric name: " + name);
  }
  for (const auto& m : metrics_) {
    if (m->name == name) throw std::invalid_argument("metrics: metric registered twice: " + name);
  }
  auto m = std::make_unique<metric>();
  m->name = std::move(name);
  m->help = std::move(help);
  metrics_.push_back(std::move(m));
  return *metrics_.back();
}

counter& registry::add_counter(std::string name, std::string help) {
  const std::lock_guard lock(mutex_);
  auto c = std::make_unique<counter>();
  metric& m = add(std::move(name), std::move(help));
  m.type = metric::kind::counter;
  m.plain = std::move(c);
  return *m.plain;
}

counter_family& registry::add_counter_family(std::string name, std::string help,
                                             std::string label_name) {
  const std::lock_guard lock(mutex_);
  auto f = std::make_unique<counter_family>(name, help, std::move(label_name));
  metric& m = add(std::move(name), std::move(help));
  m.type = metric::kind::counter_family;
  m.family = std::move(f);
  return *m.family;
}

void registry::add_gauge(std::string name, std::string help, std::function<double()> read) {
  if (!read) throw std::invalid_argument("metrics: gauge without a reader: " + name);
  const std::lock_guard lock(mutex_);
  metric& m = add(std::move(name), std::move(help));
  m.type = metric::kind::gauge;
  m.read_gauge = std::move(read);
}

void registry::add_counter_fn(std::string name, std::string help,
                              std::function<std::uint64_t()> read) {
  if (!read) throw std::invalid_argument("metrics: counter without a reader: " + name);
  const std::lock_guard lock(mutex_);
  metric& m = add(std::move(name), std::move(help));
  m.type = metric::kind::counter_fn;
  m.read_counter = std::move(read);
}

histogram_family& registry::add_histogram_family(std::string name, std::string help,
                                                 std::string label_name,
                                                 std::vector<double> bounds) {
  const std::lock_guard lock(mutex_);
  auto h = std::make_unique<histogram_family>(name, help, std::move(label_name), std::move(bounds));
  metric& m = add(std::move(name), std::move(help));
  m.type = metric::kind::histogram_family;
  m.histograms = std::move(h);
  return *m.histograms;
}

std::string registry::render() const {
  std::string out;
  const std::lock_guard lock(mutex_);
  for (const auto& m : metrics_) {
    switch (m->type) {
      case metric::kind::counter:
        append_header(out, m->name, m->help, "counter");
        out.append(m->name).push_back(' ');
        append_uint(out, m->plain->value());
        out.push_back('\n');
        break;
      case metric::kind::counter_fn:
        append_header(out, m->name, m->help, "counter");
        out.append(m->name).push_back(' ');
        append_uint(out, m->read_counter());
        out.push_back('\n');
        break;
      case metric::kind::gauge:
        append_header(out, m->name, m->help, "gauge");
        out.append(m->name).push_back(' ');
        append_double(out, m->read_gauge());
        out.push_back('\n');
        break;
      case metric::kind::counter_family:
        append_header(out, m->name, m->help, "counter");
        m->family->render(out);
        break;
      case metric::kind::histogram_family:
        append_header(out, m->name, m->help, "histogram");
        m->histograms->render(out);
        break;
    }
  }
  return out;
}

}  // namespace switchboard::realtime
