// commands.hpp — the subcommands of the switchboard binary. Each file adds
// one subcommand to the CLI11 app; main() parses and runs the chosen one.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace switchboard::app {

// What a subcommand runs after parsing; returns the process exit status.
using command_runner = std::function<int()>;

// `switchboard echo`: an RFC 6455 echo server (echo_command.cpp).
void add_echo_command(CLI::App& app, command_runner& run);

// `switchboard connect URL`: an interactive client (connect_command.cpp).
void add_connect_command(CLI::App& app, command_runner& run);

// `switchboard sub URL CHANNEL...`: print what is published on channels of a
// switchboard serve, one JSON line each (sub_command.cpp).
void add_sub_command(CLI::App& app, command_runner& run);

// `switchboard pub URL CHANNEL [DATA]`: publish DATA or each stdin line, over
// WebSocket or the HTTP API (pub_command.cpp).
void add_pub_command(CLI::App& app, command_runner& run);

// `switchboard serve`: the realtime server, configured by a TOML file, the
// environment and flags (serve_command.cpp, serve_config.hpp).
void add_serve_command(CLI::App& app, command_runner& run);

}  // namespace switchboard::app
