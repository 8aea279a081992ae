// What templates can call: Jinja2's filters and tests, the Python methods of str/dict/list that
// the sandbox lets templates use, attribute and item lookup (the sandbox's getattr/getitem rules),
// and the globals transformers provides (namespace, range, dict, raise_exception, strftime_now).
// Unknown filters/tests are rejected at parse time; a Python method we do not implement is a
// TemplateError naming it, never a silent difference.
#pragma once
#include <string>
#include <vector>

#include "text/jinja_value.h"

namespace densekv::jinja {

bool is_filter(const std::string& name);
bool is_test(const std::string& name);
Value apply_filter(const std::string& name, const Value& v, Args& args);
bool apply_test(const std::string& name, const Value& v, Args& args);

// obj.name: a dict's item (or its method: items, keys, values, get), a str/list method bound to
// obj, a namespace attribute; undefined when missing. Throws when obj is undefined.
Value get_attr(const Value& obj, const std::string& name);
// obj[key]: list/str index (negative from the end), dict item, else as get_attr for a str key;
// undefined when missing. Throws when obj is undefined.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] on a list or str (any bound may be none/undefined).
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// Python iter(): list items, dict keys, str characters; undefined iterates as empty.
Array iterate(const Value& v);
Value call_value(const Value& callee, Args& args);

// The functions every chat template sees. `now_override`: seconds since the epoch that
// strftime_now formats instead of the current time (-1: use the clock).
void add_globals(Object& globals, long long now_override);

// Argument helpers for builtins: positional `index` or keyword `name`, else `def`.
const Value* find_arg(const Args& args, size_t index, const char* name);
Value arg_or(const Args& args, size_t index, const char* name, Value def);

}  // namespace densekv::jinja
