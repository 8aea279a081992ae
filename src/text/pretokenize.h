// The text stages in front of the BPE model, as in HF tokenizers: the normalizer (Unicode
// normalization through utf8proc) and the pre-tokenizer (Split by a regex through PCRE2 with
// UTF + UCP, then ByteLevel, which maps bytes to the byte-level alphabet). Both are built from
// their tokenizer.json objects; a component type not implemented here is an UnsupportedModelError
// naming it, never silently different token ids.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace densekv {

// A compiled regex (the Oniguruma syntax of tokenizer.json, translated where PCRE2 differs).
class Regex {
 public:
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends [begin, end) byte ranges of the non-overlapping matches in `s`, left to right.
  // `s` must be valid UTF-8 (not re-checked). Thread-safe.
  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code*
};

// Translates an Oniguruma pattern into PCRE2 syntax: `\s`/`\S` become the Unicode White_Space
// class Oniguruma uses (PCRE2's UCP `\s` also matches U+180E), `\h`/`\H` are hex digits in
// Oniguruma. Throws UnsupportedModelError for constructs it cannot translate.
std::string onig_to_pcre2(const std::string& pattern);

// normalizer: NFC, NFD, NFKC, NFKD, or a Sequence of them; null = none.
class Normalizer {
 public:
  Normalizer() = default;
  static Normalizer from_json(const nlohmann::json& j);  // j may be null
  bool empty() const { return steps_.empty(); }
  // Normalizes `s` in place.
  void apply(std::string& s) const;

 private:
  enum class Form { NFC, NFD, NFKC, NFKD };
  void add(const nlohmann::json& j);
  std::vector<Form> steps_;
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// pre_tokenizer: Split, ByteLevel, or a Sequence of them; null = the whole piece is one word.
class PreTokenizer {
 public:
  PreTokenizer() = default;
  static PreTokenizer from_json(const nlohmann::json& j);  // j may be null

  // Splits one normalized piece of text into pre-tokens (words) and passes each, in order, to
  // `sink`. Empty words are dropped, as HF does. Thread-safe.
  using WordSink = std::function<void(std::string_view word)>;
  void split(std::string_view text, const WordSink& sink) const;
  // The same, appending the words to `out`.
  void split(std::string_view text, std::vector<std::string>& out) const;

  // Whether a ByteLevel step maps the text to the byte-level alphabet.
  bool byte_level() const { return byte_level_; }

 private:
  struct Step {
    bool is_byte_level = false;
    std::shared_ptr<const Regex> regex;  // Split pattern, or the GPT-2 regex of ByteLevel
    SplitBehavior behavior = SplitBehavior::Isolated;
    bool invert = false;
    bool add_prefix_space = false;  // ByteLevel
    bool use_regex = false;         // ByteLevel
  };
  void add(const nlohmann::json& j);
  void run(size_t step, std::string_view s, const WordSink& sink) const;
  std::vector<Step> steps_;
  bool byte_level_ = false;
};

// Splits `s` by the matches of `regex` the way HF's NormalizedString::split does for `behavior`
// and `invert`; appends the [begin, end) byte ranges of the non-empty pieces it keeps.
void regex_split(const Regex& regex, std::string_view s, SplitBehavior behavior, bool invert,
                 std::vector<std::pair<size_t, size_t>>& out);

}  // namespace densekv
