// How one paged_attention call is split between a prefill kernel (query rows of many tokens of
// one sequence per thread block, each KV tile read once per block) and a decode kernel (one
// thread block per query token). Host code: the CUDA backend plans from the host copy of the
// batch's index arrays (BatchLayout), so the work list is known before the launch.
#pragma once
#include <cstdint>
#include <vector>

namespace densekv {

// A segment goes to the prefill kernel when it has at least this many query rows (tokens x
// query heads per KV head): one warp's 16 rows. Shorter segments (decode tokens) go to the decode
// kernel. A guess until GPU timings say otherwise.
constexpr int kPrefillMinRows = 16;
// Query rows of one prefill thread block.
constexpr int kPrefillBlockRows = 64;
// More decode runs than this (decode tokens interleaved with prefill chunks): one prefill launch
// takes every token instead of a decode launch per run.
constexpr int kPrefillMaxDecodeRuns = 8;

struct PrefillPlan {
  // [n_work][2]: (first token, token count) of each prefill thread block, token count <= 64 /
  // group, tokens of one sequence at consecutive positions (and, with kv_block > 0, in one KV
  // block).
  std::vector<int32_t> work;
  // (first token, token count): contiguous token ranges for the decode kernel.
  std::vector<std::pair<int32_t, int32_t>> decode_runs;
  int n_work() const { return static_cast<int>(work.size() / 2); }
};

// Plans tokens [0, n_tokens) of a call: seq_of_token / positions as in BatchLayout, `group` query
// heads per KV head, kv_block = the block size segments may not cross (quantized formats: 64, the
// 16-bit tail holds one block), 0 for none. Tokens of one sequence at consecutive positions form
// a segment; a segment of >= min_rows rows is cut into prefill work items of up to 64 / group
// tokens, the other tokens form decode runs. Returns an empty work list when the prefill kernel
// cannot be used (group > 64) or nothing qualifies.
PrefillPlan plan_prefill(const int32_t* seq_of_token, const int32_t* positions, int n_tokens,
                         int group, int kv_block, int min_rows = kPrefillMinRows,
                         int max_decode_runs = kPrefillMaxDecodeRuns);

}  // namespace densekv
