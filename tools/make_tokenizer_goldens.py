#!/usr/bin/env python3
"""Golden token ids from Hugging Face `tokenizers` on the real Qwen3 and Llama-3.1 tokenizer files.

Run on the GPU machine (where `tokenizers` is installed), with the tokenizer folders copied next to the repo:
    python3 tools/make_tokenizer_goldens.py --tokenizers DIR --out tests/data/tokenizer/goldens.jsonl
DIR holds qwen3/tokenizer.json and llama3_1/tokenizer.json (../shared/tokenizers).
The corpus = hand-written edge cases + a few thousand lines of varied real text found on that machine
(Python sources, docstrings and documentation of installed packages), chosen with a fixed seed.
Each output line: {"text", "qwen3", "llama3_1"} (add_special_tokens=False) and, for every 10th line,
"qwen3_with_special"/"llama3_1_with_special" (add_special_tokens=True). The script also checks
decode(encode(x)) == x for each line and prints the lines where HF itself does not round-trip.
"""
import argparse
import glob
import json
import os
import random
import sys
import sysconfig

from tokenizers import Tokenizer

EDGE_CASES = [
    "", " ", "  ", "\t", "\n", "\n\n\n", "\r\n", "a\r\nb\r\n\r\nc", "   leading", "trailing   ", "a  b   c    d",
    "tabs\tand\t\tmore\ttabs", "mixed \t \n whitespace \n\n  end", "\u00a0non\u00a0breaking\u00a0space",
    "\u3000ideographic space", "I'm you're he's we've they'll I'd can't", "I'M YOU'RE HE'S WE'VE THEY'LL I'D",
    "You'Re We'Ve THEY'll", "don't DON'T Don'T", "'s 't 're 've 'm 'll 'd", "rock 'n' roll", "1", "12", "123",
    "1234", "12345", "1234567890", "3.14159265358979", "1,000,000", "0x1F 0b1010 1e-9", "2026-11-23T10:00:00Z",
    "phone: +1 (555) 123-4567", "Hello world", "Hello, world!", " Hello", "hello   world", "HELLO WORLD",
    "你好，世界", "我爱自然语言处理。今天天气很好！", "日本語のテキストです。カタカナとひらがな。", "한국어 문장입니다.",
    "Привет, мир! Как дела?", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Ελληνικά γράμματα",
    "emoji 😀😃😄 end", "family 👨‍👩‍👧‍👦 zwj", "flags 🇺🇸🇯🇵", "skin tone 👍🏽", "heart ❤️ variation",
    "e\u0301 combining acute", "A\u030a Angstrom", "Cafe\u0301 vs Café", "\u1100\u1161\u11a8 jamo", "ﬁ ligature",
    "ｆｕｌｌｗｉｄｔｈ", "control\x00chars\x01\x02\x1f\x7f", "bell\x07 and escape\x1b[0m", "zero\u200bwidth",
    "bidi \u202emark\u202c", "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", "<|endoftext|>",
    "not special <|im_start and <| im_end |>", "<think>\nreasoning\n</think>\n\nanswer", "a" * 1000,
    "ab" * 500, " " * 300, "\n" * 50, "1" * 200, "😀" * 100, "the " * 300, "=" * 120, "-" * 80 + "\n",
    "def f(x):\n    return x ** 2  # square\n", "    indented\n        more\n\tTab", "if (a && b) { c++; }",
    "SELECT * FROM users WHERE id = 42;", "<html><body class=\"x\">Hi &amp; bye</body></html>",
    "https://example.com/path?q=1&r=two#frag", "user@example.com", "C:\\Windows\\System32",
    "$HOME/.config/app.json", "x=1;y=2;z=x+y", "¡Hola! ¿Qué tal?", "naïve façade coöperate", "Straße ß ẞ",
    "İstanbul ı i", "ǅ titlecase", "½ ⅓ ¼ ² ³ µ", "∀x∈ℝ: x²≥0", "→ ← ↑ ↓ ⇒", "™ © ®", "\ufeffBOM start",
    "\ud7ff\ue000\uffff", "last line without newline",
]


def real_lines(rng, n_lines):
    roots = {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]}
    files = []
    for r in sorted(roots):
        for ext in ("py", "md", "rst", "txt"):
            files += glob.glob(os.path.join(r, "**", f"*.{ext}"), recursive=True)
    files.sort()
    rng.shuffle(files)
    out = []
    for f in files:
        if len(out) >= n_lines:
            break
        try:
            lines = open(f, encoding="utf-8").read().splitlines(keepends=True)
        except (UnicodeDecodeError, OSError):
            continue
        if not lines:
            continue
        for _ in range(2):
            i = rng.randrange(len(lines))
            k = rng.choice([1, 1, 1, 2, 3, 5, 8])
            chunk = "".join(lines[i:i + k])
            if rng.random() < 0.1:
                chunk = chunk.replace("\n", "\r\n")
            if chunk.strip() and len(chunk) < 4000:
                out.append(chunk)
    return out[:n_lines]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizers", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--lines", type=int, default=3000)
    ap.add_argument("--corpus-out", default=None, help="also write the corpus as one text file (speed test)")
    args = ap.parse_args()
    rng = random.Random(20261123)
    texts = EDGE_CASES + real_lines(rng, args.lines)
    toks = {name: Tokenizer.from_file(os.path.join(args.tokenizers, name, "tokenizer.json"))
            for name in ("qwen3", "llama3_1")}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    bad = 0
    with open(args.out, "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            row = {"text": t}
            for name, tok in toks.items():
                ids = tok.encode(t, add_special_tokens=False).ids
                row[name] = ids
                if tok.decode(ids, skip_special_tokens=False) != t:
                    bad += 1
                    print(f"HF does not round-trip line {i} with {name}: {t[:60]!r}", file=sys.stderr)
                if i % 10 == 0:
                    row[name + "_with_special"] = tok.encode(t, add_special_tokens=True).ids
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    if args.corpus_out:
        with open(args.corpus_out, "w", encoding="utf-8") as f:
            f.write("\n".join(texts))
    print(f"{len(texts)} lines -> {args.out} ({os.path.getsize(args.out)} bytes); {bad} HF round-trip failures")


if __name__ == "__main__":
    main()
