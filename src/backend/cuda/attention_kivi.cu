// Paged attention instantiations: KIVI-style caches (int4_kivi, int2_kivi, k4v2): keys per channel,
// values per token group; k4v2 rotates q in and the output back (Hadamard).
#include "backend/cuda/paged_attention_mma.cuh"

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

void launch_attention_kivi(KvFormat f, const AttnArgs& a, int head_dim, int n_tokens,
                           cudaStream_t stream) {
  const bool simt = use_simt_attention();
  switch (f) {
    case KvFormat::INT4_KIVI:
      if (simt)
        return launch_paged_attention<QuantFormat<K4, V4G64>>(a, head_dim, n_tokens, stream);
      launch_paged_attention_mma<MmaQuant<MK4, MV4G64>>(a, head_dim, n_tokens, stream);
      break;
    case KvFormat::INT2_KIVI:
      if (simt)
        return launch_paged_attention<QuantFormat<K2, V2G32>>(a, head_dim, n_tokens, stream);
      launch_paged_attention_mma<MmaQuant<MK2, MV2G32>>(a, head_dim, n_tokens, stream);
      break;
    case KvFormat::K4V2:
      if (simt)
        return launch_paged_attention<QuantFormat<K4, V2G64>>(a, head_dim, n_tokens, stream);
      launch_paged_attention_mma<MmaQuant<MK4, MV2G64>>(a, head_dim, n_tokens, stream);
      break;
    default:
      CHECK(false);
  }
}

}  // namespace densekv::cuda
