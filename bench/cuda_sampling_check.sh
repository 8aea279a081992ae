#!/usr/bin/env bash
# One GPU-machine run that checks and measures sampling on the device (Backend::sample,
# src/backend/cuda/sample.cu; nothing is built here):
#   1. tests: CudaSample.* (the kernel against the host Sampler, the engine's tokens with and
#      without it), CudaGreedy.*, Sampler.*, and CudaSample.* under compute-sanitizer memcheck;
#   2. bench throughput, Llama-3.1-8B shape with dummy weights, 128 prompts x 512 in / 512 out,
#      bf16 and int4_kivi: greedy (tokens on the device), then temperature 1 and temperature 0.7
#      with top_k 50, each sampled on the host (--no-greedy-on-device: the logits copied) and on
#      the device (default). RUNS="OPTS|OPTS|..." replaces that list of bench options (e.g. with
#      --repetition-penalty, --frequency-penalty, --presence-penalty). No top_p run: the dummy weights' logits are nearly flat, so top_p 0.9
#      keeps most of the 128k vocabulary, which the device leaves to the host (and the host's
#      sort of it took over 3 minutes for this load).
# About 8 minutes on an H100 (TESTS=0 FORMATS=bf16: 4).
#
#   bash bench/cuda_sampling_check.sh BIN_DIR OUT_DIR
# FORMATS="bf16 int4_kivi" (default) picks the KV formats, TESTS=0 skips step 1 (to split the run
# into calls of under 10 minutes).
# BIN_DIR holds densekv and densekv_tests (and, where the machine lacks it,
# libcpp-httplib.so.0.11*); results land in OUT_DIR (throughput.jsonl, tests_*.txt), a table at
# the end. Run from the repository root.
set -uo pipefail
B=$(cd "$1" && pwd)
O=$2
mkdir -p "$O"
export LD_LIBRARY_PATH=$B${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
CFG=bench/configs/llama-3.1-8b

if [ "${TESTS:-1}" != 0 ]; then
  "$B/densekv_tests" --gtest_filter='CudaSample.*:CudaGreedy.*:Sampler.*' > "$O/tests_sample.txt" 2>&1
  echo "sampling tests: rc=$?"
  grep -E "^\[  (PASSED|FAILED) |FAILED  \]|draws,|penalized rows" "$O/tests_sample.txt" | head -20
  if command -v compute-sanitizer > /dev/null; then
    compute-sanitizer --tool memcheck --error-exitcode 3 "$B/densekv_tests" \
      --gtest_filter='CudaSample.EqualsHostSampler:CudaSample.LongCandidate*:CudaSample.Penalized*' \
      > "$O/tests_memcheck.txt" 2>&1
    echo "memcheck (sampling): rc=$? ($(grep -c 'Invalid' "$O/tests_memcheck.txt") invalid accesses)"
  fi
fi

RUNS=${RUNS:-"--temperature 0|--temperature 1 --no-greedy-on-device|--temperature 1|\
--temperature 0.7 --top-k 50 --no-greedy-on-device|--temperature 0.7 --top-k 50"}
IFS='|' read -ra RUN_LIST <<< "$RUNS"
for f in ${FORMATS:-bf16 int4_kivi}; do
  for opts in "${RUN_LIST[@]}"; do
    # shellcheck disable=SC2086
    "$B/densekv" bench throughput $CFG --load-format dummy --device cuda --kv-cache-dtype $f \
      --kv-memory-gb 4 --num-prompts 128 --input-len 512 --output-len 512 --json $opts \
      2> "$O/throughput_${f}_$(echo $opts | tr ' -.' '___' | tr -s '_').log" | tee -a "$O/throughput.jsonl"
  done
done

python3 - "$O" << 'PY'
import json, sys
o = sys.argv[1]
print("| kv | temperature | top_k | top_p | penalties (rep, freq, pres) | logprobs (n / every) | "
      "sampled on | output tok/s | device draws | penalized on device | rows on the host |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for line in open(f"{o}/throughput.jsonl"):
    j = json.loads(line)
    where = "device" if j["greedy_on_device"] else "host (logits copied)"
    pen = f"{j['repetition_penalty']:g}, {j['frequency_penalty']:g}, {j['presence_penalty']:g}"
    lp = f"{j['logprobs']} / {j['logprobs_every']}" if j.get("logprobs", -1) >= 0 else "-"
    print(f"| {j['kv_cache_dtype']} | {j['temperature']:g} | {j['top_k']} | {j['top_p']:g} | {pen} | "
          f"{lp} | {where} | {j['output_tokens_per_second']:.0f} | {j['device_draw_rows']} | "
          f"{j['penalized_rows']} | {j['host_fallback_rows']} |")
PY
