// The value type of our Jinja interpreter and its Python semantics: truthiness, ==, <, str(),
// repr(), json.dumps (as transformers' tojson calls it) and the UTF-8 code point helpers that make
// len() and slicing count characters, not bytes. Chat templates are rendered by Jinja2 on Python
// objects, so every rule here mirrors what Python does with the same data.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/errors.h"

namespace densekv::jinja {

// A template that cannot be parsed or uses syntax we do not implement (names the line).
struct TemplateSyntaxError : UnsupportedModelError {
  using UnsupportedModelError::UnsupportedModelError;
};
// A failure while rendering: type errors, undefined values used, unsupported methods.
struct TemplateError : InvalidArgumentError {
  using InvalidArgumentError::InvalidArgumentError;
};
// The template called raise_exception(msg): what() is exactly the template's message.
struct TemplateRaisedError : TemplateError {
  using TemplateError::TemplateError;
};

struct Value;
struct Object;
struct Function;
using Array = std::vector<Value>;

// Arguments of a call: positional then keyword, in source order.
struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

struct Value {
  enum class Kind { Undefined, None, Bool, Int, Float, String, Array, Object, Function };
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                 // String; for Undefined: what was missing (for error messages)
  std::shared_ptr<Array> arr;    // Array (lists and tuples)
  bool is_tuple = false;         // an Array that Python would hold as a tuple (repr, ==)
  std::shared_ptr<Object> obj;   // Object (dicts, namespaces, the loop object)
  std::shared_ptr<Function> fn;  // Function (globals, macros, bound methods)

  Value() = default;
  static Value undefined(std::string hint = "") {
    Value v;
    v.s = std::move(hint);
    return v;
  }
  static Value none() { return with_kind(Kind::None); }
  static Value boolean(bool x) {
    Value v = with_kind(Kind::Bool);
    v.b = x;
    return v;
  }
  static Value integer(int64_t x) {
    Value v = with_kind(Kind::Int);
    v.i = x;
    return v;
  }
  static Value number(double x) {
    Value v = with_kind(Kind::Float);
    v.f = x;
    return v;
  }
  static Value string(std::string x) {
    Value v = with_kind(Kind::String);
    v.s = std::move(x);
    return v;
  }
  static Value array(Array items = {});
  static Value tuple(Array items);
  static Value object();            // an empty dict
  static Value namespace_object();  // an empty namespace()
  static Value function(std::string name, std::function<Value(Args&)> call);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_array() const { return kind == Kind::Array; }
  bool is_dict() const;       // an Object that is a plain dict (not a namespace)
  bool is_namespace() const;  // an Object made by namespace()
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }

 private:
  static Value with_kind(Kind k) {
    Value v;
    v.kind = k;
    return v;
  }
};

// An insertion-ordered string-keyed map (Python dicts keep insertion order; so must tojson).
struct Object {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v);
};

struct Function {
  std::string name;
  std::function<Value(Args&)> call;
};

// ---- Python semantics ----
bool truthy(const Value& v);                  // bool(v); undefined is false
bool equals(const Value& a, const Value& b);  // a == b (1 == 1.0 == True, deep for lists/dicts)
int compare(const Value& a, const Value& b);  // <0, 0, >0 for a < b; throws on unorderable types
std::string type_name(const Value& v);        // 'str', 'int', 'dict', 'NoneType', ...
std::string to_str(const Value& v);           // str(v); undefined prints as ""
std::string repr(const Value& v);             // repr(v)
std::string float_repr(double d);             // repr(float): shortest round-trip digits
double to_double(const Value& v);             // numeric value of Bool/Int/Float

struct JsonOptions {
  int indent = -1;         // -1: none (compact, separators ", " and ": ")
  std::string indent_str;  // used when indent_is_string
  bool indent_is_string = false;
  bool ensure_ascii = false;
  bool sort_keys = false;
  std::string item_sep = ", ", key_sep = ": ";  // json.dumps defaults; item_sep is "," with indent
};
std::string to_json(const Value& v, const JsonOptions& opt);  // json.dumps(v, ...)

Value from_json(const nlohmann::ordered_json& j, int depth = 0);  // throws past 512 levels

// ---- UTF-8 strings as sequences of code points (Python str semantics) ----
std::vector<uint32_t> utf8_decode(const std::string& s);
void utf8_append(std::string& out, uint32_t cp);
std::string utf8_encode(const std::vector<uint32_t>& cps, size_t begin, size_t end);
size_t utf8_length(const std::string& s);  // len(s)
bool py_isspace(uint32_t cp);              // str.isspace() for one code point

[[noreturn]] void fail(const std::string& message);  // throws TemplateError

}  // namespace densekv::jinja
