// cpus.cpp — usable_cpus(): the affinity mask and the cgroup quota.
#include <switchboard/net/cpus.hpp>

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

namespace switchboard::net {

namespace {

// Parses a non-negative decimal integer filling `text` (surrounding blanks
// and a trailing newline allowed); -1 if it is not one.
std::int64_t parse_count(std::string_view text) noexcept {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  std::int64_t value = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < 0) return -1;
  return value;
}

std::size_t ceil_ratio(std::int64_t quota, std::int64_t period) noexcept {
  if (quota <= 0 || period <= 0) return 0;
  return static_cast<std::size_t>((quota + period - 1) / period);
}

std::string read_file(const char* path) {
  std::ifstream in(path);
  if (!in) return {};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

std::size_t cpus_from_cgroup_v2(std::string_view cpu_max) noexcept {
  const std::size_t space = cpu_max.find(' ');
  if (space == std::string_view::npos) return 0;
  const std::string_view quota = cpu_max.substr(0, space);
  if (quota == "max") return 0;  // no quota
  return ceil_ratio(parse_count(quota), parse_count(cpu_max.substr(space + 1)));
}

std::size_t cpus_from_cgroup_v1(std::string_view quota_us, std::string_view period_us) noexcept {
  // "-1" (no quota) fails parse_count and gives 0.
  return ceil_ratio(parse_count(quota_us), parse_count(period_us));
}

std::size_t usable_cpus() {
  std::size_t n = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = static_cast<std::size_t>(CPU_COUNT(&set));
  if (n == 0) n = 1;
  std::size_t quota = cpus_from_cgroup_v2(read_file("/sys/fs/cgroup/cpu.max"));
  if (quota == 0) {
    quota = cpus_from_cgroup_v1(read_file("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
                                read_file("/sys/fs/cgroup/cpu/cpu.cfs_period_us"));
  }
  if (quota != 0) n = std::min(n, quota);
  return std::max<std::size_t>(n, 1);
}

}  // namespace switchboard::net
