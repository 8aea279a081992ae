#!/usr/bin/env python3
"""Train the small evaluation model (issue 8) from text already on this machine, in a fixed time budget.

Run on the GPU machine (torch, transformers 5, tokenizers, numpy; no network):
    python3 tools/train_eval_model.py --out $OUT/model            # whole run <= --budget-s (400 s)
    python3 tools/train_eval_model.py --out /tmp/c --corpus-only  # stdlib only: corpus + held_out.txt

Corpus: *.py *.pyi *.md *.rst *.txt and LICENSE/README/METADATA/copyright/changelog files (.gz too) of
this interpreter's stdlib and site-packages and /usr/share/doc, in sorted path order, sized --min-bytes to
--max-file-bytes, path-hash subsampled to ~--corpus-bytes; binary, non-UTF-8, minified (a line > 1000
chars, mean > 160), data-like (< 25% ASCII letters) and duplicate (sha1) files dropped. A file is held out
when int(sha1[:8], 16) % 10000 < 100 * --heldout-pct.

Outputs in --out: model.safetensors (bf16), config.json, generation_config.json, tokenizer.json,
tokenizer_config.json (ChatML template that starts with bos_token), held_out.txt, prompts.jsonl,
train_log.json, key_stats.json.

Held-out perplexity protocol (the one `densekv eval` should reproduce): ids = encode(held_out.txt) with no
special tokens; window w = [BOS] + ids[w*(W-1) : (w+1)*(W-1)] for each full window (the partial tail is
dropped; at most --ppl-max-windows); every one of the W-1 text tokens is scored from its window prefix;
ppl = exp(sum NLL / count). W = --ppl-window (1024, the training length), stride W-1 (no overlap).
"""
import time
T0 = time.time()  # every deadline counts from here, before torch is imported

import argparse, collections, gzip, hashlib, json, math, os, random, site, string, sys, sysconfig
import contextlib, traceback

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"]
BOS, EOT, IM_END = 0, 1, 3
CHATML = ("{{ bos_token }}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n'"
          " + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\n' }}{% endif %}")
TEXT_SUFFIXES = (".py", ".pyi", ".md", ".rst", ".txt")
TEXT_PREFIXES = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "README", "AUTHORS", "METADATA", "copyright",
                 "changelog", "NEWS", "CHANGES")
SKIP_DIRS = {"__pycache__", ".git", ".hg", "node_modules"}
ASCII_LETTERS = string.ascii_letters.encode()


def log(*a):
    print(f"[{time.time() - T0:6.1f}s]", *a, flush=True)


# ----------------------------------------------------------------------------------------- corpus

def corpus_roots():
    """[(label, dir)]: the stdlib, every site-packages dir of this interpreter, /usr/share/doc."""
    paths = sysconfig.get_paths()
    sites = getattr(site, "getsitepackages", list)() + [site.getusersitepackages(), paths["purelib"],
                                                        paths["platlib"]]
    cands = ([("stdlib", paths["stdlib"])] + [("site-packages", p) for p in sorted(set(sites))] +
             [("usr-share-doc", "/usr/share/doc")])
    roots = {}
    for label, p in cands:
        if os.path.isdir(p):
            roots.setdefault(os.path.realpath(p), label)
    return [(label, r) for r, label in roots.items()]


def list_candidates(roots, min_bytes, max_bytes):
    """[(path, size, label)] in sorted order; a root nested inside another is walked on its own."""
    root_dirs = {r for _, r in roots}
    out = []
    for label, root in roots:
        for d, dirs, files in os.walk(root):
            dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS
                             and os.path.realpath(os.path.join(d, x)) not in root_dirs)
            for name in sorted(files):
                base, p = name[:-3] if name.endswith(".gz") else name, os.path.join(d, name)
                if not (base.endswith(TEXT_SUFFIXES) or base.startswith(TEXT_PREFIXES)) or os.path.islink(p):
                    continue
                size = os.stat(p).st_size
                if min_bytes <= size <= (max_bytes // 4 if name.endswith(".gz") else max_bytes):
                    out.append((p, size, label))
    return out


def read_doc(path, max_bytes, seen):
    """(sha1, text) of a file worth training on, else (None, the reason it is skipped)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        if path.endswith(".gz"):
            data = gzip.decompress(data)[:max_bytes]
        text = data.decode("utf-8")
    except (OSError, EOFError, ValueError):  # includes bad gzip and UnicodeDecodeError
        return None, "unreadable or not utf-8"
    digest = hashlib.sha1(data).hexdigest()
    lines = text.split("\n")
    if digest in seen:
        return None, "duplicate"
    if "\x00" in text:
        return None, "binary"
    if max(map(len, lines)) > 1000 or len(text) / len(lines) > 160:
        return None, "minified or long lines"
    if len(data) - len(data.translate(None, ASCII_LETTERS)) < 0.25 * len(data):
        return None, "few letters (data)"
    return digest, text


def load_corpus(args):
    """(train_texts, heldout [(sha1, text)], stats), deterministic for a given machine."""
    roots = corpus_roots()
    cands = list_candidates(roots, args.min_bytes, args.max_file_bytes)
    total = sum(c[1] for c in cands)
    keep = min(1.0, args.corpus_bytes / max(total, 1))  # path-hash subsample down to ~corpus_bytes
    unit = lambda p: int(hashlib.md5(p.encode("utf-8", "surrogateescape")).hexdigest()[:8], 16) / 2 ** 32
    picked = [c for c in cands if keep >= 1.0 or unit(c[0]) < keep]
    seen, train, heldout = set(), [], []
    skipped, by_source = collections.Counter(), collections.Counter()
    for path, _, label in picked:
        digest, text = read_doc(path, args.max_file_bytes, seen)
        if digest is None:
            skipped[text] += 1
            continue
        seen.add(digest)
        by_source[label] += len(text)
        if int(digest[:8], 16) % 10000 < args.heldout_pct * 100:
            heldout.append((digest, text))
        else:
            train.append(text)
    stats = {"roots": [f"{label}:{r}" for label, r in roots], "candidates": len(cands),
             "candidate_bytes": total, "subsample_fraction": round(keep, 4), "picked": len(picked),
             "skipped": dict(skipped), "chars_by_source": dict(by_source), "train_files": len(train),
             "train_chars": sum(map(len, train)), "heldout_files": len(heldout)}
    return train, heldout, stats


def heldout_segments(heldout, max_chars, seg_chars=8192):
    """Held-out files in sha1 order, each cut to its first seg_chars (at a line end), until max_chars."""
    segs, n = [], 0
    for _, text in sorted(heldout):
        seg = text[:seg_chars]
        if len(text) > seg_chars and "\n" in seg:
            seg = seg[:seg.rindex("\n") + 1]
        if seg.strip():
            segs.append(seg.rstrip("\n") + "\n")
            n += len(segs[-1]) + 1
        if n >= max_chars:
            break
    return segs


# -------------------------------------------------------------------------------------- tokenizer

def import_heavy():
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    global np, torch, F, transformers, tk
    import numpy as np
    import tokenizers as tk
    from tokenizers import decoders, models, pre_tokenizers, processors, trainers  # noqa: F401 (tk.*)
    import torch
    import torch.nn.functional as F
    import transformers


def train_tokenizer(texts, vocab, sample_chars):
    step = max(1, sum(map(len, texts)) // sample_chars)
    sample = texts[::step]
    tok = tk.Tokenizer(tk.models.BPE(ignore_merges=True))
    tok.pre_tokenizer = tk.pre_tokenizers.Sequence([
        tk.pre_tokenizers.Split(tk.Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        tk.pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, special_tokens=SPECIALS,
                                     show_progress=False,
                                     initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(sample, trainer, length=len(sample))
    tok.post_processor = tk.processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", BOS)])
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    return tok, sum(map(len, sample))


def save_tokenizer(tok, folder, max_len):
    tok.save(os.path.join(folder, "tokenizer.json"))
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": SPECIALS[BOS],
           "eos_token": SPECIALS[IM_END], "pad_token": SPECIALS[EOT], "add_bos_token": True,
           "model_max_length": max_len, "chat_template": CHATML,
           "added_tokens_decoder": {str(i): {"content": s, "special": True, "lstrip": False, "rstrip": False,
                                             "normalized": False, "single_word": False}
                                    for i, s in enumerate(SPECIALS)}}
    write_json(os.path.join(folder, "tokenizer_config.json"), cfg)


def encode_corpus(tok, texts, deadline):
    """One stream: [BOS] doc [EOT] [BOS] doc [EOT] ..., documents in a seeded shuffled order."""
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    parts, done = [], 0
    while done < len(texts) and not (parts and time.time() > deadline):
        parts += [np.asarray(e.ids + [EOT], dtype=np.uint16)
                  for e in encode(texts[done:done + 2048], add_special_tokens=True)]
        done = min(len(texts), done + 2048)
    if done < len(texts):
        log(f"tokenize deadline reached: kept {done}/{len(texts)} documents")
    return np.concatenate(parts), done


def make_prompts(tok, segs, n, seed):
    """n distinct prompts of 32-64 tokens that start at a line start in held-out text."""
    rng = random.Random(seed)
    pools = []
    for seg in segs:
        offs = tok.encode(seg, add_special_tokens=False).offsets
        starts = [i for i in range(len(offs) - 64) if offs[i][0] == 0 or seg[offs[i][0] - 1] == "\n"]
        rng.shuffle(starts)
        pools.append((seg, offs, starts))
    prompts, seen = [], set()
    while len(prompts) < n and any(p[2] for p in pools):
        for seg, offs, starts in pools:
            if not starts or len(prompts) >= n:
                continue
            i = starts.pop()
            text = seg[offs[i][0]:offs[i + rng.randint(32, 64) - 1][1]]
            if sum(c.isalpha() for c in text) >= 12 and text not in seen and "\ufffd" not in text:
                seen.add(text)
                prompts.append(text)
    return prompts


# ------------------------------------------------------------------------------------------ model

def build_model(args, vocab):
    kw = dict(vocab_size=vocab, hidden_size=args.hidden, intermediate_size=args.ffn,
              num_hidden_layers=args.layers, num_attention_heads=args.heads,
              num_key_value_heads=args.kv_heads, head_dim=128, max_position_embeddings=args.max_pos,
              rms_norm_eps=1e-5, tie_word_embeddings=args.tie, bos_token_id=BOS,
              eos_token_id=[EOT, IM_END], pad_token_id=None, initializer_range=0.02)
    config = transformers.LlamaConfig(**kw, rope_parameters={"rope_type": "default",  # transformers 5
                                                             "rope_theta": args.rope_theta})
    torch.manual_seed(args.seed)
    model = transformers.LlamaForCausalLM(config).to(device="cuda", dtype=torch.float32)
    if getattr(model.config, "_attn_implementation", "sdpa") != "sdpa":
        model.set_attn_implementation("sdpa")  # flash kernels come through SDPA
    return model


def attention_context(model, vocab):
    """Flash SDPA when a probe forward+backward works under it, else whatever SDPA picks."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    x = torch.randint(4, vocab, (2, 256), device="cuda")
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16), sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            model(input_ids=x, use_cache=False).logits.float().mean().backward()
        ctx, name = (lambda: sdpa_kernel([SDPBackend.FLASH_ATTENTION])), "flash"
    except RuntimeError as e:
        log("flash SDPA unavailable, using the default SDPA choice:", str(e).splitlines()[0][:200])
        ctx, name = contextlib.nullcontext, "sdpa-default"
    model.zero_grad(set_to_none=True)
    return ctx, name


def lr_at(args, step, frac):
    warm = min(1.0, (step + 1) / args.warmup_steps)
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
    return args.lr * warm * (args.min_lr_ratio + (1 - args.min_lr_ratio) * cos)


def train(model, tokens, args, deadline, vocab):
    ctx, backend = attention_context(model, vocab)
    groups = [{"params": [p for p in model.parameters() if (p.dim() >= 2) == decay],
               "weight_decay": args.weight_decay if decay else 0.0} for decay in (True, False)]
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    step_fn = torch.compile(model) if args.compile else model
    gen = torch.Generator(device="cuda").manual_seed(args.seed)
    offs = torch.arange(args.seq_len + 1, device="cuda")
    B, T = args.batch, args.seq_len
    curve, t_start, step, seen = [], time.time(), 0, 0
    t_last, seen_last = t_start, 0  # for tokens/s between log points
    while step == 0 or time.time() < deadline:
        lr = lr_at(args, step, (time.time() - t_start) / max(deadline - t_start, 1e-6))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, tokens.numel() - T - 1, (B, 1), device="cuda", generator=gen)
        batch = tokens[starts + offs].long()
        with torch.autocast("cuda", dtype=torch.bfloat16), ctx():
            logits = step_fn(input_ids=batch[:, :-1], use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        step, seen = step + 1, seen + B * T
        if step == 1 or step % args.log_every == 0:
            loss_v, now = loss.item(), time.time()  # .item() syncs: the timing below is real
            tps = (seen - seen_last) / max(now - t_last, 1e-6)
            curve.append({"step": step, "time_s": round(now - T0, 2), "tokens": seen,
                          "loss": round(loss_v, 4), "lr": round(lr, 6), "grad_norm": round(gnorm.item(), 3),
                          "tokens_per_s": round(tps)})
            t_last, seen_last = now, seen
            if step == 1 or step % (args.log_every * 5) == 0:
                log(f"step {step} loss {loss_v:.4f} lr {lr:.2e} gnorm {gnorm.item():.2f} tok/s {tps:,.0f}")
    torch.cuda.synchronize()
    secs = time.time() - t_start
    return {"steps": step, "tokens_seen": seen, "seconds": round(secs, 1), "attention": backend,
            "tokens_per_s": round(seen / max(secs, 1e-6)), "batch": B, "seq_len": T,
            "final_loss": round(sum(c["loss"] for c in curve[-5:]) / len(curve[-5:]), 4),
            "loss_curve": curve}


# ------------------------------------------------------------------------------------------- eval

def perplexity(model, windows, batch=8):
    nll, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            x = torch.tensor(windows[i:i + batch], device="cuda")
            logits = model(input_ids=x, use_cache=False).logits.float()
            nll += F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                   reduction="sum").item()
            count += x[:, 1:].numel()
    return math.exp(nll / count), count


def channel_stats(t):
    """t: [B, n_kv, T, D]. Stats over tokens 1.. of each window (position 0 = BOS reported apart)."""
    a = t.float().abs()
    body = a[:, :, 1:]
    ch_max = body.amax(dim=(0, 2))    # [n_kv, D]
    ch_mean = body.mean(dim=(0, 2))   # [n_kv, D]
    D = ch_max.shape[1]
    top = torch.topk(ch_max.flatten(), 8)
    r = lambda v: round(float(v), 4)
    return {"max_channel_absmax": r(ch_max.max()), "median_channel_absmax": r(ch_max.median()),
            "absmax_ratio": r(ch_max.max() / ch_max.median()),
            "max_channel_meanabs": r(ch_mean.max()), "median_channel_meanabs": r(ch_mean.median()),
            "meanabs_ratio": r(ch_mean.max() / ch_mean.median()),
            "median_token_absmax": r(body.amax(dim=3).median()), "bos_absmax": r(a[:, :, 0].max()),
            "top_channels": [[int(i) // D, int(i) % D, r(v)] for v, i in zip(top.values, top.indices)],
            "channel_absmax": [[r(v) for v in row] for row in ch_max.tolist()],
            "channel_meanabs": [[r(v) for v in row] for row in ch_mean.tolist()]}


def key_stats(model, windows, n_layers):
    with torch.no_grad():
        x = torch.tensor(windows, device="cuda")
        cache = model(input_ids=x, use_cache=True).past_key_values
        # DynamicCache (transformers >= 4.56) holds post-RoPE K and V: [batch, n_kv_heads, seq, head_dim]
        layers = [{"layer": i, "k": channel_stats(L.keys), "v": channel_stats(L.values)}
                  for i, L in enumerate(cache.layers[:n_layers])]
    return {"what": "per-layer per-channel magnitudes of K after RoPE (and V), fp32 transformers forward "
                    "over held-out windows; channel = (kv_head, dim) in HF layout (RoPE pairs dim i with "
                    "i+64); stats over all tokens except each window's BOS; median = torch lower median "
                    "over the n_kv*head_dim channels; top_channels = [kv_head, dim, absmax]",
            "windows": len(windows), "window_tokens": len(windows[0]), "layers": layers}


# ------------------------------------------------------------------------------------------- main

DEFAULTS = dict(  # each key is a --flag (underscores become dashes); its type is the default's type
    budget_s=400.0, eval_reserve_s=50.0,  # whole run from interpreter start; the part kept for save+eval
    tokenize_deadline_s=150.0,            # stop encoding the corpus this long after start
    corpus_bytes=200_000_000, min_bytes=200, max_file_bytes=1_000_000,  # what is read
    heldout_pct=1.0, heldout_chars=400_000, prompts=320,                # held-out split and its files
    vocab=8192, tok_sample_chars=20_000_000,                            # tokenizer
    hidden=512, ffn=768, layers=6, heads=4, kv_heads=2, tie=1,          # model (head_dim is 128)
    rope_theta=500000.0, max_pos=4096,
    seq_len=1024, batch=32, lr=2e-3, min_lr_ratio=0.1, warmup_steps=100, weight_decay=0.1, clip=1.0,
    log_every=20, ppl_window=1024, ppl_max_windows=256, stats_windows=16,
    max_folder_bytes=34_000_000,  # the committed folder stays small: the repo travels to the GPU machine
    seed=1234)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--corpus-only", action="store_true", help="corpus discovery + held_out.txt, no torch")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (compile time counts)")
    for k, v in DEFAULTS.items():
        ap.add_argument("--" + k.replace("_", "-"), type=type(v), default=v, help=f"default {v}")
    args = ap.parse_args()
    args.tie = bool(args.tie)
    return args


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)


def evaluate(args, tok, held_text):
    """Reference numbers from the saved bf16 checkpoint, run by transformers in fp32 (eager attention)."""
    torch.set_float32_matmul_precision("highest")
    ref = transformers.LlamaForCausalLM.from_pretrained(
        args.out, dtype=torch.float32, attn_implementation="eager").to("cuda").eval()
    ids, W = tok.encode(held_text, add_special_tokens=False).ids, args.ppl_window
    windows = [[BOS] + ids[w * (W - 1):(w + 1) * (W - 1)]
               for w in range(min(len(ids) // (W - 1), args.ppl_max_windows))]
    ppl32, count = perplexity(ref, windows)
    log(f"held-out ppl fp32: {ppl32:.4f} over {count:,} tokens ({len(windows)} windows)")
    stats = key_stats(ref, windows[:args.stats_windows], ref.config.num_hidden_layers)
    write_json(os.path.join(args.out, "key_stats.json"), stats)
    for L in stats["layers"]:
        log(f"layer {L['layer']}: channel absmax max/median K " + " V ".join(
            f"{L[x]['max_channel_absmax']}/{L[x]['median_channel_absmax']}" for x in "kv"))
    ppl16, _ = perplexity(ref.to(torch.bfloat16), windows)
    log(f"held-out ppl with bf16 compute (sanity): {ppl16:.4f}")
    return {"ppl_fp32": round(ppl32, 5), "ppl_bf16_compute": round(ppl16, 5), "tokens_scored": count,
            "windows": len(windows), "held_out_tokens": len(ids),
            "protocol": f"ids = encode(held_out.txt, add_special_tokens=False); window w = [BOS] + "
                        f"ids[w*{W - 1}:(w+1)*{W - 1}], full windows only (at most {args.ppl_max_windows});"
                        f" all {W - 1} text tokens of each window scored; ppl = exp(sum NLL / count)"}


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    out = lambda name: os.path.join(args.out, name)
    timings = {}
    train_texts, heldout, cstats = load_corpus(args)
    segs = heldout_segments(heldout, args.heldout_chars)
    held_text = "\n".join(segs)
    open(out("held_out.txt"), "w", encoding="utf-8").write(held_text)
    cstats.update(held_out_txt_chars=len(held_text), held_out_txt_segments=len(segs))
    timings["corpus_s"] = round(time.time() - T0, 1)
    log("corpus:", json.dumps(cstats))
    if args.corpus_only:
        return write_json(out("corpus_stats.json"), cstats)

    import_heavy()
    log("torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tk.__version__,
        "on", torch.cuda.get_device_name())
    tok, sample_chars = train_tokenizer(train_texts, args.vocab, args.tok_sample_chars)
    vocab = tok.get_vocab_size()  # == --vocab: the 4 specials come first (ids 0-3), then bytes and merges
    save_tokenizer(tok, args.out, args.max_pos)
    prompts = make_prompts(tok, segs, args.prompts, args.seed)
    open(out("prompts.jsonl"), "w", encoding="utf-8").writelines(json.dumps(p) + "\n" for p in prompts)
    timings["tokenizer_s"] = round(time.time() - T0, 1)
    log(f"tokenizer: vocab {vocab}, trained on {sample_chars:,} chars; {len(prompts)} prompts")

    random.Random(args.seed).shuffle(train_texts)
    stream, docs_used = encode_corpus(tok, train_texts, T0 + args.tokenize_deadline_s)
    chars_per_token = sum(map(len, train_texts[:docs_used])) / stream.size
    tokens = torch.from_numpy(stream.astype(np.int32)).cuda()
    timings["encode_s"] = round(time.time() - T0, 1)
    log(f"corpus: {stream.size:,} tokens from {docs_used} docs ({chars_per_token:.2f} chars/token)")
    assert stream.size > 20 * args.batch * (args.seq_len + 1), "corpus too small for training"

    torch.set_float32_matmul_precision("high")  # TF32 for what autocast leaves in fp32
    model = build_model(args, vocab)
    if args.tie and model.lm_head.weight is not model.model.embed_tokens.weight:
        model.lm_head.weight = model.model.embed_tokens.weight
    tied = model.lm_head.weight is model.model.embed_tokens.weight
    n_params = sum(p.numel() for p in model.parameters())
    n_embed = model.model.embed_tokens.weight.numel() * (1 if tied else 2)
    log(f"model: {n_params:,} params ({n_params - n_embed:,} non-embedding), tied={tied}, "
        f"attention={getattr(model.config, '_attn_implementation', '?')}")
    if 2 * n_params > args.max_folder_bytes - 2_000_000:
        sys.exit(f"error: {n_params:,} bf16 params do not fit in {args.max_folder_bytes:,} bytes")

    deadline = T0 + args.budget_s - args.eval_reserve_s
    log(f"training for {deadline - time.time():.0f} s")
    tstats = train(model, tokens, args, deadline, vocab)
    timings["train_end_s"] = round(time.time() - T0, 1)
    epochs = tstats["tokens_seen"] / stream.size
    log(f"trained: {tstats['steps']} steps, {tstats['tokens_seen']:,} tokens ({epochs:.2f} epochs), "
        f"{tstats['tokens_per_s']:,} tok/s, final loss {tstats['final_loss']}")

    model.to(torch.bfloat16).save_pretrained(args.out, safe_serialization=True)
    transformers.GenerationConfig(bos_token_id=BOS, eos_token_id=[EOT, IM_END]).save_pretrained(args.out)
    del model, tokens
    torch.cuda.empty_cache()
    hf_files = [n for n in os.listdir(args.out) if n.endswith((".safetensors", ".json")) and
                n not in ("train_log.json", "key_stats.json", "corpus_stats.json")]
    folder_bytes = sum(os.path.getsize(out(n)) for n in hf_files)
    timings["saved_s"] = round(time.time() - T0, 1)
    log(f"saved {sorted(hf_files)}: {folder_bytes:,} bytes" +
        (f"  WARNING: over {args.max_folder_bytes:,}" if folder_bytes > args.max_folder_bytes else ""))

    report = {"versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                           "transformers": transformers.__version__, "tokenizers": tk.__version__},
              "device": torch.cuda.get_device_name(), "args": vars(args), "corpus": cstats,
              "tokenizer": {"vocab_size": vocab, "sample_chars": sample_chars},
              "data": {"corpus_tokens": int(stream.size), "docs_used": docs_used,
                       "chars_per_token": round(chars_per_token, 3), "epochs": round(epochs, 3)},
              "model": {"params": n_params, "non_embedding_params": n_params - n_embed, "tied": tied,
                        "hf_folder_bytes": folder_bytes, "trained_context": args.seq_len},
              "train": tstats, "prompts": len(prompts), "timings": timings}
    write_json(out("train_log.json"), report)  # written now so a failing eval loses nothing

    rc = 0
    try:
        report["held_out"] = evaluate(args, tok, held_text)
    except Exception:
        traceback.print_exc()
        report["eval_error"], rc = traceback.format_exc(), 1
    timings["total_s"] = round(time.time() - T0, 1)
    write_json(out("train_log.json"), report)
    log(f"done in {timings['total_s']} s: {sorted(os.listdir(args.out))}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
