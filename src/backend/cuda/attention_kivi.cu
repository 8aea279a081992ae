// Paged attention instantiations: KIVI-style caches (int4_kivi, int2_kivi, k4v2): keys per channel,
// values per token group; k4v2 rotates q in and the output back (Hadamard).
#include "backend/cuda/prefill_attention_mma.cuh"

namespace densekv::cuda {

namespace {
template <int HD>
using K4 = PerChannelCoding<4, HD>;
template <int HD>
using K2 = PerChannelCoding<2, HD>;
template <int HD>
using V4G64 = PerTokenGroupCoding<4, 64, HD>;
template <int HD>
using V2G32 = PerTokenGroupCoding<2, 32, HD>;
template <int HD>
using V2G64 = PerTokenGroupCoding<2, 64, HD>;

template <int HD>
using MK4 = PerChannelFrag<4, HD>;
template <int HD>
using MK2 = PerChannelFrag<2, HD>;
template <int HD>
using MV4G64 = PerTokenGroupFrag<4, 64, HD>;
template <int HD>
using MV2G32 = PerTokenGroupFrag<2, 32, HD>;
template <int HD>
using MV2G64 = PerTokenGroupFrag<2, 64, HD>;
}  // namespace

void launch_attention_kivi(KvFormat f, AttnKernel k, const AttnArgs& a, int head_dim, int n,
                           cudaStream_t stream, int* blocks_per_sm) {
  switch (f) {
    case KvFormat::INT4_KIVI:
      return launch_attention_kernel<QuantFormat<K4, V4G64>, MmaQuant<MK4, MV4G64>>(
          k, a, head_dim, n, stream, blocks_per_sm);
    case KvFormat::INT2_KIVI:
      return launch_attention_kernel<QuantFormat<K2, V2G32>, MmaQuant<MK2, MV2G32>>(
          k, a, head_dim, n, stream, blocks_per_sm);
    case KvFormat::K4V2:
      return launch_attention_kernel<QuantFormat<K4, V2G64>, MmaQuant<MK4, MV2G64>>(
          k, a, head_dim, n, stream, blocks_per_sm);
    default:
      CHECK(false);
  }
}

}  // namespace densekv::cuda
