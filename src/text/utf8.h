// UTF-8 helpers shared by the tokenizer and the detokenizer: validation, code point decoding and
// Rust-compatible lossy conversion (what HF tokenizers' String::from_utf8_lossy does).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace densekv {

// Length of the valid UTF-8 sequence starting at s[i] (1..4), or 0 when the bytes there do not
// form a complete, valid sequence (bad lead byte, bad continuation, overlong, surrogate, or cut
// off).
size_t utf8_sequence_length(std::string_view s, size_t i);

// Decodes the code point at s[i]; `len` receives its byte length. The input must be valid UTF-8.
uint32_t utf8_decode(std::string_view s, size_t i, size_t* len);

// Appends the UTF-8 encoding of code point `cp` to `out`.
void utf8_append(uint32_t cp, std::string& out);

// Byte offset of the first invalid UTF-8 byte, or s.size() when the whole string is valid.
size_t utf8_first_invalid(std::string_view s);

// Appends `in` to `out`, replacing each maximal invalid subsequence by U+FFFD exactly like Rust's
// String::from_utf8_lossy. With final = false, a trailing sequence that is incomplete but could
// still become valid is held back: the return value is the number of bytes consumed, so the caller
// keeps in[consumed..] for the next call. Feeding a byte stream in pieces with final = false, then
// the rest with final = true, gives the same text as one final call on the whole stream.
size_t utf8_append_lossy(std::string_view in, bool final, std::string& out);

}  // namespace densekv
