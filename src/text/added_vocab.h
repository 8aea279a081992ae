// Added tokens (tokenizer.json "added_tokens"): matched in the raw text before normalization and
// pre-tokenization, exactly as HF tokenizers' AddedVocabulary does: leftmost-longest matching over
// all added tokens, then the single_word / lstrip / rstrip rules; tokens with normalized = true are
// matched in the normalized text instead. Special tokens are skipped when special-token text is not
// to be parsed (HF's encode_special_tokens = true).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace densekv {

class Normalizer;

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

// A piece of text: either an added token (id >= 0) or plain text to tokenize (id = -1).
struct TextPiece {
  size_t begin = 0, end = 0;  // byte range in the text that was split
  int32_t id = -1;
};

class AddedVocab {
 public:
  // Adds the tokens (in tokenizer.json order) and builds the two matchers; `normalizer` gives the
  // form that normalized = true tokens are matched in.
  void build(std::vector<AddedToken> tokens, const Normalizer& normalizer);

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  bool empty() const { return tokens_.empty(); }

  // Splits `text` into pieces covering all of it. `normalized_set` picks the tokens matched after
  // normalization (normalized = true) instead of those matched in the raw text.
  void split(std::string_view text, bool normalized_set, bool parse_special,
             std::vector<TextPiece>& out) const;

 private:
  // One leftmost-longest matcher: patterns bucketed by first byte.
  struct Matcher {
    std::vector<std::string> patterns;
    std::vector<int> token_index;            // index into tokens_ per pattern
    std::vector<std::vector<int>> by_first;  // [256] pattern indices, longest first
    void build();
    // Leftmost-longest match at or after `from`: returns the pattern index, or -1.
    int find(std::string_view text, size_t from, size_t* begin) const;
  };
  std::vector<AddedToken> tokens_;
  Matcher raw_, normalized_;
};

}  // namespace densekv
