#include "io/json_file.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "core/errors.h"

namespace densekv {

nlohmann::json read_json_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr)
    throw FileFormatError(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  std::string text;
  char buf[65536];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, got);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw FileFormatError(fmt::format("cannot read {}", path));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw FileFormatError(fmt::format("{}: not valid JSON", path));
  return j;
}

std::string json_brief(const nlohmann::json& v) {
  const bool flat =
      std::none_of(v.begin(), v.end(), [](const nlohmann::json& e) { return e.is_structured(); });
  if (v.is_structured() && !flat)
    return fmt::format("(an {} of {} items)", v.type_name(), v.size());
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

}  // namespace densekv
