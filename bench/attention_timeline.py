#!/usr/bin/env python3
"""Per-phase timeline of decode attention launches, from the per-block timestamps that
attention_bench --trace FILE writes when built with bench/attention_diag.patch applied:

  git apply bench/attention_diag.patch && cmake --build build --target attention_bench
  build/attention_bench --formats int4_kivi --kv-heads 4 --batches 16,64 --ctxs 4096 --trace T.txt
  python3 bench/attention_timeline.py T.txt
  git apply -R bench/attention_diag.patch

(The patch also lets DENSEKV_SPLITS=N override the split count.) The traced call is the last of
six back to back. Each line of FILE: A|M format kv_heads batch ctx block t0..t7 with, for an
attention block (A), %globaltimer ns at: entry, after griddepcontrol.wait, first tile ready (the
first pair of tiles for the 4- and 2-bit codings), end
of the sealed tiles, end of the 16-bit tail, end; then the SM and the sealed tiles (+100000 when
the block also attends the tail). A merge block (M): entry, after the wait, end, SM. Printed in
microseconds from the first attention block's entry, p50 / p90 over blocks; "SM spread": per SM,
the last minus the first end of the sealed tiles among its blocks (p50 over SMs), and the latest
such end on SMs that held fewer blocks than the fullest SMs.

Then, per SM: its blocks' mean time per sealed tile over the launch's mean (SMs holding the most
blocks, launches of >= 256k tokens), the correlation of that speed between launches, and the SMs
that are faster than the rest by more than 3% (session 19: a fixed set of 26 of the H100's 132);
and per placement rank on the SM (its blocks in the order they entered), when the sealed tiles
ended (p10/p50/p90).
"""
import collections
import sys


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))] if v else 0.0


def main(paths):
    shapes = collections.OrderedDict()
    for path in paths:
        for line in open(path):
            p = line.split()
            key = (p[1], int(p[2]), int(p[3]), int(p[4]))
            shapes.setdefault(key, {"A": [], "M": []})[p[0]].append([int(x) for x in p[6:14]])
    print("format    kv batch   ctx blocks tiles | first-tile  per-tile | tail(owners) | epilogue "
          "| sealed-end p50/max | SM spread, fewer-block SMs | attn-end | merge-end")
    for (fmt, kv, batch, ctx), d in shapes.items():
        a, m = d["A"], d["M"]
        z = min(r[0] for r in a)
        us = lambda ns: ns / 1000.0
        tiles = [r[7] % 100000 for r in a]
        first = [us(r[2] - r[1]) for r in a if r[2]]
        per = [us(r[3] - r[2]) / (t - 1) for r, t in zip(a, tiles) if r[2] and t > 1]
        tail = [us(r[4] - r[3]) for r in a if r[7] >= 100000]
        epi = [us(r[5] - r[4]) for r in a]
        sealed_end = [us(r[3] - z) for r in a]
        by_sm = collections.defaultdict(list)
        for r in a:
            by_sm[r[6]].append(us(r[3] - z))
        full = max(len(v) for v in by_sm.values())
        spread = [max(v) - min(v) for v in by_sm.values()]
        fewer = [max(v) for v in by_sm.values() if len(v) < full]
        fewer_end = f"{max(fewer):7.1f}" if fewer else "      -"
        end = max(us(r[5] - z) for r in a)
        merge = f"{max(us(r[2] - z) for r in m):8.1f}" if m else "       -"
        print(f"{fmt:9s} {kv:2d} {batch:5d} {ctx:5d} {len(a):6d} {min(tiles):2d}-{max(tiles):<3d}"
              f"| {pct(first, .5):4.1f}/{pct(first, .9):4.1f} {pct(per, .5):5.2f}/{pct(per, .9):4.2f}"
              f" | {pct(tail, .5):4.1f}/{pct(tail, .9):4.1f} ({len(tail):4d})"
              f" | {pct(epi, .5):4.1f}/{pct(epi, .9):4.1f}"
              f" | {pct(sealed_end, .5):7.1f}/{max(sealed_end):7.1f}"
              f" | {pct(spread, .5):6.1f} {fewer_end} | {end:8.1f} | {merge}")


def corr(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sx = sum((a - mx) ** 2 for a in x) ** 0.5
    sy = sum((b - my) ** 2 for b in y) ** 0.5
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / (sx * sy) if sx and sy else 0.0


def sm_speeds(paths):
    """Relative time per sealed tile of each SM (its blocks' mean over the launch's), per launch."""
    speeds = collections.OrderedDict()
    for path in paths:
        for line in open(path):
            p = line.split()
            if p[0] != "A" or int(p[3]) * int(p[4]) < 256 * 1024:
                continue
            speeds.setdefault((p[1], int(p[2]), int(p[3]), int(p[4])), []).append(
                [int(x) for x in p[6:14]])
    out = collections.OrderedDict()
    for key, a in speeds.items():
        by_sm = collections.defaultdict(list)
        for r in a:
            t = r[7] % 100000
            if r[2] and t > 1:
                by_sm[r[6]].append((r[3] - r[2]) / (t - 1))
        full = max(len(v) for v in by_sm.values())
        per = {sm: sum(v) / len(v) for sm, v in by_sm.items() if len(v) == full}
        mean = sum(per.values()) / len(per)
        out[key] = {sm: v / mean for sm, v in per.items()}
    return out


def print_sm_speeds(paths):
    speeds = sm_speeds(paths)
    if len(speeds) < 2:
        return
    keys = list(speeds)
    cs = []
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            common = sorted(set(speeds[keys[i]]) & set(speeds[keys[j]]))
            cs.append(corr([speeds[keys[i]][s] for s in common],
                           [speeds[keys[j]][s] for s in common]))
    cs.sort()
    mean = collections.defaultdict(list)
    for sp in speeds.values():
        for sm, v in sp.items():
            mean[sm].append(v)
    rel = {sm: sum(v) / len(v) for sm, v in mean.items()}
    fast = sorted(sm for sm, v in rel.items() if v < 0.97)
    rest = [v for sm, v in rel.items() if v >= 0.97]
    print(f"\nSM speed over {len(keys)} launches of >= 256k tokens: correlation between launches "
          f"min {cs[0]:.2f} p50 {cs[len(cs) // 2]:.2f} max {cs[-1]:.2f}; {len(fast)} SMs take "
          f"{sum(rel[s] for s in fast) / max(1, len(fast)):.3f} of the mean time per tile, the "
          f"other {len(rest)} {sum(rest) / max(1, len(rest)):.3f}; the fast SMs: "
          + " ".join(str(s) for s in fast))


def print_ranks(paths):
    print("\nsealed-tile end by placement rank on the SM (SMs holding the most blocks), us p10/p50/p90:")
    shapes = collections.OrderedDict()
    for path in paths:
        for line in open(path):
            p = line.split()
            if p[0] == "A":
                shapes.setdefault((p[1], int(p[2]), int(p[3]), int(p[4])), []).append(
                    [int(x) for x in p[6:14]])
    for (fmt, kv, batch, ctx), a in shapes.items():
        z = min(r[0] for r in a)
        by_sm = collections.defaultdict(list)
        for r in a:
            by_sm[r[6]].append(r)
        full = max(len(v) for v in by_sm.values())
        if full > 4:
            continue  # more than one wave
        ends = collections.defaultdict(list)
        for v in by_sm.values():
            if len(v) == full:
                for k, r in enumerate(sorted(v, key=lambda r: r[0])):
                    ends[k].append((r[3] - z) / 1000.0)
        cells = [f"{pct(e, .1):.1f}/{pct(e, .5):.1f}/{pct(e, .9):.1f}" for _, e in sorted(ends.items())]
        print(f"{fmt:9s} {kv:2d} {batch:5d} {ctx:5d}  " + "  ".join(cells))


if __name__ == "__main__":
    main(sys.argv[1:])
    print_sm_speeds(sys.argv[1:])
    print_ranks(sys.argv[1:])
