// Jinja lexer: mirrors jinja2/lexer.py (root/comment/block/variable/raw states).
#include "text/jinja_lexer.h"

#include <cctype>
#include <cstdlib>
#include <cstring>

#include "text/jinja_value.h"

namespace densekv::jinja {
namespace {

[[noreturn]] void syntax_error(const std::string& msg, int line) {
  throw TemplateSyntaxError("chat template syntax error at line " + std::to_string(line) + ": " +
                            msg);
}

// Length in bytes of the Python-whitespace code point starting at s[k], or 0.
size_t ws_at(const std::string& s, size_t k) {
  unsigned char c = s[k];
  if (c < 0x80) return py_isspace(c) ? 1 : 0;
  size_t n = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 0;  // whitespace is never 4 bytes
  if (n == 0 || k + n > s.size()) return 0;
  std::vector<uint32_t> cp = utf8_decode(s.substr(k, n));
  return cp.size() == 1 && py_isspace(cp[0]) ? n : 0;
}

size_t skip_ws(const std::string& s, size_t k) {
  while (k < s.size()) {
    size_t n = ws_at(s, k);
    if (n == 0) break;
    k += n;
  }
  return k;
}

// Python's text.rstrip(): drop trailing whitespace code points.
std::string rstrip_ws(const std::string& s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    if (ws_at(s, start) != end - start) break;
    end = start;
  }
  return s.substr(0, end);
}

bool all_ws(const std::string& s, size_t from) {
  return skip_ws(s, from) == s.size();
}

bool starts(const std::string& s, size_t k, const char* lit) {
  return s.compare(k, std::strlen(lit), lit) == 0;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Python's "unicode-escape" decoding of a string literal body, as jinja2 applies it.
std::string unescape(const std::string& body, int line) {
  std::string out;
  for (size_t k = 0; k < body.size(); ++k) {
    if (body[k] != '\\' || k + 1 == body.size()) {
      out += body[k];
      continue;
    }
    char c = body[++k];
    switch (c) {
      case '\n':
        break;  // line continuation
      case '\\':
        out += '\\';
        break;
      case '\'':
        out += '\'';
        break;
      case '"':
        out += '"';
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case 'x':
      case 'u':
      case 'U': {
        size_t digits = c == 'x' ? 2 : c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (size_t j = 1; j <= digits; ++j) {
          int h = k + j < body.size() ? hex_value(body[k + j]) : -1;
          if (h < 0)
            syntax_error(std::string("truncated \\") + c + " escape in string literal", line);
          cp = cp * 16 + h;
        }
        if (cp > 0x10FFFF) syntax_error("illegal Unicode character in string literal", line);
        utf8_append(out, cp);
        k += digits;
        break;
      }
      case 'N':
        syntax_error("\\N{...} escapes are not supported", line);
      default:
        if (c >= '0' && c <= '7') {
          uint32_t cp = c - '0';
          for (int j = 0; j < 2 && k + 1 < body.size() && body[k + 1] >= '0' && body[k + 1] <= '7';
               ++j)
            cp = cp * 8 + (body[++k] - '0');
          utf8_append(out, cp);
        } else {  // unknown escape: Python keeps the backslash
          out += '\\';
          out += c;
        }
    }
  }
  return out;
}

struct Lexer {
  std::string src;
  LexOptions opt;
  std::vector<Token> out;
  size_t pos = 0;
  size_t line_pos = 0;  // lines counted up to here
  int line = 1;

  int line_at(size_t k) {
    for (; line_pos < k && line_pos < src.size(); ++line_pos) line += src[line_pos] == '\n';
    return line;
  }

  void emit(TokKind kind, std::string text, size_t at) {
    Token t;
    t.kind = kind;
    t.text = std::move(text);
    t.line = line_at(at);
    out.push_back(std::move(t));
  }

  // The text before a tag, after the tag's whitespace control ('-', '+' or none) and lstrip_blocks.
  void emit_data(std::string text, size_t at, char sign, bool is_variable, bool line_starting) {
    if (sign == '-') {
      text = rstrip_ws(text);
    } else if (sign != '+' && opt.lstrip_blocks && !is_variable) {
      size_t l_pos = text.rfind('\n');
      l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
      if ((l_pos > 0 || line_starting) && l_pos < text.size() && all_ws(text, l_pos))
        text.resize(l_pos);
    }
    if (!text.empty()) emit(TokKind::Data, std::move(text), at);
  }

  // {% raw %} (already matched up to `p`, the end of its tag): body up to {% endraw %}.
  size_t lex_raw(size_t p) {
    for (size_t k = p; k + 1 < src.size(); ++k) {
      if (!starts(src, k, "{%")) continue;
      size_t q = k + 2;
      char sign = q < src.size() && (src[q] == '-' || src[q] == '+') ? src[q++] : 0;
      q = skip_ws(src, q);
      if (!starts(src, q, "endraw")) continue;
      q = skip_ws(src, q + 6);
      size_t end;
      if (starts(src, q, "+%}")) {
        end = q + 3;
      } else if (starts(src, q, "-%}")) {
        end = skip_ws(src, q + 3);
      } else if (starts(src, q, "%}")) {
        end = q + 2;
        if (opt.trim_blocks && end < src.size() && src[end] == '\n') ++end;
      } else {
        continue;
      }
      emit_data(src.substr(p, k - p), p, sign, false, false);
      return end;
    }
    syntax_error("missing end of raw directive", line_at(p));
  }

  // Tokens of one {{ }} or {% %} tag starting at p; returns the position after the closing tag.
  size_t lex_tag(size_t p, bool is_variable) {
    std::vector<char> balance;
    for (;;) {
      if (p >= src.size()) syntax_error(is_variable ? "missing '}}'" : "missing '%}'", line_at(p));
      if (balance.empty()) {
        if (is_variable) {
          if (starts(src, p, "-}}")) return emit(TokKind::VarEnd, "", p), skip_ws(src, p + 3);
          if (starts(src, p, "}}")) return emit(TokKind::VarEnd, "", p), p + 2;
        } else {
          if (starts(src, p, "+%}")) return emit(TokKind::BlockEnd, "", p), p + 3;
          if (starts(src, p, "-%}")) return emit(TokKind::BlockEnd, "", p), skip_ws(src, p + 3);
          if (starts(src, p, "%}")) {
            emit(TokKind::BlockEnd, "", p);
            p += 2;
            if (opt.trim_blocks && p < src.size() && src[p] == '\n') ++p;
            return p;
          }
        }
      }
      size_t ws = skip_ws(src, p);
      if (ws != p) {
        p = ws;
        continue;
      }
      char c = src[p];
      if (std::isdigit(static_cast<unsigned char>(c))) {
        p = lex_number(p);
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = p;
        while (e < src.size() &&
               (std::isalnum(static_cast<unsigned char>(src[e])) || src[e] == '_'))
          ++e;
        emit(TokKind::Name, src.substr(p, e - p), p);
        p = e;
      } else if (c == '\'' || c == '"') {
        size_t e = p + 1;
        while (e < src.size() && src[e] != c) e += src[e] == '\\' ? 2 : 1;
        if (e >= src.size()) syntax_error("unterminated string literal", line_at(p));
        emit(TokKind::String, unescape(src.substr(p + 1, e - p - 1), line_at(p)), p);
        p = e + 1;
      } else {
        static const char* ops[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/",
                                    "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                    "<",  ">",  "=",  ".",  ":",  "|",  ",", ";"};
        const char* op = nullptr;
        for (const char* o : ops)
          if (starts(src, p, o)) {
            op = o;
            break;
          }
        if (!op) syntax_error(std::string("unexpected character '") + c + "'", line_at(p));
        std::string s = op;
        if (s == "(" || s == "[" || s == "{")
          balance.push_back(s == "(" ? ')' : s == "[" ? ']' : '}');
        if (s == ")" || s == "]" || s == "}") {
          if (balance.empty()) syntax_error("unexpected '" + s + "'", line_at(p));
          if (balance.back() != s[0])
            syntax_error("unexpected '" + s + "', expected '" + balance.back() + "'", line_at(p));
          balance.pop_back();
        }
        emit(TokKind::Op, s, p);
        p += s.size();
      }
    }
  }

  size_t lex_number(size_t p) {
    auto digits = [&](size_t k) {
      while (k < src.size() && (std::isdigit(static_cast<unsigned char>(src[k])) ||
                                (src[k] == '_' && k + 1 < src.size() &&
                                 std::isdigit(static_cast<unsigned char>(src[k + 1])))))
        ++k;
      return k;
    };
    if (src[p] == '0' && p + 1 < src.size() && std::strchr("xXoObB", src[p + 1])) {
      int base = std::tolower(src[p + 1]) == 'x' ? 16 : std::tolower(src[p + 1]) == 'o' ? 8 : 2;
      size_t e = p + 2;
      std::string body;
      while (e < src.size() && (std::isxdigit(static_cast<unsigned char>(src[e])) || src[e] == '_'))
        if (src[e++] != '_') body += src[e - 1];
      Token t;
      t.kind = TokKind::Int;
      t.i = std::strtoll(body.c_str(), nullptr, base);
      t.line = line_at(p);
      out.push_back(t);
      return e;
    }
    size_t e = digits(p);
    bool is_float = false;
    bool after_dot = p > 0 && src[p - 1] == '.';  // x.0.1 is two integer subscripts, as in jinja2
    if (!after_dot && e + 1 < src.size() && src[e] == '.' &&
        std::isdigit(static_cast<unsigned char>(src[e + 1]))) {
      e = digits(e + 1);
      is_float = true;
    }
    if (!after_dot && e < src.size() && (src[e] == 'e' || src[e] == 'E')) {
      size_t k = e + 1;
      if (k < src.size() && (src[k] == '+' || src[k] == '-')) ++k;
      if (k < src.size() && std::isdigit(static_cast<unsigned char>(src[k]))) {
        e = digits(k);
        is_float = true;
      }
    }
    std::string text;
    for (size_t k = p; k < e; ++k)
      if (src[k] != '_') text += src[k];
    Token t;
    t.kind = is_float ? TokKind::Float : TokKind::Int;
    if (is_float)
      t.f = std::strtod(text.c_str(), nullptr);
    else
      t.i = std::strtoll(text.c_str(), nullptr, 10);
    t.line = line_at(p);
    out.push_back(t);
    return e;
  }

  void run() {
    bool line_starting = true;
    while (pos < src.size()) {
      size_t t = pos;
      while (t + 1 < src.size() && !(src[t] == '{' && std::strchr("{%#", src[t + 1]))) ++t;
      if (t + 1 >= src.size()) {
        emit(TokKind::Data, src.substr(pos), pos);
        break;
      }
      char kind = src[t + 1];
      size_t p = t + 2;
      char sign = p < src.size() && (src[p] == '-' || src[p] == '+') ? src[p] : 0;
      if (sign) ++p;
      std::string text = src.substr(pos, t - pos);
      size_t end;
      if (kind == '%' && starts(src, skip_ws(src, p), "raw") && is_raw_tag(skip_ws(src, p) + 3)) {
        size_t q = skip_ws(src, skip_ws(src, p) + 3);
        q = starts(src, q, "-%}") ? skip_ws(src, q + 3) : q + 2;
        emit_data(std::move(text), pos, sign, false, line_starting);
        end = lex_raw(q);
      } else if (kind == '#') {
        emit_data(std::move(text), pos, sign, false, line_starting);
        end = std::string::npos;
        for (size_t k = p; k + 1 < src.size(); ++k) {
          if (starts(src, k, "+#}")) {
            end = k + 3;
          } else if (starts(src, k, "-#}")) {
            end = skip_ws(src, k + 3);
          } else if (starts(src, k, "#}")) {
            end = k + 2;
            if (opt.trim_blocks && end < src.size() && src[end] == '\n') ++end;
          }
          if (end != std::string::npos) break;
        }
        if (end == std::string::npos) syntax_error("missing end of comment tag", line_at(t));
      } else {
        bool is_variable = kind == '{';
        emit_data(std::move(text), pos, sign, is_variable, line_starting);
        emit(is_variable ? TokKind::VarBegin : TokKind::BlockBegin, "", t);
        end = lex_tag(p, is_variable);
      }
      line_starting = src[end - 1] == '\n';
      pos = end;
    }
    emit(TokKind::Eof, "", src.size());
  }

  // After "{% raw": whitespace then "%}" or "-%}" (so that {% rawfoo %} is not a raw tag).
  bool is_raw_tag(size_t q) {
    q = skip_ws(src, q);
    return starts(src, q, "%}") || starts(src, q, "-%}");
  }
};

}  // namespace

std::vector<Token> tokenize(const std::string& source, const LexOptions& opt) {
  Lexer lx;
  lx.opt = opt;
  // Newlines normalized to \n, and one trailing newline dropped (keep_trailing_newline=False).
  lx.src.reserve(source.size());
  for (size_t k = 0; k < source.size(); ++k) {
    if (source[k] == '\r') {
      lx.src += '\n';
      if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
    } else {
      lx.src += source[k];
    }
  }
  if (!lx.src.empty() && lx.src.back() == '\n') lx.src.pop_back();
  lx.run();
  return std::move(lx.out);
}

}  // namespace densekv::jinja
