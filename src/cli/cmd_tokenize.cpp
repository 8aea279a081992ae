// `densekv tokenize`: not implemented yet (placeholder so the dispatcher links).
#include "cli/commands.h"
#include "core/errors.h"

namespace densekv::cli {

void register_tokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "(not implemented yet)");
  cmd->allow_extras();
  cmd->callback([] { throw InvalidArgumentError("densekv tokenize is not implemented yet"); });
}

}  // namespace densekv::cli
