// Test helper: writes small safetensors files and model folders (the format: 8-byte little-endian
// header length, JSON header, data), so the tests need no checked-in binaries.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace densekv::testing {

struct FakeTensor {
  std::string name;
  std::string dtype;  // "BF16", "F16", "F32", "I32", ...
  std::vector<int64_t> shape;
};

inline size_t fake_dtype_size(const std::string& d) {
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "BF16" || d == "F16" || d == "I16") return 2;
  if (d == "F64" || d == "I64") return 8;
  return 1;
}

// Header JSON text and data bytes -> file image.
inline std::string safetensors_image(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// Tensors laid out back to back; byte i of the data section is (i * 7 + 1) & 0xff.
inline std::string make_safetensors(const std::vector<FakeTensor>& tensors,
                                    nlohmann::json metadata = nullptr) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.is_null()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const FakeTensor& t : tensors) {
    size_t n = fake_dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= static_cast<size_t>(d);
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string data(offset, '\0');
  for (size_t i = 0; i < offset; ++i) data[i] = static_cast<char>((i * 7 + 1) & 0xff);
  return safetensors_image(header.dump(), data);
}

inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A fresh empty folder under the test temp dir.
inline std::filesystem::path fresh_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("densekv_test_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Every tensor a Llama-style model of this config needs, in `dtype`.
inline std::vector<FakeTensor> llama_tensors(const nlohmann::json& c, const std::string& dtype,
                                             bool qkv_bias) {
  const int64_t hidden = c["hidden_size"], inter = c["intermediate_size"], vocab = c["vocab_size"];
  const int64_t heads = c["num_attention_heads"], kv = c["num_key_value_heads"];
  const int64_t hd = c.contains("head_dim") ? c["head_dim"].get<int64_t>() : hidden / heads;
  std::vector<FakeTensor> t = {{"model.embed_tokens.weight", dtype, {vocab, hidden}},
                               {"model.norm.weight", dtype, {hidden}}};
  if (!c.value("tie_word_embeddings", false))
    t.push_back({"lm_head.weight", dtype, {vocab, hidden}});
  for (int i = 0; i < c["num_hidden_layers"].get<int>(); ++i) {
    auto p = [&](const std::string& s) { return "model.layers." + std::to_string(i) + "." + s; };
    t.push_back({p("input_layernorm.weight"), dtype, {hidden}});
    t.push_back({p("self_attn.q_proj.weight"), dtype, {heads * hd, hidden}});
    t.push_back({p("self_attn.k_proj.weight"), dtype, {kv * hd, hidden}});
    t.push_back({p("self_attn.v_proj.weight"), dtype, {kv * hd, hidden}});
    t.push_back({p("self_attn.o_proj.weight"), dtype, {hidden, heads * hd}});
    if (qkv_bias) {
      t.push_back({p("self_attn.q_proj.bias"), dtype, {heads * hd}});
      t.push_back({p("self_attn.k_proj.bias"), dtype, {kv * hd}});
      t.push_back({p("self_attn.v_proj.bias"), dtype, {kv * hd}});
    }
    t.push_back({p("post_attention_layernorm.weight"), dtype, {hidden}});
    t.push_back({p("mlp.gate_proj.weight"), dtype, {inter, hidden}});
    t.push_back({p("mlp.up_proj.weight"), dtype, {inter, hidden}});
    t.push_back({p("mlp.down_proj.weight"), dtype, {hidden, inter}});
  }
  return t;
}

// Runs f, which must throw E whose message contains every one of `parts`.
template <class E, class F>
void expect_error(F f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no exception thrown";
  } catch (const E& e) {
    for (const std::string& p : parts) EXPECT_THAT(e.what(), ::testing::HasSubstr(p));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

}  // namespace densekv::testing
