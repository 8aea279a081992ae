// `densekv check MODEL_DIR`: runs the validation every start runs (config.json, safetensors
// headers, tensor names and shapes) and prints a one-screen summary. Exit 2 with the reason when
// the model is not supported.
#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "cli/commands.h"
#include "io/model_dir.h"

namespace densekv::cli {

namespace {

std::string human_count(int64_t n) {
  if (n >= 1000000000) return fmt::format("{:.2f}B", n / 1e9);
  if (n >= 1000000) return fmt::format("{:.1f}M", n / 1e6);
  if (n >= 1000) return fmt::format("{:.1f}K", n / 1e3);
  return fmt::format("{}", n);
}

std::string human_bytes(double n) {
  if (n >= 1e9) return fmt::format("{:.2f} GB", n / 1e9);
  if (n >= 1e6) return fmt::format("{:.2f} MB", n / 1e6);
  return fmt::format("{:.1f} KB", n / 1e3);
}

std::string rope_summary(const RopeConfig& r) {
  if (r.type == "llama3") {
    return fmt::format(
        "llama3 (theta {:g}, factor {:g}, low_freq_factor {:g}, high_freq_factor {:g}, "
        "original_max_position_embeddings {})",
        r.theta, r.factor, r.low_freq_factor, r.high_freq_factor,
        r.original_max_position_embeddings);
  }
  return fmt::format("{} (theta {:g})", r.type, r.theta);
}

void print_summary(const ModelDir& m) {
  const ModelConfig& c = m.config;
  const char* yes_no[] = {"no", "yes"};
  fmt::print("model               {}\n", m.path);
  fmt::print("architecture        {} ({})\n", c.architecture, c.model_type);
  fmt::print("layers              {}\n", c.num_layers);
  fmt::print("attention heads     {}\n", c.num_heads);
  fmt::print("KV heads            {}\n", c.num_kv_heads);
  fmt::print("head_dim            {}\n", c.head_dim);
  fmt::print("hidden size         {}\n", c.hidden_size);
  fmt::print("intermediate size   {}\n", c.intermediate_size);
  fmt::print("vocab size          {}\n", c.vocab_size);
  fmt::print("max positions       {}\n", c.max_position_embeddings);
  fmt::print("dtype               {}{}\n", dtype_name(c.dtype),
             c.dtype_from_config ? "" : " (from the weights)");
  fmt::print("rope                {}\n", rope_summary(c.rope));
  fmt::print("tied embeddings     {}\n", yes_no[c.tie_word_embeddings]);
  fmt::print("qkv bias            {}\n", yes_no[c.attention_bias]);
  fmt::print("parameters          {} ({})\n", human_count(parameter_count(c)), parameter_count(c));
  fmt::print("weights             {} tensors, {}\n", m.tensors->all().size(),
             human_bytes(static_cast<double>(m.tensors->total_bytes())));
  fmt::print("KV bytes per token  {} (16-bit cache)\n", kv_bytes_per_token_16bit(c));
  fmt::print("supported           yes\n");
}

}  // namespace

void register_check(CLI::App& app) {
  auto* cmd = app.add_subcommand("check", "Validate a Hugging Face model folder and summarize it");
  auto model_dir = std::make_shared<std::string>();
  cmd->add_option("MODEL_DIR", *model_dir, "Folder with config.json and *.safetensors")->required();
  cmd->callback([model_dir] { print_summary(open_model_dir(*model_dir)); });
}

}  // namespace densekv::cli
