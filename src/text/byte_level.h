// The GPT-2 byte-level alphabet: every byte maps to one printable code point (printable Latin-1
// bytes to themselves, the others to U+0100 + n), so any byte string becomes a string of
// vocabulary symbols. Used by the ByteLevel pre-tokenizer (bytes -> symbols) and decoder.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace densekv {

// Code point that byte `b` maps to.
uint32_t byte_level_codepoint(uint8_t b);

// Appends the byte-level symbols of `bytes` (each byte becomes its code point, UTF-8 encoded).
void byte_level_encode(std::string_view bytes, std::string& out);

// Appends the bytes a vocabulary token stands for, as the ByteLevel decoder does: every character
// maps back to its byte; when some character is not in the alphabet, the token's own UTF-8 text is
// appended unchanged instead (HF behaviour for added tokens such as "<|im_start|>" or ones with
// spaces).
void byte_level_decode(std::string_view token, std::string& out);

}  // namespace densekv
