// Model weights on a backend, loaded from the safetensors tensors under their Hugging Face names.
// Projections that run on the same input are stacked by rows at load time so each is one GEMM:
// q/k/v -> qkv, gate/up -> gate_up. Tied embeddings: lm_head is the embedding table.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "io/hf_config.h"
#include "io/safetensors.h"

namespace densekv {

struct LayerWeights {
  Tensor attn_norm;  // [1, hidden]                     input_layernorm
  Tensor qkv;        // [(H + 2 * KVH) * head_dim, hidden]  q_proj; k_proj; v_proj
  Tensor qkv_bias;   // [1, (H + 2 * KVH) * head_dim]   empty without attention bias
  Tensor o;          // [hidden, H * head_dim]          o_proj
  Tensor mlp_norm;   // [1, hidden]                     post_attention_layernorm
  Tensor gate_up;    // [2 * intermediate, hidden]      gate_proj; up_proj
  Tensor down;       // [hidden, intermediate]          down_proj
};

struct ModelWeights {
  Tensor embed;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  Tensor final_norm;  // [1, hidden]
  Tensor lm_head;     // [vocab, hidden] (the embed table when tied)
  std::vector<Buffer> storage;
  // Bytes one decode step reads (every weight except the embedding table, unless tied).
  size_t bytes_per_token = 0;
  size_t total_bytes = 0;
};

// Converts to the backend's weight dtype while copying. Throws UnsupportedModelError naming a
// missing tensor or a shape that disagrees with the config.
ModelWeights load_weights(Backend& backend, const ModelConfig& cfg, const ModelTensors& tensors);

// Random weights of the config's shapes (`--load-format dummy`, for benchmarks without the
// checkpoint): matrices uniform with the std of HF's init (0.02), norms 1, biases 0. The same
// seed gives the same weights.
ModelWeights random_weights(Backend& backend, const ModelConfig& cfg, uint64_t seed = 0);

}  // namespace densekv
