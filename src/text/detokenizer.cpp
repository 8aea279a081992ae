#include "text/detokenizer.h"

#include "text/tokenizer.h"
#include "text/utf8.h"

namespace densekv {

Detokenizer::Detokenizer(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(tokenizer), skip_special_(skip_special) {}

std::string Detokenizer::push(int32_t id) {
  tokenizer_.append_token_bytes(id, skip_special_, pending_);
  std::string text;
  size_t used = utf8_append_lossy(pending_, /*final=*/false, text);
  pending_.erase(0, used);
  return text;
}

std::string Detokenizer::finish() {
  std::string text;
  utf8_append_lossy(pending_, /*final=*/true, text);
  pending_.clear();
  return text;
}

}  // namespace densekv
