// switchboard/net/cpus.hpp — how many CPUs this process may really use: the
// number of event loops "threads = auto" starts.
//
// Thread-safety: plain functions; usable_cpus() reads /proc-like files and
// the affinity mask each time it is called.
#pragma once

#include <cstddef>
#include <string_view>
#include <switchboard/net/export.hpp>

namespace switchboard::net {

// The CPUs this process can run on: the smaller of its affinity mask
// (sched_getaffinity, what taskset and cpusets allow) and its cgroup CPU
// quota rounded up (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us /
// cpu.cfs_period_us), the quota being the smallest of its own cgroup's
// (from /proc/self/cgroup) and its ancestors'. At least 1.
SWITCHBOARD_NET_EXPORT std::size_t usable_cpus();

// usable_cpus() on values already read: `affinity` CPUs in the mask (0:
// unknown), a quota of `quota` CPUs (0: none).
SWITCHBOARD_NET_EXPORT std::size_t usable_cpus(std::size_t affinity, std::size_t quota) noexcept;

// The cgroup of this process from the text of /proc/self/cgroup: with
// `controller` empty, the cgroup v2 one (the "0::/path" line); else the v1
// hierarchy that lists `controller` ("4:cpu,cpuacct:/path" for "cpu").
// Empty when there is none.
SWITCHBOARD_NET_EXPORT std::string_view cgroup_path(std::string_view proc_self_cgroup,
                                                    std::string_view controller) noexcept;

// The quota part of usable_cpus(), on text already read: `cpu_max` is the
// content of a cgroup v2 cpu.max file ("max 100000", "150000 100000").
// Returns ceil(quota / period), or 0 when there is no quota or the text is
// not understood.
SWITCHBOARD_NET_EXPORT std::size_t cpus_from_cgroup_v2(std::string_view cpu_max) noexcept;
// The same for cgroup v1: cpu.cfs_quota_us ("-1" for none) and
// cpu.cfs_period_us.
SWITCHBOARD_NET_EXPORT std::size_t cpus_from_cgroup_v1(std::string_view quota_us, std::string_view period_us) noexcept;

}  // namespace switchboard::net
