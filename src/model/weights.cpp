#include "model/weights.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/progress.h"

namespace densekv {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

class Loader {
 public:
  Loader(Backend& backend, const ModelTensors& tensors, ModelWeights& out, Progress& progress)
      : backend_(backend), tensors_(tensors), out_(out), progress_(progress) {}

  const TensorInfo& get(const std::string& name, std::vector<int64_t> shape) {
    const TensorInfo* t = tensors_.find(name);
    if (!t) throw UnsupportedModelError("missing tensor " + name);
    // A [n] vector may also be stored as [1, n]; everything else must match exactly.
    std::vector<int64_t> s = t->shape;
    if (shape.size() == 1 && s.size() == 2 && s[0] == 1) s.erase(s.begin());
    if (s != shape) {
      throw UnsupportedModelError("tensor " + name + " has shape " + shape_str(t->shape) +
                                  ", the config implies " + shape_str(shape));
    }
    if (!t->data) throw UnsupportedModelError("tensor " + name + " has no data mapped");
    return *t;
  }

  // Rows of the named [rows_i, cols] tensors stacked into one [sum rows_i, cols] tensor.
  Tensor stacked(const std::vector<std::pair<std::string, int64_t>>& parts, int64_t cols) {
    std::vector<const TensorInfo*> infos;
    int64_t rows = 0;
    for (const auto& [name, r] : parts) {
      infos.push_back(cols == 0 ? &get(name, {r}) : &get(name, {r, cols}));
      rows += r;
    }
    const int64_t width = cols == 0 ? rows : cols;
    const int64_t height = cols == 0 ? 1 : rows;
    DType dt = backend_.weight_dtype(infos[0]->dtype);
    Buffer buf(backend_, static_cast<size_t>(height * width) * dtype_size(dt));
    size_t elem_off = 0;
    for (const TensorInfo* t : infos) {
      size_t n = static_cast<size_t>(t->numel());
      backend_.upload(static_cast<char*>(buf.data()) + elem_off * dtype_size(dt), dt, t->data,
                      t->dtype, n);
      elem_off += n;
      progress_.advance(static_cast<int64_t>(t->nbytes));
    }
    Tensor tensor = make_tensor(buf.data(), dt, height, width);
    out_.total_bytes += buf.size();
    out_.storage.push_back(std::move(buf));
    return tensor;
  }

  Tensor matrix(const std::string& name, int64_t rows, int64_t cols) {
    return stacked({{name, rows}}, cols);
  }
  Tensor vector(const std::string& name, int64_t n) { return stacked({{name, n}}, 0); }

 private:
  Backend& backend_;
  const ModelTensors& tensors_;
  ModelWeights& out_;
  Progress& progress_;
};

// Fills [rows, cols] tensors with random numbers (Backend::fill_random: one counter-based
// splitmix64 stream per tensor, derived from the seed) or a constant.
class RandomFiller {
 public:
  RandomFiller(Backend& backend, ModelWeights& out, uint64_t seed)
      : backend_(backend), out_(out), state_(seed) {}

  // const_value NaN: uniform in [-a, a] with std 0.02; else every element const_value. Generated
  // by the backend (on the GPU for CUDA), one random stream per tensor.
  Tensor make(int64_t rows, int64_t cols, float const_value = NAN) {
    const DType dt = backend_.weight_dtype(DType::BF16);
    Buffer buf(backend_, static_cast<size_t>(rows * cols) * dtype_size(dt));
    const float a = 0.02f * std::sqrt(3.0f);
    Tensor t = make_tensor(buf.data(), dt, rows, cols);
    const bool constant = !std::isnan(const_value);
    const uint64_t stream = state_ ^ (++tensors_ * 0xd1b54a32d192ed03ull);
    backend_.fill_random(t, constant ? 0.0f : a, constant ? const_value : 0.0f, stream);
    out_.total_bytes += buf.size();
    out_.storage.push_back(std::move(buf));
    return t;
  }

 private:
  Backend& backend_;
  ModelWeights& out_;
  uint64_t state_;
  uint64_t tensors_ = 0;
};

}  // namespace

ModelWeights random_weights(Backend& backend, const ModelConfig& cfg, uint64_t seed) {
  ModelWeights w;
  RandomFiller fill(backend, w, seed);
  const int64_t hidden = cfg.hidden_size, inter = cfg.intermediate_size;
  const int64_t qkv_dim = int64_t(cfg.num_heads + 2 * cfg.num_kv_heads) * cfg.head_dim;
  const int64_t q_dim = int64_t(cfg.num_heads) * cfg.head_dim;
  w.embed = fill.make(cfg.vocab_size, hidden);
  for (int l = 0; l < cfg.num_layers; ++l) {
    LayerWeights lw;
    lw.attn_norm = fill.make(1, hidden, 1.0f);
    lw.qkv = fill.make(qkv_dim, hidden);
    if (cfg.attention_bias) lw.qkv_bias = fill.make(1, qkv_dim, 0.0f);
    lw.o = fill.make(hidden, q_dim);
    lw.mlp_norm = fill.make(1, hidden, 1.0f);
    lw.gate_up = fill.make(2 * inter, hidden);
    lw.down = fill.make(hidden, inter);
    w.layers.push_back(lw);
  }
  w.final_norm = fill.make(1, hidden, 1.0f);
  const size_t embed_bytes = w.storage.front().size();
  if (cfg.tie_word_embeddings) {
    w.lm_head = w.embed;
    w.bytes_per_token = w.total_bytes;
  } else {
    w.lm_head = fill.make(cfg.vocab_size, hidden);
    w.bytes_per_token = w.total_bytes - embed_bytes;
  }
  return w;
}

ModelWeights load_weights(Backend& backend, const ModelConfig& cfg, const ModelTensors& tensors) {
  ModelWeights w;
  backend.set_model_dtype(cfg.dtype);
  Progress progress("loading weights", static_cast<int64_t>(tensors.total_bytes()));
  Loader ld(backend, tensors, w, progress);
  const int64_t hidden = cfg.hidden_size, inter = cfg.intermediate_size;
  const int64_t q_dim = int64_t(cfg.num_heads) * cfg.head_dim;
  const int64_t kv_dim = int64_t(cfg.num_kv_heads) * cfg.head_dim;

  w.embed = ld.matrix("model.embed_tokens.weight", cfg.vocab_size, hidden);
  for (int l = 0; l < cfg.num_layers; ++l) {
    auto name = [&](const char* suffix) { return layer_tensor_name(l, suffix); };
    LayerWeights lw;
    lw.attn_norm = ld.vector(name("input_layernorm.weight"), hidden);
    lw.qkv = ld.stacked({{name("self_attn.q_proj.weight"), q_dim},
                         {name("self_attn.k_proj.weight"), kv_dim},
                         {name("self_attn.v_proj.weight"), kv_dim}},
                        hidden);
    if (cfg.attention_bias) {
      lw.qkv_bias = ld.stacked({{name("self_attn.q_proj.bias"), q_dim},
                                {name("self_attn.k_proj.bias"), kv_dim},
                                {name("self_attn.v_proj.bias"), kv_dim}},
                               0);
    }
    lw.o = ld.matrix(name("self_attn.o_proj.weight"), hidden, q_dim);
    lw.mlp_norm = ld.vector(name("post_attention_layernorm.weight"), hidden);
    lw.gate_up = ld.stacked(
        {{name("mlp.gate_proj.weight"), inter}, {name("mlp.up_proj.weight"), inter}}, hidden);
    lw.down = ld.matrix(name("mlp.down_proj.weight"), hidden, inter);
    w.layers.push_back(lw);
  }
  w.final_norm = ld.vector("model.norm.weight", hidden);
  const size_t embed_bytes = w.storage.front().size();
  if (cfg.tie_word_embeddings) {
    w.lm_head = w.embed;
    w.bytes_per_token = w.total_bytes;
  } else {
    w.lm_head = ld.matrix("lm_head.weight", cfg.vocab_size, hidden);
    w.bytes_per_token = w.total_bytes - embed_bytes;
  }
  progress.finish();
  return w;
}

}  // namespace densekv
