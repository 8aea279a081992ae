#!/usr/bin/env bash
# The README's run command: install deps, build, and serve the bundled default model with the
# OpenAI API on port 8000 (`densekv serve`); extra arguments are passed to it (e.g. --port 9000,
# --kv-cache-dtype int4_kivi, --api-key KEY).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)" --target densekv
model=${DENSEKV_MODEL:-models/densekv-eval-16m}
"$build/densekv" check "$model"
exec "$build/densekv" serve "$model" "$@"
