// Every `densekv` subcommand, one file each under src/cli/cmd_*.cpp. Each registers itself on the
// app and sets its callback; the callback throws densekv::Error for user-facing failures.
#pragma once
#include <CLI/CLI.hpp>

namespace densekv::cli {

void register_check(CLI::App& app);          // cmd_check.cpp
void register_logits(CLI::App& app);         // cmd_logits.cpp
void register_generate(CLI::App& app);       // cmd_generate.cpp
void register_tokenize(CLI::App& app);       // cmd_tokenize.cpp
void register_chat_template(CLI::App& app);  // cmd_chat_template.cpp
void register_capacity(CLI::App& app);       // cmd_capacity.cpp
void register_eval(CLI::App& app);           // cmd_eval.cpp

}  // namespace densekv::cli
