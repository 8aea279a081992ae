#!/usr/bin/env bash
# One GPU-machine run that checks and measures the decode step's fast paths (nothing is built
# here): decode graphs (default on cuda; --enforce-eager turns them off) and greedy sampling on the
# device (default on; --no-greedy-on-device turns it off).
#   1. tests: the decode-graph and greedy-on-device GPU tests (tests/kernels/
#      cuda_decode_step_test.cpp), the host emulation tests, the CUDA op tests (argmax), and the
#      graph tests under compute-sanitizer memcheck where it is installed (padding rows must not
#      read or write out of bounds);
#   2. bench latency, batch 1, Llama-3.1-8B shape with dummy weights: bf16 and int4_kivi, without
#      and with graphs;
#   3. bench throughput, 128 prompts x 512 in / 512 out: bf16 and int4_kivi with the greedy fast
#      path off, on, and on with graphs.
# About 6-8 minutes on an H100 (each 8B model load takes ~10-20 s).
#
#   bash bench/cuda_engine_check.sh BIN_DIR OUT_DIR
# BIN_DIR holds densekv and densekv_tests (and, where the machine lacks it,
# libcpp-httplib.so.0.11*); results land in OUT_DIR (latency.jsonl, throughput.jsonl,
# tests_*.txt), a table at the end. Run from the repository root.
set -uo pipefail
B=$(cd "$1" && pwd)
O=$2
mkdir -p "$O"
export LD_LIBRARY_PATH=$B${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
CFG=bench/configs/llama-3.1-8b
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv | tee "$O/gpu.txt"

# 1. tests
"$B/densekv_tests" --gtest_filter='*CudaDecodeGraph*:CudaGreedy.*:*CudaOps*:*DecodeGraph*:Sampler.*:Engine.GreedyOnDevice*' \
  > "$O/tests_decode.txt" 2>&1
echo "decode tests: rc=$?"
grep -E "^\[  (PASSED|FAILED) |FAILED  \]|^  (bf16|int4_kivi):" "$O/tests_decode.txt" | head -40
if command -v compute-sanitizer > /dev/null; then
  compute-sanitizer --tool memcheck --error-exitcode 3 "$B/densekv_tests" \
    --gtest_filter='*CudaDecodeGraph.ReplaysEqual*' > "$O/tests_memcheck.txt" 2>&1
  echo "memcheck (decode graphs): rc=$? ($(grep -c 'Invalid' "$O/tests_memcheck.txt") invalid accesses)"
fi

# 2. batch-1 latency, without and with graphs
for f in bf16 int4_kivi; do
  for g in --enforce-eager --cuda-graphs; do
    "$B/densekv" bench latency $CFG --load-format dummy --device cuda --kv-cache-dtype $f \
      --kv-memory-gb 4 --input-len 128 --output-len 256 --num-iters 3 --json $g \
      2> "$O/latency_${f}${g}.log" | tee -a "$O/latency.jsonl"
  done
done

# 3. throughput 128 x 512/512: greedy on the host, on the device, on the device with graphs
for f in bf16 int4_kivi; do
  for opts in "--no-greedy-on-device --enforce-eager" "--greedy-on-device --enforce-eager" \
    "--greedy-on-device --cuda-graphs"; do
    # shellcheck disable=SC2086
    "$B/densekv" bench throughput $CFG --load-format dummy --device cuda --kv-cache-dtype $f \
      --kv-memory-gb 4 --num-prompts 128 --input-len 512 --output-len 512 --json $opts \
      2> "$O/throughput_${f}_$(echo $opts | tr ' -' '_' | tr -s '_').log" | tee -a "$O/throughput.jsonl"
  done
done

python3 - "$O" << 'EOF'
import json, sys
o = sys.argv[1]
print("\nlatency (batch 1, 128 in, 256 out)")
print("| kv | graphs | decode ms/token | tok/s | TTFT ms | captures | replays |")
for l in open(o + "/latency.jsonl"):
    j = json.loads(l)
    print(f"| {j['kv_cache_dtype']} | {j['cuda_graphs']} | {j['decode_seconds_per_token']*1e3:.2f} "
          f"| {j['decode_tokens_per_second']:.1f} | {j['ttft_seconds']*1e3:.1f} "
          f"| {j['graph_captures']} | {j['graph_replays']} |")
print("\nthroughput (128 x 512 in / 512 out)")
print("| kv | greedy on device | graphs | output tok/s | req/s | steps | device-greedy steps | replays |")
for l in open(o + "/throughput.jsonl"):
    j = json.loads(l)
    print(f"| {j['kv_cache_dtype']} | {j['greedy_on_device']} | {j['cuda_graphs']} "
          f"| {j['output_tokens_per_second']:.1f} | {j['requests_per_second']:.2f} | {j['steps']} "
          f"| {j['greedy_device_steps']} | {j['graph_replays']} |")
EOF
