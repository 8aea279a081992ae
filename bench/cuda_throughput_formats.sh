#!/usr/bin/env bash
# Engine throughput per KV format at one KV memory budget (Llama-3.1-8B shape, dummy weights, on
# the GPU machine): bf16, int8, int4_kivi, k4v2 with the default fast paths (greedy on the device)
# and CUDA graphs, then a table with each format's output tok/s as a ratio to bf16.
#
#   bash bench/cuda_throughput_formats.sh BIN_DIR OUT_DIR [NUM_PROMPTS IN OUT KV_GB]
# Defaults: 128 prompts x 1024 in / 1024 out, 4 GiB of KV (KV-bound: bf16 holds 32k tokens).
set -uo pipefail
B=$(cd "$1" && pwd)
O=$2
N=${3:-128} IN=${4:-1024} OUTLEN=${5:-1024} GB=${6:-4}
mkdir -p "$O"
export LD_LIBRARY_PATH=$B${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for f in bf16 int8 int4_kivi k4v2; do
  "$B/densekv" bench throughput bench/configs/llama-3.1-8b --load-format dummy --device cuda \
    --kv-cache-dtype $f --kv-memory-gb "$GB" --num-prompts "$N" --input-len "$IN" \
    --output-len "$OUTLEN" --cuda-graphs --json 2> "$O/formats_$f.log" | tee -a "$O/formats.jsonl"
done
python3 - "$O/formats.jsonl" << 'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = next(r["output_tokens_per_second"] for r in rows if r["kv_cache_dtype"] == "bf16")
print(f"\n{rows[0]['num_prompts']} prompts x {rows[0]['input_len']} in / {rows[0]['output_len']} out")
print("| kv | KV blocks | output tok/s | vs bf16 | req/s | peak concurrency | preemptions |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['kv_cache_dtype']} | {r['kv_blocks_total']} | {r['output_tokens_per_second']:.0f} "
          f"| {r['output_tokens_per_second'] / base:.2f}x | {r['requests_per_second']:.2f} "
          f"| {r['peak_concurrency']} | {r['preemptions']} |")
PY
