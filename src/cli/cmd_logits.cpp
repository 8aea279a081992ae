// `densekv logits MODEL_DIR --ids 1,2,3 --out FILE.npy`: float32 logits [n_ids, vocab] of every
// position, one row per position, as a .npy file (compared against transformers by the tests).
#include <cstdio>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/errors.h"
#include "io/npy.h"
#include "model/generate.h"

namespace densekv::cli {

void register_logits(CLI::App& app) {
  auto* cmd = app.add_subcommand("logits", "Write the logits of every prompt position to .npy");
  auto opts = std::make_shared<ModelOptions>();
  auto ids_text = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  add_model_options(cmd, *opts);
  cmd->add_option("--ids", *ids_text, "comma-separated prompt token ids")->required();
  cmd->add_option("--out", *out, "output .npy file")->required();
  cmd->callback([opts, ids_text, out] {
    std::vector<int32_t> ids = parse_id_list(*ids_text);
    LoadedModel m = load_model(*opts);
    std::vector<float> logits = prompt_logits(*m.model, m.kv_format, ids, opts->prefill_chunk);
    const int64_t vocab = m.model->config().vocab_size;
    write_npy_f32(*out, logits.data(), {static_cast<int64_t>(ids.size()), vocab});
    std::fprintf(stderr, "wrote logits [%zu, %lld] to %s\n", ids.size(),
                 static_cast<long long>(vocab), out->c_str());
  });
}

}  // namespace densekv::cli
