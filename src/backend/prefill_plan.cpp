#include "backend/prefill_plan.h"

#include <algorithm>

namespace densekv {

PrefillPlan plan_prefill(const int32_t* seq_of_token, const int32_t* positions, int n_tokens,
                         int group, int kv_block, int min_rows, int max_decode_runs) {
  PrefillPlan plan;
  if (group < 1 || group > kPrefillBlockRows || n_tokens <= 0) return plan;
  const int per_block = kPrefillBlockRows / group;  // tokens per work item
  for (int t0 = 0; t0 < n_tokens;) {
    int t1 = t0 + 1;
    while (t1 < n_tokens && seq_of_token[t1] == seq_of_token[t0] &&
           positions[t1] == positions[t1 - 1] + 1 &&
           (kv_block <= 0 || positions[t1] / kv_block == positions[t0] / kv_block)) {
      ++t1;
    }
    if ((t1 - t0) * group >= min_rows) {
      for (int t = t0; t < t1; t += per_block) {
        plan.work.push_back(t);
        plan.work.push_back(std::min(per_block, t1 - t));
      }
    } else if (!plan.decode_runs.empty() &&
               plan.decode_runs.back().first + plan.decode_runs.back().second == t0) {
      plan.decode_runs.back().second += t1 - t0;
    } else {
      plan.decode_runs.emplace_back(t0, t1 - t0);
    }
    t0 = t1;
  }
  if (plan.work.empty()) {
    plan.decode_runs.clear();
    return plan;
  }
  if (static_cast<int>(plan.decode_runs.size()) > max_decode_runs) {
    return plan_prefill(seq_of_token, positions, n_tokens, group, kv_block, 0, max_decode_runs);
  }
  return plan;
}

}  // namespace densekv
