// serve_config.hpp — how `switchboard serve` builds its realtime_config: the
// TOML file (--config), the environment (secrets only), and the flags, over the
// built-in defaults of include/switchboard/realtime/config.hpp. The sections and
// keys are listed in docs/configuration.md and in `switchboard serve --help`.
//
// Precedence, lowest first: built-in default < file < environment < flag.
//
// Errors are one line each. A value from the file names where it is:
// "FILE:LINE:COL: server.port: must be from 0 to 65535, got 70000"; a flag names
// itself: "--threads: must be from 1 to 64, got 0". Typos are errors too: an
// unknown section or key is refused, never ignored.
//
// Thread-safety: plain functions over the caller's values; nothing shared.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <string_view>
#include <switchboard/realtime/config.hpp>
#include <vector>

namespace switchboard::app {

// Reads the TOML file at `path` into `config`: each key present replaces the
// value already there; keys absent leave it. A [namespaces.NAME] table adds
// (or replaces) that one namespace, starting from namespace_options' defaults;
// the other namespaces stay (so "default" stays unless the file declares it).
// Returns "" on success, otherwise one line "FILE:LINE:COL: reason" ("FILE:
// reason" when the file cannot be read). On error `config` may be partly
// updated; throw it away.
std::string load_config_file(const std::string& path, realtime::realtime_config& config);

// The same for TOML text already in memory; `origin` stands for FILE in the
// errors. load_config_file() reads the file and calls this.
std::string load_config_string(std::string_view text, const std::string& origin,
                               realtime::realtime_config& config);

// One flag as given on the command line: its long name ("--port") and its
// values as typed (none for a switch such as --no-demo).
struct given_flag {
  std::string name;
  std::vector<std::string> values;
};

// What the command line of `switchboard serve` said. Values are kept as text
// and checked by build_serve_config(), with the same rules as the file.
struct serve_flags {
  std::string config_file;        // --config; empty: built-in defaults only
  std::vector<given_flag> given;  // in command-line order
};

// Adds every option of `switchboard serve` to `cmd`, recording into `flags`
// (which must outlive parsing). The help text of each option names its TOML
// key and default, and the footer lists the keys that exist only in the file;
// both are generated from a default-constructed realtime_config.
void add_serve_options(CLI::App& cmd, serve_flags& flags);

// Looks up an environment variable; nullptr when unset.
using env_lookup = std::function<const char*(const char* name)>;

// Environment variables read by build_serve_config() (between file and flags),
// so secrets need not appear in `ps`.
inline constexpr const char* k_env_jwt_secret = "SWITCHBOARD_JWT_SECRET";
inline constexpr const char* k_env_api_key = "SWITCHBOARD_API_KEY";
inline constexpr const char* k_env_metrics_key = "SWITCHBOARD_METRICS_KEY";

// Builds the configuration: `config` is reset to the built-in defaults, then
// the file (if flags.config_file is set), the environment (`env`; std::getenv
// when empty), the flags, and realtime::check_config(). Returns "" or the error.
std::string build_serve_config(const serve_flags& flags, realtime::realtime_config& config,
                               const env_lookup& env = {});

}  // namespace switchboard::app
