// JSON helpers shared by the model-folder readers (config.json, the safetensors index,
// tokenizer files): read a file, and print a value inside an error message safely.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace densekv {

// Reads and parses PATH. Throws FileFormatError naming the file when it cannot be read or parsed.
nlohmann::json read_json_file(const std::string& path);

// A short rendering of `v` for error messages: scalars and flat arrays/objects as JSON, cut at
// 80 characters; nested values only by kind and size (no deep recursion on hostile input).
std::string json_brief(const nlohmann::json& v);

}  // namespace densekv
