#!/usr/bin/env python3
"""The kernels of one decode step from `ncu --csv --metrics gpu__time_duration.sum --print-units
base` over an eager run (densekv ... --enforce-eager): those between the last two argmax
launches, summed by kernel name, longest first.

  python3 bench/ncu_step_summary.py NCU_CSV
"""
import collections
import csv
import sys


def main(path):
    rows = csv.DictReader(line for line in open(path) if line.startswith('"'))
    ks = [(r["Kernel Name"], float(r["Metric Value"].replace(",", ""))) for r in rows
          if r.get("Metric Name") == "gpu__time_duration.sum"]
    ends = [i for i, (n, _) in enumerate(ks) if "argmax_rows" in n or "argmax_kernel" in n]
    if len(ends) < 2:
        sys.exit("ncu_step_summary: fewer than two argmax launches in " + path)
    step = ks[ends[-2] + 1:ends[-1] + 1]
    total = sum(t for _, t in step)
    by = collections.defaultdict(lambda: [0, 0.0])
    for name, t in step:
        short = name.split("(")[0][:90]
        by[short][0] += 1
        by[short][1] += t
    print(f"step: {len(step)} kernels, {total / 1e3:.1f} us")
    for name, (count, t) in sorted(by.items(), key=lambda x: -x[1][1]):
        print(f"{t / 1e3:9.1f} us {100 * t / total:5.1f}% {count:4d}x {name}")


if __name__ == "__main__":
    main(sys.argv[1])
