// `densekv check`: not implemented yet (placeholder so the dispatcher links).
#include "cli/commands.h"
#include "core/errors.h"

namespace densekv::cli {

void register_check(CLI::App& app) {
  auto* cmd = app.add_subcommand("check", "(not implemented yet)");
  cmd->allow_extras();
  cmd->callback([] { throw InvalidArgumentError("densekv check is not implemented yet"); });
}

}  // namespace densekv::cli
