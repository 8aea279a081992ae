// densekv: the command-line entry point. Exit codes: 0 ok, 2 a named user-facing error
// (unsupported model, bad file, bad argument), 1 anything unexpected.
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/errors.h"
#include "core/log.h"

int main(int argc, char** argv) {
  densekv::init_logging();
  CLI::App app{"densekv: LLM inference server with a quantized paged KV cache"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "densekv 0.1.0");
  densekv::cli::register_check(app);
  densekv::cli::register_logits(app);
  densekv::cli::register_generate(app);
  densekv::cli::register_tokenize(app);
  densekv::cli::register_chat_template(app);
  densekv::cli::register_capacity(app);
  densekv::cli::register_eval(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const densekv::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
