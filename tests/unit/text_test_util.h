// Shared helpers for the text tests: the real tokenizer files live in ../shared/tokenizers.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "text/tokenizer.h"

namespace densekv::testing {

inline std::filesystem::path shared_tokenizer_dir(const std::string& family) {
  return std::filesystem::path(DENSEKV_SOURCE_DIR) / ".." / "shared" / "tokenizers" / family;
}

// Loads ../shared/tokenizers/<family>, or returns nullptr when the folder is absent (the caller
// skips).
inline std::unique_ptr<Tokenizer> load_shared_tokenizer(const std::string& family) {
  auto dir = shared_tokenizer_dir(family);
  if (!std::filesystem::exists(dir / "tokenizer.json")) return nullptr;
  return Tokenizer::load(dir);
}

}  // namespace densekv::testing

#define DENSEKV_LOAD_TOKENIZER_OR_SKIP(var, family)                                          \
  auto var = ::densekv::testing::load_shared_tokenizer(family);                              \
  if (!var) {                                                                                \
    GTEST_SKIP() << "skipped: " << ::densekv::testing::shared_tokenizer_dir(family).string() \
                 << " is absent (real tokenizer files are not available here)";              \
  }
