// Normalizer and pre-tokenizer pieces. Split behaviours follow the example in HF tokenizers'
// SplitDelimiterBehavior documentation ("the-final--countdown" split on "-").
#include <gtest/gtest.h>

#include "core/errors.h"
#include "text/pretokenize.h"

namespace densekv {
namespace {

using Words = std::vector<std::string>;

Words split(const std::string& pattern, const std::string& s, SplitBehavior b,
            bool invert = false) {
  Regex re(pattern);
  std::vector<std::pair<size_t, size_t>> ranges;
  regex_split(re, s, b, invert, ranges);
  Words out;
  for (auto [begin, end] : ranges) out.push_back(s.substr(begin, end - begin));
  return out;
}

TEST(PreTokenize, SplitBehaviorsMatchHfDocs) {
  const std::string s = "the-final--countdown";
  EXPECT_EQ(split("-", s, SplitBehavior::Removed), (Words{"the", "final", "countdown"}));
  EXPECT_EQ(split("-", s, SplitBehavior::Isolated),
            (Words{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split("-", s, SplitBehavior::MergedWithPrevious),
            (Words{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split("-", s, SplitBehavior::MergedWithNext),
            (Words{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split("-", s, SplitBehavior::Contiguous),
            (Words{"the", "-", "final", "--", "countdown"}));
  // invert: the text between the matches is what gets removed; each "-" match stays separate.
  EXPECT_EQ(split("-", s, SplitBehavior::Removed, true), (Words{"-", "-", "-"}));
}

// Qwen's pattern; Llama-3 differs only by \p{N}{1,3}.
const char* kQwenPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

TEST(PreTokenize, QwenRegex) {
  EXPECT_EQ(split(kQwenPattern, "Hello world's 123!!\n\n  x", SplitBehavior::Isolated),
            (Words{"Hello", " world", "'s", " ", "1", "2", "3", "!!\n\n", " ", " x"}));
  EXPECT_EQ(split(kQwenPattern, "I'M here", SplitBehavior::Isolated), (Words{"I", "'M", " here"}));
}

TEST(PreTokenize, WhiteSpaceIsOnigurumas) {
  // U+180E (MONGOLIAN VOWEL SEPARATOR) is not White_Space, so Oniguruma's \s does not match it
  // and " ?[^\s\p{L}\p{N}]+" takes it together with "!". PCRE2's own UCP \s would match it.
  EXPECT_EQ(split(kQwenPattern, "\xE1\xA0\x8E!", SplitBehavior::Isolated),
            (Words{"\xE1\xA0\x8E!"}));
  // U+3000 (IDEOGRAPHIC SPACE) is White_Space.
  EXPECT_EQ(split(kQwenPattern, "\xE3\x80\x80!", SplitBehavior::Isolated),
            (Words{"\xE3\x80\x80", "!"}));
  EXPECT_THROW(onig_to_pcre2(R"([^\S])"), UnsupportedModelError);
  EXPECT_EQ(onig_to_pcre2(R"(a\\s)"), R"(a\\s)");  // an escaped backslash followed by s
}

TEST(PreTokenize, ByteLevelGpt2Regex) {
  auto p = PreTokenizer::from_json(nlohmann::json::parse(
      R"({"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true})"));
  Words out;
  p.split("Hello  world", out);
  // add_prefix_space prepends " "; \s+(?!\S) leaves the last space to " world"; bytes mapped.
  EXPECT_EQ(out, (Words{"\xC4\xA0Hello", "\xC4\xA0", "\xC4\xA0world"}));
}

TEST(PreTokenize, NormalizerNfc) {
  auto n = Normalizer::from_json(
      nlohmann::json::parse(R"({"type":"Sequence","normalizers":[{"type":"NFC"}]})"));
  std::string s = "e\xCC\x81";  // e + COMBINING ACUTE ACCENT
  n.apply(s);
  EXPECT_EQ(s, "\xC3\xA9");
  auto none = Normalizer::from_json(nullptr);
  EXPECT_TRUE(none.empty());
}

TEST(PreTokenize, UnsupportedComponentsAreNamed) {
  try {
    Normalizer::from_json(nlohmann::json::parse(R"({"type":"Lowercase"})"));
    FAIL() << "no error";
  } catch (const UnsupportedModelError& e) {
    EXPECT_NE(std::string(e.what()).find("Lowercase"), std::string::npos);
  }
  try {
    PreTokenizer::from_json(nlohmann::json::parse(R"({"type":"Metaspace","replacement":"_"})"));
    FAIL() << "no error";
  } catch (const UnsupportedModelError& e) {
    EXPECT_NE(std::string(e.what()).find("Metaspace"), std::string::npos);
  }
}

}  // namespace
}  // namespace densekv
