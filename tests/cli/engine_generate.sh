#!/usr/bin/env bash
# densekv generate --ids-file / --prompts-file (every prompt concurrently through the engine) and
# densekv bench on the tiny test models. The greedy tokens must equal transformers' (golden.json)
# whatever the batching, chunking, KV pressure or prefix caching.
# Usage: engine_generate.sh <densekv-binary> <repo-root>
set -euo pipefail
BIN=$1
ROOT=$2
MODELS=$ROOT/tests/data/models
M=$MODELS/llama31-tiny
if [ ! -f "$M/golden.json" ]; then
  echo "skip: $MODELS missing"
  exit 77
fi
if ! command -v python3 > /dev/null; then
  echo "skip: python3 missing"
  exit 77
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# The 3 golden prompts, each twice, and some short ones in between.
python3 - "$M/golden.json" "$TMP" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))['greedy']
lines, want = [], []
for rep in range(2):
    for i, x in enumerate(g):
        lines.append(','.join(map(str, x['prompt_ids']))); want.append(x['token_ids'])
        lines.append(','.join(str((7 * i + 3 * k + rep) % 500) for k in range(1 + 5 * i))); want.append(None)
open(sys.argv[2] + '/ids.txt', 'w').write('\n'.join(lines) + '\n')
json.dump(want, open(sys.argv[2] + '/want.json', 'w'))
PY

check() {  # check OUT: line i is index i; golden prompts give the golden tokens
  python3 - "$1" "$TMP/want.json" <<'PY'
import json, sys
out = [json.loads(l) for l in open(sys.argv[1])]
want = json.load(open(sys.argv[2]))
assert len(out) == len(want), (len(out), len(want))
for i, (o, w) in enumerate(zip(out, want)):
    assert o['index'] == i, o
    assert isinstance(o['text'], str), o
    assert len(o['token_ids']) == o['completion_tokens'] == 64, o
    if w is not None:
        assert o['token_ids'] == w, (i, o['token_ids'], w)
print(sys.argv[1], 'ok:', len(out), 'prompts')
PY
}

common=(--ids-file "$TMP/ids.txt" --max-tokens 64 --ignore-eos --kv-cache-dtype fp32 --threads 2)
"$BIN" generate "$M" "${common[@]}" > "$TMP/a.jsonl" 2> "$TMP/err"
grep -q "output tok/s" "$TMP/err" || { cat "$TMP/err"; exit 1; }
check "$TMP/a.jsonl"
# Small steps (chunked prefill), a pool for a fraction of the load (preemption), no prefix cache.
"$BIN" generate "$M" "${common[@]}" --max-num-batched-tokens 7 --num-kv-blocks 16 \
  --no-enable-prefix-caching > "$TMP/b.jsonl" 2> "$TMP/err"
grep -q "preemptions [1-9]" "$TMP/err" || { echo "expected preemptions"; cat "$TMP/err"; exit 1; }
check "$TMP/b.jsonl"
# The repeated prompts hit the prefix cache.
"$BIN" generate "$M" "${common[@]}" --max-num-seqs 1 > "$TMP/c.jsonl" 2> "$TMP/err"
python3 -c "
import json, sys
out = [json.loads(l) for l in open('$TMP/c.jsonl')]
assert sum(o['cached_prompt_tokens'] for o in out) > 0, out"
check "$TMP/c.jsonl"

# Text prompts: one JSON string per line; text and ids agree with the tokenizer.
printf '"Hello world"\n"The quick brown fox"\n"caf\\u00e9 \\ud83d\\ude00"\n' > "$TMP/prompts.txt"
"$BIN" generate "$M" --prompts-file "$TMP/prompts.txt" --max-tokens 12 --threads 2 \
  > "$TMP/t.jsonl" 2> "$TMP/err"
[ "$(wc -l < "$TMP/t.jsonl")" = 3 ] || { cat "$TMP/t.jsonl" "$TMP/err"; exit 1; }
# A stop string cut from the text of the first answer ends it there.
stop=$(python3 -c "
import json; t = json.loads(open('$TMP/t.jsonl').readline())['text']; print(t[3:6] if len(t) > 6 else '')")
if [ -n "$stop" ]; then
  "$BIN" generate "$M" --prompts-file "$TMP/prompts.txt" --max-tokens 12 --threads 2 \
    --stop "$stop" > "$TMP/s.jsonl" 2> "$TMP/err"
  python3 - "$TMP/t.jsonl" "$TMP/s.jsonl" "$stop" <<'PY'
import json, sys
full = json.loads(open(sys.argv[1]).readline())
cut = json.loads(open(sys.argv[2]).readline())
stop = sys.argv[3]
assert cut['text'] == full['text'][:full['text'].find(stop)], (cut, full, stop)
assert cut['finish_reason'] == 'stop', cut
PY
fi

# bench: throughput under KV pressure (JSON), latency, dummy weights from config.json alone.
mkdir "$TMP/cfgonly"
cp "$M/config.json" "$TMP/cfgonly/"
"$BIN" bench throughput "$TMP/cfgonly" --load-format dummy --num-prompts 24 --input-len 40 \
  --output-len 24 --num-kv-blocks 20 --threads 2 --json > "$TMP/tp.json"
python3 - "$TMP/tp.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j['num_prompts'] == 24 and j['output_tokens_per_second'] > 0, j
assert j['preemptions'] > 0 and j['peak_concurrency'] >= 2, j
assert j['kv_cache_dtype'] == 'bf16', j
print('bench throughput ok:', j['output_tokens_per_second'], 'tok/s')
PY
"$BIN" bench latency "$M" --input-len 16 --output-len 8 --num-iters 2 --threads 2 > "$TMP/lat.txt"
grep -q "TTFT .* ms; decode .* ms per token" "$TMP/lat.txt" || { cat "$TMP/lat.txt"; exit 1; }

source "$(dirname "$0")/lib/expect.sh"
printf '1,2\n3,x\n' > "$TMP/bad_ids.txt"
expect_error "line 2" "$BIN" generate "$M" --ids-file "$TMP/bad_ids.txt" --max-tokens 2
printf '"ok"\nnot json\n' > "$TMP/bad_prompts.txt"
expect_error "line 2: expected one JSON string" "$BIN" generate "$M" --prompts-file "$TMP/bad_prompts.txt" --max-tokens 2
expect_error "cannot open" "$BIN" generate "$M" --ids-file "$TMP/none.txt" --max-tokens 2
expect_error "does not fit in the KV pool" "$BIN" generate "$M" --ids-file "$TMP/ids.txt" --max-tokens 2 --num-kv-blocks 2 --max-model-len 100
expect_error "load-format must be auto, safetensors or dummy" "$BIN" bench latency "$M" --load-format fake
expect_error "input-len must be" "$BIN" bench throughput "$M" --input-len 0
echo ok
