"""Reference for bench/attention_bench: torch SDPA decode attention (bf16, one query token per
sequence, GQA) at the same shapes, timed as attention_bench times ours: >= 20 calls over copies
of K/V that hold >= 256 MB together (no call finds its KV in L2) replayed as one CUDA graph,
median of 5 replays, per call (time_us); the same calls launched back to back (stream_us); and
the median single call from an idle stream (call_us; CUDA events). Run on the GPU machine:
    python3 bench/torch_decode_bench.py [--json FILE] [--gqa 32/8,28/4] [--batches 1,16,64,256]
        [--ctxs 1024,4096,16384,32768] [--backends default,flash,efficient,cudnn]
--backends times each named SDPA backend (torch.nn.attention.sdpa_kernel) as its own row; one
that refuses a shape is reported and skipped. K/V are dense [batch, kv_heads, ctx + 32, 128]
tensors (no paging), so this is the bandwidth a contiguous flash decode reaches."""
import argparse
import json
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION}


def median_ms(fn, iters=20, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def back_to_back_ms(fn, calls):
    def run():
        for _ in range(calls):
            fn()

    return median_ms(run, iters=5, warmup=1) / calls


def int_list(text):
    return [int(x) for x in text.split(",")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="also write one json object per row to this file")
    ap.add_argument("--gqa", default="32/8,28/4", help="query/kv heads pairs, e.g. 32/8,28/4")
    ap.add_argument("--batches", type=int_list, default=[1, 16, 64, 256])
    ap.add_argument("--ctxs", type=int_list, default=[1024, 4096, 16384, 32768])
    ap.add_argument("--backends", default="default",
                    help="comma list of default (torch's choice), " + ", ".join(BACKENDS))
    args = ap.parse_args()
    gqa = [tuple(int(x) for x in g.split("/")) for g in args.gqa.split(",")]
    backends = args.backends.split(",")
    for b in backends:
        if b != "default" and b not in BACKENDS:
            sys.exit(f"--backends: unknown backend '{b}' (default, {', '.join(BACKENDS)})")
    out = open(args.json, "w") if args.json else None
    hd = 128
    print(f"{'gqa':6} {'batch':>5} {'ctx':>6} {'time_us':>10} {'GB/s':>8} {'stream_us':>10} "
          f"{'call_us':>10} backend")
    for heads, kv in gqa:
        for batch in args.batches:
            for ctx in args.ctxs:
                for backend in backends:
                    row = time_shape(heads, kv, batch, ctx, hd, backend)
                    if row is None:
                        continue
                    print(f"{heads}/{kv:<4} {batch:5} {ctx:6} {row['time_us']:10.1f} "
                          f"{row['gbs']:8.0f} {row['stream_us']:10.1f} {row['call_us']:10.1f} "
                          f"{backend}", flush=True)
                    if out:
                        out.write(json.dumps(row) + "\n")


def time_shape(heads, kv, batch, ctx, hd, backend):
    n = ctx + 32
    nbytes = 2 * batch * kv * n * hd * 2
    copies = min(64, max(1, -(-256_000_000 // nbytes)))
    q = torch.randn(batch, heads, 1, hd, device="cuda", dtype=torch.bfloat16)
    k = [torch.randn(batch, kv, n, hd, device="cuda", dtype=torch.bfloat16)
         for _ in range(copies)]
    v = [torch.randn_like(x) for x in k]
    nxt = [0]

    def sdpa(i):
        F.scaled_dot_product_attention(q, k[i], v[i], enable_gqa=True)

    def call():
        i = nxt[0]
        nxt[0] = (i + 1) % copies
        if backend == "default":
            sdpa(i)
        else:
            with sdpa_kernel(BACKENDS[backend]):
                sdpa(i)

    try:
        call()
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"{heads}/{kv:<4} {batch:5} {ctx:6} backend {backend} refused: {first[:120]}")
        return None
    calls = max(20, copies)
    stream_ms = back_to_back_ms(call, calls)
    call_ms = median_ms(call)
    side = torch.cuda.Stream()  # warm-up off the capture stream, as torch asks
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            call()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            call()
    ms = back_to_back_ms(graph.replay, 1) / calls
    row = dict(heads=heads, kv_heads=kv, batch=batch, ctx=ctx, backend=backend,
               time_us=ms * 1e3, stream_us=stream_ms * 1e3, call_us=call_ms * 1e3,
               bytes=nbytes, gbs=nbytes / (ms * 1e-3) / 1e9)
    del graph, q, k, v
    torch.cuda.empty_cache()
    return row


if __name__ == "__main__":
    main()
