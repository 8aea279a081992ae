#!/usr/bin/env bash
# The server against the official OpenAI SDK (tests/e2e/sdk.mjs): models, completions and chat,
# streamed and not, seeded sampling, stop sequences, usage, logprobs, error types and bad input;
# then SIGTERM must exit 0. Usage: sdk.sh <densekv> <repo-root> <build-dir>.
set -euo pipefail
bin=$1 root=$2 build=$3
source "$root/tests/e2e/lib.sh"
start_server --api-key sk-e2e --max-model-len 256 --max-request-bytes 100000
DENSEKV_API_KEY=sk-e2e run_node "$root/tests/e2e/sdk.mjs"
stop_server
echo "PASS"
