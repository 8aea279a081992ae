// Python semantics of template values: see jinja_value.h.
#include "text/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace densekv::jinja {

[[noreturn]] void fail(const std::string& message) {
  throw TemplateError(message);
}

Value Value::array(Array items) {
  Value v = with_kind(Kind::Array);
  v.arr = std::make_shared<Array>(std::move(items));
  return v;
}

Value Value::tuple(Array items) {
  Value v = array(std::move(items));
  v.is_tuple = true;
  return v;
}

Value Value::object() {
  Value v = with_kind(Kind::Object);
  v.obj = std::make_shared<Object>();
  return v;
}

Value Value::namespace_object() {
  Value v = object();
  v.obj->is_namespace = true;
  return v;
}

Value Value::function(std::string name, std::function<Value(Args&)> call) {
  Value v = with_kind(Kind::Function);
  v.fn = std::make_shared<Function>(Function{std::move(name), std::move(call)});
  return v;
}

bool Value::is_dict() const {
  return kind == Kind::Object && !obj->is_namespace;
}
bool Value::is_namespace() const {
  return kind == Kind::Object && obj->is_namespace;
}

const Value* Object::find(const std::string& key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void Object::set(const std::string& key, Value v) {
  for (auto& [k, old] : items) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  items.emplace_back(key, std::move(v));
}

// ---- truthiness, equality, ordering ----

bool truthy(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined:
    case Value::Kind::None:
      return false;
    case Value::Kind::Bool:
      return v.b;
    case Value::Kind::Int:
      return v.i != 0;
    case Value::Kind::Float:
      return v.f != 0;
    case Value::Kind::String:
      return !v.s.empty();
    case Value::Kind::Array:
      return !v.arr->empty();
    case Value::Kind::Object:
      return v.obj->is_namespace || !v.obj->items.empty();
    case Value::Kind::Function:
      return true;
  }
  return false;
}

double to_double(const Value& v) {
  if (v.kind == Value::Kind::Bool) return v.b ? 1 : 0;
  if (v.kind == Value::Kind::Int) return static_cast<double>(v.i);
  return v.f;
}

static int64_t to_int(const Value& v) {
  return v.kind == Value::Kind::Bool ? v.b : v.i;
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind != Value::Kind::Float && b.kind != Value::Kind::Float) return to_int(a) == to_int(b);
    return to_double(a) == to_double(b);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Kind::Undefined:
    case Value::Kind::None:
      return true;
    case Value::Kind::String:
      return a.s == b.s;
    case Value::Kind::Array: {
      if (a.is_tuple != b.is_tuple || a.arr->size() != b.arr->size()) return false;
      for (size_t k = 0; k < a.arr->size(); ++k)
        if (!equals((*a.arr)[k], (*b.arr)[k])) return false;
      return true;
    }
    case Value::Kind::Object: {
      if (a.obj == b.obj) return true;
      if (a.obj->is_namespace || b.obj->is_namespace) return false;  // identity only
      if (a.obj->items.size() != b.obj->items.size()) return false;
      for (const auto& [k, v] : a.obj->items) {
        const Value* other = b.obj->find(k);
        if (!other || !equals(v, *other)) return false;
      }
      return true;
    }
    case Value::Kind::Function:
      return a.fn == b.fn;
    default:
      return false;
  }
}

int compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind != Value::Kind::Float && b.kind != Value::Kind::Float)
      return to_int(a) < to_int(b) ? -1 : (to_int(a) > to_int(b) ? 1 : 0);
    double x = to_double(a), y = to_double(b);
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) return a.s.compare(b.s) < 0 ? -1 : (a.s == b.s ? 0 : 1);
  if (a.is_array() && b.is_array()) {
    size_t n = std::min(a.arr->size(), b.arr->size());
    for (size_t k = 0; k < n; ++k) {
      if (equals((*a.arr)[k], (*b.arr)[k])) continue;
      return compare((*a.arr)[k], (*b.arr)[k]);
    }
    return a.arr->size() < b.arr->size() ? -1 : (a.arr->size() > b.arr->size() ? 1 : 0);
  }
  if (a.is_undefined() || b.is_undefined())
    fail("an undefined value was compared" +
         std::string(a.is_undefined() && !a.s.empty() ? " (" + a.s + ")" : ""));
  fail("'<' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'");
}

std::string type_name(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined:
      return "Undefined";
    case Value::Kind::None:
      return "NoneType";
    case Value::Kind::Bool:
      return "bool";
    case Value::Kind::Int:
      return "int";
    case Value::Kind::Float:
      return "float";
    case Value::Kind::String:
      return "str";
    case Value::Kind::Array:
      return "list";
    case Value::Kind::Object:
      return v.obj->is_namespace ? "Namespace" : "dict";
    case Value::Kind::Function:
      return "function";
  }
  return "?";
}

// ---- number formatting ----

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest round-trip digits in scientific form, then Python's layout rule: positional
  // notation when -4 <= exponent < 16, else d.ddde+XX.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t epos = sci.find('e');
  int exp = std::stoi(sci.substr(epos + 1));
  std::string digits;
  for (size_t k = 0; k < epos; ++k)
    if (sci[k] != '.') digits += sci[k];
  std::string out = neg ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      if (static_cast<int>(digits.size()) <= exp + 1) {
        out += digits + std::string(exp + 1 - digits.size(), '0') + ".0";
      } else {
        out += digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
      }
    } else {
      out += "0." + std::string(-exp - 1, '0') + digits;
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof(e), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += e;
  }
  return out;
}

// ---- UTF-8 ----

std::vector<uint32_t> utf8_decode(const std::string& s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  for (size_t k = 0; k < s.size();) {
    unsigned char c = s[k];
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || k + n > s.size()) {  // invalid byte: keep it as U+FFFD
      out.push_back(0xFFFD);
      ++k;
      continue;
    }
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (int j = 1; j < n; ++j) cp = (cp << 6) | (static_cast<unsigned char>(s[k + j]) & 0x3F);
    out.push_back(cp);
    k += n;
  }
  return out;
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string utf8_encode(const std::vector<uint32_t>& cps, size_t begin, size_t end) {
  std::string out;
  for (size_t k = begin; k < end; ++k) utf8_append(out, cps[k]);
  return out;
}

size_t utf8_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool py_isspace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// ---- str() and repr() ----

static bool py_printable(uint32_t cp) {
  if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0xA0) || cp == 0xAD) return false;
  if (cp == 0x2028 || cp == 0x2029 || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
  if (py_isspace(cp) && cp != ' ') return false;
  return true;
}

static std::string repr_string(const std::string& s) {
  char quote = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  std::string out(1, quote);
  for (uint32_t cp : utf8_decode(s)) {
    if (cp == '\\' || cp == static_cast<uint32_t>(quote)) {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (!py_printable(cp)) {
      char buf[16];
      if (cp < 0x100)
        std::snprintf(buf, sizeof(buf), "\\x%02x", cp);
      else if (cp < 0x10000)
        std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
      else
        std::snprintf(buf, sizeof(buf), "\\U%08x", cp);
      out += buf;
    } else {
      utf8_append(out, cp);
    }
  }
  return out + quote;
}

std::string repr(const Value& v) {
  switch (v.kind) {
    case Value::Kind::String:
      return repr_string(v.s);
    case Value::Kind::Undefined:
      return "Undefined";
    case Value::Kind::Array: {
      std::string out = v.is_tuple ? "(" : "[";
      for (size_t k = 0; k < v.arr->size(); ++k) {
        if (k) out += ", ";
        out += repr((*v.arr)[k]);
      }
      if (v.is_tuple && v.arr->size() == 1) out += ",";
      return out + (v.is_tuple ? ")" : "]");
    }
    case Value::Kind::Object: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, item] : v.obj->items) {
        if (!first) out += ", ";
        first = false;
        out += repr_string(k) + ": " + repr(item);
      }
      out += "}";
      return v.obj->is_namespace ? "<Namespace " + out + ">" : out;
    }
    default:
      return to_str(v);
  }
}

std::string to_str(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined:
      return "";
    case Value::Kind::None:
      return "None";
    case Value::Kind::Bool:
      return v.b ? "True" : "False";
    case Value::Kind::Int:
      return std::to_string(v.i);
    case Value::Kind::Float:
      return float_repr(v.f);
    case Value::Kind::String:
      return v.s;
    case Value::Kind::Function:
      return "<function " + v.fn->name + ">";
    default:
      return repr(v);
  }
}

// ---- json.dumps ----

static void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (uint32_t cp : utf8_decode(s)) {
    switch (cp) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default: {
        char buf[16];
        if (cp < 0x20 || (ensure_ascii && cp > 0x7E && cp < 0x10000)) {
          std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
          out += buf;
        } else if (ensure_ascii && cp >= 0x10000) {
          uint32_t c = cp - 0x10000;
          std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xD800 + (c >> 10),
                        0xDC00 + (c & 0x3FF));
          out += buf;
        } else {
          utf8_append(out, cp);
        }
      }
    }
  }
  out += '"';
}

static void json_value(std::string& out, const Value& v, const JsonOptions& opt, int depth) {
  bool pretty = opt.indent >= 0 || opt.indent_is_string;
  auto newline = [&](int d) {
    out += '\n';
    for (int k = 0; k < d; ++k)
      out += opt.indent_is_string ? opt.indent_str : std::string(opt.indent, ' ');
  };
  switch (v.kind) {
    case Value::Kind::None:
      out += "null";
      return;
    case Value::Kind::Bool:
      out += v.b ? "true" : "false";
      return;
    case Value::Kind::Int:
      out += std::to_string(v.i);
      return;
    case Value::Kind::Float:
      if (std::isnan(v.f))
        out += "NaN";
      else if (std::isinf(v.f))
        out += v.f < 0 ? "-Infinity" : "Infinity";
      else
        out += float_repr(v.f);
      return;
    case Value::Kind::String:
      json_string(out, v.s, opt.ensure_ascii);
      return;
    case Value::Kind::Array: {
      if (v.arr->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t k = 0; k < v.arr->size(); ++k) {
        if (k) out += opt.item_sep;
        if (pretty) newline(depth + 1);
        json_value(out, (*v.arr)[k], opt, depth + 1);
      }
      if (pretty) newline(depth);
      out += ']';
      return;
    }
    case Value::Kind::Object: {
      if (v.obj->is_namespace) fail("Object of type Namespace is not JSON serializable");
      if (v.obj->items.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& item : v.obj->items) items.push_back(&item);
      if (opt.sort_keys)
        std::stable_sort(items.begin(), items.end(),
                         [](auto* a, auto* b) { return a->first < b->first; });
      out += '{';
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += opt.item_sep;
        if (pretty) newline(depth + 1);
        json_string(out, items[k]->first, opt.ensure_ascii);
        out += opt.key_sep;
        json_value(out, items[k]->second, opt, depth + 1);
      }
      if (pretty) newline(depth);
      out += '}';
      return;
    }
    default:
      fail("Object of type " + type_name(v) + " is not JSON serializable");
  }
}

std::string to_json(const Value& v, const JsonOptions& opt) {
  std::string out;
  json_value(out, v, opt, 0);
  return out;
}

Value from_json(const nlohmann::ordered_json& j, int depth) {
  if (depth > 512) fail("template input JSON is nested deeper than 512 levels");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned:
      return Value::integer(static_cast<int64_t>(j.get<uint64_t>()));
    case nlohmann::ordered_json::value_t::number_float:
      return Value::number(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      Array items;
      for (const auto& e : j) items.push_back(from_json(e, depth + 1));
      return Value::array(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Value v = Value::object();
      for (auto it = j.begin(); it != j.end(); ++it)
        v.obj->set(it.key(), from_json(it.value(), depth + 1));
      return v;
    }
    default:
      fail("unsupported JSON value in template input");
  }
}

}  // namespace densekv::jinja
