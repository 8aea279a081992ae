// Rotary embedding frequencies, computed exactly as transformers does (float32 arithmetic):
//   default: inv_freq[i] = 1 / theta^(2i / head_dim), i in [0, head_dim / 2)
//   llama3:  wavelen = 2*pi / inv_freq; long wavelengths (> original_max / low_freq_factor) are
//            divided by `factor`, short ones (< original_max / high_freq_factor) kept, and the
//            band between smoothly interpolated:
//            s = (original_max / wavelen - low) / (high - low); inv = (1 - s) * inv / factor + s *
//            inv
// The attention scaling of both types is 1. Other rope types are rejected by config validation.
#pragma once
#include <vector>

#include "io/hf_config.h"

namespace densekv {

std::vector<float> rope_inv_freq(const RopeConfig& rope, int head_dim);

}  // namespace densekv
