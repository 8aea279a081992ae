"""Reference for bench/attention_bench: torch SDPA decode attention (bf16, one query token per
sequence, GQA) at the same shapes, timed as attention_bench times ours: >= 20 calls over copies
of K/V that hold >= 256 MB together (no call finds its KV in L2) replayed as one CUDA graph,
median of 5 replays, per call (time_us); the same calls launched back to back (stream_us); and
the median single call from an idle stream (call_us; CUDA events). Run on the GPU machine:
    python3 bench/torch_decode_bench.py [--json FILE]
K/V are dense [batch, kv_heads, ctx + 32, 128] tensors (no paging), so this is the bandwidth
a contiguous flash decode reaches."""
import json
import sys

import torch
import torch.nn.functional as F


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


def main():
    out = None
    if "--json" in sys.argv:
        out = open(sys.argv[sys.argv.index("--json") + 1], "w")
    hd = 128
    print(f"{'gqa':6} {'batch':>5} {'ctx':>6} {'time_us':>10} {'GB/s':>8} {'stream_us':>10} "
          f"{'call_us':>10}")
    for heads, kv in [(32, 8), (28, 4)]:
        for batch in [1, 16, 64, 256]:
            for ctx in [1024, 4096, 16384, 32768]:
                n = ctx + 32
                nbytes = 2 * batch * kv * n * hd * 2
                copies = min(64, max(1, -(-256_000_000 // nbytes)))
                q = torch.randn(batch, heads, 1, hd, device="cuda", dtype=torch.bfloat16)
                k = [torch.randn(batch, kv, n, hd, device="cuda", dtype=torch.bfloat16)
                     for _ in range(copies)]
                v = [torch.randn_like(x) for x in k]
                nxt = [0]

                def call():
                    i = nxt[0]
                    nxt[0] = (i + 1) % copies
                    F.scaled_dot_product_attention(q, k[i], v[i], enable_gqa=True)

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
                gbs = nbytes / (ms * 1e-3) / 1e9
                print(f"{heads}/{kv:<4} {batch:5} {ctx:6} {ms * 1e3:10.1f} {gbs:8.0f} "
                      f"{stream_ms * 1e3:10.1f} {call_ms * 1e3:10.1f}")
                if out:
                    out.write(json.dumps(dict(heads=heads, kv_heads=kv, batch=batch, ctx=ctx,
                                              time_us=ms * 1e3, stream_us=stream_ms * 1e3,
                                              call_us=call_ms * 1e3, gbs=gbs)) + "\n")
                del graph
                del q, k, v
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
