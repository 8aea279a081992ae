// Token ids identical to Hugging Face `tokenizers` on the real Qwen3 and Llama-3.1 files.
// tests/data/tokenizer/goldens.jsonl comes from tools/make_tokenizer_goldens.py (run with HF
// tokenizers on the GPU machine): one JSON object per line, {"text", "qwen3": ids, "llama3_1":
// ids} from encode(text, add_special_tokens=False), plus "<family>_with_special" from
// add_special_tokens=True on every 10th line. Also checks decode(encode(x)) == x (== NFC(x) for
// Qwen, whose normalizer is NFC).
#include <gtest/gtest.h>
#include <utf8proc.h>

#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "../unit/text_test_util.h"
#include "text/tokenizer.h"

namespace densekv {
namespace {

std::string nfc(const std::string& s) {
  utf8proc_uint8_t* out = nullptr;
  auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                        static_cast<utf8proc_ssize_t>(s.size()), &out,
                        static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) return s;
  std::string r(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  std::free(out);
  return r;
}

class TokenizerGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(TokenizerGolden, IdsEqualHfTokenizers) {
  const std::string family = GetParam();
  auto path = std::filesystem::path(DENSEKV_SOURCE_DIR) / "tests/data/tokenizer/goldens.jsonl";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "skipped: " << path << " is absent";
  DENSEKV_LOAD_TOKENIZER_OR_SKIP(tok, family);
  std::ifstream f(path);
  std::string line;
  int n_lines = 0, n_checked = 0, n_mismatch = 0;
  while (std::getline(f, line)) {
    ++n_lines;
    auto row = nlohmann::json::parse(line);
    const std::string text = row["text"].get<std::string>();
    for (bool with_special : {false, true}) {
      const std::string key = with_special ? family + "_with_special" : family;
      if (!row.contains(key)) continue;
      auto expected = row[key].get<std::vector<int32_t>>();
      auto got = tok->encode(text, /*parse_special=*/true, with_special);
      ++n_checked;
      if (got != expected && ++n_mismatch <= 10) {
        ADD_FAILURE() << family << " line " << n_lines << (with_special ? " (with special)" : "")
                      << ": text " << nlohmann::json(text).dump() << "\n  expected "
                      << nlohmann::json(expected).dump() << "\n  got      "
                      << nlohmann::json(got).dump();
      }
    }
    std::string decoded = tok->decode(tok->encode(text));
    if (decoded != text && !(family == "qwen3" && decoded == nfc(text))) {
      ADD_FAILURE() << family << " line " << n_lines << ": decode(encode(x)) != x for "
                    << nlohmann::json(text).dump() << " -> " << nlohmann::json(decoded).dump();
    }
  }
  EXPECT_EQ(n_mismatch, 0) << n_mismatch << " of " << n_checked << " encodings differ from HF";
  EXPECT_GT(n_checked, 3000);
}

INSTANTIATE_TEST_SUITE_P(Families, TokenizerGolden, ::testing::Values("qwen3", "llama3_1"));

}  // namespace
}  // namespace densekv
