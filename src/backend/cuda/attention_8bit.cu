// Paged attention instantiations: 8-bit caches (fp8_e4m3, int8), per-token scales.
#include "backend/cuda/paged_attention_mma.cuh"

namespace densekv::cuda {

void launch_attention_8bit(KvFormat f, const AttnArgs& a, int head_dim, int n_tokens,
                           cudaStream_t stream) {
  const bool simt = use_simt_attention();
  if (f == KvFormat::FP8_E4M3) {
    if (simt) {
      return launch_paged_attention<QuantFormat<Fp8Coding, Fp8Coding>>(a, head_dim, n_tokens,
                                                                       stream);
    }
    launch_paged_attention_mma<MmaQuant<Fp8Frag, Fp8Frag>>(a, head_dim, n_tokens, stream);
  } else {
    CHECK(f == KvFormat::INT8);
    if (simt) {
      return launch_paged_attention<QuantFormat<Int8Coding, Int8Coding>>(a, head_dim, n_tokens,
                                                                         stream);
    }
    launch_paged_attention_mma<MmaQuant<Int8Frag, Int8Frag>>(a, head_dim, n_tokens, stream);
  }
}

}  // namespace densekv::cuda
