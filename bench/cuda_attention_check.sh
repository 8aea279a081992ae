#!/usr/bin/env bash
# One GPU-machine run that checks and measures the CUDA attention (nothing is built here): the
# host fragment test, the CUDA kernel/model tests with the tensor-core attention
# (DENSEKV_ATTENTION=mma) and the attention tests with the CUDA-core one (the default, simt), the --device cuda CLI test,
# then bench/attention_bench for both kernels and torch SDPA where torch is installed; then the
# tensor-core prefill kernel (DENSEKV_PREFILL=mma): its host test, the CUDA tests with it enabled
# (CudaPrefill compares it with the CPU reference; the attention and model tests run through it
# too) and attention_bench --prefill (prefill kernel vs the decode kernels on the same work).
#
#   bash bench/cuda_attention_check.sh BIN_DIR OUT_DIR
# BIN_DIR holds densekv, densekv_tests, attention_bench, attention_fragments_test,
# prefill_fragments_test (and, where the
# machine lacks it, libcpp-httplib.so.0.11*); results land in OUT_DIR, a table at the end.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CLI_TEST=$HERE/../tests/cli/cuda_logits_generate.sh
[ -f "$CLI_TEST" ] || CLI_TEST=$HERE/cuda_logits_generate.sh  # staged next to this script
B=$(cd "$1" && pwd)
O=$2
mkdir -p "$O"
export LD_LIBRARY_PATH=$B${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv | tee "$O/gpu.txt"
"$B/attention_fragments_test" > "$O/fragments.txt" 2>&1; echo "fragments: rc=$?"
DENSEKV_ATTENTION=mma "$B/densekv_tests" --gtest_filter='*Cuda*' > "$O/tests_mma.txt" 2>&1; echo "cuda tests (mma): rc=$?"
grep -E "^\[  (PASSED|FAILED) |FAILED  \]" "$O/tests_mma.txt" | head -40
DENSEKV_ATTENTION=simt "$B/densekv_tests" --gtest_filter='Formats/CudaAttention.*' > "$O/tests_simt.txt" 2>&1
echo "attention tests (simt): rc=$?"
DENSEKV_ATTENTION=mma bash "$CLI_TEST" "$B/densekv" . > "$O/cli_cuda.txt" 2>&1
echo "cli cuda: rc=$? ($(tail -1 "$O/cli_cuda.txt"))"
DENSEKV_ATTENTION=mma "$B/attention_bench" --json "$O/attention_mma.json" > "$O/attention_mma.txt" 2>&1; echo "bench mma: rc=$?"
DENSEKV_ATTENTION=simt "$B/attention_bench" --quick > "$O/attention_simt_quick.txt" 2>&1
if python3 -c "import torch" 2> /dev/null; then
  python3 bench/torch_decode_bench.py > "$O/torch_sdpa.txt" 2>&1
fi
cat "$O/attention_mma.txt"
# ---- prefill kernel (opt-in DENSEKV_PREFILL=mma; not yet run on a GPU before this script) ----
"$B/prefill_fragments_test" > "$O/prefill_fragments.txt" 2>&1; echo "prefill fragments: rc=$?"
DENSEKV_PREFILL=mma "$B/densekv_tests" --gtest_filter='*CudaPrefill*:*CudaAttention*:*CudaModel*' \
  > "$O/tests_prefill.txt" 2>&1; echo "cuda tests (prefill mma): rc=$?"
grep -E "^\[  (PASSED|FAILED) |FAILED  \]" "$O/tests_prefill.txt" | head -40
DENSEKV_PREFILL=mma bash "$CLI_TEST" "$B/densekv" . > "$O/cli_cuda_prefill.txt" 2>&1
echo "cli cuda (prefill mma): rc=$? ($(tail -1 "$O/cli_cuda_prefill.txt"))"
DENSEKV_PREFILL=mma "$B/attention_bench" --prefill --json "$O/prefill_simt.json" > "$O/prefill_simt.txt" 2>&1
echo "bench prefill vs simt decode: rc=$?"
DENSEKV_PREFILL=mma DENSEKV_ATTENTION=mma "$B/attention_bench" --prefill --json "$O/prefill_mma.json" \
  > "$O/prefill_mma.txt" 2>&1; echo "bench prefill vs mma decode: rc=$?"
cat "$O/prefill_simt.txt" "$O/prefill_mma.txt"
