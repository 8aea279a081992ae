#include "model/rope.h"

#include <cmath>

#include "core/errors.h"

namespace densekv {

std::vector<float> rope_inv_freq(const RopeConfig& rope, int head_dim) {
  const int half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv[i] = 1.0f / std::pow(rope.theta, exponent);
  }
  if (rope.type == "default") return inv;
  if (rope.type != "llama3") {
    throw UnsupportedModelError("rope type '" + rope.type + "' is not supported");
  }
  // transformers: _compute_llama3_parameters, in float32 tensors (python scalars promote to f32).
  const float factor = rope.factor;
  const float low = rope.low_freq_factor;
  const float high = rope.high_freq_factor;
  const float old_ctx = static_cast<float>(rope.original_max_position_embeddings);
  const float low_freq_wavelen = static_cast<float>(static_cast<double>(old_ctx) / low);
  const float high_freq_wavelen = static_cast<float>(static_cast<double>(old_ctx) / high);
  const float two_pi = static_cast<float>(2.0 * M_PI);
  for (int i = 0; i < half; ++i) {
    float f = inv[i];
    float wavelen = two_pi / f;
    float scaled = wavelen > low_freq_wavelen ? f / factor : f;
    bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    if (medium) {
      float smooth = (old_ctx / wavelen - low) / (high - low);
      scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
    }
    inv[i] = scaled;
  }
  return inv;
}

}  // namespace densekv
