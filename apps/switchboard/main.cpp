// switchboard — WebSocket echo server and client (the realtime server,
// `switchboard serve`, comes with the realtime layer).
#include <CLI/CLI.hpp>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Switchboard: a WebSocket toolkit and realtime messaging server"};
  app.require_subcommand(1);
  switchboard::app::command_runner run;
  switchboard::app::add_echo_command(app, run);
  switchboard::app::add_connect_command(app, run);
  CLI11_PARSE(app, argc, argv);
  return run ? run() : 1;
}
