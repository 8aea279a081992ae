#include "text/pretokenize.h"

#include <pcre2.h>
#include <utf8proc.h>

#include <fmt/format.h>
#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "core/errors.h"
#include "text/byte_level.h"

namespace densekv {
namespace {

// The regex of the ByteLevel pre-tokenizer with use_regex = true (GPT-2).
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Unicode White_Space, which is Oniguruma's \s: Zs + Zl + Zp + U+0009..U+000D + U+0085.
constexpr const char* kWhiteSpaceClass = R"(\t\n\x0B\f\r\x{85}\p{Zs}\x{2028}\x{2029})";

// Per-thread PCRE2 match state: match data (only the whole-match pair is read) and a JIT stack
// large enough for long runs of spaces under `\s+(?!\S)`.
struct MatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
  MatchState() { pcre2_jit_stack_assign(context, nullptr, stack); }
  ~MatchState() {
    pcre2_match_data_free(data);
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
  }
};

const std::string& require_string(const nlohmann::json& j, const char* key, const char* what) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    throw FileFormatError(fmt::format("tokenizer.json: {} lacks the string field '{}'", what, key));
  }
  return it->get_ref<const std::string&>();
}

std::string type_of(const nlohmann::json& j, const char* what) {
  if (!j.is_object())
    throw FileFormatError(fmt::format("tokenizer.json: {} is not an object", what));
  return require_string(j, "type", what);
}

}  // namespace

// ---- Regex ----

std::string onig_to_pcre2(const std::string& p) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[++i];
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpaceClass) : fmt::format("[{}]", kWhiteSpaceClass);
      } else if (e == 'S') {
        if (in_class) {
          throw UnsupportedModelError(
              "tokenizer.json: regex uses \\S inside a character class, "
              "which densekv cannot translate: " +
              p);
        }
        out += fmt::format("[^{}]", kWhiteSpaceClass);
      } else if (e == 'h' || e == 'H') {
        out += in_class ? "0-9a-fA-F" : (e == 'h' ? "[0-9a-fA-F]" : "[^0-9a-fA-F]");
        if (in_class && e == 'H') {
          throw UnsupportedModelError("tokenizer.json: regex uses \\H inside a character class: " +
                                      p);
        }
      } else {
        out += '\\';
        out += e;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == '[') {
      if (i + 1 < p.size() && p[i + 1] == ':') {  // POSIX class [:alpha:]
        size_t end = p.find(":]", i + 2);
        if (end != std::string::npos) {
          out.append(p, i, end + 2 - i);
          i = end + 1;
          continue;
        }
      }
      throw UnsupportedModelError(
          "tokenizer.json: regex has a nested character class, which "
          "densekv does not support: " +
          p);
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

Regex::Regex(const std::string& pattern) {
  std::string translated = onig_to_pcre2(pattern);
  int err = 0;
  PCRE2_SIZE offset = 0;
  auto* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.c_str()), translated.size(),
                             PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    throw UnsupportedModelError(
        fmt::format("tokenizer.json: regex {:?} does not compile with PCRE2 "
                    "at offset {}: {}",
                    pattern, offset, reinterpret_cast<const char*>(msg)));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is absent
  code_ = code;
}

Regex::~Regex() {
  pcre2_code_free(static_cast<pcre2_code*>(code_));
}

void Regex::find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const {
  thread_local MatchState state;
  auto* code = static_cast<const pcre2_code*>(code_);
  auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  size_t pos = 0;
  while (pos <= s.size()) {
    int rc =
        pcre2_match(code, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, state.data, state.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof(msg));
      throw InvalidArgumentError(fmt::format("pre-tokenizer regex failed on the input: {}",
                                             reinterpret_cast<const char*>(msg)));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state.data);
    size_t b = ov[0], e = ov[1];
    out.emplace_back(b, e);
    if (e > b) {
      pos = e;
    } else {  // empty match: step over one character
      if (e >= s.size()) break;
      pos = e + 1;
      while (pos < s.size() && (static_cast<uint8_t>(s[pos]) & 0xC0) == 0x80) ++pos;
    }
  }
}

// ---- Normalizer ----

Normalizer Normalizer::from_json(const nlohmann::json& j) {
  Normalizer n;
  if (!j.is_null()) n.add(j);
  return n;
}

void Normalizer::add(const nlohmann::json& j) {
  std::string type = type_of(j, "normalizer");
  if (type == "Sequence") {
    auto it = j.find("normalizers");
    if (it == j.end() || !it->is_array()) {
      throw FileFormatError("tokenizer.json: Sequence normalizer lacks its 'normalizers' array");
    }
    for (const auto& sub : *it) add(sub);
  } else if (type == "NFC") {
    steps_.push_back(Form::NFC);
  } else if (type == "NFD") {
    steps_.push_back(Form::NFD);
  } else if (type == "NFKC") {
    steps_.push_back(Form::NFKC);
  } else if (type == "NFKD") {
    steps_.push_back(Form::NFKD);
  } else {
    throw UnsupportedModelError(fmt::format(
        "tokenizer.json: normalizer type '{}' is not supported by densekv (supported: NFC, NFD, "
        "NFKC, NFKD and Sequence of them)",
        type));
  }
}

namespace {

// Appends the normalization of `in` in form `opts` (utf8proc options).
void normalize_into(std::string_view in, int opts, std::string& out) {
  utf8proc_uint8_t* dst = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(in.data()),
                                    static_cast<utf8proc_ssize_t>(in.size()), &dst,
                                    static_cast<utf8proc_option_t>(opts));
  if (n < 0) {
    throw InvalidArgumentError(fmt::format("Unicode normalization failed: {}", utf8proc_errmsg(n)));
  }
  out.append(reinterpret_cast<const char*>(dst), static_cast<size_t>(n));
  std::free(dst);
}

bool is_ascii(uint8_t c) {
  return c < 0x80;
}

}  // namespace

void Normalizer::apply(std::string& s) const {
  if (steps_.empty()) return;
  size_t first = 0;
  while (first < s.size() && is_ascii(static_cast<uint8_t>(s[first]))) ++first;
  if (first == s.size()) return;  // ASCII is invariant under every normalization form
  for (Form f : steps_) {
    int opts = UTF8PROC_STABLE;
    if (f == Form::NFC || f == Form::NFKC) opts |= UTF8PROC_COMPOSE;
    if (f == Form::NFD || f == Form::NFKD) opts |= UTF8PROC_DECOMPOSE;
    if (f == Form::NFKC || f == Form::NFKD) opts |= UTF8PROC_COMPAT;
    // Normalize only the runs of non-ASCII text, each with the ASCII character before it (it may
    // compose with a following mark, as "e" + U+0301). Splitting right before an ASCII character
    // is exact: ASCII characters are starters that never compose with what precedes them.
    std::string out;
    out.reserve(s.size() + s.size() / 8);
    size_t i = 0;
    while (i < s.size()) {
      size_t run = i;
      while (run < s.size() && is_ascii(static_cast<uint8_t>(s[run]))) ++run;
      if (run == s.size()) {
        out.append(s, i, run - i);
        break;
      }
      size_t begin = run > i ? run - 1 : run;  // keep the preceding ASCII character with the run
      out.append(s, i, begin - i);
      size_t end = run;
      while (end < s.size() && !is_ascii(static_cast<uint8_t>(s[end]))) ++end;
      normalize_into(std::string_view(s).substr(begin, end - begin), opts, out);
      i = end;
    }
    s.swap(out);
  }
}

// ---- PreTokenizer ----

PreTokenizer PreTokenizer::from_json(const nlohmann::json& j) {
  PreTokenizer p;
  if (!j.is_null()) p.add(j);
  return p;
}

void PreTokenizer::add(const nlohmann::json& j) {
  std::string type = type_of(j, "pre_tokenizer");
  if (type == "Sequence") {
    auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array()) {
      throw FileFormatError(
          "tokenizer.json: Sequence pre_tokenizer lacks its 'pretokenizers' array");
    }
    for (const auto& sub : *it) add(sub);
    return;
  }
  Step step;
  if (type == "Split") {
    auto pat = j.find("pattern");
    if (pat == j.end() || !pat->is_object()) {
      throw FileFormatError("tokenizer.json: Split pre_tokenizer lacks its 'pattern' object");
    }
    if (pat->contains("Regex")) {
      step.regex = std::make_shared<Regex>(require_string(*pat, "Regex", "Split pattern"));
    } else if (pat->contains("String")) {
      // A literal: quote every character that is not a letter or digit.
      std::string literal = require_string(*pat, "String", "Split pattern"), quoted;
      for (char c : literal) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && static_cast<uint8_t>(c) < 0x80)
          quoted += '\\';
        quoted += c;
      }
      step.regex = std::make_shared<Regex>(quoted);
    } else {
      throw FileFormatError(
          "tokenizer.json: Split pattern is neither {\"Regex\"} nor {\"String\"}");
    }
    const std::string& b = require_string(j, "behavior", "Split pre_tokenizer");
    if (b == "Removed")
      step.behavior = SplitBehavior::Removed;
    else if (b == "Isolated")
      step.behavior = SplitBehavior::Isolated;
    else if (b == "MergedWithPrevious")
      step.behavior = SplitBehavior::MergedWithPrevious;
    else if (b == "MergedWithNext")
      step.behavior = SplitBehavior::MergedWithNext;
    else if (b == "Contiguous")
      step.behavior = SplitBehavior::Contiguous;
    else
      throw FileFormatError("tokenizer.json: unknown Split behavior '" + b + "'");
    step.invert = j.value("invert", false);
  } else if (type == "ByteLevel") {
    step.is_byte_level = true;
    step.add_prefix_space = j.value("add_prefix_space", true);
    step.use_regex = j.value("use_regex", true);
    if (step.use_regex) step.regex = std::make_shared<Regex>(kGpt2Pattern);
    byte_level_ = true;
  } else {
    throw UnsupportedModelError(fmt::format(
        "tokenizer.json: pre_tokenizer type '{}' is not supported by densekv (supported: Split, "
        "ByteLevel and Sequence of them)",
        type));
  }
  steps_.push_back(std::move(step));
}

void regex_split(const Regex& regex, std::string_view s, SplitBehavior behavior, bool invert,
                 std::vector<std::pair<size_t, size_t>>& out) {
  if (s.empty()) return;
  // Cover s with (begin, end, is_match) ranges, as HF's Pattern::find_matches does.
  thread_local std::vector<std::pair<size_t, size_t>> matches;
  struct Range {
    size_t b, e;
    bool match;
  };
  thread_local std::vector<Range> ranges, merged;
  matches.clear();
  ranges.clear();
  merged.clear();
  regex.find_all(s, matches);
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (prev != b) ranges.push_back({prev, b, invert});
    ranges.push_back({b, e, !invert});
    prev = e;
  }
  if (prev != s.size()) ranges.push_back({prev, s.size(), invert});

  // Apply the behavior; `match` in `merged` then means "remove this range".
  bool prev_match = false;
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (auto r : ranges) merged.push_back({r.b, r.e, false});
      break;
    case SplitBehavior::Removed:
      merged = ranges;
      break;
    case SplitBehavior::Contiguous:
      for (auto r : ranges) {
        if (r.match == prev_match && !merged.empty())
          merged.back().e = r.e;
        else
          merged.push_back({r.b, r.e, false});
        prev_match = r.match;
      }
      break;
    case SplitBehavior::MergedWithPrevious:
      for (auto r : ranges) {
        if (r.match && !prev_match && !merged.empty())
          merged.back().e = r.e;
        else
          merged.push_back({r.b, r.e, false});
        prev_match = r.match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (size_t k = ranges.size(); k-- > 0;) {
        Range r = ranges[k];
        if (r.match && !prev_match && !merged.empty())
          merged.back().b = r.b;
        else
          merged.push_back({r.b, r.e, false});
        prev_match = r.match;
      }
      std::reverse(merged.begin(), merged.end());
      break;
  }
  for (auto r : merged) {
    if (!r.match && r.e > r.b) out.emplace_back(r.b, r.e);
  }
}

void PreTokenizer::run(size_t k, std::string_view s, const WordSink& sink) const {
  if (s.empty()) return;
  if (k == steps_.size()) {
    sink(s);
    return;
  }
  const Step& step = steps_[k];
  std::vector<std::pair<size_t, size_t>> pieces;
  if (!step.is_byte_level) {
    regex_split(*step.regex, s, step.behavior, step.invert, pieces);
    for (auto [b, e] : pieces) run(k + 1, s.substr(b, e - b), sink);
    return;
  }
  std::string prefixed;
  if (step.add_prefix_space && s[0] != ' ') {
    prefixed.reserve(s.size() + 1);
    prefixed += ' ';
    prefixed += s;
    s = prefixed;
  }
  std::string mapped;
  auto emit = [&](std::string_view piece) {
    mapped.clear();
    byte_level_encode(piece, mapped);
    run(k + 1, mapped, sink);
  };
  if (!step.use_regex) {
    emit(s);
    return;
  }
  regex_split(*step.regex, s, SplitBehavior::Isolated, false, pieces);
  for (auto [b, e] : pieces) emit(s.substr(b, e - b));
}

void PreTokenizer::split(std::string_view text, const WordSink& sink) const {
  run(0, text, sink);
}

void PreTokenizer::split(std::string_view text, std::vector<std::string>& out) const {
  split(text, [&](std::string_view w) { out.emplace_back(w); });
}

}  // namespace densekv
