// `densekv logits`: not implemented yet (placeholder so the dispatcher links).
#include "cli/commands.h"
#include "core/errors.h"

namespace densekv::cli {

void register_logits(CLI::App& app) {
  auto* cmd = app.add_subcommand("logits", "(not implemented yet)");
  cmd->allow_extras();
  cmd->callback([] { throw InvalidArgumentError("densekv logits is not implemented yet"); });
}

}  // namespace densekv::cli
