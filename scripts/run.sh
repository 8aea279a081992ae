#!/usr/bin/env bash
# The README's run command: install deps, build, and run densekv on the bundled default model.
# Until the server exists this runs `densekv generate`; extra arguments are passed to it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)" --target densekv
model=${DENSEKV_MODEL:-models/densekv-eval-16m}
"$build/densekv" check "$model"
if [ $# -eq 0 ]; then
  set -- --prompt "def fibonacci(n):" --max-tokens 64
fi
exec "$build/densekv" generate "$model" "$@"
