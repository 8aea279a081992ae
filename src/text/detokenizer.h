// Incremental detokenizer for streaming: feed generated ids one at a time, get the text they add.
// It never emits a broken UTF-8 sequence: bytes of a character that is still incomplete are held
// back until the next token completes it (or shows it invalid, which gives U+FFFD). The pieces
// concatenate to exactly Tokenizer::decode(all ids, skip_special).
#pragma once
#include <cstdint>
#include <string>

namespace densekv {

class Tokenizer;

class Detokenizer {
 public:
  Detokenizer(const Tokenizer& tokenizer, bool skip_special);

  // Adds one token; returns the text that became complete (often the token's text, may be "").
  std::string push(int32_t id);
  // Ends the stream: returns what was held back (an incomplete character becomes U+FFFD).
  std::string finish();
  // Bytes held back, waiting for the rest of a character (0..3).
  size_t pending() const { return pending_.size(); }

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace densekv
