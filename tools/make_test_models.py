#!/usr/bin/env python3
"""Tiny random Hugging Face models + transformers reference outputs (the oracle for the CPU forward).

Run on the GPU machine (needs torch, transformers, tokenizers):
    python3 tools/make_test_models.py --out tests/data/models
Writes one HF folder per model (bf16 safetensors, config.json, tokenizer.json, tokenizer_config.json) and
golden.json + logits_<k>.npy: fp32 logits from transformers (eager attention, fp32 compute on the CPU) for
several prompt lengths (one over 256 tokens) and 64-token greedy continuations (no eos stop).
"""
import argparse
import glob
import json
import os
import random
import sys

import numpy as np
import torch
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"]
VOCAB = 512
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
          " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
          "{% endif %}")


def training_text(limit_bytes=4_000_000):
    """English text and code present on this machine: the Python sources of installed packages."""
    files = sorted(glob.glob(os.path.join(os.path.dirname(os.__file__), "*.py")))
    out, n = [], 0
    for f in files:
        try:
            s = open(f, encoding="utf-8").read()
        except (UnicodeDecodeError, OSError):
            continue
        out.append(s)
        n += len(s)
        if n > limit_bytes:
            break
    return out


def make_tokenizer(with_bos):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_text(), trainer)
    if with_bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
            special_tokens=[("<|begin_of_text|>", 0)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def save_tokenizer(tok, folder, with_bos):
    tok.save(os.path.join(folder, "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>" if with_bos else None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|end_of_text|>",
        "add_bos_token": with_bos,
        "model_max_length": 4096,
        "chat_template": CHATML,
        "added_tokens_decoder": {str(i): {"content": s, "special": True, "lstrip": False, "rstrip": False,
                                          "normalized": False, "single_word": False}
                                 for i, s in enumerate(SPECIALS)},
    }
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def randomize(model, seed):
    """Weights large enough that attention is peaked and logits are well separated (not uniform)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[1] if p.dim() == 2 else 1
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / fan_in ** 0.5))


SPECS = {
    "llama31-tiny": dict(
        cls="Llama", bos=True, shard=None,
        cfg=dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=128, vocab_size=VOCAB, max_position_embeddings=4096,
                 rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False,
                 rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 256},
                 bos_token_id=0, eos_token_id=[1, 3])),
    "qwen25-tiny": dict(
        cls="Qwen2", bos=False, shard=None,
        cfg=dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, vocab_size=VOCAB, max_position_embeddings=4096, rms_norm_eps=1e-6,
                 rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False,
                 sliding_window=4096, max_window_layers=2, bos_token_id=1, eos_token_id=3)),
    "mistral-tiny-hd64": dict(
        cls="Mistral", bos=True, shard="400KB",
        cfg=dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=64, vocab_size=VOCAB, max_position_embeddings=4096,
                 rms_norm_eps=1e-5, rope_theta=1000000.0, tie_word_embeddings=False, sliding_window=None,
                 bos_token_id=0, eos_token_id=3)),
}


@torch.no_grad()
def greedy(model, ids, n):
    seq = list(ids)
    margins = []
    for _ in range(n):
        logits = model(torch.tensor([seq])).logits[0, -1].double()
        top = torch.topk(logits, 2).values
        margins.append(float(top[0] - top[1]))
        seq.append(int(torch.argmax(logits)))
    return seq[len(ids):], min(margins)


def build(name, spec, out_root, seed):
    folder = os.path.join(out_root, name)
    os.makedirs(folder, exist_ok=True)
    for f in glob.glob(os.path.join(folder, "*")):
        os.remove(f)
    cfg_cls = getattr(transformers, spec["cls"] + "Config")
    model_cls = getattr(transformers, spec["cls"] + "ForCausalLM")
    config = cfg_cls(**spec["cfg"])
    torch.manual_seed(seed)
    model = model_cls(config)
    randomize(model, seed)
    model = model.to(torch.bfloat16)
    kw = {"max_shard_size": spec["shard"]} if spec["shard"] else {}
    model.save_pretrained(folder, safe_serialization=True, **kw)
    for extra in ("generation_config.json",):
        p = os.path.join(folder, extra)
        if os.path.exists(p):
            os.remove(p)
    save_tokenizer(make_tokenizer(spec["bos"]), folder, spec["bos"])

    ref = model_cls.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    rng = random.Random(seed)
    golden = {"transformers": transformers.__version__, "torch": torch.__version__, "prompts": [],
              "greedy": []}
    for k, n in enumerate([1, 5, 37, 300]):
        ids = [rng.randrange(4, VOCAB) for _ in range(n)]
        with torch.no_grad():
            logits = ref(torch.tensor([ids])).logits[0].float().numpy()
        np.save(os.path.join(folder, f"logits_{k}.npy"), logits)
        golden["prompts"].append({"ids": ids, "logits": f"logits_{k}.npy"})
    for n in [8, 20, 100]:
        ids = [rng.randrange(4, VOCAB) for _ in range(n)]
        toks, margin = greedy(ref, ids, 64)
        golden["greedy"].append({"prompt_ids": ids, "token_ids": toks, "min_top2_margin": margin})
    with open(os.path.join(folder, "golden.json"), "w") as f:
        json.dump(golden, f)
    print(name, "saved:", sorted(os.listdir(folder)))
    print("  config:", open(os.path.join(folder, "config.json")).read().replace("\n", " ")[:600])
    print("  min greedy top-2 margins:", [round(g["min_top2_margin"], 4) for g in golden["greedy"]])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/models")
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    torch.set_num_threads(8)
    print("transformers", transformers.__version__, "torch", torch.__version__, file=sys.stderr)
    for i, (name, spec) in enumerate(SPECS.items()):
        if args.only and name != args.only:
            continue
        build(name, spec, args.out, seed=1234 + i)


if __name__ == "__main__":
    main()
