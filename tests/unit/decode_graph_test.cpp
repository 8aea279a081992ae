// Decode graphs (model/decode_graph.h) on the host: bucket choice and the padded layout, then the
// whole model through a host emulation of graph capture and replay (recording_backend.h): every
// decode step replayed from a graph gives the logits of the plain forward bit for bit (the CPU
// matmul is batch-invariant, so padding rows change nothing), the real sequences' KV blocks are
// byte-identical (the padding rows wrote only the scratch block and tail), and an engine's greedy
// outputs are identical with and without graphs.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "decode_scenario.h"
#include "engine/llm_engine.h"
#include "engine_test_util.h"
#include "kv/kv_cache.h"
#include "model/decode_graph.h"
#include "model/llama.h"
#include "recording_backend.h"

using namespace densekv;
using namespace densekv::testing;

namespace {

const std::string kModel = std::string(DENSEKV_SOURCE_DIR) + "/tests/data/models/llama31-tiny";

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(DecodeGraph, BatchBuckets) {
  EXPECT_EQ(decode_batch_bucket(1, 256), 1);
  EXPECT_EQ(decode_batch_bucket(2, 256), 2);
  EXPECT_EQ(decode_batch_bucket(3, 256), 4);
  EXPECT_EQ(decode_batch_bucket(5, 256), 8);
  EXPECT_EQ(decode_batch_bucket(64, 256), 64);
  EXPECT_EQ(decode_batch_bucket(65, 256), 128);
  EXPECT_EQ(decode_batch_bucket(256, 256), 256);
  // Capped at the engine's max_num_seqs.
  EXPECT_EQ(decode_batch_bucket(65, 100), 100);
  EXPECT_EQ(decode_batch_bucket(100, 100), 100);
  EXPECT_EQ(decode_batch_bucket(64, 100), 64);
}

TEST(DecodeGraph, BlockBuckets) {
  // Plain formats (16-token blocks): every row's length, and the context in blocks.
  EXPECT_EQ(decode_blocks_bucket(1, 1, 16), 1);
  EXPECT_EQ(decode_blocks_bucket(3, 40, 16), 4);
  EXPECT_EQ(decode_blocks_bucket(4, 64, 16), 4);
  EXPECT_EQ(decode_blocks_bucket(5, 65, 16), 8);
  // Quantized formats: the partly filled block is in the tail, not the table.
  EXPECT_EQ(decode_blocks_bucket(0, 1, 64), 1);
  EXPECT_EQ(decode_blocks_bucket(0, 63, 64), 1);
  EXPECT_EQ(decode_blocks_bucket(1, 100, 64), 2);
  EXPECT_EQ(decode_blocks_bucket(2, 129, 64), 4);  // 3 blocks of context
}

TEST(DecodeGraph, PaddedLayout) {
  CpuBackend be(1);
  KvCacheConfig cfg;
  cfg.format = KvFormat::INT4_KIVI;
  cfg.num_blocks = 10;
  cfg.num_tail_blocks = 4;
  cfg.num_layers = 1;
  cfg.n_kv_heads = 1;
  cfg.head_dim = 64;
  KvCache cache(be, cfg);
  // Two decode tokens: sequence 0 at position 70 (block 3 sealed, tail 1), sequence 1 at 5.
  BatchLayout lay;
  lay.token_ids = {11, 12};
  lay.positions = {70, 5};
  lay.slots = {-1, -1};
  lay.seq_of_token = {0, 1};
  lay.context_lens = {71, 6};
  lay.block_tables = {3, -1};
  lay.tails = {1, 2};
  lay.out_rows = {0, 1};
  lay.rounds = {0, 2};
  lay.max_blocks = 1;
  lay.max_context = 71;
  pad_decode_layout(lay, 4, 2, cache);
  EXPECT_EQ(lay.token_ids, (std::vector<int32_t>{11, 12, 0, 0}));
  EXPECT_EQ(lay.positions, (std::vector<int32_t>{70, 5, 0, 0}));
  EXPECT_EQ(lay.slots, (std::vector<int32_t>{-1, -1, 10 * 64, 10 * 64}));  // the scratch block
  EXPECT_EQ(lay.seq_of_token, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(lay.context_lens, (std::vector<int32_t>{71, 6, 1, 1}));
  EXPECT_EQ(lay.block_tables, (std::vector<int32_t>{3, -1, -1, -1, 10, -1, 10, -1}));
  EXPECT_EQ(lay.tails, (std::vector<int32_t>{1, 2, 4, 4}));  // the scratch tail
  EXPECT_EQ(lay.out_rows, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(lay.rounds, (std::vector<int32_t>{0, 4}));
  EXPECT_EQ(lay.max_blocks, 2);
  EXPECT_EQ(lay.max_context, 128);
  // Same lengths, same packing: the graph's batch pointers do not move between steps.
  EXPECT_EQ(batch_packing(lay).bytes(), (4 * 7 + 8) * sizeof(int32_t));
}

// Every byte of the real blocks and tails of every layer (not the scratch ones).
std::vector<uint8_t> real_kv_bytes(const KvCache& c) {
  std::vector<uint8_t> out;
  for (int l = 0; l < c.config().num_layers; ++l) {
    const KvLayerView v = c.layer(l);
    const auto* b = static_cast<const uint8_t*>(v.base);
    out.insert(out.end(), b, b + c.block_bytes() * c.config().num_blocks);
    if (c.quantized()) {
      const auto* t = static_cast<const uint8_t*>(v.tail_base);
      out.insert(out.end(), t, t + c.tail_block_bytes() * c.config().num_tail_blocks);
    }
  }
  return out;
}

bool scratch_written(const KvCache& c) {
  const KvLayerView v = c.layer(0);
  const auto* b = static_cast<const uint8_t*>(c.quantized() ? v.tail_base : v.base);
  const size_t bytes = c.quantized() ? c.tail_block_bytes() : c.block_bytes();
  const size_t off = static_cast<size_t>(c.quantized() ? c.scratch_tail() : c.scratch_block());
  for (size_t i = 0; i < bytes; ++i) {
    if (b[off * bytes + i] != 0) return true;
  }
  return false;
}

class DecodeGraphFormats : public ::testing::TestWithParam<KvFormat> {};

TEST_P(DecodeGraphFormats, ReplaysEqualThePlainForwardBitwise) {
  if (!std::filesystem::exists(kModel + "/config.json")) GTEST_SKIP() << "missing " << kModel;
  const KvFormat f = GetParam();
  RecordingBackend rec(make_backend("cpu", 2));
  auto graphs = load_llama(rec, kModel);
  graphs->set_decode_graphs(true);
  ASSERT_TRUE(graphs->decode_graphs());
  auto cpu = make_backend("cpu", 2);
  auto plain = load_llama(*cpu, kModel);

  KvCacheConfig cfg = kv_cache_config(plain->config(), f, 48, 5);
  cfg.prefix_caching = false;
  KvCache cache_g(rec, cfg), cache_p(*cpu, cfg);
  const auto got = run_decode_scenario(*graphs, cache_g);
  const auto want = run_decode_scenario(*plain, cache_p);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_TRUE(bit_equal(got[i], want[i])) << kv_format_name(f) << " forward " << i;
  }
  EXPECT_TRUE(real_kv_bytes(cache_g) == real_kv_bytes(cache_p)) << kv_format_name(f);
  EXPECT_TRUE(scratch_written(cache_g)) << "the padding rows wrote their K/V elsewhere";
  // Graphs: (1 seq, prompt of 1 token), (8, 4 or 8 blocks), (4, ...), (1, ...): every forward
  // of a shape seen before is a replay.
  std::printf("  %s: %lld captures, %lld replays\n", kv_format_name(f),
              static_cast<long long>(graphs->graph_captures()),
              static_cast<long long>(graphs->graph_replays()));
  EXPECT_GE(graphs->graph_captures(), 4);
  EXPECT_GE(graphs->graph_replays(), 8);
  EXPECT_EQ(graphs->graph_replays(), rec.replays());
}

INSTANTIATE_TEST_SUITE_P(All, DecodeGraphFormats,
                         ::testing::Values(KvFormat::F32, KvFormat::BF16, KvFormat::INT8,
                                           KvFormat::INT4_KIVI, KvFormat::K4V2),
                         [](const auto& info) { return std::string(kv_format_name(info.param)); });

// A backend epoch change (scratch memory moved) drops the graphs: the next step captures again.
TEST(DecodeGraph, EpochChangeCapturesAgain) {
  if (!std::filesystem::exists(kModel + "/config.json")) GTEST_SKIP() << "missing " << kModel;
  RecordingBackend rec(make_backend("cpu", 2));
  auto model = load_llama(rec, kModel);
  model->set_decode_graphs(true);
  KvCache cache(rec, kv_cache_config(model->config(), KvFormat::BF16, 8, 1));
  KvSeqBlocks seq;
  std::vector<int32_t> tokens;
  auto step = [&] {
    tokens.push_back(static_cast<int32_t>(tokens.size() % 7));
    ASSERT_TRUE(cache.blocks().reserve(seq, static_cast<int>(tokens.size())));
    const int n = static_cast<int>(tokens.size());
    model->forward({{tokens.data() + n - 1, 1, n - 1, &seq}}, cache, true);
    cache.blocks().commit(seq, tokens, n);
  };
  ASSERT_EQ(cache.blocks().start(seq, {}), 0);
  step();
  step();
  EXPECT_EQ(model->graph_captures(), 1);
  EXPECT_EQ(model->graph_replays(), 1);
  rec.bump_epoch();
  step();
  EXPECT_EQ(model->graph_captures(), 2);
  step();
  EXPECT_EQ(model->graph_replays(), 2);
  // Another cache (other KV addresses) captures again too.
  cache.blocks().release(seq);
  KvCache other(rec, kv_cache_config(model->config(), KvFormat::BF16, 8, 1));
  KvSeqBlocks s2;
  ASSERT_EQ(other.blocks().start(s2, {}), 0);
  ASSERT_TRUE(other.blocks().reserve(s2, 1));
  const int32_t t = 3;
  model->forward({{&t, 1, 0, &s2}}, other, true);
  EXPECT_EQ(model->graph_captures(), 3);
  other.blocks().release(s2);
}

// The engine over a model with graphs: greedy outputs of mixed concurrent requests are identical
// to the plain model's (decode steps of 1-8 sequences go through graphs, prefills do not).
TEST(DecodeGraph, EngineGreedyOutputsEqualWithoutGraphs) {
  if (!std::filesystem::exists(kModel + "/config.json")) GTEST_SKIP() << "missing " << kModel;
  RecordingBackend rec(make_backend("cpu", 2));
  auto graphs = load_llama(rec, kModel);
  graphs->set_decode_graphs(true);
  auto cpu = make_backend("cpu", 2);
  auto plain = load_llama(*cpu, kModel);
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 12; ++i) {
    GenerationRequest r;
    for (int j = 0; j < 5 + 9 * i; ++j) r.prompt_ids.push_back((j * 13 + i * 7 + 1) % 512);
    r.params.temperature = 0;
    r.params.max_tokens = 10 + 3 * (i % 4);
    r.params.ignore_eos = true;
    reqs.push_back(r);
  }
  EngineConfig cfg;
  cfg.max_num_seqs = 6;
  cfg.max_num_batched_tokens = 64;
  cfg.num_kv_blocks = 64;
  cfg.check_invariants = true;
  for (const char* format : {"bf16", "int4_kivi"}) {
    cfg.kv_cache_dtype = format;
    auto eg = make_llm_engine(*graphs, cfg);
    const auto got = run_concurrently(*eg, reqs);
    eg->shutdown(true);
    auto ep = make_llm_engine(*plain, cfg);
    const auto want = run_concurrently(*ep, reqs);
    ep->shutdown(true);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].token_ids, want[i].token_ids) << format << " request " << i;
    }
  }
  EXPECT_GT(graphs->graph_replays(), 20);
}

}  // namespace
