#!/usr/bin/env python3
"""docs/quality.md's tables from `densekv eval --json` lines and `densekv capacity --json`.

Usage: python3 tools/quality_table.py EVAL.jsonl CAPACITY.json
(CAPACITY.json: `densekv capacity MODEL_DIR --memory-gb 1 --json`, for the density column.)
Prints a markdown table, one row per format (16-bit first, then by density). Stdlib only.
"""
import json
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    density = {c["kv_cache_dtype"]: c["ratio_vs_16bit"] for c in json.load(open(sys.argv[2]))}
    base = rows[0]["baseline"]
    density.setdefault("fp16", 1.0)
    density.setdefault(base, 1.0)
    rows.sort(key=lambda r: density[r["kv_cache_dtype"]])
    # reference_match (against the 16-bit greedy decode's tokens): runs before it was reported
    # lack it (on the CPU it equals greedy_match).
    ref = all("reference_match" in r for r in rows)
    print(f"| `--kv-cache-dtype` | density | ppl | ppl_16bit ({base}) | ppl delta | greedy_match "
          + ("| reference_match " if ref else "") + "| first_divergence_mean | seconds |")
    print("|---|---|---|---|---|---|---|---|" + ("---|" if ref else ""))
    for r in rows:
        f = r["kv_cache_dtype"]
        delta = (r["ppl"] / r["ppl_16bit"] - 1) * 100
        print(f"| `{f}` | {density[f]:.2f}x | {r['ppl']:.4f} | {r['ppl_16bit']:.4f} | {delta:+.2f}% "
              f"| {r['greedy_match']:.4f} "
              + (f"| {r['reference_match']:.4f} " if ref else "")
              + f"| {r['first_divergence_mean']:.1f} | {r.get('seconds', 0):.0f} |")


if __name__ == "__main__":
    main()
