// Filters, tests, methods, lookups and globals: see jinja_builtins.h.
#include "text/jinja_builtins.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <unordered_map>

#include "text/jinja_eval.h"
#include "text/jinja_strings.h"

namespace densekv::jinja {
namespace {

const char* kPyStrMethods[] = {
    "capitalize",   "casefold",    "center",    "count",      "encode",       "endswith",
    "expandtabs",   "find",        "format",    "format_map", "index",        "isalnum",
    "isalpha",      "isascii",     "isdecimal", "isdigit",    "isidentifier", "islower",
    "isnumeric",    "isprintable", "isspace",   "istitle",    "isupper",      "join",
    "ljust",        "lower",       "lstrip",    "maketrans",  "partition",    "removeprefix",
    "removesuffix", "replace",     "rfind",     "rindex",     "rjust",        "rpartition",
    "rsplit",       "rstrip",      "split",     "splitlines", "startswith",   "strip",
    "swapcase",     "title",       "translate", "upper",      "zfill"};
const char* kDictMethods[] = {"items", "keys", "values", "get", "copy"};
const char* kDictUnsafe[] = {"clear", "fromkeys", "pop", "popitem", "setdefault", "update"};
const char* kListMethods[] = {"count", "index", "copy"};
const char* kListUnsafe[] = {"append", "clear",  "extend",  "insert",
                             "pop",    "remove", "reverse", "sort"};

template <size_t N>
bool in_list(const char* (&list)[N], const std::string& name) {
  return std::any_of(std::begin(list), std::end(list), [&](const char* m) { return name == m; });
}

std::string object_desc(const Value& v) {
  if (v.is_none()) return "None";
  return type_name(v) + " object";
}

int64_t as_int(const Value& v, const char* what) {
  if (v.kind == Value::Kind::Int) return v.i;
  if (v.kind == Value::Kind::Bool) return v.b;
  fail(std::string(what) + " must be an integer, not " + type_name(v));
}

const std::string& as_str(const Value& v, const char* what) {
  if (!v.is_string()) fail(std::string(what) + " must be str, not " + type_name(v));
  return v.s;
}

size_t py_len(const Value& v) {
  switch (v.kind) {
    case Value::Kind::String:
      return utf8_length(v.s);
    case Value::Kind::Array:
      return v.arr->size();
    case Value::Kind::Object:
      if (!v.obj->is_namespace) return v.obj->items.size();
      break;
    case Value::Kind::Undefined:
      return 0;
    default:
      break;
  }
  fail("object of type '" + type_name(v) + "' has no len()");
}

Value dict_items(const Value& d) {
  Array out;
  for (const auto& [k, v] : d.obj->items) out.push_back(Value::tuple({Value::string(k), v}));
  return Value::array(std::move(out));
}

Value unsafe_method(const Value& self, const std::string& name) {
  return Value::function(name, [self, name](Args&) -> Value {
    fail("access to attribute '" + name + "' of '" + type_name(self) +
         "' object is unsafe (the template may not modify its inputs)");
  });
}

Value call_str_method(const std::string& s, const std::string& name, Args& a) {
  auto str_arg = [&](size_t i, const char* key) { return arg_or(a, i, key, Value::undefined()); };
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return Value::string(py_strip(s, str_arg(0, "chars"), name != "rstrip", name != "lstrip"));
  if (name == "startswith" || name == "endswith") {
    Value p = arg_or(a, 0, "prefix", Value::undefined());
    Array options = p.is_array() ? *p.arr : Array{p};
    for (const Value& o : options) {
      const std::string& x = as_str(o, (name + " arg").c_str());
      bool hit = name == "startswith"
                     ? s.compare(0, x.size(), x) == 0
                     : s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
      if (hit) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  if (name == "split" || name == "rsplit")
    return Value::array(py_split(s, str_arg(0, "sep"),
                                 as_int(arg_or(a, 1, "maxsplit", Value::integer(-1)), "maxsplit"),
                                 name == "rsplit"));
  if (name == "splitlines") {
    Array out;
    for (auto& l : py_splitlines(s, truthy(arg_or(a, 0, "keepends", Value::boolean(false)))))
      out.push_back(Value::string(l));
    return Value::array(std::move(out));
  }
  if (name == "upper") return Value::string(py_upper(s));
  if (name == "lower" || name == "casefold") return Value::string(py_lower(s));
  if (name == "title") return Value::string(py_title(s));
  if (name == "capitalize") return Value::string(py_capitalize(s));
  if (name == "replace")
    return Value::string(py_replace(s, as_str(arg_or(a, 0, "old", {}), "replace() argument 1"),
                                    as_str(arg_or(a, 1, "new", {}), "replace() argument 2"),
                                    as_int(arg_or(a, 2, "count", Value::integer(-1)), "count")));
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    int64_t at = py_find(s, as_str(arg_or(a, 0, "sub", {}), "argument"), name[0] == 'r');
    if (at < 0 && name.find("index") != std::string::npos) fail("substring not found");
    return Value::integer(at);
  }
  if (name == "count")
    return Value::integer(py_count(s, as_str(arg_or(a, 0, "sub", {}), "argument")));
  if (name == "format") return Value::string(py_format(s, a));
  if (name == "join") {
    std::string out;
    Array items = iterate(arg_or(a, 0, "iterable", {}));
    for (size_t k = 0; k < items.size(); ++k)
      out += (k ? s : "") + as_str(items[k], "sequence item");
    return Value::string(out);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    const std::string& x = as_str(arg_or(a, 0, "affix", {}), "argument");
    if (name == "removeprefix" && s.compare(0, x.size(), x) == 0)
      return Value::string(s.substr(x.size()));
    if (name == "removesuffix" && !x.empty() && s.size() >= x.size() &&
        s.compare(s.size() - x.size(), x.size(), x) == 0)
      return Value::string(s.substr(0, s.size() - x.size()));
    return Value::string(s);
  }
  if (name.rfind("is", 0) == 0) return Value::boolean(py_predicate(name, s));
  fail("str." + name + "() is not supported by densekv's Jinja interpreter");
}

Value call_method(const Value& self, const std::string& name, Args& a) {
  if (self.is_string()) return call_str_method(self.s, name, a);
  if (self.is_dict()) {
    if (name == "items") return dict_items(self);
    if (name == "keys" || name == "values") {
      Array out;
      for (const auto& [k, v] : self.obj->items)
        out.push_back(name == "keys" ? Value::string(k) : v);
      return Value::array(std::move(out));
    }
    if (name == "get") {
      Value key = arg_or(a, 0, "key", {});
      const Value* v = key.is_string() ? self.obj->find(key.s) : nullptr;
      return v ? *v : arg_or(a, 1, "default", Value::none());
    }
    if (name == "copy") {
      Value d = Value::object();
      d.obj->items = self.obj->items;
      return d;
    }
  }
  if (self.is_array()) {
    Value x = arg_or(a, 0, "value", {});
    if (name == "copy") return Value::array(*self.arr);
    int64_t n = 0;
    for (size_t k = 0; k < self.arr->size(); ++k) {
      if (!equals((*self.arr)[k], x)) continue;
      if (name == "index") return Value::integer(static_cast<int64_t>(k));
      ++n;
    }
    if (name == "index") fail(repr(x) + " is not in list");
    return Value::integer(n);
  }
  fail(type_name(self) + "." + name + "() is not supported");
}

Value bound(const Value& self, const std::string& name) {
  return Value::function(name, [self, name](Args& a) { return call_method(self, name, a); });
}

// ---- filters ----

using FilterFn = std::function<Value(const Value&, Args&)>;
using TestFn = std::function<bool(const Value&, Args&)>;

Value to_list(const Value& v) {
  return Value::array(iterate(v));
}

// Jinja's make_attrgetter: "a.b" and "a.0" walk nested items; missing -> undefined.
Value attr_path(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    cur = get_item(cur, digits ? Value::integer(std::stoll(part)) : Value::string(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Args rest_args(const Args& a, size_t from) {
  Args r;
  for (size_t k = from; k < a.pos.size(); ++k) r.pos.push_back(a.pos[k]);
  r.kw = a.kw;
  return r;
}

// select/reject/selectattr/rejectattr share one body.
Value select_items(const Value& v, Args& a, bool by_attr, bool keep) {
  Array out;
  std::string attr = by_attr ? as_str(arg_or(a, 0, "attribute", {}), "attribute") : "";
  size_t test_at = by_attr ? 1 : 0;
  const Value* test = find_arg(a, test_at, "test_name");
  Args targs = rest_args(a, test_at + 1);
  for (const Value& item : iterate(v)) {
    Value x = by_attr ? attr_path(item, attr) : item;
    bool pass = test ? apply_test(as_str(*test, "test name"), x, targs) : truthy(x);
    if (pass == keep) out.push_back(item);
  }
  return Value::array(std::move(out));
}

Value sort_key(const Value& v, bool case_sensitive, const std::string& attr) {
  Value x = attr.empty() ? v : attr_path(v, attr);
  return !case_sensitive && x.is_string() ? Value::string(py_lower(x.s)) : x;
}

Value filter_tojson(const Value& v, Args& a) {
  // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  JsonOptions opt;
  opt.ensure_ascii = truthy(arg_or(a, 0, "ensure_ascii", Value::boolean(false)));
  Value indent = arg_or(a, 1, "indent", Value::none());
  if (indent.is_string()) {
    opt.indent_is_string = true;
    opt.indent_str = indent.s;
  } else if (!indent.is_none()) {
    opt.indent = static_cast<int>(std::max<int64_t>(0, as_int(indent, "indent")));
  }
  if (opt.indent >= 0 || opt.indent_is_string) opt.item_sep = ",";
  Value seps = arg_or(a, 2, "separators", Value::none());
  if (!seps.is_none()) {
    if (!seps.is_array() || seps.arr->size() != 2)
      fail("tojson separators must be a pair of strings");
    opt.item_sep = as_str((*seps.arr)[0], "separator");
    opt.key_sep = as_str((*seps.arr)[1], "separator");
  }
  opt.sort_keys = truthy(arg_or(a, 3, "sort_keys", Value::boolean(false)));
  return Value::string(to_json(v, opt));
}

Value filter_int(const Value& v, Args& a) {
  Value def = arg_or(a, 0, "default", Value::integer(0));
  if (v.kind == Value::Kind::Int) return v;
  if (v.kind == Value::Kind::Bool) return Value::integer(v.b);
  if (v.kind == Value::Kind::Float)
    return std::isfinite(v.f) ? Value::integer(static_cast<int64_t>(v.f)) : def;
  if (!v.is_string()) return def;
  std::string s = py_strip(v.s, Value::undefined(), true, true);
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  int base = static_cast<int>(as_int(arg_or(a, 1, "base", Value::integer(10)), "base"));
  char* end = nullptr;
  long long n = std::strtoll(s.c_str(), &end, base);
  if (!s.empty() && *end == 0) return Value::integer(n);
  double d = std::strtod(s.c_str(), &end);
  if (!s.empty() && *end == 0 && std::isfinite(d)) return Value::integer(static_cast<int64_t>(d));
  return def;
}

Value filter_float(const Value& v, Args& a) {
  Value def = arg_or(a, 0, "default", Value::number(0.0));
  if (v.is_number()) return Value::number(to_double(v));
  if (!v.is_string()) return def;
  std::string s = py_strip(v.s, Value::undefined(), true, true);
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  return !s.empty() && *end == 0 ? Value::number(d) : def;
}

Value filter_round(const Value& v, Args& a) {
  int64_t precision = as_int(arg_or(a, 0, "precision", Value::integer(0)), "precision");
  std::string method = as_str(arg_or(a, 1, "method", Value::string("common")), "method");
  double x = to_double(v), scale = std::pow(10.0, static_cast<double>(precision));
  if (method == "ceil") return Value::number(std::ceil(x * scale) / scale);
  if (method == "floor") return Value::number(std::floor(x * scale) / scale);
  if (method != "common") fail("method must be 'common', 'ceil' or 'floor'");
  char buf[512];  // printf rounds the exact binary value half-to-even, as Python's round() does
  std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(std::max<int64_t>(0, precision)), x);
  return Value::number(std::strtod(buf, nullptr));
}

const std::unordered_map<std::string, FilterFn>& filters() {
  static const std::unordered_map<std::string, FilterFn> table = {
      {"abs",
       [](const Value& v, Args&) {
         if (v.kind == Value::Kind::Float) return Value::number(std::fabs(v.f));
         return Value::integer(std::llabs(as_int(v, "abs() argument")));
       }},
      {"attr",
       [](const Value& v, Args& a) {
         return get_attr(v, as_str(arg_or(a, 0, "name", {}), "attribute name"));
       }},
      {"capitalize", [](const Value& v, Args&) { return Value::string(py_capitalize(to_str(v))); }},
      {"default",
       [](const Value& v, Args& a) {
         bool boolean = truthy(arg_or(a, 1, "boolean", Value::boolean(false)));
         bool use_default = v.is_undefined() || (boolean && !truthy(v));
         return use_default ? arg_or(a, 0, "default_value", Value::string("")) : v;
       }},
      {"dictsort",
       [](const Value& v, Args& a) {
         if (!v.is_dict()) fail("dictsort: a mapping is required");
         bool cs = truthy(arg_or(a, 0, "case_sensitive", Value::boolean(false)));
         bool by_value = arg_or(a, 1, "by", Value::string("key")).s == "value";
         bool reverse = truthy(arg_or(a, 2, "reverse", Value::boolean(false)));
         Array items = *dict_items(v).arr;
         std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
           int c =
               compare(sort_key((*x.arr)[by_value], cs, ""), sort_key((*y.arr)[by_value], cs, ""));
           return reverse ? c > 0 : c < 0;
         });
         return Value::array(std::move(items));
       }},
      {"escape", [](const Value& v, Args&) { return Value::string(html_escape(to_str(v))); }},
      {"first",
       [](const Value& v, Args&) {
         Array items = iterate(v);
         return items.empty() ? Value::undefined("No first item, sequence was empty.")
                              : items.front();
       }},
      {"float", filter_float},
      {"format",
       [](const Value& v, Args& a) {
         Value args = a.kw.empty() ? Value::array(a.pos) : Value::object();
         for (auto& [k, x] : a.kw) args.obj->set(k, x);
         return Value::string(py_percent(to_str(v), args));
       }},
      {"indent",
       [](const Value& v, Args& a) {
         return Value::string(jinja_indent(to_str(v), arg_or(a, 0, "width", Value::integer(4)),
                                           truthy(arg_or(a, 1, "first", {})),
                                           truthy(arg_or(a, 2, "blank", {}))));
       }},
      {"int", filter_int},
      {"items",
       [](const Value& v, Args&) {
         if (v.is_undefined()) return Value::array();
         if (!v.is_dict()) fail("Can only get item pairs from a mapping.");
         return dict_items(v);
       }},
      {"join",
       [](const Value& v, Args& a) {
         std::string sep = to_str(arg_or(a, 0, "d", Value::string("")));
         Value attr = arg_or(a, 1, "attribute", Value::none());
         std::string out;
         Array items = iterate(v);
         for (size_t k = 0; k < items.size(); ++k)
           out += (k ? sep : "") +
                  to_str(attr.is_none() ? items[k] : attr_path(items[k], to_str(attr)));
         return Value::string(out);
       }},
      {"last",
       [](const Value& v, Args&) {
         Array items = iterate(v);
         return items.empty() ? Value::undefined("No last item, sequence was empty.")
                              : items.back();
       }},
      {"length",
       [](const Value& v, Args&) { return Value::integer(static_cast<int64_t>(py_len(v))); }},
      {"list", [](const Value& v, Args&) { return to_list(v); }},
      {"lower", [](const Value& v, Args&) { return Value::string(py_lower(to_str(v))); }},
      {"map",
       [](const Value& v, Args& a) {
         Array out;
         const Value* attr = find_arg(a, 99, "attribute");
         for (const Value& item : iterate(v)) {
           if (attr) {
             Value x = attr_path(item, to_str(*attr));
             if (x.is_undefined()) x = arg_or(a, 99, "default", x);
             out.push_back(x);
           } else {
             Args fargs = rest_args(a, 1);
             out.push_back(
                 apply_filter(as_str(arg_or(a, 0, "filter", {}), "filter name"), item, fargs));
           }
         }
         return Value::array(std::move(out));
       }},
      {"max",
       [](const Value& v, Args& a) {
         bool cs = truthy(arg_or(a, 0, "case_sensitive", {}));
         std::string attr = to_str(arg_or(a, 1, "attribute", Value::string("")));
         Array items = iterate(v);
         if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
         return *std::max_element(items.begin(), items.end(), [&](const Value& x, const Value& y) {
           return compare(sort_key(x, cs, attr), sort_key(y, cs, attr)) < 0;
         });
       }},
      {"min",
       [](const Value& v, Args& a) {
         bool cs = truthy(arg_or(a, 0, "case_sensitive", {}));
         std::string attr = to_str(arg_or(a, 1, "attribute", Value::string("")));
         Array items = iterate(v);
         if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
         return *std::min_element(items.begin(), items.end(), [&](const Value& x, const Value& y) {
           return compare(sort_key(x, cs, attr), sort_key(y, cs, attr)) < 0;
         });
       }},
      {"reject", [](const Value& v, Args& a) { return select_items(v, a, false, false); }},
      {"rejectattr", [](const Value& v, Args& a) { return select_items(v, a, true, false); }},
      {"replace",
       [](const Value& v, Args& a) {
         Value count = arg_or(a, 2, "count", Value::none());
         return Value::string(py_replace(to_str(v), to_str(arg_or(a, 0, "old", {})),
                                         to_str(arg_or(a, 1, "new", {})),
                                         count.is_none() ? -1 : as_int(count, "count")));
       }},
      {"reverse",
       [](const Value& v, Args&) {
         if (v.is_string()) {
           std::vector<uint32_t> cps = utf8_decode(v.s);
           std::reverse(cps.begin(), cps.end());
           return Value::string(utf8_encode(cps, 0, cps.size()));
         }
         Array items = iterate(v);
         std::reverse(items.begin(), items.end());
         return Value::array(std::move(items));
       }},
      {"round", filter_round},
      {"safe", [](const Value& v, Args&) { return v; }},
      {"select", [](const Value& v, Args& a) { return select_items(v, a, false, true); }},
      {"selectattr", [](const Value& v, Args& a) { return select_items(v, a, true, true); }},
      {"sort",
       [](const Value& v, Args& a) {
         bool reverse = truthy(arg_or(a, 0, "reverse", {}));
         bool cs = truthy(arg_or(a, 1, "case_sensitive", {}));
         std::string attr = to_str(arg_or(a, 2, "attribute", Value::string("")));
         Array items = iterate(v);
         std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
           int c = compare(sort_key(x, cs, attr), sort_key(y, cs, attr));
           return reverse ? c > 0 : c < 0;
         });
         return Value::array(std::move(items));
       }},
      {"string", [](const Value& v, Args&) { return Value::string(to_str(v)); }},
      {"sum",
       [](const Value& v, Args& a) {
         std::string attr = to_str(arg_or(a, 0, "attribute", Value::string("")));
         Value total = arg_or(a, 1, "start", Value::integer(0));
         for (const Value& item : iterate(v))
           total = binary_op("+", total, attr.empty() ? item : attr_path(item, attr));
         return total;
       }},
      {"title", [](const Value& v, Args&) { return Value::string(jinja_title(to_str(v))); }},
      {"tojson", filter_tojson},
      {"trim",
       [](const Value& v, Args& a) {
         return Value::string(
             py_strip(to_str(v), arg_or(a, 0, "chars", Value::none()), true, true));
       }},
      {"unique",
       [](const Value& v, Args& a) {
         bool cs = truthy(arg_or(a, 0, "case_sensitive", {}));
         std::string attr = to_str(arg_or(a, 1, "attribute", Value::string("")));
         Array out, seen;
         for (const Value& item : iterate(v)) {
           Value key = sort_key(item, cs, attr);
           if (std::none_of(seen.begin(), seen.end(),
                            [&](const Value& s) { return equals(s, key); })) {
             seen.push_back(key);
             out.push_back(item);
           }
         }
         return Value::array(std::move(out));
       }},
      {"upper", [](const Value& v, Args&) { return Value::string(py_upper(to_str(v))); }},
      {"wordcount",
       [](const Value& v, Args&) {
         return Value::integer(
             static_cast<int64_t>(py_split(to_str(v), Value::none(), -1, false).size()));
       }},
  };
  return table;
}

const std::unordered_map<std::string, std::string>& filter_aliases() {
  static const std::unordered_map<std::string, std::string> aliases = {
      {"d", "default"}, {"e", "escape"}, {"count", "length"}};
  return aliases;
}

// ---- tests ----

bool is_int(const Value& v) {
  return v.kind == Value::Kind::Int;
}

const std::unordered_map<std::string, TestFn>& tests() {
  auto arg0 = [](Args& a) { return arg_or(a, 0, "other", {}); };
  static const std::unordered_map<std::string, TestFn> table = {
      {"defined", [](const Value& v, Args&) { return !v.is_undefined(); }},
      {"undefined", [](const Value& v, Args&) { return v.is_undefined(); }},
      {"none", [](const Value& v, Args&) { return v.is_none(); }},
      {"boolean", [](const Value& v, Args&) { return v.kind == Value::Kind::Bool; }},
      {"true", [](const Value& v, Args&) { return v.kind == Value::Kind::Bool && v.b; }},
      {"false", [](const Value& v, Args&) { return v.kind == Value::Kind::Bool && !v.b; }},
      {"integer", [](const Value& v, Args&) { return is_int(v); }},
      {"float", [](const Value& v, Args&) { return v.kind == Value::Kind::Float; }},
      {"number", [](const Value& v, Args&) { return v.is_number(); }},
      {"string", [](const Value& v, Args&) { return v.is_string(); }},
      {"mapping", [](const Value& v, Args&) { return v.is_dict(); }},
      {"iterable",
       [](const Value& v, Args&) {
         return v.is_string() || v.is_array() || v.is_dict() || v.is_undefined();
       }},
      {"sequence",
       [](const Value& v, Args&) {
         return v.is_string() || v.is_array() || v.is_dict() || v.is_undefined();
       }},
      {"callable", [](const Value& v, Args&) { return v.kind == Value::Kind::Function; }},
      {"sameas",
       [arg0](const Value& v, Args& a) {
         Value o = arg0(a);
         if (v.kind != o.kind) return false;
         if (v.is_array()) return v.arr == o.arr;
         if (v.kind == Value::Kind::Object) return v.obj == o.obj;
         return equals(v, o);
       }},
      {"lower", [](const Value& v, Args&) { return v.is_string() && py_lower(v.s) == v.s; }},
      {"upper", [](const Value& v, Args&) { return v.is_string() && py_upper(v.s) == v.s; }},
      {"odd",
       [](const Value& v, Args&) {
         int64_t n = as_int(v, "odd test value");
         return ((n % 2) + 2) % 2 == 1;
       }},
      {"even", [](const Value& v, Args&) { return as_int(v, "even test value") % 2 == 0; }},
      {"divisibleby",
       [](const Value& v, Args& a) {
         int64_t d = as_int(arg_or(a, 0, "num", {}), "divisor");
         if (d == 0) fail("integer division or modulo by zero");
         return as_int(v, "divisibleby test value") % d == 0;
       }},
      {"eq", [arg0](const Value& v, Args& a) { return equals(v, arg0(a)); }},
      {"ne", [arg0](const Value& v, Args& a) { return !equals(v, arg0(a)); }},
      {"lt", [arg0](const Value& v, Args& a) { return compare(v, arg0(a)) < 0; }},
      {"le", [arg0](const Value& v, Args& a) { return compare(v, arg0(a)) <= 0; }},
      {"gt", [arg0](const Value& v, Args& a) { return compare(v, arg0(a)) > 0; }},
      {"ge", [arg0](const Value& v, Args& a) { return compare(v, arg0(a)) >= 0; }},
      {"in", [](const Value& v, Args& a) { return contains(arg_or(a, 0, "seq", {}), v); }},
      {"escaped", [](const Value&, Args&) { return false; }},
      {"filter", [](const Value& v, Args&) { return v.is_string() && is_filter(v.s); }},
      {"test", [](const Value& v, Args&) { return v.is_string() && is_test(v.s); }},
  };
  return table;
}

const std::unordered_map<std::string, std::string>& test_aliases() {
  static const std::unordered_map<std::string, std::string> aliases = {
      {"equalto", "eq"}, {"==", "eq"},          {"!=", "ne"}, {"lessthan", "lt"}, {"<", "lt"},
      {"<=", "le"},      {"greaterthan", "gt"}, {">", "gt"},  {">=", "ge"}};
  return aliases;
}

template <typename Table>
auto lookup(const Table& table, const std::unordered_map<std::string, std::string>& aliases,
            const std::string& name) {
  auto alias = aliases.find(name);
  return table.find(alias == aliases.end() ? name : alias->second);
}

}  // namespace

const Value* find_arg(const Args& args, size_t index, const char* name) {
  for (const auto& [k, v] : args.kw)
    if (k == name) return &v;
  return index < args.pos.size() ? &args.pos[index] : nullptr;
}

Value arg_or(const Args& args, size_t index, const char* name, Value def) {
  const Value* v = find_arg(args, index, name);
  return v ? *v : def;
}

bool is_filter(const std::string& name) {
  return lookup(filters(), filter_aliases(), name) != filters().end();
}
bool is_test(const std::string& name) {
  return lookup(tests(), test_aliases(), name) != tests().end();
}

Value apply_filter(const std::string& name, const Value& v, Args& args) {
  auto it = lookup(filters(), filter_aliases(), name);
  if (it == filters().end()) fail("no filter named '" + name + "'");
  return it->second(v, args);
}

bool apply_test(const std::string& name, const Value& v, Args& args) {
  auto it = lookup(tests(), test_aliases(), name);
  if (it == tests().end()) fail("no test named '" + name + "'");
  return it->second(v, args);
}

// ---- lookups ----

Value get_attr(const Value& obj, const std::string& name) {
  switch (obj.kind) {
    case Value::Kind::Undefined:
      fail(obj.s.empty() ? "undefined value has no attribute '" + name + "'" : obj.s);
    case Value::Kind::String:
      if (in_list(kPyStrMethods, name)) return bound(obj, name);
      break;
    case Value::Kind::Array:
      if (in_list(kListMethods, name)) return bound(obj, name);
      if (in_list(kListUnsafe, name)) return unsafe_method(obj, name);
      break;
    case Value::Kind::Object:
      if (!obj.obj->is_namespace) {
        if (in_list(kDictMethods, name)) return bound(obj, name);
        if (in_list(kDictUnsafe, name)) return unsafe_method(obj, name);
      }
      if (const Value* v = obj.obj->find(name)) return *v;
      break;
    default:
      break;
  }
  return Value::undefined("'" + object_desc(obj) + "' has no attribute '" + name + "'");
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail(obj.s.empty() ? "undefined value has no item " + repr(key) : obj.s);
  if ((obj.is_array() || obj.is_string()) &&
      (key.kind == Value::Kind::Int || key.kind == Value::Kind::Bool)) {
    int64_t idx = as_int(key, "index");
    if (obj.is_array()) {
      int64_t n = static_cast<int64_t>(obj.arr->size());
      if (idx < 0) idx += n;
      if (idx >= 0 && idx < n) return (*obj.arr)[idx];
    } else {
      std::vector<uint32_t> cps = utf8_decode(obj.s);
      int64_t n = static_cast<int64_t>(cps.size());
      if (idx < 0) idx += n;
      if (idx >= 0 && idx < n) return Value::string(utf8_encode(cps, idx, idx + 1));
    }
    return Value::undefined("'" + object_desc(obj) + "' has no element " + repr(key));
  }
  if (obj.is_dict() && key.is_string())
    if (const Value* v = obj.obj->find(key.s)) return *v;
  if (key.is_string()) return get_attr(obj, key.s);
  return Value::undefined("'" + object_desc(obj) + "' has no element " + repr(key));
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) fail(obj.s.empty() ? "undefined value cannot be sliced" : obj.s);
  if (!obj.is_array() && !obj.is_string())
    fail("'" + type_name(obj) + "' object is not subscriptable");
  std::vector<uint32_t> cps;
  if (obj.is_string()) cps = utf8_decode(obj.s);
  int64_t n =
      obj.is_array() ? static_cast<int64_t>(obj.arr->size()) : static_cast<int64_t>(cps.size());
  auto given = [](const Value& v) { return !v.is_undefined() && !v.is_none(); };
  int64_t st = given(step) ? as_int(step, "slice step") : 1;
  if (st == 0) fail("slice step cannot be zero");
  // Python's PySlice_AdjustIndices.
  auto adjust = [&](const Value& v, int64_t def) {
    if (!given(v)) return def;
    int64_t x = as_int(v, "slice index");
    if (x < 0)
      x = std::max<int64_t>(x + n, st < 0 ? -1 : 0);
    else if (x >= n)
      x = st < 0 ? n - 1 : n;
    return x;
  };
  int64_t b = adjust(start, st < 0 ? n - 1 : 0), e = adjust(stop, st < 0 ? -1 : n);
  Array items;
  std::string s;
  for (int64_t k = b; st > 0 ? k < e : k > e; k += st) {
    if (obj.is_array())
      items.push_back((*obj.arr)[k]);
    else
      utf8_append(s, cps[k]);
  }
  if (!obj.is_array()) return Value::string(std::move(s));
  Value out = Value::array(std::move(items));
  out.is_tuple = obj.is_tuple;
  return out;
}

Array iterate(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined:
      return {};
    case Value::Kind::Array:
      return *v.arr;
    case Value::Kind::String: {
      Array out;
      std::vector<uint32_t> cps = utf8_decode(v.s);
      for (size_t k = 0; k < cps.size(); ++k)
        out.push_back(Value::string(utf8_encode(cps, k, k + 1)));
      return out;
    }
    case Value::Kind::Object:
      if (!v.obj->is_namespace) {
        Array out;
        for (const auto& [k, x] : v.obj->items) out.push_back(Value::string(k));
        return out;
      }
      break;
    default:
      break;
  }
  fail("'" + type_name(v) + "' object is not iterable");
}

Value call_value(const Value& callee, Args& args) {
  if (callee.kind == Value::Kind::Function) return callee.fn->call(args);
  if (callee.is_undefined()) fail(callee.s.empty() ? "undefined value is not callable" : callee.s);
  fail("'" + type_name(callee) + "' object is not callable");
}

// ---- globals ----

void add_globals(Object& g, long long now_override) {
  g.set("namespace", Value::function("namespace", [](Args& a) {
          Value ns = Value::namespace_object();
          for (const Value& p : a.pos) {
            if (!p.is_dict()) fail("namespace() positional arguments must be mappings");
            for (const auto& [k, v] : p.obj->items) ns.obj->set(k, v);
          }
          for (const auto& [k, v] : a.kw) ns.obj->set(k, v);
          return ns;
        }));
  g.set("dict", Value::function("dict", [](Args& a) {
          Value d = Value::object();
          for (const Value& p : a.pos) {
            if (!p.is_dict()) fail("dict() positional arguments must be mappings");
            for (const auto& [k, v] : p.obj->items) d.obj->set(k, v);
          }
          for (const auto& [k, v] : a.kw) d.obj->set(k, v);
          return d;
        }));
  g.set("range", Value::function("range", [](Args& a) {
          if (a.pos.empty() || a.pos.size() > 3) fail("range expects 1 to 3 integer arguments");
          int64_t start = 0, stop, step = 1;
          if (a.pos.size() == 1) {
            stop = as_int(a.pos[0], "range() argument");
          } else {
            start = as_int(a.pos[0], "range() argument");
            stop = as_int(a.pos[1], "range() argument");
            if (a.pos.size() == 3) step = as_int(a.pos[2], "range() argument");
          }
          if (step == 0) fail("range() arg 3 must not be zero");
          Array out;
          for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
            if (out.size() >= 100000)
              fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
            out.push_back(Value::integer(k));
          }
          return Value::array(std::move(out));
        }));
  g.set("raise_exception", Value::function("raise_exception", [](Args& a) -> Value {
          throw TemplateRaisedError(to_str(arg_or(a, 0, "message", Value::string(""))));
        }));
  g.set("strftime_now", Value::function("strftime_now", [now_override](Args& a) {
          std::time_t t =
              now_override >= 0 ? static_cast<std::time_t>(now_override) : std::time(nullptr);
          std::tm tm{};
          localtime_r(&t, &tm);
          std::string fmt = as_str(arg_or(a, 0, "format", {}), "strftime_now format");
          char buf[512];
          size_t n = std::strftime(buf, sizeof(buf), fmt.c_str(), &tm);
          return Value::string(std::string(buf, n));
        }));
}

}  // namespace densekv::jinja
