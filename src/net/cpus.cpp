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

std::size_t usable_cpus(std::size_t affinity, std::size_t quota) noexcept {
  std::size_t n = affinity == 0 ? 1 : affinity;
  if (quota != 0) n = std::min(n, quota);
  return std::max<std::size_t>(n, 1);
}

std::string_view cgroup_path(std::string_view text, std::string_view controller) noexcept {
  while (!text.empty()) {
    const std::size_t end = std::min(text.find('\n'), text.size());
    std::string_view line = text.substr(0, end);
    text.remove_prefix(std::min(end + 1, text.size()));
    // hierarchy-id:controller-list:path
    const std::size_t first = line.find(':');
    if (first == std::string_view::npos) continue;
    const std::size_t second = line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    const std::string_view id = line.substr(0, first);
    std::string_view list = line.substr(first + 1, second - first - 1);
    const std::string_view path = line.substr(second + 1);
    if (controller.empty()) {
      if (id == "0" && list.empty()) return path;
      continue;
    }
    while (!list.empty()) {
      const std::size_t comma = std::min(list.find(','), list.size());
      if (list.substr(0, comma) == controller) return path;
      list.remove_prefix(std::min(comma + 1, list.size()));
    }
  }
  return {};
}

namespace {

// The smallest quota on the way from `root` + `path` up to `root`; `read`
// gets one directory's quota (0: none).
template <class ReadQuota>
std::size_t smallest_quota(const std::string& root, std::string_view path, ReadQuota read) {
  // Why stop at "..": a cgroup outside this process's cgroup namespace is
  // not under its mount; the root's own quota still counts.
  std::string dir;
  dir.append(root);
  if (path.find("..") == std::string_view::npos) dir.append(path);
  while (dir.size() > root.size() && dir.back() == '/') dir.pop_back();
  std::size_t smallest = 0;
  for (;;) {
    const std::size_t q = read(dir);
    if (q != 0 && (smallest == 0 || q < smallest)) smallest = q;
    if (dir.size() <= root.size()) break;
    dir.resize(dir.rfind('/'));
  }
  return smallest;
}

}  // namespace

std::size_t usable_cpus() {
  std::size_t affinity = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    affinity = static_cast<std::size_t>(CPU_COUNT(&set));
  }
  const std::string cgroups = read_file("/proc/self/cgroup");
  const std::string v2_root = "/sys/fs/cgroup";
  std::size_t quota = smallest_quota(v2_root, cgroup_path(cgroups, ""), [](const std::string& dir) {
    return cpus_from_cgroup_v2(read_file((dir + "/cpu.max").c_str()));
  });
  if (quota == 0) {
    const std::string v1_root = "/sys/fs/cgroup/cpu";
    quota = smallest_quota(v1_root, cgroup_path(cgroups, "cpu"), [](const std::string& dir) {
      return cpus_from_cgroup_v1(read_file((dir + "/cpu.cfs_quota_us").c_str()),
                                 read_file((dir + "/cpu.cfs_period_us").c_str()));
    });
  }
  return usable_cpus(affinity, quota);
}

}  // namespace switchboard::net
