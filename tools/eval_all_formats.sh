#!/usr/bin/env bash
# docs/quality.md's table: `densekv eval` of every KV format on one model and device, one JSON line each.
# Usage: tools/eval_all_formats.sh DENSEKV MODEL_DIR DEVICE OUT.jsonl [MAX_TOKENS] [N_PROMPTS]
# Uses MODEL_DIR/held_out.txt (perplexity) and the first N_PROMPTS lines of MODEL_DIR/prompts.jsonl.
set -euo pipefail
bin=$1 model=$2 device=$3 out=$4 max_tokens=${5:-128} n_prompts=${6:-320}
prompts=$(mktemp)
head -n "$n_prompts" "$model/prompts.jsonl" > "$prompts"
: > "$out"
for f in ${FORMATS:-fp16 fp8_e4m3 int8 int4_kivi k4v2 int2_kivi}; do
  start=$(date +%s)
  r=$("$bin" eval "$model" --device "$device" --kv-cache-dtype "$f" --text-file "$model/held_out.txt" \
    --prompts "$prompts" --max-tokens "$max_tokens" --json)
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); r.update(format='$f', device='$device', seconds=int(sys.argv[2])); print(json.dumps(r))" "$r" $(($(date +%s) - start)) >> "$out"
  tail -n 1 "$out"
done
rm -f "$prompts"
