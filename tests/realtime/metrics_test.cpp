// Tests for the Prometheus registry: values, labels, escaping, histogram
// buckets, and concurrent updates. metrics_exposition.cpp + parse_metrics.py
// check the same output with an independent parser (prometheus_client).
#include "metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using switchboard::realtime::counter;
using switchboard::realtime::counter_family;
using switchboard::realtime::histogram_family;
using switchboard::realtime::registry;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(Metrics, CounterValue) {
  registry r;
  counter& c = r.add_counter("switchboard_publications_total", "Publications accepted.");
  EXPECT_EQ(c.value(), 0u);
  c.inc();
  c.inc(41);
  EXPECT_EQ(c.value(), 42u);
  EXPECT_EQ(r.render(),
            "# HELP switchboard_publications_total Publications accepted.\n"
            "# TYPE switchboard_publications_total counter\n"
            "switchboard_publications_total 42\n");
}

TEST(Metrics, CounterFnAndGauge) {
  registry r;
  std::uint64_t sent = 7;
  double open = 3;
  r.add_counter_fn("switchboard_messages_sent_total", "Messages sent.", [&] { return sent; });
  r.add_gauge("switchboard_connections", "Connections open.", [&] { return open; });
  sent = 18446744073709551615u;
  open = 2.5;
  EXPECT_EQ(r.render(),
            "# HELP switchboard_messages_sent_total Messages sent.\n"
            "# TYPE switchboard_messages_sent_total counter\n"
            "switchboard_messages_sent_total 18446744073709551615\n"
            "# HELP switchboard_connections Connections open.\n"
            "# TYPE switchboard_connections gauge\n"
            "switchboard_connections 2.5\n");
}

TEST(Metrics, GaugeSpecialValues) {
  registry r;
  double v = std::numeric_limits<double>::quiet_NaN();
  r.add_gauge("g", "h", [&] { return v; });
  EXPECT_TRUE(contains(r.render(), "\ng NaN\n"));
  v = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(contains(r.render(), "\ng +Inf\n"));
  v = -v;
  EXPECT_TRUE(contains(r.render(), "\ng -Inf\n"));
  v = 1e21;
  EXPECT_TRUE(contains(r.render(), "\ng 1e+21\n"));
  v = 0.1;
  EXPECT_TRUE(contains(r.render(), "\ng 0.1\n"));
  v = -3;
  EXPECT_TRUE(contains(r.render(), "\ng -3\n"));
  v = 1234567;
  EXPECT_TRUE(contains(r.render(), "\ng 1.234567e+06\n"));
}

TEST(Metrics, BucketBoundsSpelledAsGoDoes) {
  registry r;
  r.add_histogram_family("h_seconds", "H.", "cmd", {0.00001, 0.0001, 0.0025, 1, 10, 1e6})
      .observe("a", 1);
  const std::string text = r.render();
  for (const char* le : {"1e-05", "0.0001", "0.0025", "1", "10", "1e+06", "+Inf"}) {
    EXPECT_TRUE(contains(text, "h_seconds_bucket{cmd=\"a\",le=\"" + std::string(le) + "\"}"))
        << le << "\n"
        << text;
  }
}

TEST(Metrics, CounterFamilyLabels) {
  registry r;
  counter_family& closes = r.add_counter_family("switchboard_closes_total", "Closes.", "code");
  counter& normal = closes.with("1000");
  normal.inc(3);
  closes.with("1001").inc();
  EXPECT_EQ(&closes.with("1000"), &normal);  // same counter, stable reference
  EXPECT_EQ(closes.with("1000").value(), 3u);
  EXPECT_EQ(r.render(),
            "# HELP switchboard_closes_total Closes.\n"
            "# TYPE switchboard_closes_total counter\n"
            "switchboard_closes_total{code=\"1000\"} 3\n"
            "switchboard_closes_total{code=\"1001\"} 1\n");
}

TEST(Metrics, EmptyFamiliesRenderHeadersOnly) {
  registry r;
  r.add_counter_family("a_total", "A.", "reason");
  r.add_histogram_family("b_seconds", "B.", "cmd", {0.1});
  EXPECT_EQ(r.render(),
            "# HELP a_total A.\n# TYPE a_total counter\n"
            "# HELP b_seconds B.\n# TYPE b_seconds histogram\n");
}

TEST(Metrics, LabelValuesAreEscaped) {
  registry r;
  auto& f = r.add_counter_family("x_total", "X.", "reason");
  f.with("back\\slash \"quoted\"\nnewline").inc();
  f.with("utf-8 é ✓").inc(2);
  const std::string text = r.render();
  EXPECT_TRUE(contains(text, "x_total{reason=\"back\\\\slash \\\"quoted\\\"\\nnewline\"} 1\n"))
      << text;
  EXPECT_TRUE(contains(text, "x_total{reason=\"utf-8 é ✓\"} 2\n")) << text;
}

TEST(Metrics, HelpIsEscaped) {
  registry r;
  r.add_counter("y_total", "a \\ b\nc \"d\"");
  // HELP escapes backslash and newline but not quotes.
  EXPECT_TRUE(contains(r.render(), "# HELP y_total a \\\\ b\\nc \"d\"\n")) << r.render();
}

TEST(Metrics, HistogramBucketsAreCumulative) {
  registry r;
  histogram_family& h = r.add_histogram_family("switchboard_command_duration_seconds",
                                               "Command time.", "cmd", {0.1, 0.5, 1});
  h.observe("publish", 0.05);
  h.observe("publish", 0.1);  // le is inclusive
  h.observe("publish", 0.3);
  h.observe("publish", 2);
  h.observe("publish", std::numeric_limits<double>::quiet_NaN());  // ignored
  h.observe("ping", 0.0);
  EXPECT_EQ(h.with("publish").count(), 4u);
  EXPECT_DOUBLE_EQ(h.with("publish").sum(), 2.45);
  EXPECT_EQ(r.render(),
            "# HELP switchboard_command_duration_seconds Command time.\n"
            "# TYPE switchboard_command_duration_seconds histogram\n"
            "switchboard_command_duration_seconds_bucket{cmd=\"ping\",le=\"0.1\"} 1\n"
            "switchboard_command_duration_seconds_bucket{cmd=\"ping\",le=\"0.5\"} 1\n"
            "switchboard_command_duration_seconds_bucket{cmd=\"ping\",le=\"1\"} 1\n"
            "switchboard_command_duration_seconds_bucket{cmd=\"ping\",le=\"+Inf\"} 1\n"
            "switchboard_command_duration_seconds_sum{cmd=\"ping\"} 0\n"
            "switchboard_command_duration_seconds_count{cmd=\"ping\"} 1\n"
            "switchboard_command_duration_seconds_bucket{cmd=\"publish\",le=\"0.1\"} 2\n"
            "switchboard_command_duration_seconds_bucket{cmd=\"publish\",le=\"0.5\"} 3\n"
            "switchboard_command_duration_seconds_bucket{cmd=\"publish\",le=\"1\"} 3\n"
            "switchboard_command_duration_seconds_bucket{cmd=\"publish\",le=\"+Inf\"} 4\n"
            "switchboard_command_duration_seconds_sum{cmd=\"publish\"} 2.45\n"
            "switchboard_command_duration_seconds_count{cmd=\"publish\"} 4\n");
}

TEST(Metrics, HistogramBoundsAreNormalized) {
  registry r;
  const double inf = std::numeric_limits<double>::infinity();
  histogram_family& h = r.add_histogram_family("h_seconds", "H.", "cmd", {1, 0.25, inf, 1, 0.5});
  EXPECT_EQ(h.bounds(), (std::vector<double>{0.25, 0.5, 1}));
  h.observe("a", 5);
  const std::string text = r.render();
  EXPECT_TRUE(contains(text, "h_seconds_bucket{cmd=\"a\",le=\"0.25\"} 0\n")) << text;
  EXPECT_TRUE(contains(text, "h_seconds_bucket{cmd=\"a\",le=\"+Inf\"} 1\n")) << text;
}

TEST(Metrics, RenderKeepsRegistrationOrder) {
  registry r;
  r.add_counter("b_total", "B.");
  r.add_counter("a_total", "A.");
  const std::string text = r.render();
  EXPECT_LT(text.find("b_total"), text.find("a_total"));
}

TEST(Metrics, RefusesBadOrRepeatedNames) {
  registry r;
  r.add_counter("ok_total", "ok");
  EXPECT_THROW(r.add_counter("ok_total", "again"), std::invalid_argument);
  EXPECT_THROW(r.add_gauge("ok_total", "again", [] { return 0.0; }), std::invalid_argument);
  EXPECT_THROW(r.add_counter("", "h"), std::invalid_argument);
  EXPECT_THROW(r.add_counter("1abc", "h"), std::invalid_argument);
  EXPECT_THROW(r.add_counter("a-b", "h"), std::invalid_argument);
  EXPECT_THROW(r.add_counter_family("f_total", "h", "bad-label"), std::invalid_argument);
  EXPECT_THROW(r.add_counter_family("g_total", "h", "__reserved"), std::invalid_argument);
  EXPECT_THROW(r.add_histogram_family("h_seconds", "h", "le", {1}), std::invalid_argument);
  EXPECT_THROW(r.add_gauge("no_reader", "h", nullptr), std::invalid_argument);
  // A refused registration leaves no trace.
  r.add_counter_family("f_total", "h", "reason");
  r.add_counter("a:b_total", "colons are allowed in metric names");
  EXPECT_EQ(r.render().find("bad-label"), std::string::npos);
}

TEST(Metrics, ConcurrentUpdates) {
  registry r;
  counter& c = r.add_counter("c_total", "C.");
  counter_family& f = r.add_counter_family("f_total", "F.", "k");
  histogram_family& h = r.add_histogram_family("h_seconds", "H.", "cmd", {0.5});
  constexpr int k_threads = 4;
  constexpr int k_per_thread = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&, t] {
      counter& mine = f.with(t % 2 == 0 ? "even" : "odd");
      for (int i = 0; i < k_per_thread; ++i) {
        c.inc();
        mine.inc();
        f.with("shared").inc();
        h.observe(i % 2 == 0 ? "a" : "b", i % 4 < 2 ? 0.25 : 1.0);
        if (i % 10000 == 0) (void)r.render();  // rendering while updating is safe
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(c.value(), std::uint64_t{k_threads} * k_per_thread);
  EXPECT_EQ(f.with("shared").value(), std::uint64_t{k_threads} * k_per_thread);
  EXPECT_EQ(f.with("even").value(), std::uint64_t{k_per_thread} * 2);
  EXPECT_EQ(f.with("odd").value(), std::uint64_t{k_per_thread} * 2);
  EXPECT_EQ(h.with("a").count() + h.with("b").count(), std::uint64_t{k_threads} * k_per_thread);
  // Half the observations are 0.25 s and half 1 s; both sums are exact in binary.
  EXPECT_DOUBLE_EQ(h.with("a").sum() + h.with("b").sum(), k_threads * k_per_thread * 0.625);
  const std::string text = r.render();
  EXPECT_TRUE(contains(text, "c_total 400000\n")) << text;
}

}  // namespace
