// Paged attention instantiations: 16-bit caches (bf16, fp16).
#include "backend/cuda/paged_attention_mma.cuh"

namespace densekv::cuda {

void launch_attention_plain(KvFormat f, const AttnArgs& a, int head_dim, int n_tokens,
                            cudaStream_t stream) {
  const bool simt = use_simt_attention();
  if (f == KvFormat::BF16) {
    if (simt)
      return launch_paged_attention<PlainFormat<__nv_bfloat16>>(a, head_dim, n_tokens, stream);
    launch_paged_attention_mma<MmaPlain<__nv_bfloat16>>(a, head_dim, n_tokens, stream);
  } else {
    CHECK(f == KvFormat::F16);
    if (simt) return launch_paged_attention<PlainFormat<__half>>(a, head_dim, n_tokens, stream);
    launch_paged_attention_mma<MmaPlain<__half>>(a, head_dim, n_tokens, stream);
  }
}

}  // namespace densekv::cuda
