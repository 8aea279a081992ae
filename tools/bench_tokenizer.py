#!/usr/bin/env python3
"""Tokenizer encode speed, densekv vs Hugging Face `tokenizers`, side by side on one machine.

Run on the GPU machine (it has `tokenizers`):
  python3 tools/bench_tokenizer.py --densekv build/densekv --tokenizers DIR [--mb 8] --out OUT.json
The corpus is the golden lines of tests/data/tokenizer/goldens.jsonl plus real English text and code
from the Python installation (sorted *.py / *.md / *.rst / *.txt files up to --mb MB). Both sides encode
the same bytes as one string on one thread (RAYON_NUM_THREADS=1), warm cache (best of --passes after a
first pass), no special tokens added; HF is also timed on the same bytes as separate documents
(encode_batch, one thread), its faster mode. The ids must also be identical (checked, reported).
"""
import argparse, json, os, re, subprocess, sys, sysconfig, time
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer  # noqa: E402


def corpus(root: Path, mb: float) -> str:
    parts = [json.loads(l)["text"] for l in open(root / "tests/data/tokenizer/goldens.jsonl", encoding="utf-8")]
    budget = int(mb * 1e6)
    size = sum(len(p.encode()) for p in parts)
    for base in sorted({sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]}):
        for path in sorted(Path(base).rglob("*")):
            if size >= budget:
                break
            if path.suffix not in (".py", ".md", ".rst", ".txt") or not path.is_file():
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            if len(text) > 200_000:
                continue
            parts.append(text)
            size += len(text.encode())
    return parts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--densekv", required=True)
    ap.add_argument("--tokenizers", required=True, help="folder with one sub-folder per tokenizer")
    ap.add_argument("--mb", type=float, default=8)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    root = Path(__file__).resolve().parent.parent
    parts = corpus(root, a.mb)
    text = "\n".join(parts)
    cpath = Path(a.out).with_suffix(".corpus.txt")
    cpath.write_text(text, encoding="utf-8")
    nbytes = len(text.encode())
    results = []
    for tdir in sorted(p for p in Path(a.tokenizers).iterdir() if (p / "tokenizer.json").exists()):
        tok = Tokenizer.from_file(str(tdir / "tokenizer.json"))
        t0 = time.perf_counter()
        hf_ids = tok.encode(text, add_special_tokens=False).ids
        hf_first = time.perf_counter() - t0
        hf_best = min(timed(lambda: tok.encode(text, add_special_tokens=False)) for _ in range(a.passes))
        # The same bytes as separate documents (encode_batch on one thread): HF's usual use.
        hf_docs = min(timed(lambda: tok.encode_batch(parts, add_special_tokens=False)) for _ in range(a.passes))
        out = subprocess.run([a.densekv, "tokenize", str(tdir), "--text-file", str(cpath), "--bench",
                              str(a.passes + 1)], capture_output=True, text=True, check=True).stdout
        warm = float(re.search(r"passes \(warm cache\): ([0-9.]+) s each", out).group(1))
        first = float(re.search(r"first pass \(cold cache\): ([0-9.]+) s", out).group(1))
        ids = subprocess.run([a.densekv, "tokenize", str(tdir), "--text-file", str(cpath), "--json"],
                             capture_output=True, text=True, check=True).stdout
        same = json.loads(ids) == hf_ids
        r = dict(tokenizer=tdir.name, bytes=nbytes, tokens=len(hf_ids), ids_identical=same,
                 hf_first_s=hf_first, hf_warm_s=hf_best, densekv_first_s=first, densekv_warm_s=warm,
                 hf_docs_warm_s=hf_docs, hf_docs_mb_s=nbytes / 1e6 / hf_docs,
                 speedup_vs_hf_docs=hf_docs / warm, hf_mb_s=nbytes / 1e6 / hf_best, densekv_mb_s=nbytes / 1e6 / warm,
                 speedup_warm=hf_best / warm, speedup_first=hf_first / first)
        print(json.dumps(r))
        results.append(r)
    Path(a.out).write_text(json.dumps(results, indent=1))
    cpath.unlink()
    sys.exit(0 if all(r["ids_identical"] for r in results) else 1)


def timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
