// Stop strings on the client side: cut exactly, also across token boundaries, never emitting
// text that might still become part of a stop string; the oracle is the tokenizer's own decode.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "engine/text_stream.h"
#include "engine_test_util.h"
#include "text/tokenizer.h"

using namespace densekv;
using namespace densekv::testing;

namespace {

struct Streamed {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<std::string> pieces;
  FinishReason finish = FinishReason::None;
  int completion_tokens = 0;
};

// Feeds ids one token per chunk (the last chunk carries `finish`).
Streamed stream(const Tokenizer& tok, const GenerationRequest& req, const std::vector<int32_t>& ids,
                FinishReason finish) {
  StopStringFilter f(tok, req);
  Streamed s;
  for (size_t i = 0; i < ids.size(); ++i) {
    RequestOutput o;
    o.token_ids = {ids[i]};
    if (i + 1 == ids.size()) {
      o.finish = finish;
      o.completion_tokens = static_cast<int>(ids.size());
    }
    TextChunk c = f.push(o);
    s.text += c.text;
    s.pieces.push_back(c.text);
    s.ids.insert(s.ids.end(), c.output.token_ids.begin(), c.output.token_ids.end());
    if (c.output.finish != FinishReason::None) {
      s.finish = c.output.finish;
      s.completion_tokens = c.output.completion_tokens;
      break;
    }
  }
  return s;
}

class TextStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = tiny_model_dir("llama31-tiny");
    if (!std::filesystem::exists(dir + "/tokenizer.json")) GTEST_SKIP() << dir << " is absent";
    tok_ = Tokenizer::load(dir);
  }
  std::unique_ptr<Tokenizer> tok_;
};

const char* kText = "The quick brown fox jumps over the lazy dog; then it sleeps.";

TEST_F(TextStreamTest, WithoutStopStringsTheTextIsTheDecode) {
  const std::vector<int32_t> ids = tok_->encode(kText);
  ASSERT_GT(ids.size(), 10u);
  Streamed s = stream(*tok_, {}, ids, FinishReason::Length);
  EXPECT_EQ(s.text, tok_->decode(ids, true));
  EXPECT_EQ(s.ids, ids);
  EXPECT_EQ(s.finish, FinishReason::Length);
}

TEST_F(TextStreamTest, StopStringsAreCutExactlyAcrossTokenBoundaries) {
  const std::vector<int32_t> ids = tok_->encode(kText);
  const std::string text = tok_->decode(ids, true);
  // Every stop string that starts and ends inside different tokens, of several lengths.
  int across = 0;
  for (size_t start = 1; start + 6 < text.size(); start += 3) {
    for (size_t len : {2, 5, 9}) {
      if (start + len > text.size()) continue;
      const std::string stop = text.substr(start, len);
      GenerationRequest req;
      req.params.stop = {"zzz", stop};
      Streamed s = stream(*tok_, req, ids, FinishReason::Length);
      const size_t at = text.find(stop);
      EXPECT_EQ(s.text, text.substr(0, at)) << "stop '" << stop << "'";
      EXPECT_EQ(s.finish, FinishReason::Stop);
      // Tokens end with the one that completed the stop string.
      const std::string upto = tok_->decode(s.ids, true);
      EXPECT_NE(upto.find(stop), std::string::npos);
      std::vector<int32_t> fewer(s.ids.begin(), s.ids.end() - 1);
      EXPECT_EQ(tok_->decode(fewer, true).find(stop), std::string::npos);
      if (tok_->decode(std::vector<int32_t>(1, s.ids.back()), true).size() < stop.size()) ++across;
      EXPECT_EQ(s.completion_tokens, static_cast<int>(s.ids.size()));
      // No piece ever showed text past the cut.
      EXPECT_EQ(s.text.find(stop), std::string::npos);
    }
  }
  EXPECT_GT(across, 10) << "stop strings spanning several tokens were exercised";
}

TEST_F(TextStreamTest, HoldsBackAPossibleStopPrefix) {
  const std::vector<int32_t> ids = tok_->encode("abc hello wor");
  GenerationRequest req;
  req.params.stop = {"lo world"};
  Streamed s = stream(*tok_, req, ids, FinishReason::None);
  // "lo wor" might become the stop string: not shown yet.
  EXPECT_EQ(s.text, "abc hel");
  // At the end of the request the held text is released.
  s = stream(*tok_, req, ids, FinishReason::Length);
  EXPECT_EQ(s.text, "abc hello wor");
}

TEST_F(TextStreamTest, FinalEosAddsNoText) {
  std::vector<int32_t> ids = tok_->encode("hi there");
  const int32_t eos = 1;  // <|end_of_text|>
  GenerationRequest req;
  req.eos_token_ids = {eos};
  ids.push_back(eos);
  Streamed s = stream(*tok_, req, ids, FinishReason::Stop);
  EXPECT_EQ(s.text, "hi there");
  EXPECT_EQ(s.ids, ids) << "the eos id is still reported";
  EXPECT_EQ(s.finish, FinishReason::Stop);
}

// Through a real engine: the stop string cancels the request, the blocks come back.
TEST_F(TextStreamTest, StopStringCancelsTheEngineRequest) {
  DENSEKV_TINY_MODEL_OR_SKIP(model, "llama31-tiny");
  EngineConfig c;
  c.num_kv_blocks = 256;
  c.check_invariants = true;
  auto engine = make_llm_engine(*model, c);
  GenerationRequest req;
  req.prompt_ids = tok_->encode(kText);
  req.params.temperature = 0;
  req.params.max_tokens = 40;
  req.params.ignore_eos = true;
  const RequestOutput full = collect(*engine->submit(req));
  const std::string text = tok_->decode(full.token_ids, true);
  ASSERT_GT(text.size(), 12u);
  req.params.stop = {text.substr(6, 4)};
  req.params.max_tokens = 1000;
  TextStream ts(*engine, engine->submit(req), *tok_, req);
  std::string got;
  std::vector<int32_t> got_ids;
  RequestOutput last;
  while (!ts.done()) {
    auto chunk = ts.next(std::chrono::milliseconds(100));
    if (!chunk) continue;
    got += chunk->text;
    got_ids.insert(got_ids.end(), chunk->output.token_ids.begin(), chunk->output.token_ids.end());
    last = chunk->output;
  }
  EXPECT_EQ(got, text.substr(0, text.find(req.params.stop[0])));
  EXPECT_EQ(last.finish, FinishReason::Stop);
  EXPECT_EQ(last.completion_tokens, static_cast<int>(got_ids.size()));
  EXPECT_EQ(last.prompt_tokens, static_cast<int>(req.prompt_ids.size()));
  EXPECT_LT(got_ids.size(), full.token_ids.size());
  for (int i = 0; i < 100 && engine->metrics().running > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(engine->metrics().kv_blocks_used, 0);
}

}  // namespace
