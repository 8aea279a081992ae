// Options of the subcommands that run the engine (generate with prompt files, bench, serve):
// batch limits, KV pool size, prefix caching. The KV format comes from --kv-cache-dtype
// (model_options.h).
#pragma once
#include <CLI/CLI.hpp>

#include "engine/engine.h"

namespace densekv::cli {

void add_engine_options(CLI::App* cmd, EngineConfig& cfg);

}  // namespace densekv::cli
