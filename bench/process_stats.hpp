// process_stats.hpp — what the bench tools read about a process from /proc:
// CPU time (utime + stime, /proc/PID/stat), time spent runnable but waiting
// for a CPU (/proc/PID/task/*/schedstat) and resident memory (VmRSS,
// /proc/PID/status), for the server under test and for the tool itself.
//
// Thread-safety: plain functions over files; call from any thread.
#pragma once

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace switchboard::bench {

// CPU seconds (user + system) process `pid` has used so far, all threads;
// -1 if it cannot be read. Resolution: one clock tick (10 ms).
inline double process_cpu_seconds(long pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  std::FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) return -1;
  char text[1024];
  const std::size_t n = std::fread(text, 1, sizeof text - 1, file);
  std::fclose(file);
  text[n] = '\0';
  const char* p = std::strrchr(text, ')');  // the command name may hold spaces
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  // After ")": state, then fields 4..13, then utime (14) and stime (15).
  if (p == nullptr || std::sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                                  &utime, &stime) != 2) {
    return -1;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Seconds the threads of process `pid` have spent runnable but waiting for a
// CPU (the scheduler's run_delay, summed over /proc/PID/task/*/schedstat);
// -1 if it cannot be read. On a shared machine this says how much of a
// measurement was queueing behind other processes. Threads that exited are
// not counted, so read it while the threads of interest live.
inline double process_wait_seconds(long pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* tasks = ::opendir(dir.c_str());
  if (tasks == nullptr) return -1;
  unsigned long long total = 0;
  bool any = false;
  while (const dirent* entry = ::readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    std::FILE* file = std::fopen((dir + "/" + entry->d_name + "/schedstat").c_str(), "r");
    if (file == nullptr) continue;
    unsigned long long run_ns = 0;
    unsigned long long wait_ns = 0;
    if (std::fscanf(file, "%llu %llu", &run_ns, &wait_ns) == 2) {
      total += wait_ns;
      any = true;
    }
    std::fclose(file);
  }
  ::closedir(tasks);
  return any ? static_cast<double>(total) / 1e9 : -1;
}

// VmRSS of process `pid` in KiB (what it holds in RAM now: heap, stacks and
// code touched; not kernel socket buffers); -1 if it cannot be read.
inline long process_rss_kib(long pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/status";
  std::FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) return -1;
  char line[256];
  long kib = -1;
  while (std::fgets(line, sizeof line, file) != nullptr) {
    if (std::sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  }
  std::fclose(file);
  return kib;
}

// CPU seconds (user + system) this process has used so far, all threads.
inline double own_cpu_seconds() {
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Raises the soft limit on open descriptors to the hard limit: every
// connection is a socket.
inline void raise_fd_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace switchboard::bench
