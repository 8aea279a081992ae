// Python str operations on UTF-8 strings, as templates call them (methods like .strip() and
// .split(), and the Jinja filters built on them). Indices and lengths count code points; case
// mapping uses utf8proc's simple (one code point to one) mappings.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "text/jinja_value.h"

namespace densekv::jinja {

// str.strip/lstrip/rstrip; `chars` none/undefined means whitespace.
std::string py_strip(const std::string& s, const Value& chars, bool left, bool right);
// str.split/rsplit; `sep` none/undefined splits on runs of whitespace. maxsplit < 0: no limit.
Array py_split(const std::string& s, const Value& sep, int64_t maxsplit, bool from_right);
std::vector<std::string> py_splitlines(const std::string& s, bool keepends);
std::string py_upper(const std::string& s);
std::string py_lower(const std::string& s);
std::string py_title(const std::string& s);       // str.title()
std::string py_capitalize(const std::string& s);  // str.capitalize()
std::string jinja_title(const std::string& s);  // the |title filter (words split at -, space, ([{<)
std::string py_replace(const std::string& s, const std::string& old, const std::string& repl,
                       int64_t count);
int64_t py_find(const std::string& s, const std::string& sub, bool reverse);  // code point index
int64_t py_count(const std::string& s, const std::string& sub);
bool py_predicate(const std::string& name, const std::string& s);   // isdigit, isalpha, ...
std::string py_format(const std::string& fmt, const Args& args);    // str.format
std::string py_percent(const std::string& fmt, const Value& args);  // fmt % args
std::string jinja_indent(const std::string& s, const Value& width, bool first, bool blank);
std::string html_escape(const std::string& s);

}  // namespace densekv::jinja
