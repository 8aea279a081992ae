// Shared helpers for the text tests: the real tokenizer files live in ../shared/tokenizers.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "text/tokenizer.h"

namespace densekv::testing {

inline std::filesystem::path shared_tokenizer_dir(const std::string& family) {
  return std::filesystem::path(DENSEKV_SOURCE_DIR) / ".." / "shared" / "tokenizers" / family;
}

// Loads ../shared/tokenizers/<family> once per test binary, or returns nullptr when the folder is
// absent (the caller skips).
inline const Tokenizer* load_shared_tokenizer(const std::string& family) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> loaded;
  auto it = loaded.find(family);
  if (it != loaded.end()) return it->second.get();
  auto dir = shared_tokenizer_dir(family);
  if (!std::filesystem::exists(dir / "tokenizer.json")) return nullptr;
  return (loaded[family] = Tokenizer::load(dir)).get();
}

}  // namespace densekv::testing

#define DENSEKV_LOAD_TOKENIZER_OR_SKIP(var, family)                                          \
  const ::densekv::Tokenizer* var = ::densekv::testing::load_shared_tokenizer(family);       \
  if (!var) {                                                                                \
    GTEST_SKIP() << "skipped: " << ::densekv::testing::shared_tokenizer_dir(family).string() \
                 << " is absent (real tokenizer files are not available here)";              \
  }
