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
// cpu.cfs_period_us). At least 1.
SWITCHBOARD_NET_EXPORT std::size_t usable_cpus();

// The quota part of usable_cpus(), on text already read: `cpu_max` is the
// content of a cgroup v2 cpu.max file ("max 100000", "150000 100000").
// Returns ceil(quota / period), or 0 when there is no quota or the text is
// not understood.
SWITCHBOARD_NET_EXPORT std::size_t cpus_from_cgroup_v2(std::string_view cpu_max) noexcept;
// The same for cgroup v1: cpu.cfs_quota_us ("-1" for none) and
// cpu.cfs_period_us.
SWITCHBOARD_NET_EXPORT std::size_t cpus_from_cgroup_v1(std::string_view quota_us, std::string_view period_us) noexcept;

}  // namespace switchboard::net
