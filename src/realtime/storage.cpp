// storage.cpp — see storage.hpp; check_storage() of config.hpp.
#include "storage.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <switchboard/realtime/config.hpp>

namespace switchboard::realtime {

namespace detail {

std::string write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::strerror(errno);
    }
    if (n == 0) return "write returned 0";
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

std::string sync_directory_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return "cannot open directory " + dir + ": " + std::strerror(errno);
  std::string error;
  if (::fsync(fd) != 0) error = "cannot fsync directory " + dir + ": " + std::strerror(errno);
  ::close(fd);
  return error;
}

std::string boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  if (!std::getline(in, id)) return {};
  return id;
}

std::string check_state_path(const std::string& path, std::string_view what) {
  const std::string who = std::string(what) + " \"" + path + "\": ";
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    // Why: the file is replaced by rename and read back whole; a directory,
    // device or FIFO there is a mistake, not state.
    if (!S_ISREG(st.st_mode)) return who + "exists and is not a regular file";
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return who + "cannot be opened for reading and writing: " + std::strerror(errno);
    ::close(fd);
  } else if (errno != ENOENT) {
    return who + std::strerror(errno);
  }
  // The file is always written as PATH.tmp and renamed: the directory must
  // take new files. Try it rather than guess from permission bits.
  const std::string probe = path + ".tmp";
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return who + "cannot create " + probe + ": " + std::strerror(errno) +
           " (the directory must exist and be writable)";
  }
  ::close(fd);
  ::unlink(probe.c_str());
  return {};
}

}  // namespace detail

std::string check_storage(const realtime_config& config) {
  if (!config.snapshot_file.empty()) {
    if (std::string e = detail::check_state_path(config.snapshot_file, "history.snapshot_file");
        !e.empty()) {
      return e;
    }
  }
  if (!config.journal_file.empty()) {
    if (std::string e = detail::check_state_path(config.journal_file, "history.journal");
        !e.empty()) {
      return e;
    }
  }
  return {};
}

}  // namespace switchboard::realtime
