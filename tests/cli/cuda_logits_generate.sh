#!/usr/bin/env bash
# densekv logits / generate --device cuda for every KV format on the tiny test models (exit 77 =
# skipped when the build has no CUDA backend or the machine no GPU). Logits: finite, the CPU
# run's shape, and for 16-bit and 8-bit caches within 5% (fp8: 10%) of the largest logit of the CPU
# reference of the same format (bf16 activations on the GPU, fp32 on the CPU); generate: 70 tokens
# and the tok/s + GB/s report. Usage: cuda_logits_generate.sh <densekv-binary> <repo-root>
set -euo pipefail
BIN=$1
ROOT=$2
MODELS=$ROOT/tests/data/models
if [ ! -f "$MODELS/llama31-tiny/config.json" ]; then
  echo "skip: $MODELS missing"
  exit 77
fi
if ! command -v python3 > /dev/null; then
  echo "skip: python3 missing"
  exit 77
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

set +e
"$BIN" generate "$MODELS/llama31-tiny" --ids 1,2 --max-tokens 2 --device cuda > "$TMP/out" 2> "$TMP/err"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  if grep -q "no CUDA device\|not built\|CUDA backend" "$TMP/err"; then
    echo "skip: $(tail -1 "$TMP/err")"
    exit 77
  fi
  echo "generate --device cuda failed:"; cat "$TMP/err"; exit 1
fi

compare() {  # got.npy want.npy tolerance (negative: only finite and same shape)
  python3 - "$@" <<'PY'
import math, struct, sys
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
tol = float(sys.argv[3])
assert sa == sb, (sa, sb)
assert all(math.isfinite(x) for x in a), 'non-finite logits'
ref = max(abs(y) for y in b)
rel = max(abs(x - y) for x, y in zip(a, b)) / ref
print(sys.argv[1], sa, 'max |diff| / max |ref| = %.3g' % rel)
assert tol < 0 or rel < tol, (rel, tol)
PY
}

for m in llama31-tiny mistral-tiny-hd64; do
  M=$MODELS/$m
  ids=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70
  for f in auto bf16 fp16 fp8_e4m3 int8 int4_kivi int2_kivi k4v2; do
    "$BIN" logits "$M" --ids "$ids" --out "$TMP/gpu.npy" --kv-cache-dtype $f --device cuda --prefill-chunk 16 2> "$TMP/err" ||
      { echo "$m $f: logits --device cuda failed"; cat "$TMP/err"; exit 1; }
    "$BIN" logits "$M" --ids "$ids" --out "$TMP/cpu.npy" --kv-cache-dtype $f --threads 2 --prefill-chunk 16 2> /dev/null
    case $f in
      int4_kivi | int2_kivi | k4v2) tol=-1 ;;
      # e4m3 has 3 mantissa bits: a key or value the GPU rounds to bf16 before quantizing (the
      # CPU quantizes fp32) lands on the neighbouring code, 6-12% away, where it sits near a
      # rounding edge; measured 0.061 on the H100 with both attention kernels (int8: 0.026)
      fp8_e4m3) tol=0.1 ;;
      *) tol=0.05 ;;
    esac
    compare "$TMP/gpu.npy" "$TMP/cpu.npy" $tol || { echo "$m $f: GPU logits off"; exit 1; }
    out=$("$BIN" generate "$M" --ids 1,2,3 --max-tokens 70 --ignore-eos --kv-cache-dtype $f --device cuda 2> "$TMP/err") ||
      { echo "$m $f: generate --device cuda failed"; cat "$TMP/err"; exit 1; }
    n=$(echo "$out" | tr ',' '\n' | wc -l)
    [ "$n" = 70 ] || { echo "$m $f: generated $n tokens, want 70"; exit 1; }
    grep -q "decode: .* tok/s, .* GB/s" "$TMP/err" || { echo "$m $f: no speed report"; cat "$TMP/err"; exit 1; }
  done
done
echo "ok"
