// Jinja lexer: template source -> tokens, with Jinja2's whitespace rules applied to the text
// between tags ({%- -%} {{- -}} {#- -#}, {%+ +%}, trim_blocks, lstrip_blocks, the dropped trailing
// newline, \r\n -> \n) exactly as jinja2/lexer.py applies them. Comments are dropped and
// {% raw %}...{% endraw %} becomes plain text.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace densekv::jinja {

enum class TokKind {
  Data,        // text between tags (already whitespace-controlled)
  VarBegin,    // {{
  VarEnd,      // }}
  BlockBegin,  // {%
  BlockEnd,    // %}
  Name,        // identifier or keyword
  String,      // string literal (text = unescaped value)
  Int,
  Float,
  Op,  // operator or punctuation (text = "+", "//", "==", "(", ...)
  Eof,
};

struct Token {
  TokKind kind = TokKind::Eof;
  std::string text;
  int64_t i = 0;
  double f = 0;
  int line = 1;
};

struct LexOptions {
  bool trim_blocks = true;    // transformers renders with trim_blocks=True
  bool lstrip_blocks = true;  // and lstrip_blocks=True
};

// Throws TemplateSyntaxError (naming the line) on malformed input.
std::vector<Token> tokenize(const std::string& source, const LexOptions& opt = {});

}  // namespace densekv::jinja
