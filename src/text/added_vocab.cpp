#include "text/added_vocab.h"

#include <utf8proc.h>

#include <algorithm>

#include "text/pretokenize.h"
#include "text/utf8.h"

namespace densekv {
namespace {

// Unicode White_Space (Rust's char::is_whitespace and regex \s).
bool is_white_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Rust regex \w: Alphabetic, marks, decimal digits, connector punctuation, join controls.
// Alphabetic is approximated by the letter categories plus Nl (Other_Alphabetic code points are
// nearly all marks, covered by M*).
bool is_word_char(uint32_t c) {
  if (c == 0x200C || c == 0x200D) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

// Code point that ends s (s non-empty, valid UTF-8).
uint32_t last_codepoint(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80) --i;
  size_t len = 0;
  return utf8_decode(s, i, &len);
}

// Start of the run of white space that ends s.
size_t trailing_space_start(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t i = end - 1;
    while (i > 0 && (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80) --i;
    size_t len = 0;
    if (!is_white_space(utf8_decode(s, i, &len))) break;
    end = i;
  }
  return end;
}

// Length of the run of white space that starts s.
size_t leading_space_length(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 0;
    if (!is_white_space(utf8_decode(s, i, &len))) break;
    i += len;
  }
  return i;
}

}  // namespace

void AddedVocab::Matcher::build() {
  by_first.assign(256, {});
  for (size_t k = 0; k < patterns.size(); ++k) {
    by_first[static_cast<uint8_t>(patterns[k][0])].push_back(static_cast<int>(k));
  }
  for (auto& bucket : by_first) {
    // Longest first; among equal lengths the earlier pattern wins.
    std::stable_sort(bucket.begin(), bucket.end(),
                     [&](int a, int b) { return patterns[a].size() > patterns[b].size(); });
  }
}

int AddedVocab::Matcher::find(std::string_view text, size_t from, size_t* begin) const {
  if (patterns.empty()) return -1;
  for (size_t pos = from; pos < text.size(); ++pos) {
    const auto& bucket = by_first[static_cast<uint8_t>(text[pos])];
    for (int k : bucket) {
      const std::string& p = patterns[k];
      if (text.size() - pos >= p.size() && text.compare(pos, p.size(), p) == 0) {
        *begin = pos;
        return k;
      }
    }
  }
  return -1;
}

void AddedVocab::build(std::vector<AddedToken> tokens, const Normalizer& normalizer) {
  tokens_ = std::move(tokens);
  raw_ = Matcher{};
  normalized_ = Matcher{};
  for (size_t k = 0; k < tokens_.size(); ++k) {
    const AddedToken& t = tokens_[k];
    if (t.content.empty()) continue;  // HF ignores empty added tokens
    Matcher& m = t.normalized ? normalized_ : raw_;
    std::string pattern = t.content;
    if (t.normalized) normalizer.apply(pattern);
    if (pattern.empty()) continue;
    m.patterns.push_back(std::move(pattern));
    m.token_index.push_back(static_cast<int>(k));
  }
  raw_.build();
  normalized_.build();
}

void AddedVocab::split(std::string_view text, bool normalized_set, bool parse_special,
                       std::vector<TextPiece>& out) const {
  const Matcher& m = normalized_set ? normalized_ : raw_;
  size_t start_offset = 0, pos = 0, start = 0;
  int k;
  while ((k = m.find(text, pos, &start)) >= 0) {
    size_t stop = start + m.patterns[k].size();
    pos = stop;  // the matcher resumes after the raw match, whatever happens to it below
    const AddedToken& t = tokens_[m.token_index[k]];
    if (t.special && !parse_special) continue;
    if (t.single_word) {
      bool start_space = start == 0 || !is_word_char(last_codepoint(text.substr(0, start)));
      size_t len = 0;
      bool stop_space = stop == text.size() || !is_word_char(utf8_decode(text, stop, &len));
      if (!start_space || !stop_space) continue;
    }
    if (t.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
    if (t.rstrip) stop += leading_space_length(text.substr(stop));
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, t.id});
    start_offset = stop;
  }
  if (start_offset < text.size()) out.push_back({start_offset, text.size(), -1});
}

}  // namespace densekv
