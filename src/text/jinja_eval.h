// The Jinja interpreter: walks the AST of jinja_parser.h over Values, with Jinja2's scoping
// (every for-loop iteration and macro call gets a fresh scope; `set` inside `if` stays in the
// enclosing scope; namespace() objects are shared by reference), Python operators, and the loop
// object (index, index0, revindex, revindex0, first, last, length, previtem, nextitem, cycle).
#pragma once
#include <string>

#include "text/jinja_parser.h"
#include "text/jinja_value.h"

namespace densekv::jinja {

// Python's binary operators on values: + - * / // % **.
Value binary_op(const std::string& op, const Value& a, const Value& b);
// Python's `item in container`.
bool contains(const Value& container, const Value& item);

struct RenderOptions {
  long long now = -1;  // strftime_now's time in seconds since the epoch; -1: the clock
};

// A compiled template: parse once, render many times (render is const and thread-safe).
class Template {
 public:
  // Throws TemplateSyntaxError (with the line) on bad or unsupported syntax.
  explicit Template(const std::string& source);
  // `context`: a dict of the template's variables. Throws TemplateError (TemplateRaisedError
  // for raise_exception) on render failures.
  std::string render(const Value& context, const RenderOptions& opt = {}) const;

 private:
  Program program_;
};

}  // namespace densekv::jinja
