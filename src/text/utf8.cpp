#include "text/utf8.h"

namespace densekv {
namespace {

// Bytes of a sequence that starts with lead byte `b` (0 = not a lead byte).
int expected_length(uint8_t b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

// Whether `c` may follow lead byte `lead` as its first continuation byte (rules out overlong
// forms, surrogates and code points above U+10FFFF, as in the Unicode table 3-7).
bool valid_second(uint8_t lead, uint8_t c) {
  switch (lead) {
    case 0xE0:
      return c >= 0xA0 && c <= 0xBF;
    case 0xED:
      return c >= 0x80 && c <= 0x9F;
    case 0xF0:
      return c >= 0x90 && c <= 0xBF;
    case 0xF4:
      return c >= 0x80 && c <= 0x8F;
    default:
      return c >= 0x80 && c <= 0xBF;
  }
}

// Number of bytes at s[i] that form a valid prefix of some sequence (at least 1); the whole
// sequence when it is complete. `complete` tells which.
size_t valid_prefix(std::string_view s, size_t i, bool* complete) {
  uint8_t lead = static_cast<uint8_t>(s[i]);
  int need = expected_length(lead);
  *complete = false;
  if (need == 0) return 1;
  size_t n = 1;
  for (int k = 1; k < need; ++k) {
    if (i + n >= s.size()) return n;  // cut off: a valid prefix so far
    uint8_t c = static_cast<uint8_t>(s[i + n]);
    bool ok = k == 1 ? valid_second(lead, c) : (c >= 0x80 && c <= 0xBF);
    if (!ok) return n;
    ++n;
  }
  *complete = true;
  return n;
}

}  // namespace

size_t utf8_sequence_length(std::string_view s, size_t i) {
  bool complete = false;
  size_t n = valid_prefix(s, i, &complete);
  return complete ? n : 0;
}

uint32_t utf8_decode(std::string_view s, size_t i, size_t* len) {
  uint8_t b = static_cast<uint8_t>(s[i]);
  if (b < 0x80) {
    *len = 1;
    return b;
  }
  int n = expected_length(b);
  uint32_t cp = b & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
  *len = static_cast<size_t>(n);
  return cp;
}

void utf8_append(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t utf8_first_invalid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t n = utf8_sequence_length(s, i);
    if (n == 0) return i;
    i += n;
  }
  return s.size();
}

size_t utf8_append_lossy(std::string_view in, bool final, std::string& out) {
  size_t i = 0;
  while (i < in.size()) {
    size_t start = i;
    while (i < in.size() && static_cast<uint8_t>(in[i]) < 0x80) ++i;  // ASCII run
    out.append(in.data() + start, i - start);
    if (i == in.size()) break;
    bool complete = false;
    size_t n = valid_prefix(in, i, &complete);
    if (complete) {
      out.append(in.data() + i, n);
    } else {
      if (!final && i + n == in.size() && expected_length(static_cast<uint8_t>(in[i])) != 0) {
        return i;  // an incomplete sequence at the end: wait for more bytes
      }
      out.append("\xEF\xBF\xBD");  // U+FFFD for the maximal invalid subsequence
    }
    i += n;
  }
  return in.size();
}

}  // namespace densekv
