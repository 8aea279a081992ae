// Paged attention instantiations: 16-bit caches (bf16, fp16).
#include "backend/cuda/prefill_attention_mma.cuh"

namespace densekv::cuda {

void launch_attention_plain(KvFormat f, AttnKernel k, const AttnArgs& a, int head_dim, int n,
                            cudaStream_t stream, int* blocks_per_sm) {
  if (f == KvFormat::BF16) {
    launch_attention_kernel<PlainFormat<__nv_bfloat16>, MmaPlain<__nv_bfloat16>>(
        k, a, head_dim, n, stream, blocks_per_sm);
  } else {
    CHECK(f == KvFormat::F16);
    launch_attention_kernel<PlainFormat<__half>, MmaPlain<__half>>(k, a, head_dim, n, stream,
                                                                   blocks_per_sm);
  }
}

}  // namespace densekv::cuda
