#!/usr/bin/env bash
# densekv eval on a tiny test model: every format reports the JSON keys; errors exit 2 with a
# named message. Usage: eval.sh <densekv-binary> <repo-root>
set -euo pipefail
BIN=$1
ROOT=$2
M=$ROOT/tests/data/models/mistral-tiny-hd64
DATA=$ROOT/tests/data/eval
if [ ! -f "$M/config.json" ]; then
  echo "skip: $M missing"
  exit 77
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
head -c 1200 "$DATA/text.txt" > "$TMP/text.txt"
head -n 3 "$DATA/prompts.jsonl" > "$TMP/prompts.jsonl"
tail -n 1 "$DATA/prompts.jsonl" >> "$TMP/prompts.jsonl"  # a line of token ids

for f in auto bf16 fp16 fp32 fp8_e4m3 int8 int4_kivi int2_kivi k4v2; do
  out=$("$BIN" eval "$M" --kv-cache-dtype $f --text-file "$TMP/text.txt" --window 128 \
    --prompts "$TMP/prompts.jsonl" --max-tokens 16 --json --threads 2)
  python3 - "$f" "$out" <<'PY'
import json, sys
f, j = sys.argv[1], json.loads(sys.argv[2])
for k in ("ppl", "ppl_16bit", "greedy_match", "reference_match", "first_divergence_mean"):
    assert isinstance(j[k], float), (f, k, j)
assert j["ppl"] > 1 and j["ppl_16bit"] > 1, j
assert 0 <= j["greedy_match"] <= 1 and 0 <= j["first_divergence_mean"] <= 16, j
# On the CPU the 16-bit cache's teacher-forced choices are its greedy decode's tokens.
assert j["reference_match"] == j["greedy_match"], j
assert j["prompts"] == 4 and j["stride"] == 64 and j["baseline"] == "bf16", j
if f in ("bf16", "auto"):  # the baseline itself (this model's dtype is bf16)
    assert j["ppl"] == j["ppl_16bit"] and j["greedy_match"] == 1.0, j
print(f, "ppl %.3f vs %.3f, greedy match %.3f" % (j["ppl"], j["ppl_16bit"], j["greedy_match"]))
PY
done
# Several formats in one call share the baseline: the same numbers as one call per format.
"$BIN" eval "$M" --kv-cache-dtype int8 --text-file "$TMP/text.txt" --window 128 \
  --prompts "$TMP/prompts.jsonl" --max-tokens 16 --json --threads 2 > "$TMP/one.jsonl"
"$BIN" eval "$M" --kv-cache-dtype bf16,int8 --text-file "$TMP/text.txt" --window 128 \
  --prompts "$TMP/prompts.jsonl" --max-tokens 16 --json --threads 2 > "$TMP/two.jsonl"
"$BIN" eval "$M" --kv-cache-dtype all --prompts "$TMP/prompts.jsonl" --max-tokens 4 --json \
  --threads 2 > "$TMP/all.jsonl"
python3 - "$TMP" <<'PY'
import json, sys
d = sys.argv[1]
one = [json.loads(l) for l in open(d + "/one.jsonl")]
two = [json.loads(l) for l in open(d + "/two.jsonl")]
assert [j["kv_cache_dtype"] for j in two] == ["bf16", "int8"], two
for k in ("ppl", "ppl_16bit", "greedy_match", "first_divergence_mean", "tokens_scored"):
    assert one[0][k] == two[1][k], (k, one, two)
assert two[0]["ppl"] == two[0]["ppl_16bit"] and two[0]["greedy_match"] == 1.0, two
names = [json.loads(l)["kv_cache_dtype"] for l in open(d + "/all.jsonl")]
assert names == ["bf16", "fp8_e4m3", "int8", "int4_kivi", "int2_kivi", "k4v2"], names
PY
# --bos-windows: [BOS] + 127 text tokens per window, full windows only, every text token scored.
n_text=$("$BIN" tokenize "$M" --text-file "$TMP/text.txt" --json | python3 -c "import json,sys; print(len(json.load(sys.stdin)))")
"$BIN" eval "$M" --kv-cache-dtype bf16,int8 --text-file "$TMP/text.txt" --window 128 --bos-windows \
  --json --threads 2 > "$TMP/bos.jsonl"
python3 - "$TMP/bos.jsonl" "$n_text" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n = int(sys.argv[2])
for j in rows:
    assert j["protocol"] == "bos_windows" and j["stride"] == 127, j
    assert j["tokens_scored"] == n // 127 * 127 and j["tokens_scored"] > 0, (n, j)
assert rows[0]["ppl"] == rows[0]["ppl_16bit"] and rows[1]["ppl"] != rows[0]["ppl"], rows
PY
# Without --json: readable lines.
"$BIN" eval "$M" --kv-cache-dtype int8 --prompts "$TMP/prompts.jsonl" --max-tokens 4 --threads 2 |
  grep -q "int8 greedy match vs bf16 over 4 prompts x 4 tokens"

source "$(dirname "$0")/lib/expect.sh"
expect_error "unknown --kv-cache-dtype 'int3'" "$BIN" eval "$M" --kv-cache-dtype int3 --prompts "$TMP/prompts.jsonl"
expect_error "lists int8 twice" "$BIN" eval "$M" --kv-cache-dtype int8,int8 --prompts "$TMP/prompts.jsonl"
expect_error "unknown --kv-cache-dtype 'int3'" "$BIN" eval "$M" --kv-cache-dtype int8,int3 --prompts "$TMP/prompts.jsonl"
expect_error "leave --stride out" "$BIN" eval "$M" --kv-cache-dtype int8 --text-file "$TMP/text.txt" --bos-windows --stride 8
expect_error "fewer than one window" "$BIN" eval "$M" --kv-cache-dtype int8 --text-file "$TMP/text.txt" --bos-windows --window 100000
expect_error "give --text-file" "$BIN" eval "$M" --kv-cache-dtype int8
expect_error "stride must be" "$BIN" eval "$M" --kv-cache-dtype int8 --text-file "$TMP/text.txt" --window 64 --stride 64
expect_error "cannot be read" "$BIN" eval "$M" --kv-cache-dtype int8 --prompts "$TMP/none.jsonl"
printf '"ok"\n{"a": 1}\n' > "$TMP/bad.jsonl"
expect_error "bad.jsonl:2: expected a JSON string" "$BIN" eval "$M" --kv-cache-dtype int8 --prompts "$TMP/bad.jsonl"
printf '[1, 99999]\n' > "$TMP/oov.jsonl"
expect_error "outside the vocabulary" "$BIN" eval "$M" --kv-cache-dtype int8 --prompts "$TMP/oov.jsonl"
echo ok
