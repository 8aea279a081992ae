#!/usr/bin/env bash
# One GPU-machine run that checks and measures the CUDA attention (nothing is built here):
#   1. the host warp-emulation tests (attention_fragments_test, prefill_fragments_test) where
#      BIN_DIR has them (CI runs them too);
#   2. every CUDA test with the defaults (tensor-core decode and prefill kernels), the decode
#      attention and model tests with the CUDA-core decode kernel and the prefill kernel off
#      (DENSEKV_ATTENTION=simt DENSEKV_PREFILL=off), the --device cuda CLI test both ways;
#   3. with MEMCHECK=1: compute-sanitizer memcheck over every CUDA test (4 shards in parallel);
#   4. unless QUICK=1: bench/attention_bench (decode grid, both kernels), torch SDPA on the same
#      bf16 shapes where torch is installed, attention_bench --prefill.
#
#   [MEMCHECK=1] [QUICK=1] bash bench/cuda_attention_check.sh BIN_DIR OUT_DIR
# BIN_DIR holds densekv, densekv_tests, attention_bench (and, where the machine lacks it,
# libcpp-httplib.so.0.11*); results land in OUT_DIR, a table at the end.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CLI_TEST=$HERE/../tests/cli/cuda_logits_generate.sh
B=$(cd "$1" && pwd)
O=$2
mkdir -p "$O"
export LD_LIBRARY_PATH=$B${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv | tee "$O/gpu.txt"
summary() { grep -E "^\[  (PASSED|FAILED) |FAILED  \]" "$1" | head -40; }

# 1. host tests
for t in attention_fragments_test prefill_fragments_test; do
  if [ -x "$B/$t" ]; then
    "$B/$t" > "$O/$t.txt" 2>&1
    echo "$t: rc=$? ($(tail -1 "$O/$t.txt"))"
  fi
done

# 2. GPU tests and the CLI test, default kernels and the CUDA-core ones
"$B/densekv_tests" --gtest_filter='*Cuda*' > "$O/tests_default.txt" 2>&1
echo "cuda tests (defaults): rc=$?"
summary "$O/tests_default.txt"
DENSEKV_ATTENTION=simt DENSEKV_PREFILL=off "$B/densekv_tests" \
  --gtest_filter='Formats/CudaAttention.*:*CudaModel*:*CudaDecodeGraph*' > "$O/tests_simt.txt" 2>&1
echo "cuda tests (simt, prefill off): rc=$?"
summary "$O/tests_simt.txt"
bash "$CLI_TEST" "$B/densekv" . > "$O/cli_cuda.txt" 2>&1
echo "cli cuda (defaults): rc=$? ($(tail -1 "$O/cli_cuda.txt"))"
DENSEKV_ATTENTION=simt DENSEKV_PREFILL=off bash "$CLI_TEST" "$B/densekv" . > "$O/cli_cuda_simt.txt" 2>&1
echo "cli cuda (simt, prefill off): rc=$? ($(tail -1 "$O/cli_cuda_simt.txt"))"

# 3. memcheck over every CUDA test, in 4 gtest shards at once (each 1-3 minutes on an H100)
if [ "${MEMCHECK:-0}" = 1 ] && command -v compute-sanitizer > /dev/null; then
  for i in 0 1 2 3; do
    GTEST_TOTAL_SHARDS=4 GTEST_SHARD_INDEX=$i timeout "${MEMCHECK_TIMEOUT:-540}" \
      compute-sanitizer --tool memcheck --error-exitcode 3 "$B/densekv_tests" \
      --gtest_filter='*Cuda*:*DecodeGraph*:FillRandom*' > "$O/memcheck_$i.txt" 2>&1 &
  done
  wait
  for i in 0 1 2 3; do
    echo "memcheck shard $i: $(grep -c '^========= Invalid' "$O/memcheck_$i.txt") invalid accesses;" \
      "$(grep 'ERROR SUMMARY' "$O/memcheck_$i.txt" | tail -1)"
    summary "$O/memcheck_$i.txt"
  done
fi

# 4. benchmarks
[ "${QUICK:-0}" = 1 ] && exit 0
"$B/attention_bench" --json "$O/attention_mma.json" > "$O/attention_mma.txt" 2>&1
echo "bench (tensor-core decode): rc=$?"
DENSEKV_ATTENTION=simt "$B/attention_bench" --quick > "$O/attention_simt_quick.txt" 2>&1
if python3 -c "import torch" 2> /dev/null; then
  python3 bench/torch_decode_bench.py > "$O/torch_sdpa.txt" 2>&1
fi
"$B/attention_bench" --prefill --json "$O/prefill.json" > "$O/prefill.txt" 2>&1
echo "bench prefill vs decode kernel: rc=$?"
cat "$O/attention_mma.txt" "$O/prefill.txt"
