#include "server/sse.h"

namespace densekv {

std::string sse_event(std::string_view payload) {
  std::string s;
  s.reserve(payload.size() + 8);
  s += "data: ";
  s += payload;
  s += "\n\n";
  return s;
}

std::string sse_done() {
  return "data: [DONE]\n\n";
}

std::vector<std::string> sse_parse(std::string_view body) {
  std::vector<std::string> out;
  std::string data;
  bool have_data = false;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t nl = body.find('\n', pos);
    if (nl == std::string_view::npos) nl = body.size();
    std::string_view line = body.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl + 1;
    if (line.empty()) {  // end of an event
      if (have_data) out.push_back(data);
      data.clear();
      have_data = false;
      continue;
    }
    if (line.front() == ':') continue;  // comment
    size_t colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "data") {
      if (have_data) data += '\n';
      data += value;
      have_data = true;
    }
  }
  if (have_data) out.push_back(data);
  return out;
}

}  // namespace densekv
