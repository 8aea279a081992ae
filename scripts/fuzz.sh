#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) in build-fuzz and runs them with a seed corpus
# of small valid files. Usage: scripts/fuzz.sh [seconds per target, default 60] [target ...]
# Targets: safetensors_header_fuzz (default), hf_config_fuzz, openai_request_fuzz. Crashes are written to
# build-fuzz/artifacts/; the corpus grows in build-fuzz/corpus/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(safetensors_header_fuzz)
build=build-fuzz

CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DDENSEKV_FUZZ=ON -DDENSEKV_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g" -DCMAKE_C_FLAGS_RELEASE="-O1 -g" >/dev/null
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"

# Seed corpora: small valid safetensors files and the real config.json files of tests/data.
python3 - "$build/seeds" <<'PY'
import json, os, struct, sys
out = sys.argv[1]
os.makedirs(f"{out}/safetensors_header_fuzz", exist_ok=True)
def image(tensors, meta=None):
    header, off = ({"__metadata__": meta} if meta else {}), 0
    for name, dtype, shape in tensors:
        n = {"F32": 4, "F16": 2, "BF16": 2}[dtype]
        for s in shape:
            n *= s
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + bytes(range(256)) * (off // 256) + bytes(off % 256)
seeds = {
    "one": [("w", "F32", [2, 3])],
    "three": [("a.weight", "BF16", [4, 4]), ("b.bias", "F16", [4]), ("c", "F32", [])],
    "empty_dim": [("e", "BF16", [0, 8]), ("x", "F32", [1])],
    "layer": [("model.layers.0.self_attn.q_proj.weight", "BF16", [8, 8]),
              ("model.layers.0.input_layernorm.weight", "BF16", [8])],
}
for name, t in seeds.items():
    open(f"{out}/safetensors_header_fuzz/{name}", "wb").write(image(t))
open(f"{out}/safetensors_header_fuzz/meta", "wb").write(image(seeds["one"], {"format": "pt"}))
open(f"{out}/safetensors_header_fuzz/empty_header", "wb").write(image([]))
PY
mkdir -p "$build/seeds/hf_config_fuzz"
for c in tests/data/configs/*/config.json; do
  cp "$c" "$build/seeds/hf_config_fuzz/$(basename "$(dirname "$c")").json"
done

# Request bodies: the first byte picks the endpoint (0 completions, 1 chat, 2 tokenize, 3 detokenize).
mkdir -p "$build/seeds/openai_request_fuzz"
seed() { printf "\\x$1%s" "$3" > "$build/seeds/openai_request_fuzz/$2"; }
seed 00 completion '{"model": "m", "prompt": "Hello", "max_tokens": 7, "temperature": 0.5, "stop": ["a"], "seed": 3}'
seed 00 ids '{"prompt": [[1, 2, 3]], "logprobs": 2, "echo": true, "stream": true, "stream_options": {"include_usage": true}}'
seed 01 chat '{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": [{"type": "text", "text": "x"}]}], "logprobs": true, "top_logprobs": 2, "max_completion_tokens": 5}'
seed 01 tools '{"messages": [{"role": "assistant", "content": null, "tool_calls": []}], "tools": [{"type": "function"}], "tool_choice": "auto", "add_generation_prompt": false, "continue_final_message": true}'
seed 02 tokenize '{"messages": [{"role": "user", "content": "hi"}], "return_token_strs": true}'
seed 03 detokenize '{"tokens": [1, 2, 3]}'

mkdir -p "$build/artifacts"
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t"
  dict=()
  [[ $t == safetensors_header_fuzz ]] && dict=(-dict=fuzz/safetensors.dict)
  [[ $t == openai_request_fuzz ]] && dict=(-dict=fuzz/openai_request.dict)
  echo "== $t for ${secs}s"
  "$build/$t" "$build/corpus/$t" "$build/seeds/$t" "${dict[@]}" -max_total_time="$secs" \
    -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t-"
done
