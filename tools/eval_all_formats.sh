#!/usr/bin/env bash
# docs/quality.md's table: `densekv eval` of every KV format on one model and device, one JSON line
# each (one call: the 16-bit baseline's perplexity and greedy references are computed once).
# Usage: tools/eval_all_formats.sh DENSEKV MODEL_DIR DEVICE OUT.jsonl [MAX_TOKENS] [N_PROMPTS]
# Uses MODEL_DIR/held_out.txt (perplexity) and the first N_PROMPTS lines of MODEL_DIR/prompts.jsonl.
# FORMATS (comma-separated) overrides the format list.
set -euo pipefail
bin=$1 model=$2 device=$3 out=$4 max_tokens=${5:-128} n_prompts=${6:-320}
prompts=$(mktemp)
trap 'rm -f "$prompts"' EXIT
head -n "$n_prompts" "$model/prompts.jsonl" > "$prompts"
"$bin" eval "$model" --device "$device" --kv-cache-dtype "${FORMATS:-fp16,fp8_e4m3,int8,int4_kivi,k4v2,int2_kivi}" \
  --text-file "$model/held_out.txt" --prompts "$prompts" --max-tokens "$max_tokens" --json |
  python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    r.update(format=r['kv_cache_dtype'], device='$device')
    print(json.dumps(r), flush=True)" | tee "$out"
