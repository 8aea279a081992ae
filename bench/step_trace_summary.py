#!/usr/bin/env python3
"""Summarizes a DENSEKV_STEP_TRACE file (one line per engine step, written by LlmEngine):
step chunks tokens decode_rows context gap_us schedule_us forward_us wait_us commit_us.
Decode-only steps (every chunk one token) and steps with prefill chunks are shown apart."""
import statistics
import sys


def summary(name, rows):
    if not rows:
        return
    cols = ["gap", "schedule", "forward", "wait", "commit"]
    total = sum(sum(r[5:10]) for r in rows) / 1e6
    med = {c: statistics.median(r[5 + i] for r in rows) for i, c in enumerate(cols)}
    tot = {c: sum(r[5 + i] for r in rows) / 1e6 for i, c in enumerate(cols)}
    print(f"{name}: {len(rows)} steps, {total:.3f} s; median rows {statistics.median(r[1] for r in rows)}, "
          f"tokens {statistics.median(r[2] for r in rows)}, context {statistics.median(r[4] for r in rows)}")
    print("  median us: " + ", ".join(f"{c} {med[c]:.0f}" for c in cols) +
          f"; step {statistics.median(sum(r[5:10]) for r in rows):.0f}")
    print("  total s:   " + ", ".join(f"{c} {tot[c]:.3f}" for c in cols))


def main():
    rows = [list(map(int, line.split())) for line in open(sys.argv[1]) if line.strip()]
    summary("all", rows)
    summary("decode only", [r for r in rows if r[3] == r[1]])
    summary("with prefill", [r for r in rows if r[3] != r[1]])


if __name__ == "__main__":
    main()
