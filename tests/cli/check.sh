#!/usr/bin/env bash
# densekv check: a tiny generated model folder passes with a summary; unsupported configs and corrupt
# weights exit 2 with "error: <reason>". Usage: check.sh <densekv-binary> <repo-root>
set -uo pipefail
bin=$1
root=$2
command -v python3 >/dev/null || { echo "python3 not found: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# expect <exit code> <substring> <densekv args...>: the combined output must contain the substring.
source "$(dirname "$0")/lib/expect.sh"

# A tiny Llama folder written with Python's struct/json (the safetensors format by hand).
make_model() {  # make_model DIR ARCH TIED
  python3 - "$@" <<'PY'
import json, os, struct, sys
d, arch, tied = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
cfg = {"architectures": [arch], "hidden_size": 128, "intermediate_size": 256,
       "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
       "vocab_size": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
       "torch_dtype": "bfloat16", "tie_word_embeddings": tied}
H, I, V, Q, KV = 128, 256, 64, 128, 64
shapes = {"model.embed_tokens.weight": [V, H], "model.norm.weight": [H]}
if not tied:
    shapes["lm_head.weight"] = [V, H]
for i in range(2):
    p = f"model.layers.{i}."
    shapes.update({p + "input_layernorm.weight": [H], p + "post_attention_layernorm.weight": [H],
                   p + "self_attn.q_proj.weight": [Q, H], p + "self_attn.k_proj.weight": [KV, H],
                   p + "self_attn.v_proj.weight": [KV, H], p + "self_attn.o_proj.weight": [H, Q],
                   p + "mlp.gate_proj.weight": [I, H], p + "mlp.up_proj.weight": [I, H],
                   p + "mlp.down_proj.weight": [H, I]})
    if arch == "Qwen2ForCausalLM":
        shapes.update({p + "self_attn.q_proj.bias": [Q], p + "self_attn.k_proj.bias": [KV],
                       p + "self_attn.v_proj.bias": [KV]})
header, off = {"__metadata__": {"format": "pt"}}, 0
for name, shape in shapes.items():
    n = 2
    for s in shape:
        n *= s
    header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + n]}
    off += n
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
os.makedirs(d, exist_ok=True)
with open(os.path.join(d, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + bytes(off))
with open(os.path.join(d, "config.json"), "w") as f:
    json.dump(cfg, f)
PY
}

make_model "$tmp/llama" LlamaForCausalLM 0
expect 0 "architecture        LlamaForCausalLM (llama)" check "$tmp/llama"
expect 0 "KV bytes per token  512 (16-bit cache)" check "$tmp/llama"  # K+V x 2 layers x 1 x 64 x 2 B
# 2 x 64x128 embeddings + 2 x (2x128 norms + 2x128x128 q,o + 2x64x128 k,v + 3x256x128 mlp) + 128
expect 0 "parameters          311.9K (311936)" check "$tmp/llama"
expect 0 "weights             21 tensors, 623.9 KB" check "$tmp/llama"
make_model "$tmp/qwen" Qwen2ForCausalLM 1
expect 0 "qkv bias            yes" check "$tmp/qwen"
expect 0 "tied embeddings     yes" check "$tmp/qwen"

# Corrupt weights: the file and the tensor are named.
cp -r "$tmp/llama" "$tmp/trunc"
truncate -s -100 "$tmp/trunc/model.safetensors"
expect 2 "error: $tmp/trunc/model.safetensors: tensor" check "$tmp/trunc"
cp -r "$tmp/llama" "$tmp/empty"
: >"$tmp/empty/model.safetensors"
expect 2 "empty file" check "$tmp/empty"

# Real config.json files without weights: supported ones get as far as the missing weights.
configs=$root/tests/data/configs
for m in llama-3.1-8b llama-3.2-1b qwen2.5-7b mistral-7b-instruct-v0.3 crafted-llama-3.1-8b-transformers5; do
  expect 2 "missing model.safetensors" check "$configs/$m"
done
expect 2 "error: sliding window attention (sliding_window 4096)" check "$configs/mistral-7b-v0.1"
expect 2 "error: quantized checkpoint (quantization_config.quant_method 'gptq')" check "$configs/qwen2.5-7b-instruct-gptq-int4"
expect 2 "error: architecture 'GemmaForCausalLM' is not supported" check "$configs/gemma-2b"
expect 2 "error: rope_scaling type 'yarn' is not supported (supported: default, llama3)" check "$configs/qwen2.5-7b-instruct-yarn"
expect 2 "error: head_dim 96 is not supported" check "$configs/crafted-llama-head-dim-96"
expect 2 "error: model folder $tmp/nope does not exist" check "$tmp/nope"
expect 2 "config.json" check "$tmp"
expect 2 "MODEL_DIR is required" check
exit $fail
