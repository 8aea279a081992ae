// `densekv generate`: not implemented yet (placeholder so the dispatcher links).
#include "cli/commands.h"
#include "core/errors.h"

namespace densekv::cli {

void register_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "(not implemented yet)");
  cmd->allow_extras();
  cmd->callback([] { throw InvalidArgumentError("densekv generate is not implemented yet"); });
}

}  // namespace densekv::cli
