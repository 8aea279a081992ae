// Tokenizer on the real Qwen3 and Llama-3.1 files (skipped when ../shared/tokenizers is absent).
// Expected ids are vocabulary facts read from those files (e.g. "Hello" = 9906 and "Ġworld" =
// 1917 in Llama-3.1) combined with the documented pre-tokenizer regexes; the exhaustive
// comparison with HF tokenizers is tests/golden/tokenizer_golden_test.cpp.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <thread>

#include "core/errors.h"
#include "text/tokenizer.h"
#include "text_test_util.h"

namespace densekv {
namespace {

using Ids = std::vector<int32_t>;

TEST(Tokenizer, Llama3KnownIds) {
  DENSEKV_LOAD_TOKENIZER_OR_SKIP(tok, "llama3_1");
  EXPECT_EQ(tok->encode("Hello world"), (Ids{9906, 1917}));
  EXPECT_EQ(tok->encode(" Hello"), (Ids{22691}));
  // \p{N}{1,3}: digits in groups of three.
  EXPECT_EQ(tok->encode("12345"), (Ids{tok->token_to_id("123"), tok->token_to_id("45")}));
  EXPECT_EQ(tok->encode(""), Ids{});
  // BOS from the TemplateProcessing post-processor.
  EXPECT_EQ(tok->encode("Hello world", true, true), (Ids{128000, 9906, 1917}));
  EXPECT_EQ(tok->template_prefix(), Ids{128000});
  EXPECT_EQ(tok->config().bos_token, "<|begin_of_text|>");
  EXPECT_EQ(tok->config().eos_token, "<|eot_id|>");
  EXPECT_EQ(tok->bos_id(), 128000);
  EXPECT_EQ(tok->eos_id(), 128009);
  EXPECT_FALSE(tok->config().chat_template.empty());
  EXPECT_EQ(tok->vocab_size(), 128256);
}

TEST(Tokenizer, QwenKnownIds) {
  DENSEKV_LOAD_TOKENIZER_OR_SKIP(tok, "qwen3");
  EXPECT_EQ(tok->encode("Hello world"), (Ids{9707, 1879}));
  EXPECT_EQ(tok->encode(" Hello"), (Ids{21927}));
  // \p{N}: one digit per token.
  EXPECT_EQ(tok->encode("123"), (Ids{16, 17, 18}));
  EXPECT_EQ(tok->encode("Hello", true, true), (Ids{9707}));  // Qwen adds no BOS
  EXPECT_EQ(tok->config().bos_token, "");
  EXPECT_EQ(tok->config().eos_token, "<|im_end|>");
  EXPECT_EQ(tok->eos_id(), 151645);
  EXPECT_EQ(tok->vocab_size(), 151669);
}

TEST(Tokenizer, SpecialTokenText) {
  DENSEKV_LOAD_TOKENIZER_OR_SKIP(tok, "qwen3");
  const std::string chat = "<|im_start|>user\nHi<|im_end|>";
  Ids parsed = tok->encode(chat, true);
  ASSERT_GE(parsed.size(), 3u);
  EXPECT_EQ(parsed.front(), 151644);
  EXPECT_EQ(parsed[1], 872);  // "user"
  EXPECT_EQ(parsed.back(), 151645);
  // Not parsed: the special text is ordinary text, "<" "|" "im" "_start" ...
  Ids plain = tok->encode(chat, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 151644), 0);
  EXPECT_EQ(plain[0], tok->token_to_id("<"));
  EXPECT_EQ(tok->decode(plain), chat);
  EXPECT_EQ(tok->decode(parsed), chat);
  EXPECT_EQ(tok->decode(parsed, true), "user\nHi");
  // Non-special added tokens (<think>) are matched either way, as in HF.
  EXPECT_EQ(tok->encode("<think>", false), (Ids{151667}));
  EXPECT_TRUE(tok->is_special(151644));
  EXPECT_FALSE(tok->is_special(151667));
}

TEST(Tokenizer, QwenNormalizesNfcLlamaDoesNot) {
  DENSEKV_LOAD_TOKENIZER_OR_SKIP(qwen, "qwen3");
  DENSEKV_LOAD_TOKENIZER_OR_SKIP(llama, "llama3_1");
  const std::string decomposed = "e\xCC\x81", composed = "\xC3\xA9";
  EXPECT_EQ(qwen->encode(decomposed), qwen->encode(composed));
  EXPECT_EQ(qwen->encode(composed), (Ids{qwen->token_to_id("\xC3\x83\xC2\xA9")}));  // "Ã©"
  EXPECT_NE(llama->encode(decomposed), llama->encode(composed));
  EXPECT_EQ(llama->decode(llama->encode(decomposed)), decomposed);
}

TEST(Tokenizer, DecodeInvalidBytesGivesReplacement) {
  DENSEKV_LOAD_TOKENIZER_OR_SKIP(tok, "llama3_1");
  // Token 158 is "â" = byte 0xE2 alone: not valid UTF-8.
  EXPECT_EQ(tok->decode(Ids{158}), "\xEF\xBF\xBD");
  EXPECT_EQ(tok->decode(Ids{9906, 99999999}), "Hello");  // unknown ids are skipped (HF)
  EXPECT_THROW(tok->encode("bad \xFF byte"), InvalidArgumentError);
}

TEST(Tokenizer, RoundTripMixedText) {
  DENSEKV_LOAD_TOKENIZER_OR_SKIP(qwen, "qwen3");
  DENSEKV_LOAD_TOKENIZER_OR_SKIP(llama, "llama3_1");
  const std::string text =
      "Grüße, 世界! 😀 The year 2024 — x=3.14159\n\n\tdef f(x):\n    return x**2  \r\n"
      "I'll say it's DON'T   and \xE1\xA0\x8E!";
  EXPECT_EQ(qwen->decode(qwen->encode(text)), text);
  EXPECT_EQ(llama->decode(llama->encode(text)), text);
}

TEST(Tokenizer, ConcurrentEncodeIsConsistent) {
  DENSEKV_LOAD_TOKENIZER_OR_SKIP(tok, "qwen3");
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) {
    texts.push_back("line " + std::to_string(i * 7919) + ": The quick brown fox #" +
                    std::to_string(i) + " jumps over the lazy dog " + std::string(i % 13, 'z'));
  }
  std::vector<Ids> expected;
  for (const auto& t : texts) expected.push_back(tok->encode(t));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int round = 0; round < 5; ++round) {
        for (size_t i = w; i < texts.size(); i += 1 + w) {
          if (tok->encode(texts[i]) != expected[i]) ++mismatches[w];
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// Minimal tokenizer.json documents exercising the loader.
std::string tiny_json(const std::string& model_extra, const std::string& rest) {
  return R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"c":3,"abc":4,"bc":5},)" +
         model_extra + R"(},"decoder":{"type":"ByteLevel"})" + rest + "}";
}

TEST(Tokenizer, MergeFormsAndOrder) {
  // Both merge forms; rank order decides: "b c" (rank 0) before "a b" (rank 1).
  auto t1 = Tokenizer::from_json(tiny_json(R"("merges":["b c","a b"])", ""));
  EXPECT_EQ(t1->encode("abc"), (Ids{0, 5}));
  auto t2 = Tokenizer::from_json(tiny_json(R"("merges":[["a","b"],["ab","c"]])", ""));
  EXPECT_EQ(t2->encode("abc"), (Ids{4}));
  // ignore_merges: a word in the vocab maps to its id directly.
  auto t3 = Tokenizer::from_json(tiny_json(R"("merges":[["b","c"]],"ignore_merges":true)", ""));
  EXPECT_EQ(t3->encode("abc"), (Ids{4}));
  auto t4 = Tokenizer::from_json(tiny_json(R"("merges":[["b","c"]])", ""));
  EXPECT_EQ(t4->encode("abc"), (Ids{0, 5}));
}

TEST(Tokenizer, AddedTokenFlags) {
  auto tok = Tokenizer::from_json(tiny_json(
      R"("merges":[])",
      R"(,"added_tokens":[{"id":6,"content":"<m>","special":true,"lstrip":true,"rstrip":false,
          "single_word":false,"normalized":false},
          {"id":7,"content":"ba","special":false,"lstrip":false,"rstrip":false,
          "single_word":true,"normalized":false}])"));
  // No pre-tokenizer: each text piece is one word. "<m>" with lstrip swallows the spaces before
  // it; "ba" with single_word matches only as a whole word.
  EXPECT_EQ(tok->encode("ba"), (Ids{7}));
  EXPECT_EQ(tok->encode("c ba"), (Ids{3, 7}));  // " " is not in the vocab: dropped (no unk)
  EXPECT_EQ(tok->encode("bab"), (Ids{1, 0, 1}));
  EXPECT_EQ(tok->encode("c  <m>"), (Ids{3, 6}));
  EXPECT_EQ(tok->encode("c  <m>", false), (Ids{3}));  // unparsed: "<", " ", "m" are not in vocab
}

TEST(Tokenizer, ConfigFolder) {
  auto dir =
      std::filesystem::temp_directory_path() / ("densekv_tok_cfg_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto write = [&](const char* name, const std::string& text) {
    std::ofstream(dir / name, std::ios::binary) << text;
  };
  write("tokenizer.json",
        tiny_json(R"("merges":[])", R"(,"added_tokens":[{"id":6,"content":"<s>","special":true,
                  "normalized":false},{"id":7,"content":"</s>","special":true,"normalized":false}])"));
  // bos/eos as {"content": ...} objects, a template list with a "default" entry.
  write("tokenizer_config.json",
        R"({"bos_token":{"content":"<s>","lstrip":false},"eos_token":"</s>","add_bos_token":true,
            "chat_template":[{"name":"tool_use","template":"T"},{"name":"default","template":"D"}]})");
  auto tok = Tokenizer::load(dir);
  EXPECT_EQ(tok->config().bos_token, "<s>");
  EXPECT_EQ(tok->config().eos_token, "</s>");
  EXPECT_EQ(tok->bos_id(), 6);
  EXPECT_EQ(tok->eos_id(), 7);
  EXPECT_EQ(tok->config().add_bos_token, std::optional<bool>(true));
  EXPECT_EQ(tok->config().chat_template, "D");
  // chat_template.jinja, which newer folders ship, wins.
  write("chat_template.jinja", "{{ bos_token }}J");
  EXPECT_EQ(Tokenizer::load(dir)->config().chat_template, "{{ bos_token }}J");
  std::filesystem::remove_all(dir);
  EXPECT_THROW(Tokenizer::load(dir), FileFormatError);
}

TEST(Tokenizer, UnsupportedComponentsAreNamed) {
  auto expect_error = [](const std::string& json, const std::string& name) {
    try {
      Tokenizer::from_json(json);
      ADD_FAILURE() << "no error for " << name;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"model":{"type":"WordPiece","vocab":{}}})", "WordPiece");
  expect_error(R"({"model":{"type":"Unigram","vocab":[]}})", "Unigram");
  expect_error(tiny_json(R"("merges":[],"byte_fallback":true)", ""), "byte_fallback");
  expect_error(tiny_json(R"("merges":[])", R"(,"post_processor":{"type":"RobertaProcessing"})"),
               "RobertaProcessing");
  expect_error(tiny_json(R"("merges":[["a","x"]])", ""), "merge");
  expect_error("{not json", "tokenizer.json");
}

}  // namespace
}  // namespace densekv
