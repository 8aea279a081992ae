// The tokenizer of a Hugging Face model folder: DIR/tokenizer.json (byte-level BPE, its added
// tokens, normalizer, pre-tokenizer, post-processor and decoder) plus DIR/tokenizer_config.json
// (bos/eos token strings, add_bos_token, chat template; DIR/chat_template.jinja wins when present).
// encode/decode give exactly the ids and text of HF `tokenizers` (Tokenizer.encode / .decode);
// tests/golden checks that against ids produced by HF on the real Qwen3 and Llama-3.1 files.
//
// Special-token text: encode(text, parse_special = true) turns the text of special added tokens
// (e.g. "<|im_start|>") into their ids, which is HF's default and what vLLM does for both chat
// prompts and raw completion prompts (it calls the transformers tokenizer with only
// add_special_tokens, so split_special_tokens stays False). parse_special = false treats special
// tokens as plain text (HF's encode_special_tokens / transformers' split_special_tokens = True);
// non-special added tokens such as Qwen's "<think>" are matched either way, as in HF.
// add_special_tokens = true applies the post-processor's template (Llama-3 prepends
// <|begin_of_text|>, Qwen adds nothing): vLLM does so for /v1/completions prompts, and not for
// rendered chat templates, which already hold the BOS text.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/added_vocab.h"
#include "text/bpe.h"
#include "text/pretokenize.h"

namespace densekv {

// What tokenizer_config.json (and chat_template.jinja) say; empty strings when absent.
struct TokenizerConfig {
  std::string bos_token;  // e.g. "<|begin_of_text|>"; Qwen3 has none
  std::string eos_token;  // e.g. "<|eot_id|>", "<|im_end|>"
  std::string pad_token;
  std::optional<bool> add_bos_token;
  std::optional<bool> add_eos_token;
  std::string chat_template;  // Jinja source; "" when the folder has none
};

class Tokenizer {
 public:
  // Loads DIR/tokenizer.json (required) and DIR/tokenizer_config.json, DIR/chat_template.jinja
  // (optional). Throws FileFormatError / UnsupportedModelError naming the file and the problem.
  static std::unique_ptr<Tokenizer> load(const std::filesystem::path& dir);
  // From the JSON texts (config_json may be empty). For tests and tools.
  static std::unique_ptr<Tokenizer> from_json(const std::string& tokenizer_json,
                                              const std::string& config_json = "");

  // Token ids of `text` (UTF-8; InvalidArgumentError names the first bad byte). Thread-safe.
  std::vector<int32_t> encode(std::string_view text, bool parse_special = true,
                              bool add_special_tokens = false) const;

  // Text of `ids`, as HF's decode: bytes of each token concatenated, invalid UTF-8 replaced by
  // U+FFFD. skip_special drops special added tokens. Unknown ids are skipped, as in HF.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // Appends the bytes token `id` decodes to (nothing for unknown ids, or for special tokens when
  // skip_special). The incremental detokenizer builds on this.
  void append_token_bytes(int32_t id, bool skip_special, std::string& out) const;

  // Vocabulary: added tokens first, then the model. -1 / nullopt when absent.
  int32_t token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  bool is_special(int32_t id) const;
  // One past the largest id (model vocabulary and added tokens).
  int32_t vocab_size() const { return id_limit_; }

  const TokenizerConfig& config() const { return config_; }
  // Ids of config().bos_token / eos_token, -1 when absent.
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  // Ids the post-processor puts around a single sequence when add_special_tokens is set.
  const std::vector<int32_t>& template_prefix() const { return prefix_; }
  const std::vector<int32_t>& template_suffix() const { return suffix_; }

 private:
  Tokenizer() = default;
  void load_tokenizer_json(const nlohmann::json& j);
  void load_post_processor(const nlohmann::json& j);
  void load_decoder(const nlohmann::json& j);
  void load_config(const nlohmann::json& j);
  // Encodes one piece of raw text (no added tokens matched in it yet).
  void encode_text(std::string_view text, bool parse_special, std::vector<int32_t>& out) const;

  std::unique_ptr<BpeModel> model_;
  Normalizer normalizer_;
  PreTokenizer pre_tokenizer_;
  AddedVocab added_;
  std::unordered_map<int32_t, size_t> added_by_id_;  // id -> index in added_.tokens()
  StringIdMap added_by_content_;
  std::vector<int32_t> prefix_, suffix_;
  int32_t id_limit_ = 0;
  TokenizerConfig config_;
  int32_t bos_id_ = -1, eos_id_ = -1;
};

}  // namespace densekv
