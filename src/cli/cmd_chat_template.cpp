// `densekv chat-template`: not implemented yet (placeholder so the dispatcher links).
#include "cli/commands.h"
#include "core/errors.h"

namespace densekv::cli {

void register_chat_template(CLI::App& app) {
  auto* cmd = app.add_subcommand("chat-template", "(not implemented yet)");
  cmd->allow_extras();
  cmd->callback([] { throw InvalidArgumentError("densekv chat-template is not implemented yet"); });
}

}  // namespace densekv::cli
