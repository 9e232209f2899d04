// cpus_test.cpp — usable_cpus() and the cgroup quota parsers.
#include <switchboard/net/cpus.hpp>

#include <gtest/gtest.h>
#include <sched.h>

namespace switchboard::net {
namespace {

TEST(cpus, cgroup_v2_quota_rounds_up_and_max_means_none) {
  EXPECT_EQ(cpus_from_cgroup_v2("max 100000\n"), 0u);
  EXPECT_EQ(cpus_from_cgroup_v2("200000 100000\n"), 2u);
  EXPECT_EQ(cpus_from_cgroup_v2("150000 100000"), 2u);  // 1.5 CPUs: two loops
  EXPECT_EQ(cpus_from_cgroup_v2("50000 100000"), 1u);
  EXPECT_EQ(cpus_from_cgroup_v2(""), 0u);
  EXPECT_EQ(cpus_from_cgroup_v2("garbage"), 0u);
  EXPECT_EQ(cpus_from_cgroup_v2("12x 100000"), 0u);
  EXPECT_EQ(cpus_from_cgroup_v2("100000 0"), 0u);
}

TEST(cpus, cgroup_v1_quota) {
  EXPECT_EQ(cpus_from_cgroup_v1("-1\n", "100000\n"), 0u);
  EXPECT_EQ(cpus_from_cgroup_v1("300000\n", "100000\n"), 3u);
  EXPECT_EQ(cpus_from_cgroup_v1("", ""), 0u);
}

TEST(cpus, the_smaller_of_the_affinity_mask_and_the_quota_and_at_least_one) {
  EXPECT_EQ(usable_cpus(8, 0), 8u);  // no quota
  EXPECT_EQ(usable_cpus(8, 2), 2u);
  EXPECT_EQ(usable_cpus(2, 3), 2u);  // a quota above the mask does not add CPUs
  EXPECT_EQ(usable_cpus(1, 1), 1u);
  EXPECT_EQ(usable_cpus(0, 0), 1u);  // mask unknown
  EXPECT_EQ(usable_cpus(0, 4), 1u);
}

TEST(cpus, cgroup_path_finds_the_v2_entry_and_the_v1_cpu_hierarchy) {
  const std::string_view hybrid =
      "9:name=systemd:/\n4:memory:/jobs/7\n2:cpu,cpuacct:/jobs/7/worker\n0::/jobs/7\n";
  EXPECT_EQ(cgroup_path(hybrid, ""), "/jobs/7");
  EXPECT_EQ(cgroup_path(hybrid, "cpu"), "/jobs/7/worker");
  EXPECT_EQ(cgroup_path(hybrid, "cpuacct"), "/jobs/7/worker");
  EXPECT_EQ(cgroup_path(hybrid, "cpuset"), "");
  EXPECT_EQ(cgroup_path("0::/\n", ""), "/");  // a cgroup namespace's root
  EXPECT_EQ(cgroup_path("0::/system.slice/switchboard.service", ""),
            "/system.slice/switchboard.service");  // no final newline
  EXPECT_EQ(cgroup_path("1:cpu:/a\n", ""), "");    // v1 only
  EXPECT_EQ(cgroup_path("", "cpu"), "");
  EXPECT_EQ(cgroup_path("garbage\n::\n", ""), "");
}

TEST(cpus, usable_cpus_is_within_the_affinity_mask) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  const std::size_t n = usable_cpus();
  EXPECT_GE(n, 1u);
  EXPECT_LE(n, static_cast<std::size_t>(CPU_COUNT(&set)));
}

TEST(cpus, a_narrower_affinity_mask_means_fewer_loops) {
  cpu_set_t before;
  CPU_ZERO(&before);
  ASSERT_EQ(sched_getaffinity(0, sizeof before, &before), 0);
  int first = -1;
  for (int i = 0; i < CPU_SETSIZE && first < 0; ++i) {
    if (CPU_ISSET(i, &before)) first = i;
  }
  ASSERT_GE(first, 0);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);  // this thread only
  EXPECT_EQ(usable_cpus(), 1u);
  ASSERT_EQ(sched_setaffinity(0, sizeof before, &before), 0);
}

}  // namespace
}  // namespace switchboard::net
