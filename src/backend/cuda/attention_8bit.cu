// Paged attention instantiations: 8-bit caches (fp8_e4m3, int8), per-token scales.
#include "backend/cuda/prefill_attention_mma.cuh"

namespace densekv::cuda {

void launch_attention_8bit(KvFormat f, AttnKernel k, const AttnArgs& a, int head_dim, int n,
                           cudaStream_t stream, int* blocks_per_sm) {
  if (f == KvFormat::FP8_E4M3) {
    launch_attention_kernel<QuantFormat<Fp8Coding, Fp8Coding>, MmaQuant<Fp8Frag, Fp8Frag>>(
        k, a, head_dim, n, stream, blocks_per_sm);
  } else {
    CHECK(f == KvFormat::INT8);
    launch_attention_kernel<QuantFormat<Int8Coding, Int8Coding>, MmaQuant<Int8Frag, Int8Frag>>(
        k, a, head_dim, n, stream, blocks_per_sm);
  }
}

}  // namespace densekv::cuda
