#!/usr/bin/env python3
"""Markdown table of decode attention from `attention_bench --json` and bench/torch_decode_bench.py.

  python3 tools/attention_table.py ATTENTION_JSON [TORCH_TXT]

Cells: time per call with the calls replayed as a CUDA graph, in microseconds (fraction of the
measured device-to-device copy bandwidth); then, per shape, int4_kivi / bf16 time and bf16 / torch
time, the ratios the CUDA issue sets targets on, int4_kivi as a fraction of a plain streaming read
of the same bytes (read_us / time; in parentheses the read's own fraction of the copy bandwidth:
the roofline of one launch of that size), and bf16 / torch for calls launched back to back on the
stream and for single calls from an idle stream.
"""
import json
import sys


def main():
    rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
    torch = {}
    if len(sys.argv) > 2:
        for line in open(sys.argv[2]):
            f = line.split()
            # rows: gqa batch ctx time_us GB/s stream_us call_us [backend]; torch's own choice
            if len(f) in (7, 8) and "/" in f[0] and f[7:] in ([], ["default"]):
                torch[(f[0], int(f[1]), int(f[2]))] = (float(f[3]), float(f[5]), float(f[6]))
    formats = list(dict.fromkeys(r["format"] for r in rows))
    cell = {}
    for r in rows:
        key = (f"{r['heads']}/{r['kv_heads']}", r["batch"], r["ctx"])
        cell[key, r["format"]] = r
    shapes = list(dict.fromkeys(k for k, _ in cell))
    head = ["gqa", "batch", "ctx"] + (["torch SDPA (bf16)"] if torch else []) + formats
    read = any("read_us" in r for r in rows)
    head += ["int4 / bf16"] + (["int4 of read"] if read else [])
    head += ["bf16 / torch", "stream", "single call"] if torch else []
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for s in shapes:
        out = [s[0], str(s[1]), f"{s[2] // 1024}k"]
        bf = cell.get((s, "bf16"))
        if torch:
            t = torch.get(s)
            out.append(f"{t[0]:.0f}" if t else "")
        for f in formats:
            r = cell.get((s, f))
            out.append(f"{r['time_us']:.0f} ({r['gbs'] / r['copy_gbs']:.2f})" if r else "")
        i4 = cell.get((s, "int4_kivi"))
        out.append(f"{i4['time_us'] / bf['time_us']:.2f}x" if i4 and bf else "")
        if read:
            ok = i4 and "read_us" in i4
            rf = i4["bytes"] / (i4["read_us"] * 1e3) / i4["copy_gbs"] if ok else 0
            out.append(f"{i4['read_us'] / i4['time_us']:.2f} ({rf:.2f})" if ok else "")
        if torch:
            t = torch.get(s)
            out.append(f"{bf['time_us'] / t[0]:.2f}x" if bf and t else "")
            out.append(f"{bf['stream_us'] / t[1]:.2f}x" if bf and t else "")
            out.append(f"{bf['call_us'] / t[2]:.2f}x" if bf and t else "")
        print("| " + " | ".join(out) + " |")


if __name__ == "__main__":
    main()
