// switchboard — the realtime messaging server (`switchboard serve`), an
// RFC 6455 echo server (`switchboard echo`), an interactive client
// (`switchboard connect URL`) and pub/sub from the command line
// (`switchboard sub`, `switchboard pub`). Each subcommand lives in its own file
// (commands.hpp); main() parses and runs the chosen one.
#include <CLI/CLI.hpp>
#include <string>
#include <switchboard/version.hpp>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Switchboard: a WebSocket toolkit and realtime messaging server"};
  app.require_subcommand(1);
  // "switchboard 0.2.0": the version from project(VERSION), via version.hpp.
  app.set_version_flag("--version", "switchboard " + std::string(switchboard::version),
                       "Print the version and exit");
  switchboard::app::command_runner run;
  switchboard::app::add_serve_command(app, run);
  switchboard::app::add_echo_command(app, run);
  switchboard::app::add_connect_command(app, run);
  switchboard::app::add_sub_command(app, run);
  switchboard::app::add_pub_command(app, run);
  CLI11_PARSE(app, argc, argv);
  return run ? run() : 1;
}
