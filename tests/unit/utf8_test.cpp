// UTF-8 helpers and the byte-level alphabet. Expected values: Rust's String::from_utf8_lossy
// (Unicode "maximal subpart" replacement, documented in the Rust std docs and Unicode 3.9) and
// the GPT-2 bytes_to_unicode table.
#include <gtest/gtest.h>

#include "text/byte_level.h"
#include "text/utf8.h"

namespace densekv {
namespace {

std::string lossy(std::string_view s) {
  std::string out;
  utf8_append_lossy(s, true, out);
  return out;
}

const char* kFffd = "\xEF\xBF\xBD";

TEST(Utf8, LossyMatchesRust) {
  EXPECT_EQ(lossy("Hello \xF0\x90\x80World"), std::string("Hello ") + kFffd + "World");  // Rust doc
  EXPECT_EQ(lossy("\xE2\x82"
                  "A"),
            std::string(kFffd) + "A");                       // one U+FFFD per maximal prefix
  EXPECT_EQ(lossy("\xC0\x80"), std::string(kFffd) + kFffd);  // C0 is never a lead byte
  EXPECT_EQ(lossy("\xED\xA0\x80"), std::string(kFffd) + kFffd + kFffd);              // surrogate
  EXPECT_EQ(lossy("\xF4\x90\x80\x80"), std::string(kFffd) + kFffd + kFffd + kFffd);  // > U+10FFFF
  EXPECT_EQ(lossy("caf\xC3\xA9 \xE2\x82\xAC"), "caf\xC3\xA9 \xE2\x82\xAC");
  EXPECT_EQ(lossy("\xF0\x9F\x98"), kFffd);  // cut off at the end
}

TEST(Utf8, StreamingHoldsBackIncompleteTail) {
  std::string out;
  EXPECT_EQ(utf8_append_lossy("ab\xE2\x82", false, out), 2u);
  EXPECT_EQ(out, "ab");
  out.clear();
  EXPECT_EQ(utf8_append_lossy("\xE2\x82\xAC", false, out), 3u);
  EXPECT_EQ(out, "\xE2\x82\xAC");
  out.clear();
  // An invalid byte is not held back.
  EXPECT_EQ(utf8_append_lossy("a\xFF", false, out), 2u);
  EXPECT_EQ(out, std::string("a") + kFffd);
}

TEST(Utf8, FirstInvalid) {
  EXPECT_EQ(utf8_first_invalid("abc"), 3u);
  EXPECT_EQ(utf8_first_invalid("ab\xC3"), 2u);
  EXPECT_EQ(utf8_first_invalid("\xE2\x82\xAC\x80"), 3u);
}

TEST(ByteLevel, Gpt2Alphabet) {
  EXPECT_EQ(byte_level_codepoint('A'), uint32_t{'A'});
  EXPECT_EQ(byte_level_codepoint(' '), 0x120u);   // Ġ
  EXPECT_EQ(byte_level_codepoint('\n'), 0x10Au);  // Ċ
  EXPECT_EQ(byte_level_codepoint(0x00), 0x100u);
  EXPECT_EQ(byte_level_codepoint(0xAD), 0x143u);  // the last non-printable byte: Ń
  EXPECT_EQ(byte_level_codepoint(0xE9), 0xE9u);
  std::string all, back;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string mapped;
  byte_level_encode(all, mapped);
  byte_level_decode(mapped, back);
  EXPECT_EQ(back, all);
  // A token with characters outside the alphabet decodes to its own text (HF's fallback).
  back.clear();
  byte_level_decode("<|a b|>", back);
  EXPECT_EQ(back, "<|a b|>");
}

}  // namespace
}  // namespace densekv
