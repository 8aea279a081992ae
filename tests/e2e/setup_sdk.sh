#!/usr/bin/env bash
# ctest fixture: installs the official OpenAI SDK (npm `openai`, v6: the last major that runs on
# Node 20) into BUILD/e2e/node_modules. Usage: setup_sdk.sh <densekv> <repo-root> <build-dir>.
# Exit 77 (skipped) when node/npm are missing.
set -euo pipefail
build=$3
command -v node >/dev/null && command -v npm >/dev/null || { echo "skipped: node/npm not installed"; exit 77; }
mkdir -p "$build/e2e"
dir="$(cd "$build/e2e" && pwd)"
if [[ -f "$dir/node_modules/openai/package.json" ]]; then
  echo "openai SDK $(node -p "require('$dir/node_modules/openai/package.json').version") already installed"
  exit 0
fi
[[ -f "$dir/package.json" ]] || echo '{"name": "densekv-e2e", "private": true}' > "$dir/package.json"
npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "openai@^6"
echo "openai SDK $(node -p "require('$dir/node_modules/openai/package.json').version") installed"
