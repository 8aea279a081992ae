// Python str operations: see jinja_strings.h.
#include "text/jinja_strings.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdio>

#include "text/jinja_builtins.h"

namespace densekv::jinja {
namespace {

using CodePoints = std::vector<uint32_t>;

uint32_t upper(uint32_t c) {
  return static_cast<uint32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c)));
}
uint32_t lower(uint32_t c) {
  return static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}
uint32_t title(uint32_t c) {
  return static_cast<uint32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c)));
}
utf8proc_category_t category(uint32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}
bool is_upper(uint32_t c) {
  return category(c) == UTF8PROC_CATEGORY_LU;
}
bool is_lower(uint32_t c) {
  return category(c) == UTF8PROC_CATEGORY_LL;
}
bool is_titlecase(uint32_t c) {
  return category(c) == UTF8PROC_CATEGORY_LT;
}
bool is_alpha(uint32_t c) {
  return category(c) >= UTF8PROC_CATEGORY_LU && category(c) <= UTF8PROC_CATEGORY_LO;
}
bool is_digit(uint32_t c) {
  return category(c) == UTF8PROC_CATEGORY_ND;
}
bool is_numeric(uint32_t c) {
  return category(c) >= UTF8PROC_CATEGORY_ND && category(c) <= UTF8PROC_CATEGORY_NO;
}

std::string map_chars(const std::string& s, uint32_t (*f)(uint32_t)) {
  std::string out;
  for (uint32_t c : utf8_decode(s)) utf8_append(out, f(c));
  return out;
}

bool is_line_break(uint32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
         c == 0x85 || c == 0x2028 || c == 0x2029;
}

}  // namespace

std::string py_strip(const std::string& s, const Value& chars, bool left, bool right) {
  CodePoints cps = utf8_decode(s);
  CodePoints set;
  bool whitespace = chars.is_undefined() || chars.is_none();
  if (!whitespace) {
    if (!chars.is_string()) fail("strip arg must be None or str, not " + type_name(chars));
    set = utf8_decode(chars.s);
  }
  auto strip_it = [&](uint32_t c) {
    return whitespace ? py_isspace(c) : std::find(set.begin(), set.end(), c) != set.end();
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strip_it(cps[b])) ++b;
  if (right)
    while (e > b && strip_it(cps[e - 1])) --e;
  return utf8_encode(cps, b, e);
}

Array py_split(const std::string& s, const Value& sep, int64_t maxsplit, bool from_right) {
  Array parts;
  if (sep.is_undefined() || sep.is_none()) {  // runs of whitespace; no empty parts
    CodePoints cps = utf8_decode(s);
    std::vector<std::pair<size_t, size_t>> words;
    size_t k = 0;
    while (k < cps.size()) {
      while (k < cps.size() && py_isspace(cps[k])) ++k;
      if (k == cps.size()) break;
      size_t b = k;
      while (k < cps.size() && !py_isspace(cps[k])) ++k;
      words.emplace_back(b, k);
    }
    if (maxsplit >= 0 && static_cast<int64_t>(words.size()) > maxsplit + 1) {
      if (!from_right) {  // the last part runs to the end of the (right-stripped) string
        size_t end = cps.size();
        while (end > 0 && py_isspace(cps[end - 1])) --end;
        words[maxsplit].second = end;
        words.resize(maxsplit + 1);
      } else {
        size_t begin = 0;
        while (begin < cps.size() && py_isspace(cps[begin])) ++begin;
        size_t first = words.size() - maxsplit - 1;
        words[first].first = begin;
        words.erase(words.begin(), words.begin() + first);
      }
    }
    for (auto [b, e] : words) parts.push_back(Value::string(utf8_encode(cps, b, e)));
    return parts;
  }
  if (!sep.is_string()) fail("must be str or None, not " + type_name(sep));
  if (sep.s.empty()) fail("empty separator");
  std::vector<std::string> pieces;
  if (!from_right) {
    size_t start = 0, at;
    while ((maxsplit < 0 || static_cast<int64_t>(pieces.size()) < maxsplit) &&
           (at = s.find(sep.s, start)) != std::string::npos) {
      pieces.push_back(s.substr(start, at - start));
      start = at + sep.s.size();
    }
    pieces.push_back(s.substr(start));
  } else {
    size_t end = s.size();
    std::vector<std::string> rev;
    while (maxsplit < 0 || static_cast<int64_t>(rev.size()) < maxsplit) {
      if (end < sep.s.size()) break;
      size_t at = s.rfind(sep.s, end - sep.s.size());
      if (at == std::string::npos) break;
      rev.push_back(s.substr(at + sep.s.size(), end - at - sep.s.size()));
      end = at;
    }
    pieces.push_back(s.substr(0, end));
    pieces.insert(pieces.end(), rev.rbegin(), rev.rend());
  }
  for (auto& p : pieces) parts.push_back(Value::string(std::move(p)));
  return parts;
}

std::vector<std::string> py_splitlines(const std::string& s, bool keepends) {
  CodePoints cps = utf8_decode(s);
  std::vector<std::string> lines;
  size_t b = 0;
  for (size_t k = 0; k < cps.size(); ++k) {
    if (!is_line_break(cps[k])) continue;
    size_t eol = k;
    if (cps[k] == '\r' && k + 1 < cps.size() && cps[k + 1] == '\n') ++k;
    lines.push_back(utf8_encode(cps, b, keepends ? k + 1 : eol));
    b = k + 1;
  }
  if (b < cps.size()) lines.push_back(utf8_encode(cps, b, cps.size()));
  return lines;
}

std::string py_upper(const std::string& s) {
  return map_chars(s, upper);
}
std::string py_lower(const std::string& s) {
  return map_chars(s, lower);
}

std::string py_title(const std::string& s) {
  std::string out;
  bool prev_cased = false;
  for (uint32_t c : utf8_decode(s)) {
    if (is_upper(c) || is_titlecase(c)) {
      c = prev_cased ? lower(c) : c;
      prev_cased = true;
    } else if (is_lower(c)) {
      c = prev_cased ? c : title(c);
      prev_cased = true;
    } else {
      prev_cased = false;
    }
    utf8_append(out, c);
  }
  return out;
}

std::string py_capitalize(const std::string& s) {
  CodePoints cps = utf8_decode(s);
  std::string out;
  for (size_t k = 0; k < cps.size(); ++k) utf8_append(out, k == 0 ? title(cps[k]) : lower(cps[k]));
  return out;
}

std::string jinja_title(const std::string& s) {
  // re.split(r"([-\s({\[<]+)", s): delimiter runs stay; every other piece is capitalized.
  CodePoints cps = utf8_decode(s);
  auto is_delim = [](uint32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c);
  };
  std::string out;
  size_t k = 0;
  while (k < cps.size()) {
    size_t b = k;
    bool delim = is_delim(cps[k]);
    while (k < cps.size() && is_delim(cps[k]) == delim) ++k;
    for (size_t j = b; j < k; ++j)
      utf8_append(out, delim ? cps[j] : j == b ? upper(cps[j]) : lower(cps[j]));
  }
  return out;
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& repl,
                       int64_t count) {
  std::string out;
  if (old.empty()) {  // Python inserts repl between every character (and at both ends)
    CodePoints cps = utf8_decode(s);
    int64_t n = 0;
    for (size_t k = 0; k <= cps.size(); ++k) {
      if (count < 0 || n < count) {
        out += repl;
        ++n;
      }
      if (k < cps.size()) utf8_append(out, cps[k]);
    }
    return out;
  }
  size_t start = 0, at;
  int64_t n = 0;
  while ((count < 0 || n < count) && (at = s.find(old, start)) != std::string::npos) {
    out += s.substr(start, at - start) + repl;
    start = at + old.size();
    ++n;
  }
  return out + s.substr(start);
}

int64_t py_find(const std::string& s, const std::string& sub, bool reverse) {
  size_t at = reverse ? s.rfind(sub) : s.find(sub);
  if (at == std::string::npos) return -1;
  return static_cast<int64_t>(utf8_length(s.substr(0, at)));
}

int64_t py_count(const std::string& s, const std::string& sub) {
  if (sub.empty()) return static_cast<int64_t>(utf8_length(s)) + 1;
  int64_t n = 0;
  for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
  return n;
}

bool py_predicate(const std::string& name, const std::string& s) {
  CodePoints cps = utf8_decode(s);
  if (cps.empty()) return false;
  auto all = [&](auto pred) { return std::all_of(cps.begin(), cps.end(), pred); };
  if (name == "isdigit" || name == "isdecimal") return all(is_digit);
  if (name == "isnumeric") return all(is_numeric);
  if (name == "isalpha") return all(is_alpha);
  if (name == "isalnum") return all([](uint32_t c) { return is_alpha(c) || is_numeric(c); });
  if (name == "isspace") return all(py_isspace);
  if (name == "isascii") return all([](uint32_t c) { return c < 0x80; });
  bool any_cased = std::any_of(cps.begin(), cps.end(), [](uint32_t c) {
    return is_upper(c) || is_lower(c) || is_titlecase(c);
  });
  if (name == "isupper")
    return any_cased && all([](uint32_t c) { return !is_lower(c) && !is_titlecase(c); });
  if (name == "islower")
    return any_cased && all([](uint32_t c) { return !is_upper(c) && !is_titlecase(c); });
  fail("str." + name + "() is not supported");
}

std::string py_format(const std::string& fmt, const Args& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t k = 0; k < fmt.size(); ++k) {
    char c = fmt[k];
    if (c == '}') {
      if (k + 1 < fmt.size() && fmt[k + 1] == '}')
        ++k;
      else
        fail("Single '}' encountered in format string");
      out += '}';
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (k + 1 < fmt.size() && fmt[k + 1] == '{') {
      out += '{';
      ++k;
      continue;
    }
    size_t close = fmt.find('}', k);
    if (close == std::string::npos) fail("Single '{' encountered in format string");
    std::string field = fmt.substr(k + 1, close - k - 1);
    k = close;
    char conv = 0;
    size_t bang = field.find('!');
    if (bang != std::string::npos) {
      conv = bang + 1 < field.size() ? field[bang + 1] : 0;
      field.resize(bang);
    }
    if (field.find(':') != std::string::npos)
      fail("format specs in str.format() are not supported");
    if (field.find_first_of(".[") != std::string::npos)
      fail("attribute/index lookups in str.format() fields are not supported");
    const Value* v = nullptr;
    if (field.empty()) {
      if (auto_index >= args.pos.size())
        fail("Replacement index " + std::to_string(auto_index) + " out of range");
      v = &args.pos[auto_index++];
    } else if (std::all_of(field.begin(), field.end(), ::isdigit)) {
      size_t idx = std::stoul(field);
      if (idx >= args.pos.size()) fail("Replacement index " + field + " out of range");
      v = &args.pos[idx];
    } else {
      for (const auto& [key, val] : args.kw)
        if (key == field) v = &val;
      if (!v) fail("KeyError: '" + field + "'");
    }
    out += conv == 'r' ? repr(*v) : to_str(*v);
  }
  return out;
}

std::string py_percent(const std::string& fmt, const Value& args) {
  Array positional = args.is_array() ? *args.arr : Array{args};
  size_t next = 0;
  std::string out;
  for (size_t k = 0; k < fmt.size(); ++k) {
    if (fmt[k] != '%') {
      out += fmt[k];
      continue;
    }
    if (++k >= fmt.size()) fail("incomplete format");
    const Value* v = nullptr;
    if (fmt[k] == '%') {
      out += '%';
      continue;
    }
    if (fmt[k] == '(') {  // %(name)s with a dict argument
      size_t close = fmt.find(')', k);
      if (close == std::string::npos || !args.is_dict()) fail("format requires a mapping");
      v = args.obj->find(fmt.substr(k + 1, close - k - 1));
      if (!v) fail("KeyError: '" + fmt.substr(k + 1, close - k - 1) + "'");
      k = close + 1;
      if (k >= fmt.size()) fail("incomplete format");
    } else {
      if (next >= positional.size()) fail("not enough arguments for format string");
      v = &positional[next++];
    }
    char conv = fmt[k];
    if (conv == 's') {
      out += to_str(*v);
    } else if (conv == 'r') {
      out += repr(*v);
    } else if (conv == 'd' || conv == 'i') {
      if (!v->is_number()) fail("%d format: a real number is required, not " + type_name(*v));
      out += std::to_string(v->kind == Value::Kind::Float ? static_cast<int64_t>(v->f)
                                                          : static_cast<int64_t>(to_double(*v)));
    } else if (conv == 'f') {
      if (!v->is_number()) fail("must be real number, not " + type_name(*v));
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%f", to_double(*v));
      out += buf;
    } else {
      fail(std::string("the %") + conv + " conversion is not supported");
    }
  }
  if (next < positional.size() && !args.is_dict())
    fail("not all arguments converted during string formatting");
  return out;
}

std::string jinja_indent(const std::string& s, const Value& width, bool first, bool blank) {
  std::string ind =
      width.is_string()
          ? width.s
          : std::string(width.is_number() ? static_cast<size_t>(to_double(width)) : 4, ' ');
  std::vector<std::string> lines = py_splitlines(s + "\n", false);
  std::string rv;
  for (size_t k = 0; k < lines.size(); ++k) {
    if (k > 0) {
      rv += '\n';
      if (blank || !lines[k].empty()) rv += ind;
    }
    rv += lines[k];
  }
  if (first) rv.insert(0, ind);
  return rv;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace densekv::jinja
