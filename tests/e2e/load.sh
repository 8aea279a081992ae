#!/usr/bin/env bash
# Load on loopback against the tiny model on CPU (tests/e2e/load.mjs): 500 concurrent streaming
# requests (0 lost, 0 5xx, each stream's text equal to the non-streamed reply for the same seed),
# then 1000 streams aborted midway, after which /metrics must show 0 KV blocks in use. Prints
# the figures. Usage: load.sh <densekv> <repo-root> <build-dir>.
set -euo pipefail
bin=$1 root=$2 build=$3
source "$root/tests/e2e/lib.sh"
start_server --max-model-len 512 --max-num-seqs 256 --kv-cache-memory-gb 0.5
run_node "$root/tests/e2e/load.mjs"
stop_server
echo "PASS"
