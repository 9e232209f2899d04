// placeholder: being written
#include "commands.hpp"

namespace switchboard::app {
void add_connect_command(CLI::App& app, command_runner& run) {
  app.add_subcommand("connect", "(not yet available)")->callback([&run] { run = [] { return 2; }; });
}
}  // namespace switchboard::app
