#!/usr/bin/env bash
# densekv capacity: numbers from config.json alone (no weights), the --json schema, and clear
# errors (exit 2) for bad input. Usage: capacity.sh <densekv-binary> <repo-root>
set -uo pipefail
bin=$1
root=$2
command -v python3 >/dev/null || { echo "python3 not found: skipped"; exit 77; }
cfg=$root/tests/data/configs
fail=0

source "$(dirname "$0")/lib/expect.sh"

# JSON: one object per format, exactly the documented keys; numbers worked out in
# tests/unit/kv_capacity_test.cpp (Llama-3.1-8B, 20 GiB, 8192 tokens).
out=$("$bin" capacity "$cfg/llama-3.1-8b" --memory-gb 20 --max-model-len 8192 --json) || fail=1
python3 - "$out" <<'PY' || fail=1
import json, sys
rows = json.loads(sys.argv[1])
names = [r["kv_cache_dtype"] for r in rows]
assert names == ["bf16", "fp8_e4m3", "int8", "int4_kivi", "int2_kivi", "k4v2"], names
for r in rows:
    assert set(r) == {"kv_cache_dtype", "bytes_per_token", "tokens", "max_concurrency",
                      "ratio_vs_16bit"}, r
by = {r["kv_cache_dtype"]: r for r in rows}
assert by["bf16"]["max_concurrency"] == 20 and by["bf16"]["tokens"] == 163840, by["bf16"]
assert by["int4_kivi"]["max_concurrency"] == 69 and by["int4_kivi"]["tokens"] == 582528
assert by["int4_kivi"]["bytes_per_token"] == 36864
targets = {"fp8_e4m3": 1.9, "int8": 1.9, "int4_kivi": 3.3, "int2_kivi": 5.0, "k4v2": 4.5}
for name, t in targets.items():
    assert by[name]["ratio_vs_16bit"] >= t, (name, by[name])
PY

expect 0 "int4_kivi" capacity "$cfg/llama-3.1-70b" --memory-gb 40
expect 0 "k4v2" capacity "$cfg/qwen2.5-7b" --memory-gb 8 --kv-cache-dtype k4v2 --max-model-len 32768
expect 0 "GiB" capacity --help
expect 2 "unknown --kv-cache-dtype 'int3'" capacity "$cfg/llama-3.1-8b" --memory-gb 20 --kv-cache-dtype int3
expect 2 "--memory-gb must be a positive" capacity "$cfg/llama-3.1-8b" --memory-gb 0
expect 2 "exceeds the model's max_position_embeddings" capacity "$cfg/llama-3.1-8b" --memory-gb 20 --max-model-len 1000000
expect 2 "missing" capacity "$cfg/no-such-model" --memory-gb 20
expect 2 "head_dim" capacity "$cfg/crafted-llama-head-dim-96" --memory-gb 20 --kv-cache-dtype int4_kivi
exit $fail
