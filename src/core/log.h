// Logging: spdlog (header-only, so the binary carries no libspdlog.so) to stderr.
#pragma once
#include <spdlog/spdlog.h>

namespace densekv {
// Sets up the stderr logger once; level from DENSEKV_LOG_LEVEL (trace|debug|info|warn|error).
void init_logging();
}  // namespace densekv
