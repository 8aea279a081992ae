#!/usr/bin/env bash
# densekv logits / generate on the tiny test models against the transformers goldens
# (tests/data/models/*/golden.json). Usage: logits_generate.sh <densekv-binary> <repo-root>
set -euo pipefail
BIN=$1
ROOT=$2
MODELS=$ROOT/tests/data/models
if [ ! -f "$MODELS/llama31-tiny/golden.json" ]; then
  echo "skip: $MODELS missing"
  exit 77
fi
if ! command -v python3 > /dev/null; then
  echo "skip: python3 missing"
  exit 77
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

for m in llama31-tiny qwen25-tiny mistral-tiny-hd64; do
  dir=$MODELS/$m
  # Logits of the 37-token prompt, fp32 cache, in chunks of 10: within 1e-3 of transformers.
  ids=$(python3 -c "import json; print(','.join(map(str, json.load(open('$dir/golden.json'))['prompts'][2]['ids'])))")
  "$BIN" logits "$dir" --ids "$ids" --out "$TMP/$m.npy" --kv-cache-dtype fp32 --prefill-chunk 10 --threads 2
  python3 - "$TMP/$m.npy" "$dir/logits_2.npy" <<'PY'
import struct, sys
def load(p):
    b = open(p, 'rb').read()
    assert b[:6] == b'\x93NUMPY', p
    hl = struct.unpack('<H', b[8:10])[0]
    h = b[10:10 + hl].decode()
    assert "'<f4'" in h, h
    d = b[10 + hl:]
    shape = h.split("'shape': (")[1].split(")")[0]
    return [int(x) for x in shape.split(',') if x.strip()], struct.unpack('<%df' % (len(d) // 4), d)
sa, a = load(sys.argv[1])
sb, b = load(sys.argv[2])
assert sa == sb, (sa, sb)
diff = max(abs(x - y) for x, y in zip(a, b))
print(sys.argv[1], sa, 'max |diff|', diff)
assert diff < 1e-3, diff
PY
  # Greedy generation through the paged cache equals transformers' 64 greedy tokens.
  read -r prompt want < <(python3 -c "
import json; g = json.load(open('$dir/golden.json'))['greedy'][0]
print(','.join(map(str, g['prompt_ids'])), ','.join(map(str, g['token_ids'])))")
  out=$("$BIN" generate "$dir" --ids "$prompt" --max-tokens 64 --ignore-eos --kv-cache-dtype fp32 --json --threads 2 2> "$TMP/err")
  got=$(python3 -c "import json,sys; print(','.join(map(str, json.loads(sys.argv[1])['token_ids'])))" "$out")
  if [ "$got" != "$want" ]; then
    echo "$m greedy mismatch:"; echo " got  $got"; echo " want $want"; exit 1
  fi
  grep -q "prefill: .* tok/s" "$TMP/err" && grep -q "decode: 63 tokens .* tok/s, .* GB/s" "$TMP/err" || {
    echo "missing speed report:"; cat "$TMP/err"; exit 1; }
done

# Every KV format runs logits and generate on the CPU (quality: tests/unit/kv_forward_test.cpp,
# docs/quality.md). Chunked logits equal unchunked ones bit for bit.
M=$MODELS/mistral-tiny-hd64
for f in auto bf16 fp16 fp32 fp8_e4m3 fp8 int8 int4_kivi int2_kivi k4v2; do
  "$BIN" logits "$M" --ids 1,2,3,4,5,6,7,8,9,10 --out "$TMP/a.npy" --kv-cache-dtype $f --threads 2 2> /dev/null
  "$BIN" logits "$M" --ids 1,2,3,4,5,6,7,8,9,10 --out "$TMP/b.npy" --kv-cache-dtype $f --threads 2 --prefill-chunk 3 2> /dev/null
  cmp -s "$TMP/a.npy" "$TMP/b.npy" || { echo "$f: chunked logits differ"; exit 1; }
  n=$("$BIN" generate "$M" --ids 1,2,3 --max-tokens 70 --ignore-eos --kv-cache-dtype $f --threads 2 2> /dev/null | tr ',' '\n' | wc -l)
  [ "$n" = 70 ] || { echo "$f: generated $n tokens, want 70"; exit 1; }
done

# Clear errors (exit 2) for what is not there yet or is wrong.
source "$(dirname "$0")/lib/expect.sh"
M=$MODELS/llama31-tiny
# --device cuda without a GPU (or in a build without CUDA) is a clear error; with one it runs
# (tests/cli/cuda_logits_generate.sh).
if ! "$BIN" generate "$M" --ids 1,2 --max-tokens 2 --device cuda > /dev/null 2>&1; then
  expect_error "no CUDA device is available\|built without CUDA" "$BIN" generate "$M" --ids 1,2 --max-tokens 2 --device cuda
fi
expect_error "unknown --kv-cache-dtype 'int4'" "$BIN" generate "$M" --ids 1,2 --max-tokens 2 --kv-cache-dtype int4
expect_error "unknown --kv-cache-dtype" "$BIN" logits "$M" --ids 1 --out "$TMP/x.npy" --kv-cache-dtype int5
expect_error "outside the vocabulary" "$BIN" logits "$M" --ids 1,99999 --out "$TMP/x.npy"
expect_error "not a token id" "$BIN" logits "$M" --ids 1,x --out "$TMP/x.npy"
# --prompt is encoded with the folder's tokenizer as a raw completion (BOS added as tokenizer.json
# says): the same ids as `tokenize --add-special-tokens`, and "text" is the decode of token_ids.
ids=$("$BIN" tokenize "$M" --text "Hello world, again." --add-special-tokens --json | tr -d '[] \n')
a=$("$BIN" generate "$M" --prompt "Hello world, again." --max-tokens 8 --ignore-eos --json 2>/dev/null)
b=$("$BIN" generate "$M" --ids "$ids" --max-tokens 8 --ignore-eos --json 2>/dev/null)
[ "$a" = "$b" ] || { echo "--prompt and --ids differ:"; echo " $a"; echo " $b"; exit 1; }
python3 - "$a" "$("$BIN" tokenize "$M" --text "Hello world, again." --json)" <<'PY' || exit 1
import json, sys
r = json.loads(sys.argv[1])
assert len(r["token_ids"]) == 8 and r["prompt_tokens"] == len(json.loads(sys.argv[2])) + 1, r
assert isinstance(r["text"], str) and r["text"], r
PY
cp -r "$M" "$TMP/no-tokenizer" && rm "$TMP/no-tokenizer/tokenizer.json"
expect_error "needs .*tokenizer.json" "$BIN" generate "$TMP/no-tokenizer" --prompt hello --max-tokens 2
expect_error "exactly one of --ids, --prompt" "$BIN" generate "$M" --max-tokens 2
echo ok
