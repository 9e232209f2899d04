// storage.hpp — private: the few file-system steps that durability rests on,
// shared by the snapshot and the journal: writing every byte, fsyncing a
// file's directory (so a rename survives a machine crash), the kernel's boot
// id, and the start-up check that a state file can be written.
//
// Files are created with mode 0600: history holds what users published.
//
// Thread-safety: plain functions over their arguments.
#pragma once

#include <string>
#include <string_view>

namespace switchboard::realtime::detail {

// Writes all of `data` to `fd` (retrying short writes and EINTR). Returns ""
// or strerror of the failure.
std::string write_all(int fd, std::string_view data);

// fsyncs the directory that holds `path`. Returns "" or the error.
std::string sync_directory_of(const std::string& path);

// The kernel's boot id (/proc/sys/kernel/random/boot_id), "" if unknown: it
// changes at every boot, so an unchanged one proves the page cache survived.
std::string boot_id();

// Checks that `path` can serve as a state file: its directory exists and
// accepts new files (PATH.tmp is created and removed), and an existing PATH
// is a regular file that can be read and written. `what` names the key in
// the error ("history.snapshot_file"). Returns "" or one line saying why not.
std::string check_state_path(const std::string& path, std::string_view what);

}  // namespace switchboard::realtime::detail
