// Incremental detokenizer: the streamed pieces are always valid UTF-8 and concatenate to decode().
#include <gtest/gtest.h>

#include "text/detokenizer.h"
#include "text/tokenizer.h"
#include "text/utf8.h"
#include "text_test_util.h"

namespace densekv {
namespace {

void check_stream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special,
                  bool* held_back) {
  Detokenizer d(tok, skip_special);
  std::string all;
  for (int32_t id : ids) {
    std::string piece = d.push(id);
    EXPECT_EQ(utf8_first_invalid(piece), piece.size()) << "broken UTF-8 piece";
    if (d.pending() > 0) *held_back = true;
    all += piece;
  }
  all += d.finish();
  EXPECT_EQ(all, tok.decode(ids, skip_special));
}

TEST(Detokenizer, StreamEqualsDecode) {
  for (const char* family : {"qwen3", "llama3_1"}) {
    DENSEKV_LOAD_TOKENIZER_OR_SKIP(tok, family);
    const std::string text =
        "<|im_start|>Hi 😀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 世界 ﷽ naïve<|im_end|><|eot_id|><|begin_of_text|>";
    auto ids = tok->encode(text);
    bool held_back = false;
    check_stream(*tok, ids, false, &held_back);
    check_stream(*tok, ids, true, &held_back);
    EXPECT_TRUE(held_back) << family << ": no token split a character; the test text is too easy";
    Detokenizer d(*tok, false);
    std::string all;
    for (int32_t id : ids) all += d.push(id);
    all += d.finish();
    EXPECT_EQ(all, text);
  }
}

TEST(Detokenizer, InvalidBytesBecomeReplacement) {
  DENSEKV_LOAD_TOKENIZER_OR_SKIP(tok, "llama3_1");
  // 158 = byte 0xE2 (lead of a 3-byte sequence), then "Hello": the held byte turns into U+FFFD.
  std::vector<int32_t> ids{158, 9906, 158};
  Detokenizer d(*tok, false);
  EXPECT_EQ(d.push(158), "");
  EXPECT_EQ(d.pending(), 1u);
  EXPECT_EQ(d.push(9906), "\xEF\xBF\xBDHello");
  EXPECT_EQ(d.push(158), "");
  EXPECT_EQ(d.finish(), "\xEF\xBF\xBD");
  EXPECT_EQ(tok->decode(ids), "\xEF\xBF\xBDHello\xEF\xBF\xBD");
}

TEST(Detokenizer, SkipsSpecialTokens) {
  DENSEKV_LOAD_TOKENIZER_OR_SKIP(tok, "qwen3");
  Detokenizer d(*tok, true);
  std::string all;
  for (int32_t id : tok->encode("<|im_start|>ok<|im_end|>")) all += d.push(id);
  all += d.finish();
  EXPECT_EQ(all, "ok");
}

}  // namespace
}  // namespace densekv
